/**
 * The alarms every AWS target adds for its own compute: server-error ratio, p99 latency and
 * throttling. A target creates `new ServiceAlarms(...)` with the data plane's
 * `monitoring.alarmTopicArn`, or calls `serviceAlarmSpecs` and `createAlarms` itself to adjust.
 */
import * as pulumi from "@pulumi/pulumi";
import { type AlarmSpec, checkAlarmSpec, createAlarms } from "./alarms";
import type { RolloutGates } from "../release/rollout-plan";

/** Where the service's request metrics come from. */
export type ServiceMetricsSource =
  | {
      kind: "lambda";
      functionName: pulumi.Input<string>;
      /**
       * How requests arrive. A Function URL reports HTTP 5xx (`Url5xxCount`), which includes the
       * app's own 500s; plain invocations only report crashes (`Errors`).
       * @default "function-url"
       */
      via?: "function-url" | "invoke";
    }
  /** ALB in front of EKS or an Auto Scaling Group; suffixes are the resources' `arnSuffix`. */
  | {
      kind: "alb";
      loadBalancerArnSuffix: pulumi.Input<string>;
      targetGroupArnSuffix: pulumi.Input<string>;
    }
  | { kind: "http-api"; apiId: pulumi.Input<string>; stage?: pulumi.Input<string> };

export interface ServiceAlarmThresholds {
  /** Percent of requests failing with 5xx over 5 minutes. @default 5 */
  errorRatePercent?: number;
  /**
   * p99 latency. Streaming LLM responses legitimately take tens of seconds, so this is high.
   * @default 60000
   */
  p99LatencyMs?: number;
  /** Throttled invocations per 5 minutes (Lambda concurrency limit). @default 1 */
  throttles?: number;
  /** Below this many requests per 5 minutes the ratio is noise: no alarm. @default 20 */
  minRequests?: number;
}

export interface ServiceAlarmsArgs {
  source: ServiceMetricsSource;
  /** From the data plane: `outputs.monitoring.alarmTopicArn`. */
  alarmTopicArn: pulumi.Input<string>;
  /** @default see ServiceAlarmThresholds */
  thresholds?: ServiceAlarmThresholds;
}

interface Resolved {
  errorRatePercent: number;
  p99LatencyMs: number;
  throttles: number;
  minRequests: number;
}

function resolve(t: ServiceAlarmThresholds = {}): Resolved {
  return {
    errorRatePercent: t.errorRatePercent ?? 5,
    p99LatencyMs: t.p99LatencyMs ?? 60_000,
    throttles: t.throttles ?? 1,
    minRequests: t.minRequests ?? 20,
  };
}

const WINDOW = {
  period: 300,
  evaluationPeriods: 3,
  datapointsToAlarm: 2,
  treatMissingData: "notBreaching" as const,
};

/**
 * The ratio expression: errors as a percent of requests, 0 while traffic is below `minRequests`
 * (two failures of three requests at night must not page anyone).
 */
function ratioExpression(errors: string, requests: string, minRequests: number): string {
  return `IF(${requests} >= ${minRequests}, 100 * ${errors} / ${requests}, 0)`;
}

/** The alarm definitions for a service. Pure: tests and targets call it directly. */
export function serviceAlarmSpecs(
  source: ServiceMetricsSource,
  thresholds?: ServiceAlarmThresholds,
): AlarmSpec[] {
  const t = resolve(thresholds);
  const errorDescription = `5xx above ${t.errorRatePercent}% of requests (at least ${t.minRequests} requests per 5 minutes)`;
  const latencyDescription = `p99 latency above ${t.p99LatencyMs} ms`;
  switch (source.kind) {
    case "lambda": {
      const dimensions = { FunctionName: source.functionName };
      const metric = (id: string, metricName: string) => ({
        id,
        namespace: "AWS/Lambda",
        metricName,
        dimensions,
        stat: "Sum",
      });
      const viaUrl = (source.via ?? "function-url") === "function-url";
      return [
        {
          ...WINDOW,
          key: "error-rate",
          description: `Lambda ${viaUrl ? "Function URL" : "invocation errors"}: ${errorDescription}`,
          expression: ratioExpression("m1", "m2", t.minRequests),
          metrics: viaUrl
            ? [metric("m1", "Url5xxCount"), metric("m2", "UrlRequestCount")]
            : [metric("m1", "Errors"), metric("m2", "Invocations")],
          threshold: t.errorRatePercent,
          comparison: "GreaterThanThreshold",
        },
        {
          ...WINDOW,
          key: "p99-latency",
          description: `Lambda ${latencyDescription}`,
          namespace: "AWS/Lambda",
          metricName: "Duration",
          dimensions,
          statistic: "p99",
          threshold: t.p99LatencyMs,
          comparison: "GreaterThanThreshold",
        },
        {
          ...WINDOW,
          key: "throttles",
          description: `Lambda throttled ${t.throttles}+ invocations in 5 minutes: raise reserved concurrency or the account limit`,
          namespace: "AWS/Lambda",
          metricName: "Throttles",
          dimensions,
          statistic: "Sum",
          threshold: t.throttles,
          comparison: "GreaterThanOrEqualToThreshold",
          datapointsToAlarm: 1,
        },
      ];
    }
    case "alb": {
      const dimensions = {
        LoadBalancer: source.loadBalancerArnSuffix,
        TargetGroup: source.targetGroupArnSuffix,
      };
      const lbOnly = { LoadBalancer: source.loadBalancerArnSuffix };
      const sum = (id: string, metricName: string, dims: Record<string, pulumi.Input<string>>) => ({
        id,
        namespace: "AWS/ApplicationELB",
        metricName,
        dimensions: dims,
        stat: "Sum",
      });
      return [
        {
          ...WINDOW,
          key: "error-rate",
          // Target 5xx (the app) plus load balancer 5xx (no healthy target, timeouts).
          description: `ALB: ${errorDescription}`,
          expression: ratioExpression("(m1 + m2)", "m3", t.minRequests),
          metrics: [
            sum("m1", "HTTPCode_Target_5XX_Count", dimensions),
            sum("m2", "HTTPCode_ELB_5XX_Count", lbOnly),
            sum("m3", "RequestCount", lbOnly),
          ],
          threshold: t.errorRatePercent,
          comparison: "GreaterThanThreshold",
        },
        {
          ...WINDOW,
          key: "p99-latency",
          description: `ALB target ${latencyDescription}`,
          namespace: "AWS/ApplicationELB",
          metricName: "TargetResponseTime",
          dimensions,
          statistic: "p99",
          // TargetResponseTime is in seconds.
          threshold: t.p99LatencyMs / 1000,
          comparison: "GreaterThanThreshold",
        },
        {
          ...WINDOW,
          key: "throttles",
          // An ALB does not throttle; it rejects when it cannot open connections to targets.
          description: `ALB rejected ${t.throttles}+ connections in 5 minutes (targets saturated)`,
          namespace: "AWS/ApplicationELB",
          metricName: "RejectedConnectionCount",
          dimensions: lbOnly,
          statistic: "Sum",
          threshold: t.throttles,
          comparison: "GreaterThanOrEqualToThreshold",
          datapointsToAlarm: 1,
        },
      ];
    }
    case "http-api": {
      const dimensions = { ApiId: source.apiId, Stage: source.stage ?? "$default" };
      const sum = (id: string, metricName: string) => ({
        id,
        namespace: "AWS/ApiGateway",
        metricName,
        dimensions,
        stat: "Sum",
      });
      return [
        {
          ...WINDOW,
          key: "error-rate",
          description: `HTTP API: ${errorDescription}`,
          expression: ratioExpression("m1", "m2", t.minRequests),
          metrics: [sum("m1", "5xx"), sum("m2", "Count")],
          threshold: t.errorRatePercent,
          comparison: "GreaterThanThreshold",
        },
        {
          ...WINDOW,
          key: "p99-latency",
          description: `HTTP API ${latencyDescription}`,
          namespace: "AWS/ApiGateway",
          metricName: "Latency",
          dimensions,
          statistic: "p99",
          threshold: t.p99LatencyMs,
          comparison: "GreaterThanThreshold",
        },
        {
          ...WINDOW,
          key: "throttles",
          // HTTP APIs report throttling as 429s inside 4xx; the ratio of 4xx is the closest signal.
          description: `HTTP API 4xx (including 429 throttling) above ${t.errorRatePercent}% of requests`,
          expression: ratioExpression("m1", "m2", t.minRequests),
          metrics: [sum("m1", "4xx"), sum("m2", "Count")],
          threshold: t.errorRatePercent,
          comparison: "GreaterThanThreshold",
        },
      ];
    }
  }
}

/**
 * Three alarms on a service's own metrics, notifying the data plane's alarm topic. About
 * $0.30/month (metric-math and percentile alarms cost the same as standard ones).
 */
export class ServiceAlarms extends pulumi.ComponentResource {
  readonly alarms: ReturnType<typeof createAlarms>;

  constructor(name: string, args: ServiceAlarmsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:aws:ServiceAlarms", name, {}, opts);
    const t = resolve(args.thresholds);
    const problems: string[] = [];
    if (!(t.errorRatePercent > 0 && t.errorRatePercent < 100)) {
      problems.push(
        `thresholds.errorRatePercent is ${t.errorRatePercent}: use a percentage between 0 and 100.`,
      );
    }
    if (!(t.p99LatencyMs > 0))
      problems.push(
        `thresholds.p99LatencyMs is ${t.p99LatencyMs}: use a positive number of milliseconds.`,
      );
    if (!(t.throttles >= 1))
      problems.push(`thresholds.throttles is ${t.throttles}: use 1 or more.`);
    if (!(t.minRequests >= 1))
      problems.push(`thresholds.minRequests is ${t.minRequests}: use 1 or more.`);
    const specs = problems.length > 0 ? [] : serviceAlarmSpecs(args.source, args.thresholds);
    problems.push(...specs.flatMap(checkAlarmSpec));
    if (problems.length > 0)
      throw new pulumi.ResourceError(`ServiceAlarms "${name}": ${problems.join(" ")}`, this);

    this.alarms = createAlarms(name, specs, args.alarmTopicArn, this);
    this.registerOutputs({ alarmArns: this.alarms.map((a) => a.arn) });
  }
}

/**
 * The rollout gates: the error-rate and p99 alarms above, over one-minute windows (a canary
 * step lasts minutes; the 5-minute alarms would fire after it ended). CodeDeploy and instance
 * refresh stop and roll back while one is in ALARM; they also notify the alarm topic, so a
 * rolled-back release is news to on-call.
 */
export function rolloutGateSpecs(source: ServiceMetricsSource, gates: RolloutGates): AlarmSpec[] {
  return serviceAlarmSpecs(source, {
    errorRatePercent: gates.errorRatePercent,
    p99LatencyMs: gates.p99LatencyMs,
    minRequests: gates.minRequestsPerMinute,
  })
    .filter((spec) => spec.key === "error-rate" || spec.key === "p99-latency")
    .map((spec) => ({
      ...spec,
      key: `gate-${spec.key}`,
      description: `Rollout gate (${gates.badMinutes} of ${gates.windowMinutes} minutes): ${spec.description.replace("per 5 minutes", "per minute")}`,
      period: 60,
      evaluationPeriods: gates.windowMinutes,
      datapointsToAlarm: gates.badMinutes,
    }));
}
