/**
 * The GCP price rules of the cost estimate: Cloud SQL, Memorystore, Cloud NAT, Cloud Run,
 * instance groups, load balancing, Secret Manager, uptime checks, logging, Artifact Registry.
 */
import {
  arr,
  type Context,
  type CostResource,
  cpuQuantity,
  lookupPrice,
  memoryGiB,
  num,
  obj,
  type Pricer,
  str,
  thousands,
  usd,
} from "./cost";

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

export const GCP: Record<string, Pricer> = {
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
