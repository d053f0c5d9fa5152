import * as pulumi from "@pulumi/pulumi";
import * as gcp from "@pulumi/gcp";
import type { MonitoringHooks } from "../contracts";
import { checkAutonamedName, checkProjectId, joinProblems } from "./naming";
import { checkThresholds, createPolicies } from "./service-monitoring";
export * from "./service-monitoring";

/** A plain (resolved) alert condition: what the builders return and tests read. */
export type Condition = pulumi.Unwrap<gcp.types.input.monitoring.AlertPolicyCondition>;
type Threshold = pulumi.Unwrap<gcp.types.input.monitoring.AlertPolicyConditionConditionThreshold>;
export type Labels = pulumi.Input<Record<string, pulumi.Input<string>>>;

/** An alert policy before it has resource ids: tests evaluate `condition` with sample ids. */
export interface AlertSpec<Ids> {
  key: string;
  displayName: string;
  severity: "CRITICAL" | "ERROR" | "WARNING";
  documentation: string;
  condition: (ids: Ids) => Condition;
}

// ---------------------------------------------------------------------------------------------
// Data-store alerts

export interface StoreIds {
  /** `projects/<p>/locations/<r>/instances/<name>` (the Memorystore resource id). */
  redisInstanceId: string;
  /** `<project>:<instance>` (Cloud Monitoring's `database_id` label). */
  cloudSqlDatabaseId: string;
}

export interface StoreAlertThresholds {
  /** @default 0.8 */
  redisMemoryRatio?: number;
  /** @default 0.8 */
  sqlCpuRatio?: number;
  /** @default 0.85 */
  sqlDiskRatio?: number;
}

function threshold(
  filter: string,
  opts: {
    comparison: string;
    value: number;
    duration: string;
    aligner: string;
    period: string;
    reducer?: string;
  },
): Threshold {
  return {
    filter,
    comparison: opts.comparison,
    thresholdValue: opts.value,
    duration: opts.duration,
    aggregations: [
      {
        alignmentPeriod: opts.period,
        perSeriesAligner: opts.aligner,
        crossSeriesReducer: opts.reducer,
      },
    ],
    trigger: { count: 1 },
  };
}

export function storeAlertSpecs(t: StoreAlertThresholds = {}): AlertSpec<StoreIds>[] {
  const redisMemory = t.redisMemoryRatio ?? 0.8;
  const sqlCpu = t.sqlCpuRatio ?? 0.8;
  const sqlDisk = t.sqlDiskRatio ?? 0.85;
  const redis = (ids: StoreIds) =>
    `resource.type = "redis_instance" AND resource.labels.instance_id = "${ids.redisInstanceId}"`;
  const sql = (ids: StoreIds) =>
    `resource.type = "cloudsql_database" AND resource.labels.database_id = "${ids.cloudSqlDatabaseId}"`;
  return [
    {
      key: "redis-memory",
      displayName: "Redis memory usage",
      severity: "WARNING",
      documentation: `Memorystore memory use is above ${redisMemory * 100}%. TTL'd cache keys are being evicted; raise memorySizeGb if it persists.`,
      condition: (ids) => ({
        displayName: `Redis memory usage ratio > ${redisMemory}`,
        conditionThreshold: threshold(
          `${redis(ids)} AND metric.type = "redis.googleapis.com/stats/memory/usage_ratio"`,
          {
            comparison: "COMPARISON_GT",
            value: redisMemory,
            duration: "300s",
            aligner: "ALIGN_MEAN",
            period: "60s",
          },
        ),
      }),
    },
    {
      key: "sql-cpu",
      displayName: "Cloud SQL CPU",
      severity: "WARNING",
      documentation: `Cloud SQL CPU has been above ${sqlCpu * 100}% for 10 minutes. Check Query Insights, then the tier.`,
      condition: (ids) => ({
        displayName: `Cloud SQL CPU utilization > ${sqlCpu}`,
        conditionThreshold: threshold(
          `${sql(ids)} AND metric.type = "cloudsql.googleapis.com/database/cpu/utilization"`,
          {
            comparison: "COMPARISON_GT",
            value: sqlCpu,
            duration: "600s",
            aligner: "ALIGN_MEAN",
            period: "300s",
          },
        ),
      }),
    },
    {
      key: "sql-disk",
      displayName: "Cloud SQL disk",
      severity: "ERROR",
      documentation: `Cloud SQL disk is above ${sqlDisk * 100}% full. Auto-resize stops at its limit: raise diskAutoresizeLimitGb before it is reached.`,
      condition: (ids) => ({
        displayName: `Cloud SQL disk utilization > ${sqlDisk}`,
        conditionThreshold: threshold(
          `${sql(ids)} AND metric.type = "cloudsql.googleapis.com/database/disk/utilization"`,
          {
            comparison: "COMPARISON_GT",
            value: sqlDisk,
            duration: "300s",
            aligner: "ALIGN_MAX",
            period: "300s",
          },
        ),
      }),
    },
    {
      key: "sql-up",
      displayName: "Cloud SQL down",
      severity: "CRITICAL",
      documentation:
        "Cloud SQL reports the instance down. The service's /ready endpoint fails until it is back.",
      condition: (ids) => ({
        displayName: "Cloud SQL instance is down",
        conditionThreshold: threshold(
          `${sql(ids)} AND metric.type = "cloudsql.googleapis.com/database/up"`,
          {
            comparison: "COMPARISON_LT",
            value: 1,
            duration: "300s",
            aligner: "ALIGN_MIN",
            period: "60s",
          },
        ),
      }),
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// Dashboard

function chart(
  title: string,
  filter: string,
  aligner: string,
  reducer = "REDUCE_NONE",
  groupBy: string[] = [],
) {
  return {
    title,
    xyChart: {
      dataSets: [
        {
          plotType: "LINE",
          timeSeriesQuery: {
            timeSeriesFilter: {
              filter,
              aggregation: {
                alignmentPeriod: "60s",
                perSeriesAligner: aligner,
                crossSeriesReducer: reducer,
                groupByFields: groupBy,
              },
            },
          },
        },
      ],
    },
  };
}

/** Cloud Monitoring dashboard JSON: the stores plus project-wide service traffic. */
export function dashboardJson(title: string, ids: StoreIds): Record<string, unknown> {
  const redis = `resource.type = "redis_instance" AND resource.labels.instance_id = "${ids.redisInstanceId}"`;
  const sql = `resource.type = "cloudsql_database" AND resource.labels.database_id = "${ids.cloudSqlDatabaseId}"`;
  const widgets = [
    chart(
      "Requests by status (Cloud Run)",
      'metric.type = "run.googleapis.com/request_count" AND resource.type = "cloud_run_revision"',
      "ALIGN_RATE",
      "REDUCE_SUM",
      ["metric.label.response_code_class"],
    ),
    chart(
      "Requests by status (load balancer)",
      'metric.type = "loadbalancing.googleapis.com/https/request_count" AND resource.type = "https_lb_rule"',
      "ALIGN_RATE",
      "REDUCE_SUM",
      ["metric.label.response_code_class"],
    ),
    chart(
      "p99 latency (Cloud Run)",
      'metric.type = "run.googleapis.com/request_latencies" AND resource.type = "cloud_run_revision"',
      "ALIGN_PERCENTILE_99",
      "REDUCE_MAX",
    ),
    chart(
      "Redis memory usage ratio",
      `${redis} AND metric.type = "redis.googleapis.com/stats/memory/usage_ratio"`,
      "ALIGN_MEAN",
    ),
    chart(
      "Redis connected clients",
      `${redis} AND metric.type = "redis.googleapis.com/clients/connected"`,
      "ALIGN_MEAN",
    ),
    chart(
      "Cloud SQL CPU utilization",
      `${sql} AND metric.type = "cloudsql.googleapis.com/database/cpu/utilization"`,
      "ALIGN_MEAN",
    ),
    chart(
      "Cloud SQL disk utilization",
      `${sql} AND metric.type = "cloudsql.googleapis.com/database/disk/utilization"`,
      "ALIGN_MAX",
    ),
    chart(
      "Cloud SQL connections",
      `${sql} AND metric.type = "cloudsql.googleapis.com/database/postgresql/num_backends"`,
      "ALIGN_MEAN",
      "REDUCE_SUM",
    ),
  ];
  const columns = 12;
  const width = 6;
  const height = 4;
  return {
    displayName: title,
    mosaicLayout: {
      columns,
      tiles: widgets.map((widget, i) => ({
        xPos: (i % 2) * width,
        yPos: Math.floor(i / 2) * height,
        width,
        height,
        widget,
      })),
    },
  };
}

/** Console link for a dashboard id of the form `projects/<p>/dashboards/<id>`. */
export function dashboardUrl(project: string, dashboardId: string): string {
  const id = dashboardId.split("/").pop() ?? dashboardId;
  return `https://console.cloud.google.com/monitoring/dashboards/custom/${id}?project=${project}`;
}

// ---------------------------------------------------------------------------------------------
// The data plane's monitoring

export interface GcpMonitoringArgs {
  project: string;
  /** Who gets alerts and budget mails (one email notification channel each). */
  alertEmails: string[];
  /** Resource ids of the stores to alert on and chart. */
  stores: { redisInstanceId: pulumi.Input<string>; cloudSqlDatabaseId: pulumi.Input<string> };
  /** Days to keep logs in the project's `_Default` bucket (`EnvironmentProfile.logRetentionDays`). */
  logRetentionDays: number;
  /**
   * Set the retention of the project's `_Default` log bucket. It is project-wide: turn this off
   * when several stacks share one project, and set retention once elsewhere.
   * @default true
   */
  manageLogRetention?: boolean;
  /** @default { redisMemoryRatio: 0.8, sqlCpuRatio: 0.8, sqlDiskRatio: 0.85 } */
  thresholds?: StoreAlertThresholds;
  /** @default {} */
  labels?: Labels;
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export function validateMonitoringArgs(name: string, args: GcpMonitoringArgs): string | undefined {
  const t = args.thresholds ?? {};
  const lowered = args.alertEmails.map((e) => e.toLowerCase());
  return joinProblems(`GcpMonitoring "${name}"`, [
    checkAutonamedName(`${name}-dashboard`, 63),
    checkProjectId(args.project),
    args.alertEmails.length > 0
      ? undefined
      : "alertEmails is empty: give at least one address that receives alerts.",
    ...args.alertEmails.map((e) =>
      EMAIL.test(e) ? undefined : `alert email "${e}" is not an email address.`,
    ),
    new Set(lowered).size === lowered.length
      ? undefined
      : "alertEmails lists an address twice: list each once.",
    Number.isInteger(args.logRetentionDays) &&
    args.logRetentionDays >= 1 &&
    args.logRetentionDays <= 3650
      ? undefined
      : `logRetentionDays ${args.logRetentionDays} must be a whole number of days between 1 and 3650.`,
    ...checkThresholds({ ...t }, ["redisMemoryRatio", "sqlCpuRatio", "sqlDiskRatio"]),
  ]);
}

/**
 * Cloud Monitoring for the data plane: email notification channels, alert policies on Redis
 * memory and Cloud SQL CPU/disk/up, a dashboard, and log retention on the `_Default` bucket.
 * Targets add `ServiceAlerts` and `ServiceUptimeCheck` once their service exists.
 *
 * Cost: channels, policies, dashboards and uptime checks are free at this scale; logs kept
 * beyond 30 days cost about $0.01/GiB/month (prod keeps 90).
 */
export class GcpMonitoring extends pulumi.ComponentResource {
  public readonly hooks: MonitoringHooks<"gcp">;
  public readonly notificationChannelIds: pulumi.Output<string[]>;
  public readonly channels: gcp.monitoring.NotificationChannel[];
  public readonly alertPolicies: gcp.monitoring.AlertPolicy[];
  public readonly dashboard: gcp.monitoring.Dashboard;
  public readonly logBucket?: gcp.logging.ProjectBucketConfig;

  constructor(name: string, args: GcpMonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:gcp:Monitoring", name, {}, opts);
    const problem = validateMonitoringArgs(name, args);
    if (problem) throw new pulumi.ResourceError(problem, this);
    const ids = pulumi.output(args.stores) as pulumi.Output<StoreIds>;

    this.channels = this.createChannels(name, args);
    this.notificationChannelIds = pulumi.all(this.channels.map((c) => c.id));
    this.alertPolicies = createPolicies(
      this,
      name,
      args.project,
      storeAlertSpecs(args.thresholds),
      ids,
      this.notificationChannelIds,
      args.labels,
    );
    this.dashboard = this.createDashboard(name, args, ids);
    if (args.manageLogRetention ?? true) this.logBucket = this.createLogRetention(name, args);

    this.hooks = {
      notificationChannelIds: this.notificationChannelIds,
      dashboardUrl: this.dashboard.id.apply((id) => dashboardUrl(args.project, id)),
      logGroupName: this.logBucket?.name,
    };
    this.registerOutputs({
      notificationChannelIds: this.notificationChannelIds,
      dashboardUrl: this.hooks.dashboardUrl,
    });
  }

  private createChannels(
    name: string,
    args: GcpMonitoringArgs,
  ): gcp.monitoring.NotificationChannel[] {
    // Keyed by address, not position, so editing the list never re-creates the other channels.
    return args.alertEmails.map(
      (email) =>
        new gcp.monitoring.NotificationChannel(
          `${name}-email-${email.toLowerCase()}`,
          {
            project: args.project,
            type: "email",
            displayName: `${name} ${email}`,
            labels: { email_address: email },
            userLabels: args.labels,
          },
          { parent: this },
        ),
    );
  }

  private createDashboard(name: string, args: GcpMonitoringArgs, ids: pulumi.Output<StoreIds>) {
    return new gcp.monitoring.Dashboard(
      `${name}-dashboard`,
      {
        project: args.project,
        dashboardJson: ids.apply((i) => JSON.stringify(dashboardJson(name, i))),
      },
      { parent: this },
    );
  }

  private createLogRetention(
    name: string,
    args: GcpMonitoringArgs,
  ): gcp.logging.ProjectBucketConfig {
    // `_Default` always exists; this resource only sets its retention (destroy leaves the bucket).
    return new gcp.logging.ProjectBucketConfig(
      `${name}-log-retention`,
      {
        project: args.project,
        location: "global",
        bucketId: "_Default",
        retentionDays: args.logRetentionDays,
      },
      { parent: this },
    );
  }
}
