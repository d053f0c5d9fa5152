/**
 * The cost rule's own estimate, used when no cost model is registered (see `cost-hook.ts`).
 *
 * Conservative on purpose: on-demand list prices of us-east-1 / us-central1 rounded up, no
 * savings plans or committed-use discounts, always-on capacity at its minimum (what you pay with
 * no traffic: instances, nodes, warm Lambda and Cloud Run instances, databases, caches, NAT,
 * load balancers, control planes), and a high price for any size it does not know. Usage-based
 * charges (requests, tokens, data transfer) are not included. It errs high so that "under the
 * limit" means something; the plan's cost model is the precise one.
 *
 * Values unknown during preview are the exception: an item whose price depends on one counts as
 * $0, so the estimate is then a lower bound and the rule never fails a preview on what it cannot see.
 */
import type { PolicyResource } from "./types";
import { UNKNOWN, get, list, num, str } from "./values";

const HOURS = 730;

/** Unknown sizes are priced like this per hour (about $290/month): high, so they get noticed. */
const UNKNOWN_INSTANCE_HOURLY = 0.4;

const T_SIZES: Record<string, number> = {
  nano: 0.25,
  micro: 0.5,
  small: 1,
  medium: 2,
  large: 4,
  xlarge: 8,
  "2xlarge": 16,
};

/** vCPUs of an instance size: large = 2, xlarge = 4, Nxlarge = 4N. */
function vcpusOf(size: string): number | undefined {
  if (size === "large") return 2;
  if (size === "xlarge") return 4;
  const m = /^(\d+)xlarge$/.exec(size);
  return m ? 4 * Number(m[1]) : undefined;
}

/** Hourly price of an EC2 instance type (also RDS `db.` and ElastiCache `cache.` classes with a multiplier). */
export function ec2Hourly(type: string, kind: "ec2" | "rds" | "cache" = "ec2"): number {
  const bare = type.replace(/^(db|cache)\./, "");
  const m = /^([a-z]+)(\d+)([a-z-]*)\.(.+)$/.exec(bare);
  if (!m) return UNKNOWN_INSTANCE_HOURLY;
  const [, family, , attrs, size] = m as unknown as [string, string, string, string, string];
  const graviton = attrs.includes("g");
  // Managed database and cache classes cost about twice the EC2 instance of the same size.
  const markup = kind === "rds" ? 2.1 : kind === "cache" ? 2 : 1;
  if (family === "t") {
    const units = T_SIZES[size];
    if (units === undefined) return UNKNOWN_INSTANCE_HOURLY * markup;
    // t3.small is $0.0208/h; t4g is about 20 % cheaper.
    return units * 0.0208 * (graviton ? 0.8 : 1) * markup;
  }
  const vcpu = vcpusOf(size);
  if (vcpu === undefined) return UNKNOWN_INSTANCE_HOURLY * markup;
  const perVcpu: Record<string, number> = { m: 0.048, c: 0.0425, r: 0.063 };
  const base = perVcpu[family];
  if (base === undefined) return Math.max(UNKNOWN_INSTANCE_HOURLY, vcpu * 0.07) * markup;
  return vcpu * base * (graviton ? 0.85 : 1) * markup;
}

const GCE_MONTHLY: Record<string, number> = {
  "e2-micro": 6.2,
  "e2-small": 12.3,
  "e2-medium": 24.5,
  "e2-standard-2": 49,
  "e2-standard-4": 98,
  "e2-standard-8": 196,
  "n2-standard-2": 57,
  "n2-standard-4": 114,
  "n2-standard-8": 227,
};

export function gceMonthly(machineType: string): number {
  const bare = machineType.split("/").pop() ?? machineType;
  const known = GCE_MONTHLY[bare];
  if (known !== undefined) return known;
  const m = /-(\d+)$/.exec(bare);
  return m ? Number(m[1]) * 31 : UNKNOWN_INSTANCE_HOURLY * HOURS;
}

/** Cloud SQL tier per month (without disk). */
export function cloudSqlMonthly(tier: string): number {
  if (tier === "db-f1-micro") return 7.7;
  if (tier === "db-g1-small") return 25.6;
  const m = /^db-custom-(\d+)-(\d+)$/.exec(tier);
  if (m) return Number(m[1]) * 30.2 + (Number(m[2]) / 1024) * 5.2;
  const perf = /^db-perf-optimized-N-(\d+)$/.exec(tier);
  if (perf) return Number(perf[1]) * 40;
  return UNKNOWN_INSTANCE_HOURLY * HOURS;
}

/** Thrown when a price depends on a value unknown during preview: that item then counts as $0. */
class UnknownInput extends Error {}

function known<T>(v: T | typeof UNKNOWN): T {
  if (v === UNKNOWN) throw new UnknownInput();
  return v;
}

function n(v: unknown, fallback: number): number {
  const x = known(num(v));
  return typeof x === "number" ? x : fallback;
}

function s(v: unknown): string | undefined {
  const x = known(str(v));
  return typeof x === "string" ? x : undefined;
}

function l(v: unknown): unknown[] {
  return known(list(v));
}

/** `fn()`, or 0 when it needs a value that is not known yet. */
function orZero(fn: () => number): number {
  try {
    return fn();
  } catch (e) {
    if (e instanceof UnknownInput) return 0;
    throw e;
  }
}

/** gp3 root volume of the stack's launch template (one per stack here), per instance. */
function rootVolumeMonthly(stack: readonly PolicyResource[]): number {
  const lt = stack.find((x) => x.type === "aws:ec2/launchTemplate:LaunchTemplate");
  const mappings = lt ? list(lt.props.blockDeviceMappings) : [];
  if (mappings === UNKNOWN) return 0;
  const size = mappings
    .map((m) => num(get(m, "ebs.volumeSize")))
    .find((x): x is number => typeof x === "number");
  return (size ?? 30) * 0.08;
}

/** Monthly USD of one resource's always-on capacity (0 for what costs nothing or only per use). */
export function resourceMonthlyUsd(
  r: PolicyResource,
  stack: readonly PolicyResource[] = [],
): number {
  return orZero(() => priceOf(r, stack));
}

function priceOf(r: PolicyResource, stack: readonly PolicyResource[]): number {
  const p = r.props;
  switch (r.type) {
    case "aws:eks/cluster:Cluster":
      return 0.1 * HOURS;
    case "aws:ec2/natGateway:NatGateway":
      return 0.045 * HOURS;
    case "aws:ec2/eip:Eip":
      return 0.005 * HOURS;
    case "aws:lb/loadBalancer:LoadBalancer":
    case "aws:alb/loadBalancer:LoadBalancer":
      return 0.0225 * HOURS + 8; // plus a few LCUs
    case "aws:ec2/vpcEndpoint:VpcEndpoint": {
      if (s(p.vpcEndpointType) !== "Interface") return 0;
      return 0.01 * HOURS * Math.max(1, l(p.subnetIds).length);
    }
    case "aws:ec2/instance:Instance":
      return ec2Hourly(s(p.instanceType) ?? "unknown") * HOURS;
    case "aws:autoscaling/group:Group":
      // Priced through its launch template's type when known (see stack estimate); here only the count.
      return 0;
    case "aws:eks/nodeGroup:NodeGroup": {
      const type = s(l(p.instanceTypes)[0]);
      const count = n(get(p, "scalingConfig.desiredSize"), n(get(p, "scalingConfig.minSize"), 2));
      return (ec2Hourly(type ?? "t3.medium") * HOURS + rootVolumeMonthly(stack)) * count;
    }
    case "kubernetes:core/v1:Service":
      // A LoadBalancer Service is a cloud load balancer (an NLB on EKS) with public addresses.
      return get(p, "spec.type") === "LoadBalancer" ? 0.0225 * HOURS + 8 + 3 * 0.005 * HOURS : 0;
    case "aws:rds/instance:Instance": {
      const az = get(p, "multiAz") === true ? 2 : 1;
      const storage = n(p.allocatedStorage, 20) * 0.115;
      return (ec2Hourly(s(p.instanceClass) ?? "unknown", "rds") * HOURS + storage) * az;
    }
    case "aws:elasticache/replicationGroup:ReplicationGroup": {
      const nodes =
        n(p.numCacheClusters, 1) *
        Math.max(1, n(p.numNodeGroups, 1)) *
        (1 + n(p.replicasPerNodeGroup, 0));
      return ec2Hourly(s(p.nodeType) ?? "unknown", "cache") * HOURS * nodes;
    }
    case "aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig": {
      // Memory is on the function (one per stack here); about $11 per GB-month of warm instance.
      const fn = stack.find((x) => x.type === "aws:lambda/function:Function");
      const memGb = n(fn?.props.memorySize, 2048) / 1024;
      return n(p.provisionedConcurrentExecutions, 0) * memGb * 11;
    }
    case "aws:secretsmanager/secret:Secret":
      return 0.4;
    case "aws:kms/key:Key":
      return 1;
    case "aws:cloudwatch/metricAlarm:MetricAlarm":
      return 0.1;
    case "aws:cloudwatch/dashboard:Dashboard":
      return 3;
    case "gcp:sql/databaseInstance:DatabaseInstance": {
      const regional = get(p, "settings.availabilityType") === "REGIONAL" ? 2 : 1;
      const disk =
        n(get(p, "settings.diskSize"), 10) *
        (get(p, "settings.diskType") === "PD_HDD" ? 0.09 : 0.17);
      return (cloudSqlMonthly(s(get(p, "settings.tier")) ?? "unknown") + disk) * regional;
    }
    case "gcp:redis/instance:Instance": {
      const gb = n(p.memorySizeGb, 1);
      return gb * (s(p.tier) === "STANDARD_HA" ? 0.064 : 0.049) * HOURS;
    }
    case "gcp:cloudrunv2/service:Service": {
      const min = n(get(p, "template.scaling.minInstanceCount"), 0);
      const limits = get(l(get(p, "template.containers"))[0], "resources.limits");
      const cpu = parseCpu(s(get(limits, "cpu")) ?? "1");
      const memGb = parseMemGb(s(get(limits, "memory")) ?? "512Mi");
      // Always-allocated rates for warm instances.
      return min * (cpu * 0.000018 + memGb * 0.000002) * 3600 * HOURS;
    }
    case "gcp:compute/routerNat:RouterNat":
      return 0.044 * HOURS;
    case "gcp:compute/globalForwardingRule:GlobalForwardingRule":
    case "gcp:compute/forwardingRule:ForwardingRule":
      return 0.025 * HOURS;
    case "gcp:secretmanager/secret:Secret":
      return 0.06;
    default:
      return 0;
  }
}

export function parseCpu(v: string): number {
  if (v.endsWith("m")) return Number(v.slice(0, -1)) / 1000 || 1;
  return Number(v) || 1;
}

export function parseMemGb(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$/.exec(v.trim());
  if (!m) return 1;
  const x = Number(m[1]);
  const unit = m[2] ?? "";
  const factor: Record<string, number> = {
    Ki: 1 / 1024 ** 2,
    Mi: 1 / 1024,
    Gi: 1,
    Ti: 1024,
    K: 1e3 / 1024 ** 3,
    M: 1e6 / 1024 ** 3,
    G: 1e9 / 1024 ** 3,
    T: 1e12 / 1024 ** 3,
    "": 1 / 1024 ** 3,
  };
  return x * (factor[unit] ?? 1);
}

export interface EstimateLine {
  resource: string;
  monthlyUsd: number;
}

/**
 * The stack's monthly estimate. Auto Scaling groups and managed instance groups are priced at
 * their minimum (or desired) size times their template's machine type.
 */
export function fallbackEstimate(resources: readonly PolicyResource[]): {
  monthlyUsd: number;
  lines: EstimateLine[];
} {
  const lines: EstimateLine[] = [];
  const add = (r: PolicyResource, usd: number) => {
    if (usd > 0) lines.push({ resource: `${r.type} "${r.name}"`, monthlyUsd: usd });
  };
  for (const r of resources) add(r, resourceMonthlyUsd(r, resources));

  // Instance groups: count from the group, size from the template. One template per group in this project.
  const awsTemplates = resources.filter(
    (r) => r.type === "aws:ec2/launchTemplate:LaunchTemplate" && r.props.instanceType !== undefined,
  );
  for (const asg of resources.filter((r) => r.type === "aws:autoscaling/group:Group")) {
    add(
      asg,
      orZero(() => {
        const count = n(asg.props.desiredCapacity, n(asg.props.minSize, 1));
        const type = awsTemplates.length > 0 ? s(awsTemplates[0]!.props.instanceType) : undefined;
        return (ec2Hourly(type ?? "unknown") * HOURS + rootVolumeMonthly(resources)) * count;
      }),
    );
  }
  const gcpTemplates = resources.filter(
    (r) =>
      r.type === "gcp:compute/instanceTemplate:InstanceTemplate" ||
      r.type === "gcp:compute/regionInstanceTemplate:RegionInstanceTemplate",
  );
  for (const as of resources.filter(
    (r) =>
      r.type === "gcp:compute/regionAutoscaler:RegionAutoscaler" ||
      r.type === "gcp:compute/autoscaler:Autoscaler",
  )) {
    add(
      as,
      orZero(() => {
        const count = n(get(as.props, "autoscalingPolicy.minReplicas"), 1);
        const type = gcpTemplates.length > 0 ? s(gcpTemplates[0]!.props.machineType) : undefined;
        const disks = gcpTemplates.length > 0 ? l(gcpTemplates[0]!.props.disks) : [];
        const diskGb =
          disks.length === 0
            ? 10
            : disks.reduce<number>((sum, d) => sum + n(get(d, "diskSizeGb"), 10), 0);
        return (gceMonthly(type ?? "unknown") + diskGb * 0.1) * count;
      }),
    );
  }
  lines.sort((a, b) => b.monthlyUsd - a.monthlyUsd);
  const monthlyUsd = Math.round(lines.reduce((sum, l) => sum + l.monthlyUsd, 0) * 100) / 100;
  return { monthlyUsd, lines };
}
