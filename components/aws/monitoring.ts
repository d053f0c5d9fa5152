/**
 * Data-plane monitoring on CloudWatch: the application log group, an encrypted alarm topic
 * (e-mail subscribers optional), alarms on Redis and RDS, and a dashboard. Targets add their own
 * alarms with `ServiceAlarms` (service-alarms.ts) against `alarmTopicArn`.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { MonitoringHooks } from "../contracts";
import { type AlarmSpec, checkAlarmSpec, createAlarms } from "./alarms";
import { checkAwsRegion, checkEmail, checkLogRetention } from "./checks";

export interface DataPlaneThresholds {
  /** @default 80 */
  cpuPercent?: number;
  /** Redis memory in use, percent of maxmemory. @default 80 */
  redisMemoryPercent?: number;
  /** Free RDS storage, percent of the initially allocated size. @default 10 */
  freeStoragePercent?: number;
  /** RDS connections, percent of the class's estimated max_connections. @default 80 */
  connectionsPercent?: number;
}

export interface MonitoringArgs {
  /** AWS region, for the dashboard's widgets and URL. */
  region: string;
  /** Application log retention, a CloudWatch-accepted value. */
  logRetentionDays: number;
  /**
   * Addresses to e-mail alarms (and budget alerts) to. Each must confirm the subscription.
   * @default []
   */
  alertEmails?: string[];
  /** The Redis replication group to watch, if any. @default none */
  redis?: { replicationGroupId: pulumi.Input<string>; nodeCount: number };
  /** The RDS instance to watch, if any. @default none */
  postgres?: {
    instanceIdentifier: pulumi.Input<string>;
    instanceClass: string;
    allocatedStorageGb: number;
  };
  /** @default see DataPlaneThresholds */
  thresholds?: DataPlaneThresholds;
}

/** ElastiCache names the nodes of a non-cluster-mode group `<group>-001`, `-002`, ... */
export function memberClusterIds(replicationGroupId: string, nodeCount: number): string[] {
  return Array.from(
    { length: nodeCount },
    (_, i) => `${replicationGroupId}-${String(i + 1).padStart(3, "0")}`,
  );
}

const SIZE_FACTOR: Record<string, number> = {
  micro: 0.125,
  small: 0.25,
  medium: 0.5,
  large: 1,
  xlarge: 2,
};
/** GiB of memory per `large` for each RDS family letter (m: 8, r: 16, x: 32, t: 8). */
const FAMILY_GIB_PER_LARGE: Record<string, number> = { t: 8, m: 8, c: 4, r: 16, x: 32, z: 16 };

/** Memory of an RDS class in GiB (db.t4g.micro -> 1, db.m7g.large -> 8, db.r7g.2xlarge -> 64). */
export function instanceMemoryGib(instanceClass: string): number | undefined {
  const m = /^db\.([a-z])\d+[a-z-]*\.(\d*)(micro|small|medium|large|xlarge)$/.exec(instanceClass);
  if (!m) return undefined;
  const perLarge = FAMILY_GIB_PER_LARGE[m[1]!];
  const factor = SIZE_FACTOR[m[3]!];
  if (perLarge === undefined || factor === undefined) return undefined;
  const multiple = m[2] ? Number(m[2]) : 1;
  return perLarge * factor * multiple;
}

/**
 * RDS PostgreSQL's default `max_connections` is LEAST(DBInstanceClassMemory / 9531392, 5000);
 * DBInstanceClassMemory is a little below the class's memory, so this slightly overestimates.
 */
export function estimatedMaxConnections(instanceClass: string): number | undefined {
  const gib = instanceMemoryGib(instanceClass);
  return gib === undefined ? undefined : Math.min(Math.floor((gib * 1024 ** 3) / 9531392), 5000);
}

interface ResolvedThresholds {
  cpuPercent: number;
  redisMemoryPercent: number;
  freeStoragePercent: number;
  connectionsPercent: number;
}

export function resolveThresholds(t: DataPlaneThresholds = {}): ResolvedThresholds {
  return {
    cpuPercent: t.cpuPercent ?? 80,
    redisMemoryPercent: t.redisMemoryPercent ?? 80,
    freeStoragePercent: t.freeStoragePercent ?? 10,
    connectionsPercent: t.connectionsPercent ?? 80,
  };
}

/** Per node: engine CPU (the single Redis thread) and memory, each 3 of 3 five-minute periods. */
export function redisAlarmSpecs(
  nodeIds: pulumi.Input<string>[],
  t: ResolvedThresholds,
): AlarmSpec[] {
  return nodeIds.flatMap((nodeId, i) => [
    {
      key: `redis-${i + 1}-cpu`,
      description: `Redis node ${i + 1}: engine CPU above ${t.cpuPercent}% for 15 minutes`,
      namespace: "AWS/ElastiCache",
      metricName: "EngineCPUUtilization",
      dimensions: { CacheClusterId: nodeId },
      statistic: "Average",
      threshold: t.cpuPercent,
      comparison: "GreaterThanThreshold" as const,
      period: 300,
      evaluationPeriods: 3,
      datapointsToAlarm: 3,
      treatMissingData: "missing" as const,
    },
    {
      key: `redis-${i + 1}-memory`,
      description: `Redis node ${i + 1}: memory above ${t.redisMemoryPercent}% of maxmemory (evictions and write failures follow)`,
      namespace: "AWS/ElastiCache",
      metricName: "DatabaseMemoryUsagePercentage",
      dimensions: { CacheClusterId: nodeId },
      statistic: "Maximum",
      threshold: t.redisMemoryPercent,
      comparison: "GreaterThanThreshold" as const,
      period: 300,
      evaluationPeriods: 2,
      datapointsToAlarm: 2,
      treatMissingData: "missing" as const,
    },
  ]);
}

export function postgresAlarmSpecs(
  instanceIdentifier: pulumi.Input<string>,
  instanceClass: string,
  allocatedStorageGb: number,
  t: ResolvedThresholds,
): AlarmSpec[] {
  const dimensions = { DBInstanceIdentifier: instanceIdentifier };
  // Unknown classes fall back to the smallest class's limit: an early alarm beats none.
  const maxConnections = estimatedMaxConnections(instanceClass) ?? 112;
  const base = {
    namespace: "AWS/RDS",
    dimensions,
    period: 300,
    treatMissingData: "missing" as const,
  };
  return [
    {
      ...base,
      key: "db-cpu",
      description: `Postgres CPU above ${t.cpuPercent}% for 15 minutes`,
      metricName: "CPUUtilization",
      statistic: "Average",
      threshold: t.cpuPercent,
      comparison: "GreaterThanThreshold",
      evaluationPeriods: 3,
      datapointsToAlarm: 3,
    },
    {
      ...base,
      key: "db-free-storage",
      // Storage autoscaling acts near 10% free; if this persists, it has hit maxAllocatedStorage.
      description: `Postgres free storage below ${t.freeStoragePercent}% of ${allocatedStorageGb} GB`,
      metricName: "FreeStorageSpace",
      statistic: "Minimum",
      threshold: Math.round(allocatedStorageGb * 1024 ** 3 * (t.freeStoragePercent / 100)),
      comparison: "LessThanThreshold",
      evaluationPeriods: 2,
      datapointsToAlarm: 2,
      // A silent database is itself an incident for storage: no data means we cannot tell.
      treatMissingData: "breaching",
    },
    {
      ...base,
      key: "db-connections",
      description: `Postgres connections above ${t.connectionsPercent}% of ~${maxConnections} (max_connections of ${instanceClass})`,
      metricName: "DatabaseConnections",
      statistic: "Maximum",
      threshold: Math.floor((maxConnections * t.connectionsPercent) / 100),
      comparison: "GreaterThanThreshold",
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
    },
  ];
}

export interface DashboardInput {
  region: string;
  logGroupName: string;
  redisNodeIds: string[];
  dbInstanceIdentifier?: string;
}

/** The dashboard body (CloudWatch dashboard JSON). Pure: tests parse and inspect it. */
export function dashboardBody(input: DashboardInput): string {
  const widgets: unknown[] = [];
  const metricWidget = (title: string, metrics: unknown[][], x: number, y: number) => ({
    type: "metric",
    x,
    y,
    width: 12,
    height: 6,
    properties: {
      title,
      region: input.region,
      view: "timeSeries",
      stat: "Average",
      period: 300,
      metrics,
    },
  });
  if (input.redisNodeIds.length > 0) {
    widgets.push(
      metricWidget(
        "Redis engine CPU %",
        input.redisNodeIds.map((id) => [
          "AWS/ElastiCache",
          "EngineCPUUtilization",
          "CacheClusterId",
          id,
        ]),
        0,
        0,
      ),
      metricWidget(
        "Redis memory %",
        input.redisNodeIds.map((id) => [
          "AWS/ElastiCache",
          "DatabaseMemoryUsagePercentage",
          "CacheClusterId",
          id,
        ]),
        12,
        0,
      ),
    );
  }
  if (input.dbInstanceIdentifier) {
    const db = input.dbInstanceIdentifier;
    widgets.push(
      metricWidget(
        "Postgres CPU %",
        [["AWS/RDS", "CPUUtilization", "DBInstanceIdentifier", db]],
        0,
        6,
      ),
      metricWidget(
        "Postgres connections",
        [["AWS/RDS", "DatabaseConnections", "DBInstanceIdentifier", db]],
        12,
        6,
      ),
      metricWidget(
        "Postgres free storage (bytes)",
        [["AWS/RDS", "FreeStorageSpace", "DBInstanceIdentifier", db]],
        0,
        12,
      ),
    );
  }
  widgets.push({
    type: "log",
    x: 0,
    y: 18,
    width: 24,
    height: 6,
    properties: {
      title: "Recent errors",
      region: input.region,
      query: `SOURCE '${input.logGroupName}' | fields @timestamp, @message | filter level >= 50 or @message like /(?i)error/ | sort @timestamp desc | limit 50`,
      view: "table",
    },
  });
  return JSON.stringify({ widgets });
}

/** The console URL of a dashboard. */
export function dashboardUrl(region: string, dashboardName: string): string {
  return `https://${region}.console.aws.amazon.com/cloudwatch/home?region=${region}#dashboards/dashboard/${encodeURIComponent(dashboardName)}`;
}

/**
 * Log group, alarm topic, data-plane alarms and a dashboard. Costs: KMS key $1/month; alarms
 * $0.10/month each (dev 5 alarms, prod 7); dashboard $3/month beyond the account's first three;
 * logs $0.50/GB ingested plus $0.03/GB-month stored.
 */
export class Monitoring extends pulumi.ComponentResource {
  readonly logGroup: aws.cloudwatch.LogGroup;
  readonly topicKey: aws.kms.Key;
  readonly alarmTopic: aws.sns.Topic;
  readonly alarms: aws.cloudwatch.MetricAlarm[];
  readonly dashboard: aws.cloudwatch.Dashboard;
  readonly alarmTopicArn: pulumi.Output<string>;
  readonly dashboardUrl: pulumi.Output<string>;
  /** What targets need, in the contract's shape. */
  readonly hooks: MonitoringHooks<"aws">;

  private readonly name: string;

  constructor(name: string, args: MonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:aws:Monitoring", name, {}, opts);
    this.name = name;
    const thresholds = resolveThresholds(args.thresholds);
    const specs = this.alarmSpecs(args, thresholds);
    this.validate(args, thresholds, specs);

    this.logGroup = new aws.cloudwatch.LogGroup(
      `${name}-app-logs`,
      { retentionInDays: args.logRetentionDays },
      { parent: this },
    );
    this.topicKey = this.createTopicKey();
    this.alarmTopic = this.createAlarmTopic();
    this.subscribeEmails(args.alertEmails ?? []);
    this.alarms = createAlarms(name, specs, this.alarmTopic.arn, this);
    this.dashboard = this.createDashboard(args);

    this.alarmTopicArn = this.alarmTopic.arn;
    this.dashboardUrl = this.dashboard.dashboardName.apply((n) => dashboardUrl(args.region, n));
    this.hooks = {
      alarmTopicArn: this.alarmTopicArn,
      logGroupName: this.logGroup.name,
      dashboardUrl: this.dashboardUrl,
    };
    this.registerOutputs({
      alarmTopicArn: this.alarmTopicArn,
      logGroupName: this.logGroup.name,
      dashboardUrl: this.dashboardUrl,
    });
  }

  private alarmSpecs(args: MonitoringArgs, t: ResolvedThresholds): AlarmSpec[] {
    const specs: AlarmSpec[] = [];
    if (args.redis) {
      const { replicationGroupId, nodeCount } = args.redis;
      const nodeIds = Array.from({ length: nodeCount }, (_, i) =>
        pulumi.output(replicationGroupId).apply((id) => memberClusterIds(id, nodeCount)[i]!),
      );
      specs.push(...redisAlarmSpecs(nodeIds, t));
    }
    if (args.postgres) {
      const p = args.postgres;
      specs.push(
        ...postgresAlarmSpecs(p.instanceIdentifier, p.instanceClass, p.allocatedStorageGb, t),
      );
    }
    return specs;
  }

  private validate(args: MonitoringArgs, t: ResolvedThresholds, specs: AlarmSpec[]): void {
    const problems: string[] = [];
    const region = checkAwsRegion(args.region);
    if (region) problems.push(region);
    const retention = checkLogRetention(args.logRetentionDays);
    if (retention) problems.push(retention);
    for (const email of args.alertEmails ?? []) {
      const p = checkEmail(email);
      if (p) problems.push(p);
    }
    for (const [k, v] of Object.entries(t)) {
      if (!(v > 0 && v < 100))
        problems.push(`thresholds.${k} is ${v}: use a percentage between 0 and 100.`);
    }
    if (args.redis && (!Number.isInteger(args.redis.nodeCount) || args.redis.nodeCount < 1)) {
      problems.push(
        `redis.nodeCount is ${args.redis.nodeCount}: pass the replication group's numCacheClusters.`,
      );
    }
    problems.push(...specs.flatMap(checkAlarmSpec));
    if (problems.length > 0)
      throw new pulumi.ResourceError(`Monitoring "${this.name}": ${problems.join(" ")}`, this);
  }

  /**
   * A customer-managed key, because CloudWatch alarms and AWS Budgets cannot publish to a topic
   * encrypted with the AWS-managed `aws/sns` key (its policy cannot grant them `kms:Decrypt`).
   */
  private createTopicKey(): aws.kms.Key {
    const account = aws.getCallerIdentityOutput({}, { parent: this }).accountId;
    const partition = aws.getPartitionOutput({}, { parent: this }).partition;
    const key = new aws.kms.Key(
      `${this.name}-alarm-key`,
      {
        description: "Encrypts the agent alarm topic; usable by CloudWatch alarms and AWS Budgets",
        enableKeyRotation: true,
        deletionWindowInDays: 30,
        policy: pulumi.jsonStringify({
          Version: "2012-10-17",
          Statement: [
            {
              Sid: "AccountAdministers",
              Effect: "Allow",
              Principal: { AWS: pulumi.interpolate`arn:${partition}:iam::${account}:root` },
              Action: "kms:*",
              Resource: "*",
            },
            {
              Sid: "AlarmAndBudgetPublishers",
              Effect: "Allow",
              Principal: { Service: ["cloudwatch.amazonaws.com", "budgets.amazonaws.com"] },
              Action: ["kms:Decrypt", "kms:GenerateDataKey*"],
              Resource: "*",
              Condition: { StringEquals: { "aws:SourceAccount": account } },
            },
          ],
        }),
      },
      { parent: this },
    );
    new aws.kms.Alias(
      `${this.name}-alarm-key-alias`,
      { namePrefix: `alias/${this.name}-alarms-`, targetKeyId: key.keyId },
      { parent: this },
    );
    return key;
  }

  private createAlarmTopic(): aws.sns.Topic {
    const topic = new aws.sns.Topic(
      `${this.name}-alarms`,
      { kmsMasterKeyId: this.topicKey.arn },
      { parent: this },
    );
    const account = aws.getCallerIdentityOutput({}, { parent: this }).accountId;
    const partition = aws.getPartitionOutput({}, { parent: this }).partition;
    new aws.sns.TopicPolicy(
      `${this.name}-alarms-policy`,
      {
        arn: topic.arn,
        policy: pulumi.jsonStringify({
          Version: "2012-10-17",
          Statement: [
            {
              Sid: "AccountManages",
              Effect: "Allow",
              // The account's own IAM policies decide who inside it may manage and publish.
              Principal: { AWS: pulumi.interpolate`arn:${partition}:iam::${account}:root` },
              Action: [
                "sns:GetTopicAttributes",
                "sns:SetTopicAttributes",
                "sns:Subscribe",
                "sns:ListSubscriptionsByTopic",
                "sns:Publish",
              ],
              Resource: topic.arn,
            },
            {
              Sid: "AlarmAndBudgetPublishers",
              Effect: "Allow",
              Principal: { Service: ["cloudwatch.amazonaws.com", "budgets.amazonaws.com"] },
              Action: "sns:Publish",
              Resource: topic.arn,
              Condition: { StringEquals: { "aws:SourceAccount": account } },
            },
            {
              Sid: "TlsOnly",
              Effect: "Deny",
              Principal: "*",
              Action: "sns:Publish",
              Resource: topic.arn,
              Condition: { Bool: { "aws:SecureTransport": "false" } },
            },
          ],
        }),
      },
      { parent: this },
    );
    return topic;
  }

  private subscribeEmails(emails: string[]): void {
    emails.forEach(
      (endpoint, i) =>
        new aws.sns.TopicSubscription(
          `${this.name}-email-${i}`,
          { topic: this.alarmTopic.arn, protocol: "email", endpoint },
          { parent: this },
        ),
    );
  }

  private createDashboard(args: MonitoringArgs): aws.cloudwatch.Dashboard {
    const nodeIds = args.redis
      ? pulumi
          .output(args.redis.replicationGroupId)
          .apply((id) => memberClusterIds(id, args.redis!.nodeCount))
      : pulumi.output([] as string[]);
    const dbId = args.postgres
      ? pulumi.output(args.postgres.instanceIdentifier)
      : pulumi.output(undefined);
    return new aws.cloudwatch.Dashboard(
      `${this.name}-dashboard`,
      {
        // Dashboards have no auto-naming; the component name is unique within the stack.
        dashboardName: `${pulumi.getProject()}-${pulumi.getStack()}-${this.name}`,
        dashboardBody: pulumi
          .all([nodeIds, dbId, this.logGroup.name])
          .apply(([redisNodeIds, dbInstanceIdentifier, logGroupName]) =>
            dashboardBody({
              region: args.region,
              logGroupName,
              redisNodeIds,
              dbInstanceIdentifier,
            }),
          ),
      },
      { parent: this },
    );
  }
}
