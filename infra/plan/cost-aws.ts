/**
 * The AWS price rules of the cost estimate (RDS, ElastiCache, NAT, EKS, Auto Scaling, load
 * balancers, Lambda, API Gateway, Secrets Manager, KMS, CloudWatch, ECR), and the Kubernetes
 * objects that make AWS create a load balancer.
 */
import { DEFAULT_EKS_VERSION, eksVersionStatus } from "../../components/versions";
import {
  arr,
  type Context,
  type CostResource,
  lookupPrice,
  num,
  obj,
  type Outcome,
  type Pricer,
  type PriceTable,
  str,
  thousands,
  usd,
} from "./cost";

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

export const AWS: Record<string, Pricer> = {
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

export const K8S: Record<string, Pricer> = {
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
