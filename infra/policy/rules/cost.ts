/**
 * Cost: instance and database sizes come from a per-environment allow list, warm capacity
 * (provisioned concurrency, Cloud Run minimum instances) is bounded, and the stack's estimated
 * monthly cost stays under the environment's limit. Advisory in dev, a gate from staging on.
 */
import { LEVELS, resourceRule, stackRule, type Environment } from "../types";
import { UNKNOWN, get, globMatch, list, num, str } from "../values";
import { COMPUTE } from "./compute";

/** `family.size` for every family and size given. */
function sizes(families: string[], sizeList: string[], prefix = ""): string[] {
  return families.flatMap((f) => sizeList.map((s) => `${prefix}${f}.${s}`));
}

const SMALL = ["micro", "small", "medium"];
const T_FAMILIES = ["t3", "t3a", "t4g"];
const GENERAL = ["m6i", "m6g", "m7i", "m7g", "c6i", "c6g", "c7i", "c7g"];

const AWS_INSTANCES: Record<Environment, string[]> = {
  dev: sizes(T_FAMILIES, SMALL),
  staging: [...sizes(T_FAMILIES, [...SMALL, "large"]), ...sizes(GENERAL, ["large"])],
  prod: [
    ...sizes(T_FAMILIES, [...SMALL, "large", "xlarge"]),
    ...sizes([...GENERAL, "r6i", "r6g", "r7i", "r7g"], ["large", "xlarge", "2xlarge"]),
  ],
};

const GCP_MACHINES: Record<Environment, string[]> = {
  dev: ["e2-micro", "e2-small", "e2-medium"],
  staging: [
    "e2-micro",
    "e2-small",
    "e2-medium",
    "e2-standard-2",
    "n2-standard-2",
    "n2d-standard-2",
    "t2a-standard-2",
  ],
  prod: [
    "e2-small",
    "e2-medium",
    "e2-standard-2",
    "e2-standard-4",
    "e2-standard-8",
    "n2-standard-2",
    "n2-standard-4",
    "n2-standard-8",
    "n2d-standard-2",
    "n2d-standard-4",
    "n2d-standard-8",
    "t2a-standard-2",
    "t2a-standard-4",
    "t2a-standard-8",
  ],
};

const AWS_DB: Record<Environment, string[]> = {
  dev: sizes(["t3", "t4g"], SMALL, "db."),
  staging: [
    ...sizes(["t3", "t4g"], [...SMALL, "large"], "db."),
    ...sizes(["m6g", "m6i", "m7g"], ["large"], "db."),
  ],
  prod: [
    ...sizes(["t4g"], ["medium", "large"], "db."),
    ...sizes(["m6g", "m6i", "m7g", "r6g", "r6i", "r7g"], ["large", "xlarge", "2xlarge"], "db."),
  ],
};

const AWS_CACHE: Record<Environment, string[]> = {
  dev: sizes(["t3", "t4g"], ["micro", "small"], "cache."),
  staging: [
    ...sizes(["t3", "t4g"], SMALL, "cache."),
    ...sizes(["m6g", "m7g"], ["large"], "cache."),
  ],
  prod: [
    ...sizes(["t4g"], ["small", "medium"], "cache."),
    ...sizes(["m6g", "m7g", "r6g", "r7g"], ["large", "xlarge"], "cache."),
  ],
};

const GCP_SQL: Record<Environment, string[]> = {
  dev: ["db-f1-micro", "db-g1-small", "db-custom-1-*"],
  staging: ["db-f1-micro", "db-g1-small", "db-custom-1-*", "db-custom-2-*"],
  prod: ["db-g1-small", "db-custom-1-*", "db-custom-2-*", "db-custom-4-*", "db-custom-8-*"],
};

const GCP_REDIS_MAX_GB: Record<Environment, number> = { dev: 2, staging: 5, prod: 20 };

interface InstanceSizeConfig {
  awsInstanceTypes: string[];
  gcpMachineTypes: string[];
}

const patternList = (description: string) =>
  ({ type: "array", items: { type: "string" }, minItems: 1, description }) as const;

function allowed(value: string, patterns: string[]): boolean {
  return patterns.some((p) => globMatch(p, value));
}

function tooBig(
  report: (m: string) => void,
  field: string,
  value: unknown,
  patterns: string[],
  listName: string,
): void {
  const v = str(value);
  if (v === UNKNOWN || v === undefined) return;
  const bare = v.split("/").pop() ?? v;
  if (!allowed(bare, patterns)) {
    report(
      `${field} "${bare}" is not allowed in this environment: pick one of ${patterns.join(", ")} (policy config ${listName}).`,
    );
  }
}

export const allowedInstanceSizes = resourceRule<InstanceSizeConfig>({
  name: "allowed-instance-sizes",
  description:
    "VMs and Kubernetes nodes use an instance or machine type allowed for the environment.",
  domain: "cost",
  enforcement: LEVELS.cost,
  types: [
    COMPUTE.launchTemplate,
    COMPUTE.ec2Instance,
    COMPUTE.eksNodeGroup,
    COMPUTE.gcpInstanceTemplate,
    COMPUTE.gcpRegionInstanceTemplate,
    COMPUTE.gcpInstance,
  ],
  config: {
    schema: {
      awsInstanceTypes: patternList("EC2 instance types allowed (`*` is a wildcard)."),
      gcpMachineTypes: patternList("Compute Engine machine types allowed (`*` is a wildcard)."),
    },
    defaults: {
      dev: { awsInstanceTypes: AWS_INSTANCES.dev, gcpMachineTypes: GCP_MACHINES.dev },
      staging: { awsInstanceTypes: AWS_INSTANCES.staging, gcpMachineTypes: GCP_MACHINES.staging },
      prod: { awsInstanceTypes: AWS_INSTANCES.prod, gcpMachineTypes: GCP_MACHINES.prod },
    },
  },
  validateResource(r, { config }, report) {
    if (r.type === COMPUTE.eksNodeGroup) {
      const types = list(r.props.instanceTypes);
      if (types === UNKNOWN) return;
      types.forEach((t, i) =>
        tooBig(report, `instanceTypes[${i}]`, t, config.awsInstanceTypes, "awsInstanceTypes"),
      );
    } else if (r.type.startsWith("aws:")) {
      tooBig(
        report,
        "instanceType",
        r.props.instanceType,
        config.awsInstanceTypes,
        "awsInstanceTypes",
      );
    } else {
      tooBig(report, "machineType", r.props.machineType, config.gcpMachineTypes, "gcpMachineTypes");
    }
  },
});

interface DatabaseSizeConfig {
  awsDbInstanceClasses: string[];
  awsCacheNodeTypes: string[];
  gcpSqlTiers: string[];
  gcpRedisMaxGb: number;
}

export const allowedDatabaseSizes = resourceRule<DatabaseSizeConfig>({
  name: "allowed-database-sizes",
  description: "Databases and caches use a class, tier or size allowed for the environment.",
  domain: "cost",
  enforcement: LEVELS.cost,
  types: [
    "aws:rds/instance:Instance",
    "aws:rds/clusterInstance:ClusterInstance",
    "aws:elasticache/replicationGroup:ReplicationGroup",
    "aws:elasticache/cluster:Cluster",
    "gcp:sql/databaseInstance:DatabaseInstance",
    "gcp:redis/instance:Instance",
  ],
  config: {
    schema: {
      awsDbInstanceClasses: patternList("RDS instance classes allowed."),
      awsCacheNodeTypes: patternList("ElastiCache node types allowed."),
      gcpSqlTiers: patternList("Cloud SQL tiers allowed."),
      gcpRedisMaxGb: {
        type: "number",
        minimum: 1,
        description: "Largest Memorystore instance, in GB.",
      },
    },
    defaults: {
      dev: {
        awsDbInstanceClasses: AWS_DB.dev,
        awsCacheNodeTypes: AWS_CACHE.dev,
        gcpSqlTiers: GCP_SQL.dev,
        gcpRedisMaxGb: GCP_REDIS_MAX_GB.dev,
      },
      staging: {
        awsDbInstanceClasses: AWS_DB.staging,
        awsCacheNodeTypes: AWS_CACHE.staging,
        gcpSqlTiers: GCP_SQL.staging,
        gcpRedisMaxGb: GCP_REDIS_MAX_GB.staging,
      },
      prod: {
        awsDbInstanceClasses: AWS_DB.prod,
        awsCacheNodeTypes: AWS_CACHE.prod,
        gcpSqlTiers: GCP_SQL.prod,
        gcpRedisMaxGb: GCP_REDIS_MAX_GB.prod,
      },
    },
  },
  validateResource(r, { config }, report) {
    const p = r.props;
    switch (r.type) {
      case "aws:rds/instance:Instance":
      case "aws:rds/clusterInstance:ClusterInstance":
        tooBig(
          report,
          "instanceClass",
          p.instanceClass,
          config.awsDbInstanceClasses,
          "awsDbInstanceClasses",
        );
        return;
      case "aws:elasticache/replicationGroup:ReplicationGroup":
      case "aws:elasticache/cluster:Cluster":
        tooBig(report, "nodeType", p.nodeType, config.awsCacheNodeTypes, "awsCacheNodeTypes");
        return;
      case "gcp:sql/databaseInstance:DatabaseInstance":
        tooBig(report, "settings.tier", get(p, "settings.tier"), config.gcpSqlTiers, "gcpSqlTiers");
        return;
      case "gcp:redis/instance:Instance": {
        const gb = num(p.memorySizeGb);
        if (typeof gb === "number" && gb > config.gcpRedisMaxGb) {
          report(
            `memorySizeGb is ${gb}: use at most ${config.gcpRedisMaxGb} GB in this environment (policy config gcpRedisMaxGb).`,
          );
        }
        return;
      }
    }
  },
});

interface WarmCapacityConfig {
  maxProvisionedConcurrency: number;
  maxCloudRunMinInstances: number;
}

export const warmCapacityBounded = resourceRule<WarmCapacityConfig>({
  name: "warm-capacity-bounded",
  description:
    "Capacity paid for around the clock (Lambda provisioned concurrency, Cloud Run minimum instances) stays within the environment's allowance.",
  domain: "cost",
  enforcement: LEVELS.cost,
  types: [
    "aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig",
    COMPUTE.cloudRunV2,
  ],
  config: {
    schema: {
      maxProvisionedConcurrency: {
        type: "integer",
        minimum: 0,
        description: "Most Lambda provisioned concurrency.",
      },
      maxCloudRunMinInstances: {
        type: "integer",
        minimum: 0,
        description: "Most Cloud Run minimum instances.",
      },
    },
    defaults: {
      dev: { maxProvisionedConcurrency: 0, maxCloudRunMinInstances: 1 },
      staging: { maxProvisionedConcurrency: 5, maxCloudRunMinInstances: 2 },
      prod: { maxProvisionedConcurrency: 50, maxCloudRunMinInstances: 10 },
    },
  },
  validateResource(r, { config }, report) {
    if (r.type === COMPUTE.cloudRunV2) {
      const min = num(get(r.props, "template.scaling.minInstanceCount"));
      if (typeof min === "number" && min > config.maxCloudRunMinInstances) {
        report(
          `template.scaling.minInstanceCount is ${min}: keep at most ${config.maxCloudRunMinInstances} warm instances in this environment (policy config maxCloudRunMinInstances).`,
        );
      }
      return;
    }
    const n = num(r.props.provisionedConcurrentExecutions);
    if (typeof n === "number" && n > config.maxProvisionedConcurrency) {
      report(
        config.maxProvisionedConcurrency === 0
          ? `provisionedConcurrentExecutions is ${n}: this environment allows no provisioned concurrency; remove the config (cold starts are acceptable here).`
          : `provisionedConcurrentExecutions is ${n}: lower it to at most ${config.maxProvisionedConcurrency} (policy config maxProvisionedConcurrency).`,
      );
    }
  },
});

interface MonthlyCostConfig {
  monthlyLimitUsd: number;
}

export const monthlyCostLimit = stackRule<MonthlyCostConfig>({
  name: "monthly-cost-limit",
  description:
    "The stack's estimated monthly cost of always-on capacity stays under the environment's limit.",
  domain: "cost",
  enforcement: LEVELS.cost,
  config: {
    schema: {
      monthlyLimitUsd: {
        type: "number",
        minimum: 0,
        description: "Highest estimated monthly cost, USD.",
      },
    },
    defaults: {
      dev: { monthlyLimitUsd: 500 },
      staging: { monthlyLimitUsd: 1500 },
      prod: { monthlyLimitUsd: 8000 },
    },
  },
  validateStack(resources, { config, environment, estimateMonthlyUsd }, report) {
    if (!estimateMonthlyUsd)
      throw new Error("monthly-cost-limit: the engine supplied no cost estimator");
    const estimate = estimateMonthlyUsd(resources);
    if (estimate.monthlyUsd <= config.monthlyLimitUsd) return;
    const top = (estimate.top ?? [])
      .slice(0, 3)
      .map((t) => `${t.resource} ~$${Math.round(t.monthlyUsd)}`)
      .join(", ");
    report(
      `Estimated $${Math.round(estimate.monthlyUsd)}/month (${estimate.source}) is over the ${environment} limit of $${config.monthlyLimitUsd}${top ? `; largest: ${top}` : ""}. Use smaller sizes or fewer always-on replicas, or raise monthlyLimitUsd in infra/policy/config/${environment}.json with the owner's approval.`,
    );
  },
});

export const costRules = [
  allowedInstanceSizes,
  allowedDatabaseSizes,
  warmCapacityBounded,
  monthlyCostLimit,
];
