/**
 * CloudWatch alarm definitions as plain data, and the one function that turns a definition into
 * a `MetricAlarm`. The data plane's alarms (Redis, RDS) and the targets' service alarms (5xx
 * ratio, p99 latency, throttles) are all built here, so thresholds and alarm hygiene
 * (`treatMissingData`, OK actions, N-of-M evaluation) are uniform and unit-testable.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

type Comparison =
  | "GreaterThanThreshold"
  | "GreaterThanOrEqualToThreshold"
  | "LessThanThreshold"
  | "LessThanOrEqualToThreshold";

interface AlarmBase {
  /** Suffix of the logical name: `${component}-${key}`. */
  key: string;
  description: string;
  threshold: number;
  comparison: Comparison;
  /** Seconds per datapoint. */
  period: number;
  evaluationPeriods: number;
  datapointsToAlarm: number;
  /** Idle services emit no datapoints; that is not an incident, except where noted. */
  treatMissingData: "notBreaching" | "breaching" | "missing" | "ignore";
}

/** One metric, one statistic. */
export interface SingleMetricAlarm extends AlarmBase {
  namespace: string;
  metricName: string;
  dimensions: Record<string, pulumi.Input<string>>;
  /** `Average`, `Sum`, `Maximum`... or a percentile such as `p99`. */
  statistic: string;
}

/** A metric-math alarm (ratios). The expression's id is `e1`; inputs are `m1`, `m2`, ... */
export interface MathAlarm extends AlarmBase {
  expression: string;
  metrics: Array<{
    id: string;
    namespace: string;
    metricName: string;
    dimensions: Record<string, pulumi.Input<string>>;
    stat: string;
  }>;
}

/**
 * A CloudWatch Metrics Insights query that returns one time series: for metrics whose dimension
 * values only exist once a resource does (a load balancer Kubernetes created). Alarms on such
 * queries: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Create_Metrics_Insights_Alarm.html
 */
export interface QueryAlarm extends AlarmBase {
  query: pulumi.Input<string>;
}

export type AlarmSpec = SingleMetricAlarm | MathAlarm | QueryAlarm;

function isMath(spec: AlarmSpec): spec is MathAlarm {
  return "expression" in spec;
}

function isQuery(spec: AlarmSpec): spec is QueryAlarm {
  return "query" in spec;
}

const PERCENTILE = /^p\d{1,2}(\.\d+)?$/;
const STATISTICS = ["SampleCount", "Average", "Sum", "Minimum", "Maximum"];

/** Problems with a spec (statistics, evaluation window), each naming the alarm. */
export function checkAlarmSpec(spec: AlarmSpec): string[] {
  const problems: string[] = [];
  if (!/^[a-z0-9-]+$/.test(spec.key))
    problems.push(`alarm key "${spec.key}" must be lowercase letters, digits and hyphens.`);
  if (spec.datapointsToAlarm < 1 || spec.datapointsToAlarm > spec.evaluationPeriods) {
    problems.push(
      `alarm "${spec.key}": datapointsToAlarm must be 1..evaluationPeriods (${spec.evaluationPeriods}).`,
    );
  }
  if (spec.period < 60 || spec.period % 60 !== 0)
    problems.push(`alarm "${spec.key}": period must be a multiple of 60 seconds.`);
  if (spec.period * spec.evaluationPeriods > 86400)
    problems.push(`alarm "${spec.key}": evaluation window exceeds one day.`);
  const stats = isQuery(spec)
    ? []
    : isMath(spec)
      ? spec.metrics.map((m) => m.stat)
      : [spec.statistic];
  for (const s of stats) {
    if (!STATISTICS.includes(s) && !PERCENTILE.test(s))
      problems.push(`alarm "${spec.key}": unknown statistic "${s}".`);
  }
  return problems;
}

/** The `MetricAlarm` inputs for a spec, with alarm and OK notifications to `topicArn`. */
export function metricAlarmArgs(
  spec: AlarmSpec,
  topicArn: pulumi.Input<string>,
): aws.cloudwatch.MetricAlarmArgs {
  const common = {
    alarmDescription: spec.description,
    comparisonOperator: spec.comparison,
    threshold: spec.threshold,
    evaluationPeriods: spec.evaluationPeriods,
    datapointsToAlarm: spec.datapointsToAlarm,
    treatMissingData: spec.treatMissingData,
    alarmActions: [topicArn],
    // Tell on-call when it recovers, so nobody chases a resolved page.
    okActions: [topicArn],
  };
  if (isQuery(spec)) {
    return {
      ...common,
      metricQueries: [
        {
          id: "q1",
          expression: spec.query,
          label: spec.key,
          period: spec.period,
          returnData: true,
        },
      ],
    };
  }
  if (isMath(spec)) {
    return {
      ...common,
      metricQueries: [
        { id: "e1", expression: spec.expression, label: spec.key, returnData: true },
        ...spec.metrics.map((m) => ({
          id: m.id,
          returnData: false,
          metric: {
            namespace: m.namespace,
            metricName: m.metricName,
            dimensions: m.dimensions,
            stat: m.stat,
            period: spec.period,
          },
        })),
      ],
    };
  }
  const percentile = PERCENTILE.test(spec.statistic);
  return {
    ...common,
    namespace: spec.namespace,
    metricName: spec.metricName,
    dimensions: spec.dimensions,
    period: spec.period,
    statistic: percentile ? undefined : spec.statistic,
    extendedStatistic: percentile ? spec.statistic : undefined,
  };
}

/** Creates the alarms of `specs` under `parent`, named `${prefix}-${spec.key}`. */
export function createAlarms(
  prefix: string,
  specs: AlarmSpec[],
  topicArn: pulumi.Input<string>,
  parent: pulumi.Resource,
): aws.cloudwatch.MetricAlarm[] {
  return specs.map(
    (spec) =>
      new aws.cloudwatch.MetricAlarm(`${prefix}-${spec.key}`, metricAlarmArgs(spec, topicArn), {
        parent,
      }),
  );
}
