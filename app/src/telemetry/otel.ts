/**
 * OpenTelemetry for the service: traces exported over OTLP, metrics on /metrics (Prometheus text)
 * and over OTLP, and the manual spans the rest of the app needs.
 *
 * What turns what on (standard variables, validated in config.ts):
 * - traces: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/traces);
 *   off with OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true. Sampling follows
 *   OTEL_TRACES_SAMPLER(_ARG), headers OTEL_EXPORTER_OTLP_HEADERS, read by the SDK itself.
 * - OTLP metrics: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, or the base endpoint (+ /v1/metrics),
 *   every OTEL_METRIC_EXPORT_INTERVAL ms; off with OTEL_METRICS_EXPORTER=none.
 * - /metrics: METRICS_ENABLED (default true).
 * OTLP goes over HTTP with JSON bodies (the exporter without protobuf: smaller, and every
 * collector's OTLP/HTTP receiver takes it).
 *
 * Cost when off: the SDK packages are never loaded (dynamic imports on the enabled path only),
 * no middleware is registered, no provider or store is wrapped; log lines pay one
 * `trace.getActiveSpan()` (a no-op context lookup). A bundle can therefore mark the SDK packages
 * external (the Lambda bundle does; on Lambda, the ADOT layer can provide the SDK instead):
 * when they cannot be loaded, tracing falls back to whatever global provider is registered and
 * metrics are off, with a warning.
 *
 * The spans and metrics themselves: the server span of each request (server-spans.ts), and the
 * store, response cache and model calls (instrument.ts).
 */
import { context, propagation, trace, type Tracer } from "@opentelemetry/api";
import type { Logger } from "pino";
import type { AppConfig } from "../config";
import { AgentMetrics } from "./metrics";
import { errorMessage } from "../errors";

export type TelemetryConfig = Pick<
  AppConfig,
  | "METRICS_ENABLED"
  | "OTEL_SDK_DISABLED"
  | "OTEL_SERVICE_NAME"
  | "OTEL_EXPORTER_OTLP_ENDPOINT"
  | "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
  | "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
  | "OTEL_TRACES_EXPORTER"
  | "OTEL_METRICS_EXPORTER"
  | "OTEL_METRIC_EXPORT_INTERVAL"
>;

export interface TelemetryPlan {
  /** OTLP/HTTP URL spans go to, when tracing is on. */
  tracesUrl?: string;
  /** OTLP/HTTP URL metrics go to, when OTLP metrics are on. */
  metricsUrl?: string;
  /** Serve /metrics. */
  prometheus: boolean;
  serviceName: string;
  metricIntervalMs: number;
}

/** Which telemetry the configuration asks for (pure). */
export function telemetryPlan(config: TelemetryConfig): TelemetryPlan {
  const sdkOn = !config.OTEL_SDK_DISABLED;
  const off = (exporters: string | undefined) =>
    exporters !== undefined &&
    exporters
      .split(",")
      .map((s) => s.trim())
      .every((s) => s === "none");
  const base = config.OTEL_EXPORTER_OTLP_ENDPOINT;
  const under = (path: string) => (base ? `${base.replace(/\/+$/, "")}/${path}` : undefined);
  return {
    tracesUrl:
      sdkOn && !off(config.OTEL_TRACES_EXPORTER)
        ? (config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? under("v1/traces"))
        : undefined,
    metricsUrl:
      sdkOn && !off(config.OTEL_METRICS_EXPORTER)
        ? (config.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT ?? under("v1/metrics"))
        : undefined,
    prometheus: config.METRICS_ENABLED,
    serviceName: config.OTEL_SERVICE_NAME,
    metricIntervalMs: config.OTEL_METRIC_EXPORT_INTERVAL,
  };
}

export interface Telemetry {
  readonly metrics: AgentMetrics;
  /** Set when tracing is on (ours, or a global provider such as the ADOT Lambda layer's). */
  readonly tracer: Tracer | undefined;
  /** /metrics is served. */
  readonly prometheus: boolean;
  /** The Prometheus text exposition of every metric; "" when /metrics is off. */
  scrape(): Promise<string>;
  /** Export what is buffered (spans, metrics): call at the end of a Lambda invocation. */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

/** Test seams: exporters that receive what OTLP would. */
export interface TelemetryOptions {
  logger?: Pick<Logger, "warn" | "info">;
  /** Every span, synchronously at its end (SimpleSpanProcessor). Turns tracing on. */
  spanExporter?: import("@opentelemetry/sdk-trace-base").SpanExporter;
}

export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const DISABLED: Telemetry = Object.freeze({
  metrics: AgentMetrics.noop(),
  tracer: undefined,
  prometheus: false,
  scrape: async () => "",
  flush: async () => {},
  shutdown: async () => {},
});

/** Telemetry that records nothing (and tests' default). */
export function disabledTelemetry(): Telemetry {
  return DISABLED;
}

/** Globals (context manager, propagator) are process-wide: the last telemetry to close removes them. */
let globalUsers = 0;
let ownsContext = false;
let ownsPropagator = false;

export async function createTelemetry(
  config: TelemetryConfig,
  options: TelemetryOptions = {},
): Promise<Telemetry> {
  const plan = telemetryPlan(config);
  const wantTraces = plan.tracesUrl !== undefined || options.spanExporter !== undefined;
  const wantMetrics = plan.prometheus || plan.metricsUrl !== undefined;
  if (!wantTraces && !wantMetrics) return DISABLED;

  let sdk: Awaited<ReturnType<typeof loadSdk>>;
  try {
    sdk = await loadSdk(wantTraces, wantMetrics, plan);
  } catch (err) {
    // Bundled without the SDK (Lambda): use a global provider if one is registered (ADOT layer).
    options.logger?.warn(
      { err: errorMessage(err) },
      "OpenTelemetry SDK not available: metrics off; traces only through a globally registered provider",
    );
    return { ...DISABLED, tracer: wantTraces ? trace.getTracer("agent-service") : undefined };
  }

  const resource = sdk.resources
    .resourceFromAttributes({
      "service.name": plan.serviceName,
      "telemetry.sdk.language": "nodejs",
    })
    .merge(sdk.resources.detectResources({ detectors: [sdk.resources.envDetector] }));
  const closers: Array<() => Promise<void>> = [];
  const flushers: Array<() => Promise<void>> = [];

  let tracer: Tracer | undefined;
  if (sdk.traces) {
    const t = sdk.traces;
    const processors = [];
    if (options.spanExporter) processors.push(new t.base.SimpleSpanProcessor(options.spanExporter));
    if (plan.tracesUrl && t.otlp)
      processors.push(
        new t.base.BatchSpanProcessor(new t.otlp.OTLPTraceExporter({ url: plan.tracesUrl })),
      );
    const provider = new t.base.BasicTracerProvider({ resource, spanProcessors: processors });
    // Each set* is refused (false) when something else registered one first (an ADOT layer, an
    // earlier instance): ours then still records, and only what this process set is unset later.
    if (globalUsers++ === 0) {
      ownsContext = context.setGlobalContextManager(
        new t.asyncHooks.AsyncLocalStorageContextManager().enable(),
      );
      ownsPropagator = propagation.setGlobalPropagator(new t.core.W3CTraceContextPropagator());
    }
    // The global provider is what the Anthropic SDK's own spans go to.
    const ownsProvider = trace.setGlobalTracerProvider(provider);
    tracer = provider.getTracer("agent-service");
    flushers.push(() => provider.forceFlush());
    closers.push(async () => {
      await provider.shutdown();
      if (ownsProvider) trace.disable();
      if (--globalUsers === 0) {
        if (ownsContext) context.disable();
        if (ownsPropagator) propagation.disable();
        ownsContext = ownsPropagator = false;
      }
    });
  }

  let metrics = AgentMetrics.noop();
  let scrape = async () => "";
  if (sdk.metrics) {
    const m = sdk.metrics;
    const readers = [];
    let pull: InstanceType<typeof m.sdk.MetricReader> | undefined;
    if (plan.prometheus) {
      // Collected on demand by GET /metrics: no timer, no HTTP server of its own.
      class PullReader extends m.sdk.MetricReader {
        protected override async onShutdown() {}
        protected override async onForceFlush() {}
      }
      pull = new PullReader();
      readers.push(pull);
    }
    if (plan.metricsUrl && m.otlp) {
      readers.push(
        new m.sdk.PeriodicExportingMetricReader({
          exporter: new m.otlp.OTLPMetricExporter({ url: plan.metricsUrl }),
          exportIntervalMillis: plan.metricIntervalMs,
          exportTimeoutMillis: Math.min(30_000, plan.metricIntervalMs),
        }),
      );
    }
    const provider = new m.sdk.MeterProvider({ resource, readers });
    metrics = new AgentMetrics(provider.getMeter("agent-service"));
    registerProcessGauges(metrics);
    if (pull && m.prometheus) {
      const serializer = new m.prometheus.PrometheusSerializer();
      const reader = pull;
      scrape = async () => serializer.serialize((await reader.collect()).resourceMetrics);
    }
    flushers.push(() => provider.forceFlush());
    closers.push(() => provider.shutdown());
  }

  let closed: Promise<void> | undefined;
  return {
    metrics,
    tracer,
    prometheus: plan.prometheus,
    scrape,
    flush: async () => {
      await Promise.allSettled(flushers.map((f) => f()));
    },
    shutdown: () => {
      closed ??= Promise.allSettled(closers.map((c) => c())).then(() => undefined);
      return closed;
    },
  };
}

/** Only what the plan needs is loaded; a bundle that leaves these packages out lands in the catch above. */
async function loadSdk(traces: boolean, metrics: boolean, plan: TelemetryPlan) {
  const resources = await import("@opentelemetry/resources");
  return {
    resources,
    traces: traces
      ? {
          base: await import("@opentelemetry/sdk-trace-base"),
          asyncHooks: await import("@opentelemetry/context-async-hooks"),
          core: await import("@opentelemetry/core"),
          otlp: plan.tracesUrl
            ? await import("@opentelemetry/exporter-trace-otlp-http")
            : undefined,
        }
      : undefined,
    metrics: metrics
      ? {
          sdk: await import("@opentelemetry/sdk-metrics"),
          prometheus: plan.prometheus
            ? await import("@opentelemetry/exporter-prometheus")
            : undefined,
          otlp: plan.metricsUrl
            ? await import("@opentelemetry/exporter-metrics-otlp-http")
            : undefined,
        }
      : undefined,
  };
}

function registerProcessGauges(metrics: AgentMetrics): void {
  metrics.registerGauge(
    "process.memory.usage",
    { description: "Resident set size.", unit: "By" },
    () => [{ value: process.memoryUsage.rss() }],
  );
  let last = performance.eventLoopUtilization();
  metrics.registerGauge(
    "nodejs.eventloop.utilization",
    { description: "Share of time the event loop was busy since the previous collection." },
    () => {
      const now = performance.eventLoopUtilization();
      const delta = performance.eventLoopUtilization(now, last);
      last = now;
      return [{ value: delta.utilization }];
    },
  );
}
