/**
 * What every GCP target adds to watch its own traffic: alert policies on 5xx ratio and p99
 * latency, and an uptime check with its alert.
 */
import type { AlertSpec, Condition, Labels } from "./monitoring";
import * as pulumi from "@pulumi/pulumi";
import * as gcp from "@pulumi/gcp";

import { checkProjectId, joinProblems } from "./naming";

// ---------------------------------------------------------------------------------------------
// Service alerts (targets create these once their service exists)

/** Which metrics describe the service: Cloud Run's own, or an external HTTPS load balancer's. */
export type ServiceKind = "cloud-run" | "https-lb";

/** The p99 alert policy's threshold when a stack sets none (a streamed reply is one long request). */
export const DEFAULT_SERVICE_P99_MS = 30_000;

export interface ServiceAlertThresholds {
  /**
   * Fraction of requests answered 5xx.
   * @default 0.05
   */
  errorRatio?: number;
  /**
   * p99 latency in milliseconds. Generous: a streamed agent reply is one long request.
   * @default 30000
   */
  latencyP99Ms?: number;
}

/** Metric names and filters per service kind. `name` is the Cloud Run service or the URL map. */
export function serviceMetrics(kind: ServiceKind, name: string) {
  if (kind === "cloud-run") {
    const resource = `resource.type = "cloud_run_revision" AND resource.labels.service_name = "${name}"`;
    return {
      requests: `${resource} AND metric.type = "run.googleapis.com/request_count"`,
      errors: `${resource} AND metric.type = "run.googleapis.com/request_count" AND metric.labels.response_code_class = "5xx"`,
      latency: `${resource} AND metric.type = "run.googleapis.com/request_latencies"`,
    };
  }
  const resource = `resource.type = "https_lb_rule" AND resource.labels.url_map_name = "${name}"`;
  return {
    requests: `${resource} AND metric.type = "loadbalancing.googleapis.com/https/request_count"`,
    // The LB's response_code_class is an integer label (500 = 5xx).
    errors: `${resource} AND metric.type = "loadbalancing.googleapis.com/https/request_count" AND metric.labels.response_code_class = 500`,
    latency: `${resource} AND metric.type = "loadbalancing.googleapis.com/https/total_latencies"`,
  };
}

export function serviceAlertSpecs(
  kind: ServiceKind,
  t: ServiceAlertThresholds = {},
): AlertSpec<string>[] {
  const errorRatio = t.errorRatio ?? 0.05;
  const latencyMs = t.latencyP99Ms ?? DEFAULT_SERVICE_P99_MS;
  const rate = {
    alignmentPeriod: "300s",
    perSeriesAligner: "ALIGN_RATE",
    crossSeriesReducer: "REDUCE_SUM",
  };
  return [
    {
      key: "error-ratio",
      displayName: "Service 5xx ratio",
      severity: "ERROR",
      documentation: `More than ${errorRatio * 100}% of requests failed with 5xx over 5 minutes. Check the service logs and the LLM provider's status.`,
      condition: (name) => {
        const m = serviceMetrics(kind, name);
        return {
          displayName: `5xx ratio > ${errorRatio}`,
          conditionThreshold: {
            filter: m.errors,
            denominatorFilter: m.requests,
            aggregations: [rate],
            denominatorAggregations: [rate],
            comparison: "COMPARISON_GT",
            thresholdValue: errorRatio,
            duration: "300s",
            trigger: { count: 1 },
          },
        };
      },
    },
    {
      key: "latency",
      displayName: "Service p99 latency",
      severity: "WARNING",
      documentation: `p99 latency has been above ${latencyMs} ms for 5 minutes.`,
      condition: (name) => ({
        displayName: `p99 latency > ${latencyMs} ms`,
        conditionThreshold: {
          filter: serviceMetrics(kind, name).latency,
          aggregations: [
            {
              alignmentPeriod: "300s",
              perSeriesAligner: "ALIGN_PERCENTILE_99",
              crossSeriesReducer: "REDUCE_MAX",
            },
          ],
          comparison: "COMPARISON_GT",
          thresholdValue: latencyMs,
          duration: "300s",
          trigger: { count: 1 },
        },
      }),
    },
  ];
}

export function checkThresholds(
  t: Record<string, number | undefined>,
  ratioKeys: string[],
): (string | undefined)[] {
  return Object.entries(t).map(([k, v]) => {
    if (v === undefined) return undefined;
    if (ratioKeys.includes(k))
      return v > 0 && v <= 1 ? undefined : `${k} ${v} must be a ratio in (0, 1], e.g. 0.8.`;
    return v > 0 ? undefined : `${k} ${v} must be positive.`;
  });
}

export function createPolicies<Ids>(
  parent: pulumi.Resource,
  name: string,
  project: string,
  specs: AlertSpec<Ids>[],
  ids: pulumi.Output<Ids>,
  channels: pulumi.Input<pulumi.Input<string>[]>,
  labels: Labels | undefined,
): gcp.monitoring.AlertPolicy[] {
  return specs.map(
    (spec) =>
      new gcp.monitoring.AlertPolicy(
        `${name}-${spec.key}`,
        {
          project,
          displayName: `${name}: ${spec.displayName}`,
          combiner: "OR",
          severity: spec.severity,
          conditions: [ids.apply((i) => spec.condition(i))],
          notificationChannels: channels,
          documentation: { content: spec.documentation, mimeType: "text/markdown" },
          alertStrategy: { autoClose: "1800s" },
          userLabels: labels,
        },
        { parent },
      ),
  );
}

export interface ServiceAlertsArgs {
  project: string;
  kind: ServiceKind;
  /** Cloud Run service name, or the load balancer's URL map name. */
  serviceName: pulumi.Input<string>;
  /** `DataPlaneOutputs.monitoring.notificationChannelIds`. */
  notificationChannelIds: pulumi.Input<pulumi.Input<string>[]>;
  /** @default { errorRatio: 0.05, latencyP99Ms: 30000 } */
  thresholds?: ServiceAlertThresholds;
  /** @default {} */
  userLabels?: Labels;
}

/**
 * Error-ratio and p99-latency alert policies for a service. Targets create it next to their
 * Cloud Run service or load balancer. Cost: alert policies are free up to the current quota.
 */
export class ServiceAlerts extends pulumi.ComponentResource {
  public readonly policies: gcp.monitoring.AlertPolicy[];

  constructor(name: string, args: ServiceAlertsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:gcp:ServiceAlerts", name, {}, opts);
    const t = args.thresholds ?? {};
    const problem = joinProblems(`ServiceAlerts "${name}"`, [
      checkProjectId(args.project),
      args.kind === "cloud-run" || args.kind === "https-lb"
        ? undefined
        : `kind "${String(args.kind)}" must be "cloud-run" or "https-lb".`,
      ...checkThresholds({ errorRatio: t.errorRatio, latencyP99Ms: t.latencyP99Ms }, [
        "errorRatio",
      ]),
    ]);
    if (problem) throw new pulumi.ResourceError(problem, this);

    this.policies = createPolicies(
      this,
      name,
      args.project,
      serviceAlertSpecs(args.kind, t),
      pulumi.output(args.serviceName),
      args.notificationChannelIds,
      args.userLabels,
    );
    this.registerOutputs({ policyIds: this.policies.map((p) => p.id) });
  }
}

// ---------------------------------------------------------------------------------------------
// Uptime checks

export interface UptimeTarget {
  host: string;
  path: string;
  port: number;
  useSsl: boolean;
}

/** Splits a service URL into what an uptime check needs; throws with a fix for a bad URL. */
export function uptimeTarget(url: string, path: string): UptimeTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(
      `"${url}" is not an absolute URL: pass the service URL such as "https://agent-xyz.a.run.app".`,
    );
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
    throw new Error(`"${url}" must be an http(s) URL.`);
  }
  const useSsl = parsed.protocol === "https:";
  return {
    host: parsed.hostname,
    path,
    port: parsed.port ? Number(parsed.port) : useSsl ? 443 : 80,
    useSsl,
  };
}

/** Fires when the check fails from more than one checker region (one region's blip is noise). */
export function uptimeFailureCondition(checkId: string): Condition {
  return {
    displayName: "Uptime check failing",
    conditionThreshold: {
      filter: `metric.type = "monitoring.googleapis.com/uptime_check/check_passed" AND resource.type = "uptime_url" AND metric.labels.check_id = "${checkId}"`,
      aggregations: [
        {
          alignmentPeriod: "1200s",
          perSeriesAligner: "ALIGN_NEXT_OLDER",
          crossSeriesReducer: "REDUCE_COUNT_FALSE",
          groupByFields: ["resource.label.*"],
        },
      ],
      comparison: "COMPARISON_GT",
      thresholdValue: 1,
      duration: "60s",
      trigger: { count: 1 },
    },
  };
}

export interface ServiceUptimeCheckArgs {
  project: string;
  /** The service's public URL, once the target knows it. */
  url: pulumi.Input<string>;
  /**
   * Path to probe. `/health` touches no dependency, so a database outage does not read as downtime.
   * @default "/health"
   */
  path?: string;
  notificationChannelIds: pulumi.Input<pulumi.Input<string>[]>;
  /**
   * How often each checker region probes.
   * @default "60s"
   */
  period?: "60s" | "300s" | "600s" | "900s";
  /** @default {} */
  userLabels?: Labels;
}

/**
 * An HTTPS uptime check on the service URL plus an alert policy on its failures.
 * Cost: uptime checks are free for the first million executions per month.
 */
export class ServiceUptimeCheck extends pulumi.ComponentResource {
  public readonly check: gcp.monitoring.UptimeCheckConfig;
  public readonly alert: gcp.monitoring.AlertPolicy;

  constructor(name: string, args: ServiceUptimeCheckArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:gcp:ServiceUptimeCheck", name, {}, opts);
    const path = args.path ?? "/health";
    let urlProblem: string | undefined;
    if (typeof args.url === "string") {
      try {
        uptimeTarget(args.url, path);
      } catch (e) {
        urlProblem = (e as Error).message;
      }
    }
    const problem = joinProblems(`ServiceUptimeCheck "${name}"`, [
      checkProjectId(args.project),
      path.startsWith("/") ? undefined : `path "${path}" must start with "/".`,
      urlProblem,
    ]);
    if (problem) throw new pulumi.ResourceError(problem, this);

    const target = pulumi.output(args.url).apply((u) => uptimeTarget(u, path));
    this.check = new gcp.monitoring.UptimeCheckConfig(
      `${name}-check`,
      {
        project: args.project,
        displayName: `${name} ${path}`,
        period: args.period ?? "60s",
        timeout: "10s",
        checkerType: "STATIC_IP_CHECKERS",
        monitoredResource: {
          type: "uptime_url",
          labels: { project_id: args.project, host: target.host },
        },
        httpCheck: {
          path: target.path,
          port: target.port,
          useSsl: target.useSsl,
          validateSsl: target.useSsl,
          requestMethod: "GET",
          acceptedResponseStatusCodes: [{ statusClass: "STATUS_CLASS_2XX" }],
        },
        userLabels: args.userLabels,
      },
      { parent: this },
    );
    this.alert = new gcp.monitoring.AlertPolicy(
      `${name}-failing`,
      {
        project: args.project,
        displayName: `${name}: uptime check failing`,
        combiner: "OR",
        severity: "CRITICAL",
        conditions: [this.check.uptimeCheckId.apply(uptimeFailureCondition)],
        notificationChannels: args.notificationChannelIds,
        documentation: {
          content: `GET ${path} fails from several regions.`,
          mimeType: "text/markdown",
        },
        userLabels: args.userLabels,
      },
      { parent: this },
    );
    this.registerOutputs({ uptimeCheckId: this.check.uptimeCheckId });
  }
}
