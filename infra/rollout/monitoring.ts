/**
 * The gates' signals from Cloud Monitoring: requests per minute by response class and the p99
 * latency per minute, for one monitored resource (a Cloud Run revision, or a load balancer's URL
 * map), read with projects.timeSeries.list
 * (https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.timeSeries/list):
 *
 * - the request count (a DELTA INT64 metric) aligned with ALIGN_DELTA over 60 s and summed across
 *   series with REDUCE_SUM, grouped by `metric.labels.response_code_class`: one series per class,
 *   one point per minute;
 * - the latency (a DELTA DISTRIBUTION metric) aligned with ALIGN_DELTA over 60 s and reduced with
 *   REDUCE_PERCENTILE_99 without grouping: the 99th percentile of all the minute's requests, one
 *   DOUBLE point per minute (REDUCE_PERCENTILE_99 takes DELTA distributions and outputs DOUBLE:
 *   Aggregation.Reducer, https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.alertPolicies#reducer).
 *
 * The metrics and their labels are those of the metrics lists
 * (https://cloud.google.com/monitoring/api/metrics_gcp, and for the load balancer
 * https://cloud.google.com/load-balancing/docs/metrics): run.googleapis.com/request_count has
 * `response_code_class` "2xx".."5xx" on resource cloud_run_revision (labels service_name,
 * revision_name); loadbalancing.googleapis.com/https/request_count has `response_code_class` as
 * an INT64 (200..500) on resource https_lb_rule (label url_map_name). Both are sampled every
 * 60 s and visible up to a few minutes later, so the newest minutes of a window may be missing:
 * a missing minute counts as good, and a step lasts at least the gate's window.
 */
import * as z from "zod";
import type { GcpClient } from "./gcp-http";
import type { MinuteSample } from "./gates";

/** What to read for one canary: the monitored resource and the two metrics. */
export interface SignalSource {
  project: string;
  /** Monitoring filter terms that select the resource, joined to the metric with AND. */
  resourceFilter: string;
  requestCountMetric: string;
  latencyMetric: string;
}

/** A Cloud Run revision's own signals: only the canary's requests. */
export function cloudRunSignals(project: string, service: string, revision: string): SignalSource {
  return {
    project,
    resourceFilter: `resource.type = "cloud_run_revision" AND resource.labels.service_name = "${service}" AND resource.labels.revision_name = "${revision}"`,
    requestCountMetric: "run.googleapis.com/request_count",
    latencyMetric: "run.googleapis.com/request_latencies",
  };
}

/**
 * The external Application Load Balancer's signals for a URL map. These are the whole load
 * balancer's, stable and canary VMs together: the LB has no label for the instance template
 * (or MIG version) that served a request, so a bad canary at 10 % shows as a tenth of its own
 * error ratio. The gates stay the same; a canary fails them later or only when it is bad enough.
 */
export function loadBalancerSignals(project: string, urlMap: string): SignalSource {
  return {
    project,
    resourceFilter: `resource.type = "https_lb_rule" AND resource.labels.url_map_name = "${urlMap}"`,
    requestCountMetric: "loadbalancing.googleapis.com/https/request_count",
    latencyMetric: "loadbalancing.googleapis.com/https/total_latencies",
  };
}

const numberish = z.union([z.number(), z.string()]).transform(Number);

const pointSchema = z.object({
  interval: z.object({ endTime: z.string(), startTime: z.string().optional() }),
  value: z.object({ int64Value: numberish.optional(), doubleValue: numberish.optional() }),
});

const listSchema = z.object({
  timeSeries: z
    .array(
      z.object({
        metric: z.object({ labels: z.record(z.string(), z.string()).optional() }).optional(),
        points: z.array(pointSchema).optional(),
      }),
    )
    .optional(),
  nextPageToken: z.string().optional(),
});

type Series = NonNullable<z.output<typeof listSchema>["timeSeries"]>[number];

const ALIGNMENT = "60s";

/** The query parameters of one timeSeries.list call (exported for tests). */
export function timeSeriesQuery(
  filter: string,
  startMs: number,
  endMs: number,
  reducer: "REDUCE_SUM" | "REDUCE_PERCENTILE_99",
  groupBy?: string,
): URLSearchParams {
  const q = new URLSearchParams({
    filter,
    "interval.startTime": new Date(startMs).toISOString(),
    "interval.endTime": new Date(endMs).toISOString(),
    "aggregation.alignmentPeriod": ALIGNMENT,
    "aggregation.perSeriesAligner": "ALIGN_DELTA",
    "aggregation.crossSeriesReducer": reducer,
  });
  if (groupBy) q.append("aggregation.groupByFields", groupBy);
  return q;
}

async function listAll(
  client: GcpClient,
  project: string,
  query: URLSearchParams,
): Promise<Series[]> {
  const series: Series[] = [];
  for (let pageToken: string | undefined; ;) {
    const q = new URLSearchParams(query);
    if (pageToken) q.set("pageToken", pageToken);
    const page = await client.get(
      `${client.base.monitoring}/v3/projects/${encodeURIComponent(project)}/timeSeries?${q.toString()}`,
      listSchema,
    );
    series.push(...(page.timeSeries ?? []));
    pageToken = page.nextPageToken || undefined;
    if (!pageToken) return series;
  }
}

/** Per-minute samples of `source` for minutes ending in [startMs, endMs], oldest first. */
export async function readMinuteSamples(
  client: GcpClient,
  source: SignalSource,
  startMs: number,
  endMs: number,
): Promise<MinuteSample[]> {
  const countFilter = `metric.type = "${source.requestCountMetric}" AND ${source.resourceFilter}`;
  const latencyFilter = `metric.type = "${source.latencyMetric}" AND ${source.resourceFilter}`;
  const [counts, latencies] = await Promise.all([
    listAll(
      client,
      source.project,
      timeSeriesQuery(
        countFilter,
        startMs,
        endMs,
        "REDUCE_SUM",
        "metric.labels.response_code_class",
      ),
    ),
    listAll(
      client,
      source.project,
      timeSeriesQuery(latencyFilter, startMs, endMs, "REDUCE_PERCENTILE_99"),
    ),
  ]);
  return mergeSamples(counts, latencies);
}

/** Joins the count series (one per class) and the latency series by minute (exported for tests). */
export function mergeSamples(counts: Series[], latencies: Series[]): MinuteSample[] {
  const byMinute = new Map<number, MinuteSample>();
  const minute = (endTime: string) => {
    const endMs = Date.parse(endTime);
    let sample = byMinute.get(endMs);
    if (!sample) {
      sample = { endMs, requests: 0, errors5xx: 0 };
      byMinute.set(endMs, sample);
    }
    return sample;
  };
  for (const series of counts) {
    const responseClass = series.metric?.labels?.response_code_class ?? "";
    for (const point of series.points ?? []) {
      const n = point.value.int64Value ?? point.value.doubleValue ?? 0;
      const sample = minute(point.interval.endTime);
      sample.requests += n;
      if (responseClass.startsWith("5")) sample.errors5xx += n;
    }
  }
  for (const series of latencies) {
    for (const point of series.points ?? []) {
      const ms = point.value.doubleValue ?? point.value.int64Value;
      if (ms === undefined || Number.isNaN(ms)) continue;
      const sample = minute(point.interval.endTime);
      sample.p99Ms = Math.max(sample.p99Ms ?? 0, ms);
    }
  }
  return [...byMinute.values()].sort((a, b) => a.endMs - b.endMs);
}
