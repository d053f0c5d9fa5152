/**
 * Estimated monthly cost of a rendered stack, from the dated list prices in `prices.json` and the
 * usage assumptions it states per environment. Pure: resources in, figures out, no I/O.
 *
 * Every custom resource gets one item: `priced` (with the arithmetic in `detail`), `free` (a kind
 * that costs nothing by itself, with the reason) or `not-priced` (a kind or size the table does not
 * know). Nothing is silently zero: an unknown kind or instance size is `not-priced`, never guessed.
 * Items are rounded to cents and the total is the sum of the rounded items, so the printed figures
 * add up.
 */
import type { Environment } from "../../components/contracts";
import PRICES from "./prices.json";
import { DEFAULT_EKS_VERSION, eksVersionStatus, utcToday } from "../../components/versions";

export type PriceTable = typeof PRICES;
export type UsageAssumptions = PriceTable["usage"]["dev"];

/** What the estimator needs of a resource; the mock runtime's RecordedResource satisfies it. */
export interface CostResource {
  type: string;
  name: string;
  /** The provider id; resources refer to each other by it (an ASG to its launch template...). */
  id?: string;
  /** False for component resources, which cost nothing themselves and get no item. */
  custom?: boolean;
  inputs: Record<string, unknown>;
  /** Provider-computed outputs (`name`, `selfLink`...), used to follow references. */
  state?: Record<string, unknown>;
}

export type Pricing = "priced" | "free" | "not-priced";

export interface CostItem {
  type: string;
  name: string;
  pricing: Pricing;
  monthlyUsd: number;
  /** The arithmetic for priced items; the reason for free and not-priced ones. */
  detail: string;
}

export interface CostEstimate {
  monthlyUsd: number;
  items: CostItem[];
}

export interface CostOptions {
  environment: Environment;
  /** @default the repository's prices.json */
  prices?: PriceTable;
  /** @default the environment's usage assumptions from the price table */
  usage?: UsageAssumptions;
  /** The day (`YYYY-MM-DD`) support phases are judged on (EKS extended support). @default today */
  today?: string;
}

export const DEFAULT_PRICES: PriceTable = PRICES;

/** Rounds to cents, half away from zero, without binary-fraction surprises (1.005 -> 1.01). */
export function roundCents(usd: number): number {
  return (Math.sign(usd) * Math.round(Math.abs(usd) * 100 + 1e-9)) / 100;
}

export function usageFor(environment: Environment, prices: PriceTable = PRICES): UsageAssumptions {
  const usage = prices.usage[environment];
  if (!usage)
    throw new Error(`prices.json has no usage assumptions for environment "${environment}"`);
  return usage;
}

/**
 * The environment's assumptions with every traffic-driven quantity at zero: what the stack costs
 * standing idle (instances, nodes, databases, caches, NAT, load balancers, warm capacity, stored
 * images). The policy pack's monthly-cost rule limits this figure.
 */
export function alwaysOnUsage(usage: UsageAssumptions): UsageAssumptions {
  return {
    ...usage,
    requestsPerMonth: 0,
    cloudRunBusyInstanceHours: 0,
    natDataGbPerMonth: 0,
    loadBalancerAvgLcu: 0,
    loadBalancerDataGbPerMonth: 0,
    appLogGbPerMonth: 0,
    eksControlPlaneLogGbPerMonth: 0,
    flowLogGbPerMonth: 0,
  };
}

export function estimateCost(
  resources: readonly CostResource[],
  options: CostOptions,
): CostEstimate {
  const ctx = new Context(
    resources,
    options.prices ?? PRICES,
    options.usage ?? usageFor(options.environment, options.prices),
    options.today ?? utcToday(),
  );
  const items: CostItem[] = [];
  for (const r of resources) {
    if (r.custom === false) continue;
    items.push(priceOne(r, ctx));
  }
  // Registration order depends on timing; the report must not.
  items.sort((a, b) => a.type.localeCompare(b.type, "en") || a.name.localeCompare(b.name, "en"));
  const monthlyUsd = roundCents(items.reduce((sum, i) => sum + i.monthlyUsd, 0));
  return { monthlyUsd, items };
}

// ---------------------------------------------------------------------------------------------
// Dispatch

type Outcome = { usd: number; detail: string } | { free: string } | { notPriced: string };
type Pricer = (r: CostResource, ctx: Context) => Outcome;

function priceOne(r: CostResource, ctx: Context): CostItem {
  const pricer = PRICERS[r.type];
  const outcome: Outcome = pricer ? pricer(r, ctx) : classify(r.type, ctx.prices);
  const base = { type: r.type, name: r.name };
  if ("usd" in outcome)
    return {
      ...base,
      pricing: "priced",
      monthlyUsd: roundCents(outcome.usd),
      detail: outcome.detail,
    };
  if ("free" in outcome) return { ...base, pricing: "free", monthlyUsd: 0, detail: outcome.free };
  return { ...base, pricing: "not-priced", monthlyUsd: 0, detail: outcome.notPriced };
}

function classify(type: string, prices: PriceTable): Outcome {
  const lookup = (table: Record<string, string>) =>
    Object.entries(table).find(
      ([prefix]) => !prefix.startsWith("$") && type.startsWith(prefix),
    )?.[1];
  const notPriced = lookup(prices.notPriced);
  if (notPriced) return { notPriced };
  const free = lookup(prices.free);
  if (free) return { free };
  return { notPriced: `no price rule for ${type}: add one to infra/plan/cost.ts and prices.json` };
}

// ---------------------------------------------------------------------------------------------
// Context: the stack-wide view some prices need (NAT data split, references between resources)

class Context {
  readonly hours: number;
  readonly seconds: number;
  constructor(
    readonly resources: readonly CostResource[],
    readonly prices: PriceTable,
    readonly usage: UsageAssumptions,
    readonly today: string,
  ) {
    this.hours = prices.hoursPerMonth;
    this.seconds = prices.hoursPerMonth * 3600;
  }

  ofType(type: string): CostResource[] {
    return this.resources.filter((r) => r.type === type && r.custom !== false);
  }

  /**
   * The resource of `type` that `ref` (an id, name, self link or ARN) designates; failing that,
   * the only resource of that type in the stack (the policy pack hands over inputs without ids).
   */
  find(type: string, ref: unknown): CostResource | undefined {
    const candidates = this.ofType(type);
    if (typeof ref === "string" && ref) {
      const bare = ref.replace(/\?.*$/, "");
      const found = candidates.find((r) => {
        const keys = [
          r.id,
          r.state?.name,
          r.inputs.name,
          r.state?.selfLink,
          r.state?.selfLinkUnique,
          r.state?.arn,
        ];
        return keys.some(
          (k) =>
            typeof k === "string" &&
            k !== "" &&
            (k === ref || k === bare || bare.endsWith(`/${k}`)),
        );
      });
      if (found) return found;
    }
    return candidates.length === 1 ? candidates[0] : undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** Rates as printed in details: whole cents with two decimals ($0.40), finer rates as they are. */
const usd = (n: number) =>
  Number.isInteger(Math.round(n * 100 * 1e6) / 1e6) ? `$${n.toFixed(2)}` : `$${n}`;
const num = (v: unknown, fallback: number) =>
  typeof v === "number" && Number.isFinite(v)
    ? v
    : typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))
      ? Number(v)
      : fallback;
const str = (v: unknown) => (typeof v === "string" ? v : undefined);
const obj = (v: unknown) =>
  v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
const arr = (v: unknown) => (Array.isArray(v) ? (v as unknown[]) : []);
const thousands = (n: number) => n.toLocaleString("en-US", { maximumFractionDigits: 3 });
const lookupPrice = (table: Record<string, number>, key: string | undefined) =>
  key !== undefined && Object.hasOwn(table, key) ? table[key] : undefined;

/** Kubernetes-style quantities: "2", "500m" CPUs; "512Mi", "2Gi", "1G" memory in GiB. */
export function cpuQuantity(q: unknown): number {
  const s = String(q ?? "1");
  return s.endsWith("m") ? Number(s.slice(0, -1)) / 1000 : Number(s);
}
export function memoryGiB(q: unknown): number {
  const m = /^(\d+(?:\.\d+)?)(Mi|Gi|M|G)?$/.exec(String(q ?? "512Mi"));
  if (!m) return NaN;
  const n = Number(m[1]);
  switch (m[2]) {
    case "Mi":
      return n / 1024;
    case "Gi":
      return n;
    case "M":
      return (n * 1e6) / 2 ** 30;
    case "G":
      return (n * 1e9) / 2 ** 30;
    default:
      return n / 2 ** 30;
  }
}

// ---------------------------------------------------------------------------------------------
// AWS

function ebsOf(
  mappings: unknown,
  prices: PriceTable,
): { gb: number; usd: number; text: string } | { missing: string } {
  let gb = 0;
  let total = 0;
  const parts: string[] = [];
  for (const m of arr(mappings)) {
    const ebs = obj(obj(m).ebs);
    const size = num(ebs.volumeSize, 8);
    const type = str(ebs.volumeType) ?? "gp2";
    const price = lookupPrice(prices.aws.ebs.perGbMonth, type);
    if (price === undefined) return { missing: `no price for EBS ${type}` };
    gb += size;
    total += size * price;
    parts.push(`${size} GB ${type} x ${usd(price)}`);
  }
  return { gb, usd: total, text: parts.join(" + ") };
}

const awsLoadBalancer = (
  kind: "application" | "network",
  internal: boolean,
  azs: number,
  ctx: Context,
  azNote = "",
): Outcome => {
  const elb = ctx.prices.aws.elb;
  const hourly = kind === "application" ? elb.albPerHour : elb.nlbPerHour;
  const lcuRate = kind === "application" ? elb.albPerLcuHour : elb.nlbPerNlcuHour;
  const lcu = ctx.usage.loadBalancerAvgLcu;
  const ipRate = ctx.prices.aws.publicIpv4PerHour;
  const ips = internal ? 0 : azs;
  const total = hourly * ctx.hours + lcu * lcuRate * ctx.hours + ips * ipRate * ctx.hours;
  const unit = kind === "application" ? "LCU" : "NLCU";
  const label = kind === "application" ? "ALB" : "NLB";
  return {
    usd: total,
    detail:
      `${label} ${usd(hourly)}/h x ${ctx.hours} h + ${lcu} ${unit} x ${usd(lcuRate)}/h x ${ctx.hours} h` +
      (ips ? ` + ${ips} public IPv4${azNote} x ${usd(ipRate)}/h x ${ctx.hours} h` : ""),
  };
};

function lambdaMemoryGb(fn: CostResource): number {
  return num(fn.inputs.memorySize, 128) / 1024;
}
function lambdaArch(fn: CostResource): "arm64" | "x86_64" {
  return arr(fn.inputs.architectures)[0] === "arm64" ? "arm64" : "x86_64";
}
function provisionedFor(fn: CostResource, ctx: Context): number {
  return ctx
    .ofType("aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig")
    .filter((pc) => ctx.find(fn.type, pc.inputs.functionName) === fn)
    .reduce((sum, pc) => sum + num(pc.inputs.provisionedConcurrentExecutions, 0), 0);
}

/** Log groups share the stack's application log volume; EKS control-plane and flow logs have their own. */
function logGroupRole(r: CostResource, ctx: Context): "eks" | "flow" | "app" {
  const physical = str(r.inputs.name) ?? str(r.state?.name) ?? "";
  if (physical.startsWith("/aws/eks/")) return "eks";
  const flowDestinations = ctx
    .ofType("aws:ec2/flowLog:FlowLog")
    .map((f) => str(f.inputs.logDestination) ?? "");
  if (
    physical &&
    flowDestinations.some(
      (d) => d.endsWith(`:log-group:${physical}`) || d.endsWith(`:log-group:${physical}:*`),
    )
  )
    return "flow";
  if (!physical && r.name.includes("flow")) return "flow";
  return "app";
}

function natGateways(ctx: Context): number {
  return Math.max(1, ctx.ofType("aws:ec2/natGateway:NatGateway").length);
}

const AWS: Record<string, Pricer> = {
  "aws:rds/instance:Instance": (r, ctx) => {
    const rds = ctx.prices.aws.rds;
    const cls = str(r.inputs.instanceClass);
    const engine = str(r.inputs.engine) ?? "postgres";
    if (engine !== "postgres")
      return { notPriced: `engine ${engine}: the table holds PostgreSQL prices only` };
    const hourly = lookupPrice(rds.postgresSingleAzPerHour, cls);
    if (hourly === undefined)
      return { notPriced: `no price for ${cls ?? "an unset instance class"}` };
    const storageType = str(r.inputs.storageType) ?? "gp2";
    const perGb = lookupPrice(rds.storagePerGbMonth, storageType);
    if (perGb === undefined) return { notPriced: `no price for RDS storage ${storageType}` };
    const multiAz = r.inputs.multiAz === true;
    const factor = multiAz ? rds.multiAzFactor : 1;
    const storageFactor = multiAz ? rds.multiAzStorageFactor : 1;
    const gb = num(r.inputs.allocatedStorage, 20);
    return {
      usd: hourly * factor * ctx.hours + gb * perGb * storageFactor,
      detail:
        `${cls} ${usd(hourly)}/h${multiAz ? ` x ${factor} (Multi-AZ)` : ""} x ${ctx.hours} h` +
        ` + ${gb} GB ${storageType} x ${usd(perGb)}${multiAz ? ` x ${storageFactor}` : ""}`,
    };
  },

  "aws:elasticache/replicationGroup:ReplicationGroup": (r, ctx) => {
    const ec = ctx.prices.aws.elasticache;
    const nodeType = str(r.inputs.nodeType);
    const base = lookupPrice(ec.redisOssPerNodeHour, nodeType);
    if (base === undefined)
      return { notPriced: `no price for ${nodeType ?? "an unset node type"}` };
    const nodes =
      r.inputs.numCacheClusters !== undefined
        ? num(r.inputs.numCacheClusters, 1)
        : num(r.inputs.numNodeGroups, 1) * (num(r.inputs.replicasPerNodeGroup, 0) + 1);
    const valkey = r.inputs.engine === "valkey";
    const hourly = valkey ? base * ec.valkeyFactor : base;
    return {
      usd: hourly * nodes * ctx.hours,
      detail: `${nodes} x ${nodeType} ${usd(base)}/h${valkey ? ` x ${ec.valkeyFactor} (Valkey)` : ""} x ${ctx.hours} h`,
    };
  },

  "aws:ec2/natGateway:NatGateway": (r, ctx) => {
    const nat = ctx.prices.aws.natGateway;
    const gateways = natGateways(ctx);
    const gb = ctx.usage.natDataGbPerMonth / gateways;
    return {
      usd: nat.perHour * ctx.hours + gb * nat.perGbProcessed,
      detail: `${usd(nat.perHour)}/h x ${ctx.hours} h + ${thousands(gb)} GB (${ctx.usage.natDataGbPerMonth} GB / ${gateways} gateway${gateways > 1 ? "s" : ""}) x ${usd(nat.perGbProcessed)}`,
    };
  },

  "aws:ec2/eip:Eip": (_r, ctx) => {
    const rate = ctx.prices.aws.publicIpv4PerHour;
    return { usd: rate * ctx.hours, detail: `public IPv4 ${usd(rate)}/h x ${ctx.hours} h` };
  },

  "aws:ec2/vpcEndpoint:VpcEndpoint": (r, ctx) => {
    if ((str(r.inputs.vpcEndpointType) ?? "Gateway") === "Gateway")
      return { free: "gateway endpoints (S3, DynamoDB) have no charge" };
    const azs = Math.max(1, arr(r.inputs.subnetIds).length);
    const rate = ctx.prices.aws.vpcInterfaceEndpointPerAzHour;
    return {
      usd: azs * rate * ctx.hours,
      detail: `interface endpoint ${azs} AZ x ${usd(rate)}/h x ${ctx.hours} h (data not modelled)`,
    };
  },

  "aws:eks/cluster:Cluster": (r, ctx) => {
    const version = String(r.inputs.version ?? DEFAULT_EKS_VERSION);
    const phase = eksVersionStatus(version, ctx.today).phase;
    const extended = phase === "extended" || phase === "ended";
    const rate = extended
      ? ctx.prices.aws.eks.extendedSupportPerHour
      : ctx.prices.aws.eks.clusterPerHour;
    return {
      usd: rate * ctx.hours,
      detail: `control plane ${usd(rate)}/h x ${ctx.hours} h (Kubernetes ${version}, ${extended ? "extended" : "standard"} support)`,
    };
  },

  "aws:eks/nodeGroup:NodeGroup": (r, ctx) => {
    if (r.inputs.capacityType === "SPOT") return { notPriced: "Spot capacity has no list price" };
    const types = arr(r.inputs.instanceTypes).map(String);
    const type = types[0] ?? "t3.medium";
    const hourly = lookupPrice(ctx.prices.aws.ec2.linuxOnDemandPerHour, type);
    if (hourly === undefined) return { notPriced: `no price for EC2 ${type}` };
    const desired = num(obj(r.inputs.scalingConfig).desiredSize, 1);
    const lt = ctx.find("aws:ec2/launchTemplate:LaunchTemplate", obj(r.inputs.launchTemplate).id);
    const disk = lt
      ? ebsOf(lt.inputs.blockDeviceMappings, ctx.prices)
      : ebsOf([{ ebs: { volumeSize: num(r.inputs.diskSize, 20), volumeType: "gp3" } }], ctx.prices);
    if ("missing" in disk) return { notPriced: disk.missing };
    const more = types.length > 1 ? ` (priced at the first of ${types.join(", ")})` : "";
    return {
      usd: desired * (hourly * ctx.hours + disk.usd),
      detail: `${desired} x (${type} ${usd(hourly)}/h x ${ctx.hours} h + ${disk.text})${more}`,
    };
  },

  "aws:autoscaling/group:Group": (r, ctx) => {
    if (r.inputs.mixedInstancesPolicy)
      return { notPriced: "mixed-instances groups are not modelled" };
    const lt = ctx.find("aws:ec2/launchTemplate:LaunchTemplate", obj(r.inputs.launchTemplate).id);
    if (!lt) return { notPriced: "launch template not found among the stack's resources" };
    const type = str(lt.inputs.instanceType);
    const hourly = lookupPrice(ctx.prices.aws.ec2.linuxOnDemandPerHour, type);
    if (hourly === undefined)
      return { notPriced: `no price for EC2 ${type ?? "an unset instance type"}` };
    const disk = ebsOf(lt.inputs.blockDeviceMappings, ctx.prices);
    if ("missing" in disk) return { notPriced: disk.missing };
    const count = num(r.inputs.minSize, 0);
    const monitoring =
      obj(lt.inputs.monitoring).enabled === true
        ? ctx.prices.aws.ec2.detailedMonitoringPerInstanceMonth
        : 0;
    return {
      usd: count * (hourly * ctx.hours + disk.usd + monitoring),
      detail:
        `${count} (min size) x (${type} ${usd(hourly)}/h x ${ctx.hours} h` +
        `${disk.text ? ` + ${disk.text}` : ""}${monitoring ? ` + detailed monitoring ${usd(monitoring)}` : ""})`,
    };
  },

  "aws:lb/loadBalancer:LoadBalancer": (r, ctx) => {
    const kind = str(r.inputs.loadBalancerType) ?? "application";
    if (kind !== "application" && kind !== "network")
      return { notPriced: `${kind} load balancers are not modelled` };
    const azs = Math.max(arr(r.inputs.subnets).length, arr(r.inputs.subnetMappings).length, 1);
    return awsLoadBalancer(kind, r.inputs.internal === true, azs, ctx);
  },

  "aws:lambda/function:Function": (r, ctx) => {
    const l = ctx.prices.aws.lambda;
    const arch = lambdaArch(r);
    const memGb = lambdaMemoryGb(r);
    const requests = ctx.usage.requestsPerMonth;
    const seconds = ctx.usage.lambdaAvgDurationMs / 1000;
    const gbSeconds = requests * seconds * memGb;
    const provisioned = provisionedFor(r, ctx);
    const avgConcurrency = (requests * seconds) / ctx.seconds;
    const share = provisioned > 0 ? Math.min(1, provisioned / avgConcurrency) : 0;
    const onDemand = l.perGbSecond[arch];
    const pcRate = l.provisionedDurationPerGbSecond[arch];
    const durationUsd = gbSeconds * (share * pcRate + (1 - share) * onDemand);
    const requestUsd = (requests / 1e6) * l.perMillionRequests;
    const rateText =
      share === 0
        ? `${usd(onDemand)}`
        : share === 1
          ? `${usd(pcRate)} (within provisioned concurrency)`
          : `(${thousands(share)} x ${usd(pcRate)} + ${thousands(1 - share)} x ${usd(onDemand)})`;
    return {
      usd: requestUsd + durationUsd,
      detail:
        `${thousands(requests)} requests x ${usd(l.perMillionRequests)}/M + ` +
        `${thousands(requests)} x ${seconds} s x ${memGb} GB = ${thousands(gbSeconds)} GB-s x ${rateText} (${arch})`,
    };
  },

  "aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig": (r, ctx) => {
    const fn = ctx.find("aws:lambda/function:Function", r.inputs.functionName);
    if (!fn) return { notPriced: "function not found among the stack's resources" };
    const arch = lambdaArch(fn);
    const memGb = lambdaMemoryGb(fn);
    const n = num(r.inputs.provisionedConcurrentExecutions, 0);
    const rate = ctx.prices.aws.lambda.provisionedPerGbSecond[arch];
    return {
      usd: n * memGb * ctx.seconds * rate,
      detail: `${n} x ${memGb} GB x ${thousands(ctx.seconds)} s x ${usd(rate)} (${arch})`,
    };
  },

  "aws:apigatewayv2/api:Api": (r, ctx) => {
    if ((str(r.inputs.protocolType) ?? "HTTP") !== "HTTP")
      return { notPriced: `${String(r.inputs.protocolType)} APIs are not modelled` };
    const rate = ctx.prices.aws.apiGatewayHttp.perMillionRequests;
    const requests = ctx.usage.requestsPerMonth;
    return {
      usd: (requests / 1e6) * rate,
      detail: `HTTP API ${thousands(requests)} requests x ${usd(rate)}/M`,
    };
  },

  "aws:secretsmanager/secret:Secret": (_r, ctx) => {
    const rate = ctx.prices.aws.secretsManager.perSecretMonth;
    return { usd: rate, detail: `${usd(rate)} per secret (API calls not modelled)` };
  },

  "aws:kms/key:Key": (_r, ctx) => {
    const rate = ctx.prices.aws.kms.perKeyMonth;
    return { usd: rate, detail: `${usd(rate)} per customer-managed key (requests not modelled)` };
  },

  "aws:cloudwatch/metricAlarm:MetricAlarm": (r, ctx) => {
    const cw = ctx.prices.aws.cloudwatch;
    const queries = arr(r.inputs.metricQueries).map(obj);
    const metrics = queries.length ? queries.filter((q) => q.metric).length : 1;
    const periods = queries.length
      ? queries.map((q) => num(obj(q.metric).period, 60))
      : [num(r.inputs.period, 60)];
    const highRes = periods.some((p) => p < 60);
    const rate = highRes ? cw.highResolutionAlarmPerMetricMonth : cw.alarmPerMetricMonth;
    return {
      usd: metrics * rate,
      detail: `${metrics} metric${metrics === 1 ? "" : "s"} x ${usd(rate)}${highRes ? " (high resolution)" : ""}`,
    };
  },

  "aws:cloudwatch/dashboard:Dashboard": (_r, ctx) => {
    const rate = ctx.prices.aws.cloudwatch.dashboardPerMonth;
    return { usd: rate, detail: `${usd(rate)} per dashboard` };
  },

  "aws:cloudwatch/logGroup:LogGroup": (r, ctx) => {
    const cw = ctx.prices.aws.cloudwatch;
    const role = logGroupRole(r, ctx);
    let gb: number;
    let basis: string;
    if (role === "eks") {
      gb = ctx.usage.eksControlPlaneLogGbPerMonth;
      basis = "EKS control-plane logs";
    } else if (role === "flow") {
      gb = ctx.usage.flowLogGbPerMonth;
      basis = "flow logs";
    } else {
      const groups = ctx
        .ofType("aws:cloudwatch/logGroup:LogGroup")
        .filter((g) => logGroupRole(g, ctx) === "app").length;
      gb = ctx.usage.appLogGbPerMonth / groups;
      basis =
        groups > 1 ? `${ctx.usage.appLogGbPerMonth} GB app logs / ${groups} groups` : "app logs";
    }
    const retention =
      r.inputs.retentionInDays === undefined || r.inputs.retentionInDays === 0
        ? 365
        : num(r.inputs.retentionInDays, 365);
    const stored = (gb * retention) / 30;
    return {
      usd: gb * cw.logsIngestPerGb + stored * cw.logsStoragePerGbMonth,
      detail: `${thousands(gb)} GB (${basis}) x ${usd(cw.logsIngestPerGb)} + ${thousands(stored)} GB stored (${retention} d) x ${usd(cw.logsStoragePerGbMonth)}`,
    };
  },

  "aws:ecr/repository:Repository": (_r, ctx) => {
    const rate = ctx.prices.aws.ecr.storagePerGbMonth;
    const gb = ctx.usage.registryStorageGb;
    return { usd: gb * rate, detail: `${gb} GB images x ${usd(rate)}` };
  },
};

// ---------------------------------------------------------------------------------------------
// Kubernetes objects that make the AWS load balancer controller create a load balancer

const K8S: Record<string, Pricer> = {
  "kubernetes:core/v1:Service": (r, ctx) => {
    const spec = obj(r.inputs.spec);
    if (spec.type !== "LoadBalancer") return { free: "a cluster-internal Service has no charge" };
    const ann = obj(obj(r.inputs.metadata).annotations) as Record<string, string>;
    const lbType = ann["service.beta.kubernetes.io/aws-load-balancer-type"];
    if (lbType && lbType !== "nlb" && lbType !== "external" && lbType !== "nlb-ip")
      return { notPriced: `load balancer type ${lbType} is not modelled` };
    const subnets = ann["service.beta.kubernetes.io/aws-load-balancer-subnets"];
    const azs = subnets ? subnets.split(",").filter(Boolean).length : 2;
    const internal =
      ann["service.beta.kubernetes.io/aws-load-balancer-scheme"] === "internal" ||
      ann["service.beta.kubernetes.io/aws-load-balancer-internal"] === "true";
    return awsLoadBalancer("network", internal, azs, ctx, subnets ? "" : " (2 AZs assumed)");
  },
  "kubernetes:networking.k8s.io/v1:Ingress": (r, ctx) => {
    const ann = obj(obj(r.inputs.metadata).annotations) as Record<string, string>;
    const subnets = ann["alb.ingress.kubernetes.io/subnets"];
    const azs = subnets ? subnets.split(",").filter(Boolean).length : 2;
    // The AWS load balancer controller makes ALBs internal unless told otherwise.
    const internal = ann["alb.ingress.kubernetes.io/scheme"] !== "internet-facing";
    return awsLoadBalancer("application", internal, azs, ctx, subnets ? "" : " (2 AZs assumed)");
  },
};

// ---------------------------------------------------------------------------------------------
// GCP

/** Instances a managed instance group runs: its autoscaler's minimum, else its target size. */
function migInstances(mig: CostResource, ctx: Context): number {
  const autoscaler = ctx
    .ofType("gcp:compute/regionAutoscaler:RegionAutoscaler")
    .concat(ctx.ofType("gcp:compute/autoscaler:Autoscaler"))
    .find((a) => ctx.find(mig.type, a.inputs.target) === mig);
  if (autoscaler) return num(obj(autoscaler.inputs.autoscalingPolicy).minReplicas, 1);
  return num(mig.inputs.targetSize, 0);
}

function gcpVmCount(ctx: Context): number {
  return ctx
    .ofType("gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager")
    .reduce((n, m) => n + migInstances(m, ctx), 0);
}

function cloudSqlTier(
  tier: string | undefined,
  ctx: Context,
): { hourly: number; text: string } | undefined {
  const sql = ctx.prices.gcp.cloudSql;
  const shared = lookupPrice(sql.sharedCorePerHour, tier);
  if (shared !== undefined) return { hourly: shared, text: `${tier} ${usd(shared)}/h` };
  const m = /^db-custom-(\d+)-(\d+)$/.exec(tier ?? "");
  if (!m) return undefined;
  const cpus = Number(m[1]);
  const gb = Number(m[2]) / 1024;
  return {
    hourly: cpus * sql.vcpuPerHour + gb * sql.memoryPerGbHour,
    text: `${tier} (${cpus} vCPU x ${usd(sql.vcpuPerHour)} + ${thousands(gb)} GB x ${usd(sql.memoryPerGbHour)})/h`,
  };
}

const GCP: Record<string, Pricer> = {
  "gcp:sql/databaseInstance:DatabaseInstance": (r, ctx) => {
    const sql = ctx.prices.gcp.cloudSql;
    const settings = obj(r.inputs.settings);
    if (settings.edition === "ENTERPRISE_PLUS")
      return { notPriced: "Enterprise Plus edition is not in the table" };
    const tier = cloudSqlTier(str(settings.tier), ctx);
    if (!tier) return { notPriced: `no price for Cloud SQL tier ${String(settings.tier)}` };
    const diskType = str(settings.diskType) ?? "PD_SSD";
    const perGb = lookupPrice(sql.storagePerGbMonth, diskType);
    if (perGb === undefined) return { notPriced: `no price for Cloud SQL storage ${diskType}` };
    const ha = settings.availabilityType === "REGIONAL";
    const gb = num(settings.diskSize, 10);
    return {
      usd:
        tier.hourly * (ha ? sql.haFactor : 1) * ctx.hours +
        gb * perGb * (ha ? sql.haStorageFactor : 1),
      detail:
        `${tier.text}${ha ? ` x ${sql.haFactor} (HA)` : ""} x ${ctx.hours} h + ${gb} GB ${diskType} x ${usd(perGb)}` +
        `${ha ? ` x ${sql.haStorageFactor}` : ""}`,
    };
  },

  "gcp:redis/instance:Instance": (r, ctx) => {
    const tier = str(r.inputs.tier) ?? "BASIC";
    const bands = (
      ctx.prices.gcp.memorystoreRedis.perGbHour as Record<
        string,
        { upToGb: number | null; price: number }[]
      >
    )[tier];
    if (!bands) return { notPriced: `no price for Memorystore tier ${tier}` };
    if (num(r.inputs.replicaCount, 0) > 0 || r.inputs.readReplicasMode === "READ_REPLICAS_ENABLED")
      return { notPriced: "read replicas are not modelled" };
    const gb = num(r.inputs.memorySizeGb, 1);
    const band = bands.find((b) => b.upToGb === null || gb <= b.upToGb)!;
    return {
      usd: gb * band.price * ctx.hours,
      detail: `${tier} ${gb} GB x ${usd(band.price)}/GB-h x ${ctx.hours} h`,
    };
  },

  "gcp:compute/routerNat:RouterNat": (r, ctx) => {
    const nat = ctx.prices.gcp.cloudNat;
    const migVms = gcpVmCount(ctx);
    const vms = Math.max(1, migVms);
    const gatewayHourly = Math.min(vms * nat.perVmHour, nat.maxPerHour);
    const ips =
      r.inputs.natIpAllocateOption === "MANUAL_ONLY" ? Math.max(1, arr(r.inputs.natIps).length) : 1;
    const gb = ctx.usage.natDataGbPerMonth;
    return {
      usd: gatewayHourly * ctx.hours + gb * nat.perGbProcessed + ips * nat.ipPerHour * ctx.hours,
      detail:
        `${vms} VM${vms > 1 ? "s" : ""}${migVms === 0 ? " (serverless egress counted as one)" : ""} x ${usd(nat.perVmHour)}/h x ${ctx.hours} h` +
        ` + ${gb} GB x ${usd(nat.perGbProcessed)} + ${ips} NAT IP x ${usd(nat.ipPerHour)}/h x ${ctx.hours} h`,
    };
  },

  "gcp:cloudrunv2/service:Service": (r, ctx) => {
    const run = ctx.prices.gcp.cloudRun;
    const template = obj(r.inputs.template);
    const scaling = { ...obj(r.inputs.scaling), ...obj(template.scaling) };
    const min = num(scaling.minInstanceCount, 0);
    const limits = obj(obj(obj(arr(template.containers)[0]).resources).limits);
    const resources = obj(obj(arr(template.containers)[0]).resources);
    const cpu = cpuQuantity(limits.cpu ?? "1");
    const mem = memoryGiB(limits.memory ?? "512Mi");
    if (!Number.isFinite(cpu) || !Number.isFinite(mem))
      return {
        notPriced: `cannot read CPU ${String(limits.cpu)} / memory ${String(limits.memory)}`,
      };
    const busy = ctx.usage.cloudRunBusyInstanceHours * 3600;
    const requests = ctx.usage.requestsPerMonth;
    const shape = `${cpu} vCPU, ${thousands(mem)} GiB`;
    if (resources.cpuIdle === false) {
      const rate = run.instanceBased;
      const seconds = Math.max(min * ctx.seconds, busy);
      return {
        usd: seconds * (cpu * rate.vcpuSecond + mem * rate.gibSecond),
        detail: `instance-based: ${thousands(seconds)} instance-s x (${cpu} x ${usd(rate.vcpuSecond)} + ${thousands(mem)} x ${usd(rate.gibSecond)}) (${shape})`,
      };
    }
    const rb = run.requestBased;
    const idle = min * ctx.seconds * (cpu * rb.idleVcpuSecond + mem * rb.idleGibSecond);
    const active = busy * (cpu * rb.vcpuSecond + mem * rb.gibSecond);
    const req = (requests / 1e6) * run.perMillionRequests;
    return {
      usd: idle + active + req,
      detail:
        (min
          ? `${min} min instance${min > 1 ? "s" : ""} x ${thousands(ctx.seconds)} s x (${cpu} x ${usd(rb.idleVcpuSecond)} + ${thousands(mem)} x ${usd(rb.idleGibSecond)}) idle + `
          : "") +
        `${thousands(busy)} busy s x (${cpu} x ${usd(rb.vcpuSecond)} + ${thousands(mem)} x ${usd(rb.gibSecond)}) + ${thousands(requests)} requests x ${usd(run.perMillionRequests)}/M`,
    };
  },

  "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager": (r, ctx) => {
    const gce = ctx.prices.gcp.compute;
    const ref = obj(arr(r.inputs.versions)[0]).instanceTemplate;
    const template = ctx.find("gcp:compute/instanceTemplate:InstanceTemplate", ref);
    if (!template) return { notPriced: "instance template not found among the stack's resources" };
    const machine = str(template.inputs.machineType);
    const hourly = lookupPrice(gce.perHour, machine);
    if (hourly === undefined)
      return { notPriced: `no price for machine type ${machine ?? "(unset)"}` };
    let diskUsd = 0;
    const diskText: string[] = [];
    for (const d of arr(template.inputs.disks).map(obj)) {
      const type = str(d.diskType) ?? "pd-standard";
      const perGb = lookupPrice(gce.diskPerGbMonth, type);
      if (perGb === undefined) return { notPriced: `no price for disk type ${type}` };
      const gb = num(d.diskSizeGb, 10);
      diskUsd += gb * perGb;
      diskText.push(`${gb} GB ${type} x ${usd(perGb)}`);
    }
    const count = migInstances(r, ctx);
    return {
      usd: count * (hourly * ctx.hours + diskUsd),
      detail: `${count} (autoscaler minimum) x (${machine} ${usd(hourly)}/h x ${ctx.hours} h${diskText.length ? ` + ${diskText.join(" + ")}` : ""})`,
    };
  },

  "gcp:compute/globalForwardingRule:GlobalForwardingRule": (r, ctx) => {
    const lb = ctx.prices.gcp.loadBalancing;
    const scheme = str(r.inputs.loadBalancingScheme) ?? "EXTERNAL";
    if (scheme !== "EXTERNAL" && scheme !== "EXTERNAL_MANAGED")
      return { notPriced: `${scheme} forwarding rules are not modelled` };
    const rules = ctx
      .ofType(r.type)
      .map((x) => x.name)
      .sort();
    const rank = rules.indexOf(r.name);
    if (rank === 0) {
      const gb = ctx.usage.loadBalancerDataGbPerMonth;
      return {
        usd: lb.firstFiveRulesPerHour * ctx.hours + gb * lb.perGbProcessed,
        detail: `first 5 rules ${usd(lb.firstFiveRulesPerHour)}/h x ${ctx.hours} h + ${gb} GB processed x ${usd(lb.perGbProcessed)}`,
      };
    }
    if (rank < 5)
      return {
        usd: 0,
        detail: `covered by the first forwarding rule's charge (rule ${rank + 1} of 5)`,
      };
    return {
      usd: lb.additionalRulePerHour * ctx.hours,
      detail: `additional rule ${usd(lb.additionalRulePerHour)}/h x ${ctx.hours} h`,
    };
  },

  "gcp:secretmanager/secretVersion:SecretVersion": (r, ctx) => {
    const rate = ctx.prices.gcp.secretManager.perVersionLocationMonth;
    const secret = ctx.find("gcp:secretmanager/secret:Secret", r.inputs.secret);
    const replicas = arr(obj(obj(secret?.inputs.replication).userManaged).replicas).length;
    const locations = Math.max(1, replicas);
    return {
      usd: locations * rate,
      detail: `${locations} location${locations > 1 ? "s" : ""} x ${usd(rate)} per active version (access calls not modelled)`,
    };
  },

  "gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig": (r, ctx) => {
    const mon = ctx.prices.gcp.monitoring;
    const runs = (c: CostResource) => {
      const period = Number(String(c.inputs.period ?? "60s").replace(/s$/, "")) || 60;
      const locations = arr(c.inputs.selectedRegions).length || mon.uptimeCheckerLocations;
      return { period, locations, executions: (ctx.seconds / period) * locations };
    };
    const mine = runs(r);
    const total = ctx.ofType(r.type).reduce((n, c) => n + runs(c).executions, 0);
    const billable = Math.max(0, total - mon.uptimeFreeExecutionsPerProject);
    const usdTotal = (billable / 1000) * mon.uptimePer1000Executions;
    const share = total > 0 ? mine.executions / total : 0;
    return {
      usd: usdTotal * share,
      detail:
        `${thousands(mine.executions)} runs (every ${mine.period} s from ${mine.locations} locations); ` +
        (billable === 0
          ? `within the ${thousands(mon.uptimeFreeExecutionsPerProject)} free per project`
          : `${thousands(billable)} over the free allowance x ${usd(mon.uptimePer1000Executions)}/1000`),
    };
  },

  "gcp:logging/projectBucketConfig:ProjectBucketConfig": (r, ctx) => {
    const log = ctx.prices.gcp.logging;
    const gb = ctx.usage.appLogGbPerMonth;
    const retention = num(r.inputs.retentionDays, 30);
    const beyond = (gb * Math.max(0, retention - 30)) / 30;
    return {
      usd: gb * log.ingestPerGb + beyond * log.retentionBeyond30DaysPerGbMonth,
      detail: `${gb} GB logs x ${usd(log.ingestPerGb)} + ${thousands(beyond)} GB kept beyond 30 days (${retention} d) x ${usd(log.retentionBeyond30DaysPerGbMonth)}`,
    };
  },

  "gcp:artifactregistry/repository:Repository": (_r, ctx) => {
    const rate = ctx.prices.gcp.artifactRegistry.storagePerGbMonth;
    const gb = ctx.usage.registryStorageGb;
    return { usd: gb * rate, detail: `${gb} GB images x ${usd(rate)}` };
  },
};

const PRICERS: Record<string, Pricer> = { ...AWS, ...K8S, ...GCP };

/** The resource kinds with a price rule (for documentation and tests). */
export const PRICED_TYPES: readonly string[] = Object.keys(PRICERS).sort();

// ---------------------------------------------------------------------------------------------
// The policy pack's estimator contract (infra/policy/cost-hook.ts)

/** A resource as the policy rules see it: `props` are its inputs. */
export interface PolicyViewResource {
  type: string;
  name: string;
  props?: Record<string, unknown>;
}

/**
 * What the pack's `monthly-cost-limit` rule limits: the monthly USD of always-on capacity (usage
 * left out, see `alwaysOnUsage`), for resources as the rules see them. Pure and synchronous, as
 * the pack requires; `infra/policy/pack.ts` finds it by this name, the plan registers it through
 * the pack's `setCostEstimator`.
 */
export function estimateMonthlyUsd(
  resources: readonly PolicyViewResource[],
  environment: Environment,
): number {
  const costResources: CostResource[] = resources.map((r) => ({
    type: r.type,
    name: r.name,
    inputs: r.props ?? {},
    state: r.props ?? {},
  }));
  return estimateCost(costResources, { environment, usage: alwaysOnUsage(usageFor(environment)) })
    .monthlyUsd;
}
