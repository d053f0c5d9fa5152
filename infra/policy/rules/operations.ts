/**
 * Operations: every cost-bearing resource is tagged (AWS) or labelled (GCP) with app,
 * environment, owner and cost centre, instances inherit those tags, logs expire, alarms watch
 * the stores and the service and notify someone, a budget alerts at 50/80/100 %, and the stack's
 * environment is unambiguous.
 */
import { AWS_TAG_KEYS } from "../../../components/tagging";
import { environmentFromStackName, environmentTagOf } from "../environment";
import { LEVELS, resourceRule, stackRule, type Environment, type PolicyResource } from "../types";
import {
  UNKNOWN,
  containsUnknown,
  describe,
  get,
  list,
  num,
  record,
  stackOfUrn,
  str,
} from "../values";

/** Tag keys every cost-bearing resource must carry (GCP label keys are the same strings). */
export const REQUIRED_TAG_KEYS: string[] = [
  AWS_TAG_KEYS.app,
  AWS_TAG_KEYS.environment,
  AWS_TAG_KEYS.owner,
  AWS_TAG_KEYS.costCenter,
];

/** Cost-bearing types that accept tags: an absent tag map is a violation, not "not taggable". */
const MUST_TAG_AWS = new Set([
  "aws:rds/instance:Instance",
  "aws:rds/cluster:Cluster",
  "aws:elasticache/replicationGroup:ReplicationGroup",
  "aws:ec2/instance:Instance",
  "aws:ec2/launchTemplate:LaunchTemplate",
  "aws:ec2/natGateway:NatGateway",
  "aws:ec2/eip:Eip",
  "aws:ec2/vpcEndpoint:VpcEndpoint",
  "aws:ebs/volume:Volume",
  "aws:eks/cluster:Cluster",
  "aws:eks/nodeGroup:NodeGroup",
  "aws:lambda/function:Function",
  "aws:lb/loadBalancer:LoadBalancer",
  "aws:s3/bucket:Bucket",
  "aws:s3/bucketV2:BucketV2",
  "aws:kms/key:Key",
  "aws:cloudwatch/logGroup:LogGroup",
  "aws:ecr/repository:Repository",
  "aws:secretsmanager/secret:Secret",
]);
const MUST_LABEL_GCP = new Set([
  "gcp:redis/instance:Instance",
  "gcp:cloudrunv2/service:Service",
  "gcp:compute/instanceTemplate:InstanceTemplate",
  "gcp:compute/regionInstanceTemplate:RegionInstanceTemplate",
  "gcp:compute/instance:Instance",
  "gcp:artifactregistry/repository:Repository",
  "gcp:storage/bucket:Bucket",
  "gcp:secretmanager/secret:Secret",
  "gcp:compute/globalForwardingRule:GlobalForwardingRule",
  "gcp:compute/forwardingRule:ForwardingRule",
]);
/** `labels` that are configuration, not metadata. */
const LABELS_ARE_CONFIG = new Set(["gcp:monitoring/notificationChannel:NotificationChannel"]);

interface TagConfig {
  requiredKeys: string[];
}

const tagSchema = {
  requiredKeys: {
    type: "array",
    items: { type: "string" },
    minItems: 1,
    description: "Tag (AWS) / label (GCP) keys every cost-bearing resource carries.",
  },
} as const;

function missingKeys(tags: Record<string, unknown>, keys: string[]): string[] {
  return keys.filter((k) => {
    const v = tags[k];
    if (v === UNKNOWN) return false;
    return typeof v !== "string" || v.trim() === "";
  });
}

export const requiredTags = resourceRule<TagConfig>({
  name: "required-tags",
  description:
    "Cost-bearing resources carry the app, environment, owner and cost-center tags (AWS) or labels (GCP), so spend and ownership are attributable.",
  domain: "operations",
  enforcement: LEVELS.security,
  types: "*",
  config: {
    schema: tagSchema,
    defaults: {
      dev: { requiredKeys: REQUIRED_TAG_KEYS },
      staging: { requiredKeys: REQUIRED_TAG_KEYS },
      prod: { requiredKeys: REQUIRED_TAG_KEYS },
    },
  },
  validateResource(r, { config }, report) {
    let field: string;
    let mustHave: boolean;
    if (r.type.startsWith("aws:")) {
      field = "tags";
      mustHave = MUST_TAG_AWS.has(r.type);
    } else if (r.type.startsWith("gcp:") && !LABELS_ARE_CONFIG.has(r.type)) {
      field =
        r.type === "gcp:sql/databaseInstance:DatabaseInstance" ? "settings.userLabels" : "labels";
      mustHave = MUST_LABEL_GCP.has(r.type) || field === "settings.userLabels";
    } else {
      return;
    }
    const value = get(r.props, field);
    if (value === UNKNOWN) return;
    // Lists (Auto Scaling groups' {key, value, propagateAtLaunch}) are another shape: see instance-tags-propagated.
    if (Array.isArray(value)) return;
    const tags = record(value);
    if (tags === UNKNOWN) return;
    if (!tags) {
      if (mustHave) {
        report(
          `No ${field}: add ${config.requiredKeys.join(", ")} (the program's stack tagging does this for every resource created after registerStackTagging; check that it was called first).`,
        );
      }
      return;
    }
    const missing = missingKeys(tags, config.requiredKeys);
    if (missing.length > 0) {
      report(
        `${field} lack ${missing.join(", ")}: add them (stack config agent:owner and agent:costCenter feed owner and cost-center).`,
      );
    }
  },
});

export const instanceTagsPropagated = resourceRule<TagConfig>({
  name: "instance-tags-propagated",
  description:
    "Launch templates tag the instances and volumes they start (tagSpecifications), including the stack tag the cost budget filters on, so EC2 spend of Auto Scaling and EKS node groups is attributed.",
  domain: "operations",
  enforcement: LEVELS.security,
  types: ["aws:ec2/launchTemplate:LaunchTemplate"],
  config: {
    schema: tagSchema,
    defaults: {
      dev: { requiredKeys: [...REQUIRED_TAG_KEYS, AWS_TAG_KEYS.stack] },
      staging: { requiredKeys: [...REQUIRED_TAG_KEYS, AWS_TAG_KEYS.stack] },
      prod: { requiredKeys: [...REQUIRED_TAG_KEYS, AWS_TAG_KEYS.stack] },
    },
  },
  validateResource(r, { config }, report) {
    const specs = list(r.props.tagSpecifications);
    if (
      specs === UNKNOWN ||
      specs.some((x) => containsUnknown(get(x, "resourceType")) || x === UNKNOWN)
    )
      return;
    for (const kind of ["instance", "volume"]) {
      const spec = specs.find((s) => get(s, "resourceType") === kind);
      if (spec === undefined) {
        report(
          `No tagSpecifications for "${kind}": add { resourceType: "${kind}", tags: { ${config.requiredKeys.map((k) => `"${k}": ...`).join(", ")} } } (node groups and Auto Scaling groups do not copy their own tags to what they launch).`,
        );
        continue;
      }
      const tags = record(get(spec, "tags"));
      if (tags === UNKNOWN) continue;
      const missing = missingKeys(tags ?? {}, config.requiredKeys);
      if (missing.length > 0) {
        report(
          `tagSpecifications for "${kind}" lack ${missing.join(", ")}: add the stack's tags there (the budget filters on ${AWS_TAG_KEYS.stack}; without it these ${kind}s' cost is invisible to it).`,
        );
      }
    }
  },
});

interface RetentionConfig {
  minDays: number;
  maxDays: number;
}

export const logRetention = resourceRule<RetentionConfig>({
  name: "log-retention",
  description:
    "Log groups and log buckets expire their logs: long enough to investigate, short enough not to pay forever.",
  domain: "operations",
  enforcement: LEVELS.security,
  types: [
    "aws:cloudwatch/logGroup:LogGroup",
    "gcp:logging/projectBucketConfig:ProjectBucketConfig",
    "gcp:logging/bucketConfig:BucketConfig",
  ],
  config: {
    schema: {
      minDays: { type: "integer", minimum: 1, description: "Shortest retention." },
      maxDays: { type: "integer", minimum: 1, description: "Longest retention." },
    },
    defaults: {
      dev: { minDays: 3, maxDays: 30 },
      staging: { minDays: 14, maxDays: 90 },
      prod: { minDays: 30, maxDays: 3653 },
    },
  },
  validateResource(r, { config }, report) {
    const field =
      r.type === "aws:cloudwatch/logGroup:LogGroup" ? "retentionInDays" : "retentionDays";
    const days = num(r.props[field]);
    if (days === UNKNOWN) return;
    if (days === undefined || days <= 0) {
      report(
        `${field} is unset, so logs are kept forever: set it between ${config.minDays} and ${config.maxDays} days.`,
      );
    } else if (days < config.minDays || days > config.maxDays) {
      report(
        `${field} is ${days}: set it between ${config.minDays} and ${config.maxDays} days for this environment.`,
      );
    }
  },
});

const SERVICE_NAMESPACES = [
  "AWS/Lambda",
  "AWS/ApplicationELB",
  "AWS/NetworkELB",
  "AWS/ApiGateway",
  "ContainerInsights",
  "AWS/EC2",
  "AWS/AutoScaling",
  "AWS/ECS",
];
const GCP_SERVICE_RESOURCES = [
  "cloud_run_revision",
  "https_lb_rule",
  "gce_instance",
  "instance_group",
  "uptime_url",
  "k8s_container",
  "l7_lb_rule",
];

type Coverage = "database" | "cache" | "service";

function awsAlarmNamespaces(r: PolicyResource): string[] {
  const own = str(r.props.namespace);
  const queries = list(r.props.metricQueries);
  const fromQueries =
    queries === UNKNOWN
      ? []
      : queries
          .map((q) => get(q, "metric.namespace"))
          .filter((n): n is string => typeof n === "string");
  return [...(typeof own === "string" ? [own] : []), ...fromQueries];
}

function gcpPolicyText(r: PolicyResource): string {
  return JSON.stringify(r.props.conditions ?? []);
}

export const alarmsPresent = stackRule({
  name: "alarms-present",
  description:
    "Alarms watch the database, the cache and the service, and every alarm notifies someone (an SNS topic or a notification channel).",
  domain: "operations",
  enforcement: { dev: "advisory", staging: "mandatory", prod: "mandatory" },
  validateStack(resources, _ctx, report) {
    const has = (...types: string[]) => resources.some((r) => types.includes(r.type));
    const awsAll = resources.filter(
      (r) =>
        r.type === "aws:cloudwatch/metricAlarm:MetricAlarm" ||
        r.type === "aws:cloudwatch/compositeAlarm:CompositeAlarm",
    );
    const gcpAll = resources.filter((r) => r.type === "gcp:monitoring/alertPolicy:AlertPolicy");

    // An alarm that notifies nobody is reported, and does not count as watching anything.
    const routed = <T extends PolicyResource>(
      items: T[],
      field: string,
      fix: string,
      what: string,
    ): T[] =>
      items.filter((a) => {
        const targets = list(a.props[field]);
        if (targets !== UNKNOWN && targets.length === 0) {
          report(`${what} ${describe(a)} notifies nobody: ${fix}.`, a.urn);
          return false;
        }
        return true;
      });
    const awsAlarms = routed(
      awsAll,
      "alarmActions",
      "set alarmActions to the alarm SNS topic",
      "Alarm",
    );
    const gcpPolicies = routed(
      gcpAll,
      "notificationChannels",
      "set notificationChannels",
      "Alert policy",
    );

    // An alarm whose metric is not known yet might be the one that covers: then do not judge coverage.
    const awsKnown = !awsAlarms.some(
      (a) => containsUnknown(a.props.namespace) || containsUnknown(a.props.metricQueries),
    );
    const gcpKnown = !gcpPolicies.some((p) => containsUnknown(p.props.conditions));
    const needs: Array<[Coverage, boolean, boolean]> = [];
    if (has("aws:rds/instance:Instance", "aws:rds/cluster:Cluster")) {
      needs.push([
        "database",
        true,
        awsAlarms.some((a) => awsAlarmNamespaces(a).includes("AWS/RDS")),
      ]);
    }
    if (
      has("aws:elasticache/replicationGroup:ReplicationGroup", "aws:elasticache/cluster:Cluster")
    ) {
      needs.push([
        "cache",
        true,
        awsAlarms.some((a) => awsAlarmNamespaces(a).includes("AWS/ElastiCache")),
      ]);
    }
    if (
      has(
        "aws:lambda/function:Function",
        "aws:autoscaling/group:Group",
        "aws:eks/cluster:Cluster",
        "aws:ecs/service:Service",
      )
    ) {
      needs.push([
        "service",
        true,
        awsAlarms.some((a) => awsAlarmNamespaces(a).some((n) => SERVICE_NAMESPACES.includes(n))),
      ]);
    }
    if (has("gcp:sql/databaseInstance:DatabaseInstance")) {
      needs.push([
        "database",
        false,
        gcpPolicies.some((p) => gcpPolicyText(p).includes("cloudsql_database")),
      ]);
    }
    if (has("gcp:redis/instance:Instance")) {
      needs.push([
        "cache",
        false,
        gcpPolicies.some((p) => gcpPolicyText(p).includes("redis_instance")),
      ]);
    }
    if (
      has(
        "gcp:cloudrunv2/service:Service",
        "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager",
        "gcp:compute/instanceGroupManager:InstanceGroupManager",
      )
    ) {
      needs.push([
        "service",
        false,
        gcpPolicies.some((p) => GCP_SERVICE_RESOURCES.some((t) => gcpPolicyText(p).includes(t))),
      ]);
    }
    for (const [what, aws, covered] of needs) {
      if (covered || !(aws ? awsKnown : gcpKnown)) continue;
      const hint: Record<Coverage, string> = {
        database: aws
          ? "a CloudWatch alarm on AWS/RDS (CPUUtilization, FreeStorageSpace)"
          : "an alert policy on cloudsql_database (cpu, disk, up)",
        cache: aws
          ? "a CloudWatch alarm on AWS/ElastiCache (EngineCPUUtilization, DatabaseMemoryUsagePercentage)"
          : "an alert policy on redis_instance (memory usage ratio)",
        service: aws
          ? "a CloudWatch alarm on the entry point (AWS/Lambda errors or throttles, AWS/ApplicationELB or AWS/NetworkELB 5xx and unhealthy hosts, or ContainerInsights restarts)"
          : "an alert policy on the service (cloud_run_revision or https_lb_rule errors and latency)",
      };
      report(
        `Nothing alarms on the ${what}: add ${hint[what]}, notifying the alarm topic or channel.`,
      );
    }
  },
});

interface BudgetConfig {
  thresholdsPercent: number[];
}

export const budgetAlerts = stackRule<BudgetConfig>({
  name: "budget-alerts",
  description:
    "The stack has a cost budget that notifies someone at 50, 80 and 100 % of actual spend.",
  domain: "operations",
  enforcement: LEVELS.security,
  config: {
    schema: {
      thresholdsPercent: {
        type: "array",
        items: { type: "number", minimum: 1 },
        minItems: 1,
        description: "Percentages of the budget that must alert on actual spend.",
      },
    },
    defaults: {
      dev: { thresholdsPercent: [50, 80, 100] },
      staging: { thresholdsPercent: [50, 80, 100] },
      prod: { thresholdsPercent: [50, 80, 100] },
    },
  },
  validateStack(resources, { config }, report) {
    const managed = resources.filter((r) => !r.type.startsWith("pulumi:providers:"));
    const usesAws = managed.some((r) => r.type.startsWith("aws:"));
    const usesGcp = managed.some((r) => r.type.startsWith("gcp:"));
    const want = [...config.thresholdsPercent].sort((a, b) => a - b);

    if (usesAws) {
      const budgets = resources.filter((r) => r.type === "aws:budgets/budget:Budget");
      const missing = (b: PolicyResource): number[] | typeof UNKNOWN => {
        const notes = list(b.props.notifications);
        if (notes === UNKNOWN) return UNKNOWN;
        const have = new Set<number>();
        for (const n of notes) {
          const type = get(n, "notificationType");
          const thresholdType = get(n, "thresholdType");
          const t = num(get(n, "threshold"));
          if (n === UNKNOWN || type === UNKNOWN || thresholdType === UNKNOWN || t === UNKNOWN)
            return UNKNOWN;
          // Subscribers not known yet (a topic ARN during preview) still are subscribers.
          const emails = list(get(n, "subscriberEmailAddresses"));
          const topics = list(get(n, "subscriberSnsTopicArns"));
          const subscribed =
            emails === UNKNOWN || topics === UNKNOWN || emails.length + topics.length > 0;
          if (
            type === "ACTUAL" &&
            thresholdType === "PERCENTAGE" &&
            subscribed &&
            typeof t === "number"
          )
            have.add(t);
        }
        return want.filter((t) => !have.has(t));
      };
      const results = budgets.map(missing);
      if (budgets.length === 0) {
        report(
          `No AWS cost budget: add an aws.budgets.Budget (budgetType COST, filtered on the stack's ${AWS_TAG_KEYS.stack} tag) with ACTUAL notifications at ${want.join(", ")} % to the alert e-mails or the alarm topic.`,
        );
      } else if (!results.some((m) => m === UNKNOWN || m.length === 0)) {
        const gaps =
          results
            .filter((m): m is number[] => m !== UNKNOWN)
            .sort((a, b) => a.length - b.length)[0] ?? want;
        report(
          `The AWS budget does not alert on actual spend at ${gaps.join(", ")} %: add notifications { notificationType: "ACTUAL", thresholdType: "PERCENTAGE", threshold: <n> } with subscribers for each.`,
          budgets[0]!.urn,
        );
      }
    }
    if (usesGcp) {
      const budgets = resources.filter((r) => r.type === "gcp:billing/budget:Budget");
      const missing = (b: PolicyResource): number[] | typeof UNKNOWN => {
        const rules = list(b.props.thresholdRules);
        if (rules === UNKNOWN) return UNKNOWN;
        const channels = list(get(b.props, "allUpdatesRule.monitoringNotificationChannels"));
        const defaultRecipients =
          get(b.props, "allUpdatesRule.disableDefaultIamRecipients") !== true;
        if (channels !== UNKNOWN && channels.length === 0 && !defaultRecipients) return want;
        const have = new Set<number>();
        for (const rule of rules) {
          const basis = get(rule, "spendBasis");
          const t = num(get(rule, "thresholdPercent"));
          if (rule === UNKNOWN || basis === UNKNOWN || t === UNKNOWN) return UNKNOWN;
          if (basis !== undefined && basis !== "CURRENT_SPEND") continue;
          if (typeof t === "number") have.add(Math.round(t * 100));
        }
        return want.filter((t) => !have.has(t));
      };
      const results = budgets.map(missing);
      if (budgets.length === 0) {
        report(
          `No GCP billing budget: add a gcp.billing.Budget for the project with thresholdRules at ${want.map((t) => t / 100).join(", ")} (CURRENT_SPEND) and notification channels.`,
        );
      } else if (!results.some((m) => m === UNKNOWN || m.length === 0)) {
        const gaps =
          results
            .filter((m): m is number[] => m !== UNKNOWN)
            .sort((a, b) => a.length - b.length)[0] ?? want;
        report(
          `The GCP budget does not alert at ${gaps.join(", ")} % of current spend (or notifies nobody): add thresholdRules { thresholdPercent: ${gaps.map((t) => t / 100).join(" / ")} } and allUpdatesRule.monitoringNotificationChannels.`,
          budgets[0]!.urn,
        );
      }
    }
  },
});

interface EnvironmentConfig {
  /** The environment the policy config file was written for; unset means "whatever the stack is". */
  environment?: Environment;
}

export const environmentConsistent = stackRule<EnvironmentConfig>({
  name: "environment-consistent",
  description:
    "The stack's environment is unambiguous: its environment tags and labels, its name and the policy config file all agree (a dev config cannot relax a prod stack).",
  domain: "operations",
  enforcement: LEVELS.security,
  config: {
    schema: {
      environment: {
        type: "string",
        enum: ["dev", "staging", "prod"],
        description: "The environment this policy config file is for.",
      },
    },
    defaults: {
      dev: { environment: "dev" },
      staging: { environment: "staging" },
      prod: { environment: "prod" },
    },
  },
  validateStack(resources, { environment, config }, report) {
    if (config.environment && config.environment !== environment) {
      report(
        `The policy config is for ${config.environment} but this stack is ${environment}: pass --policy-pack-config infra/policy/config/${environment}.json.`,
      );
    }
    const tagged = new Map<Environment, PolicyResource[]>();
    for (const r of resources) {
      const env = environmentTagOf(r.props);
      if (env) tagged.set(env, [...(tagged.get(env) ?? []), r]);
    }
    for (const [env, rs] of tagged) {
      if (env === environment) continue;
      report(
        `${rs.length} resource(s) are tagged environment=${env} in a ${environment} stack (e.g. ${describe(rs[0]!)}): fix agent:environment in the stack config, or the tags.`,
        rs[0]!.urn,
      );
    }
    const stackName = resources.map((r) => stackOfUrn(r.urn)).find((s) => s !== undefined);
    const fromName = environmentFromStackName(stackName);
    if (fromName && fromName !== environment) {
      report(
        `The stack is named "${stackName}" (${fromName}) but is configured as ${environment}: rename the stack or fix agent:environment.`,
      );
    }
  },
});

export const operationsRules = [
  requiredTags,
  instanceTagsPropagated,
  logRetention,
  alarmsPresent,
  budgetAlerts,
  environmentConsistent,
];
