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
 * Postgres and Redis spans are manual spans around store and response-cache calls rather than
 * auto-instrumentation: instrumentations patch `require`, which a bundled build (dist/, Lambda)
 * never calls for pg or ioredis. The upstream span wraps each logical model call (with retries
 * and fallbacks inside it); the Anthropic SDK adds one child span per API call on its own.
 */
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Span,
  type TextMapGetter,
  type Tracer,
} from "@opentelemetry/api";
import type { Context, MiddlewareHandler } from "hono";
import type { Logger } from "pino";
import type { AppConfig } from "../config";
import type { AppEnv } from "../http";
import type { ModelCatalog } from "../llm/models";
import { fullUsage, StreamTracker, type FullUsage } from "../llm/stream-usage";
import type {
  CallOptions,
  LlmProvider,
  MessageRequest,
  MessageResponse,
  StreamEvent,
} from "../llm/types";
import type { ResponseCache } from "../cache/types";
import { AgentMetrics } from "./metrics";

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
      { err: (err as Error).message },
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

// ---------------------------------------------------------------------------------------------
// HTTP: one server span and one latency sample per request

const HEADERS_GETTER: TextMapGetter<Headers> = {
  get: (headers, key) => headers.get(key) ?? undefined,
  keys: (headers) => [...headers.keys()],
};

/**
 * The matched route pattern, also when a middleware answered before the handler ran (a 401, a
 * 429); requests no route matched share one label, so paths never become label values.
 */
function routeOf(c: Context<AppEnv>): string {
  const path = c.req.routePath;
  if (path && !path.endsWith("*")) return path;
  const routes = c.req.matchedRoutes;
  for (let i = routes.length - 1; i >= 0; i--)
    if (routes[i]!.method !== "ALL") return routes[i]!.path;
  return "unmatched";
}

/**
 * Middleware for the server span (W3C traceparent continued) and the request metrics, or
 * undefined when both are off. Register it before the request logger, so the log line of a
 * request carries its trace id. For streams, the span and the latency end when the response
 * headers are sent; the stream's own duration is on the upstream span.
 */
export function telemetryMiddleware(telemetry: Telemetry): MiddlewareHandler<AppEnv> | undefined {
  const { tracer } = telemetry;
  const metrics = telemetry.metrics.enabled ? telemetry.metrics : undefined;
  if (!tracer && !metrics) return undefined;
  return async (c, next) => {
    const started = performance.now();
    const method = c.req.method;
    let span: Span | undefined;
    try {
      if (tracer) {
        const parent = propagation.extract(ROOT_CONTEXT, c.req.raw.headers, HEADERS_GETTER);
        span = tracer.startSpan(
          method,
          {
            kind: SpanKind.SERVER,
            attributes: { "http.request.method": method, "url.path": c.req.path },
          },
          parent,
        );
        await context.with(trace.setSpan(parent, span), next);
      } else {
        await next();
      }
    } finally {
      const route = routeOf(c);
      const status = c.res.status;
      if (span) {
        span.updateName(`${method} ${route}`);
        span.setAttribute("http.route", route);
        span.setAttribute("http.response.status_code", status);
        const user = c.get("userId");
        if (user) span.setAttribute("enduser.id", user);
        if (c.error) span.recordException(c.error);
        if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
      }
      if (metrics) {
        metrics.recordRequest(method, route, status, (performance.now() - started) / 1000);
        const xcache = c.res.headers.get("x-cache");
        if (xcache) metrics.recordCacheLookup(xcache);
      }
    }
  };
}

// ---------------------------------------------------------------------------------------------
// Manual spans

/** Run `fn` in a child span of the active one (when tracing is on); the span ends with it. */
export async function withSpan<T>(
  tracer: Tracer | undefined,
  name: string,
  attributes: Attributes,
  fn: (span: Span | undefined) => Promise<T>,
  kind: SpanKind = SpanKind.INTERNAL,
): Promise<T> {
  if (!tracer) return fn(undefined);
  return tracer.startActiveSpan(name, { kind, attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error)?.message });
      throw err;
    } finally {
      span.end();
    }
  });
}

/**
 * The store with a CLIENT span around every async method (`db.<method>`), or the store itself
 * when tracing is off. Only method names and the database system are recorded: never arguments.
 */
export function traceStore<S extends object>(store: S, telemetry: Pick<Telemetry, "tracer">): S {
  const tracer = telemetry.tracer;
  if (!tracer) return store;
  const system = (store as { kind?: string }).kind === "pglite" ? "pglite" : "postgresql";
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== "function" || prop === "constructor") return value;
      let fn = wrapped.get(prop);
      if (!fn) {
        const name = `db.${String(prop)}`;
        const attributes = { "db.system.name": system, "db.operation.name": String(prop) };
        fn = function (this: unknown, ...args: unknown[]) {
          // Only promise-returning calls get spans; close() and sync helpers pass through untouched.
          if (prop === "close") return (value as (...a: unknown[]) => unknown).apply(target, args);
          return withSpan(
            tracer,
            name,
            attributes,
            () => Promise.resolve((value as (...a: unknown[]) => unknown).apply(target, args)),
            SpanKind.CLIENT,
          );
        };
        wrapped.set(prop, fn);
      }
      return fn;
    },
  });
}

/** The response cache with CLIENT spans (Redis), or the cache itself when tracing is off. */
export function traceCache(
  cache: ResponseCache,
  telemetry: Pick<Telemetry, "tracer">,
): ResponseCache {
  const tracer = telemetry.tracer;
  if (!tracer) return cache;
  const system = cache.kind === "redis" ? "redis" : "memory";
  return {
    kind: cache.kind,
    get: (key) =>
      withSpan(
        tracer,
        "cache.get",
        { "db.system.name": system, "db.operation.name": "GET" },
        async (span) => {
          const hit = await cache.get(key);
          span?.setAttribute("agent.cache.hit", hit !== null);
          return hit;
        },
        SpanKind.CLIENT,
      ),
    set: (key, value, ttl) =>
      withSpan(
        tracer,
        "cache.set",
        { "db.system.name": system, "db.operation.name": "SET" },
        () => cache.set(key, value, ttl),
        SpanKind.CLIENT,
      ),
  };
}

// ---------------------------------------------------------------------------------------------
// Upstream model calls: span + token, cost and latency metrics

function usageAttributes(model: string, usage: FullUsage, costUsd: number): Attributes {
  return {
    "gen_ai.response.model": model,
    "gen_ai.usage.input_tokens": usage.input_tokens,
    "gen_ai.usage.output_tokens": usage.output_tokens,
    "gen_ai.usage.cache_read.input_tokens": usage.cache_read_input_tokens,
    "gen_ai.usage.cache_write.input_tokens": usage.cache_creation_input_tokens,
    "agent.cost_usd": costUsd,
  };
}

const isAbort = (err: unknown) => (err as { status?: number })?.status === 499;

/**
 * The provider with a span per model call (`chat <model>`: model, tokens, cache reads and writes,
 * cost) and the token, cost and latency metrics, or the provider itself when telemetry is off.
 */
export function instrumentLlm(
  llm: LlmProvider,
  telemetry: Telemetry,
  catalog: Pick<ModelCatalog, "costUsd">,
): LlmProvider {
  const { tracer } = telemetry;
  const metrics = telemetry.metrics;
  if (!tracer && !metrics.enabled) return llm;

  const startSpan = (request: MessageRequest, stream: boolean) =>
    tracer?.startSpan(`chat ${request.model}`, {
      kind: SpanKind.INTERNAL,
      attributes: {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": llm.synthetic ? "synthetic" : "anthropic",
        "gen_ai.request.model": request.model,
        "gen_ai.request.max_tokens": request.max_tokens,
        "gen_ai.request.stream": stream,
      },
    });
  const fail = (span: Span | undefined, err: unknown) => {
    if (!span) return;
    span.recordException(err as Error);
    span.setAttribute(
      "error.type",
      String((err as { type?: string })?.type ?? (err as Error)?.name ?? "error"),
    );
    span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error)?.message });
  };
  const settle = (
    span: Span | undefined,
    requested: string,
    model: string,
    usage: FullUsage,
    outcome: "ok" | "error" | "aborted",
    started: number,
  ) => {
    const cost = catalog.costUsd(model, usage);
    metrics.recordUsage(model, usage, cost, "live");
    metrics.recordUpstreamCall(requested, outcome, (performance.now() - started) / 1000);
    span?.setAttributes(usageAttributes(model, usage, cost));
  };

  return {
    get synthetic() {
      return llm.synthetic;
    },
    async createMessage(request: MessageRequest, options?: CallOptions): Promise<MessageResponse> {
      const started = performance.now();
      const span = startSpan(request, false);
      try {
        const message = span
          ? await context.with(trace.setSpan(context.active(), span), () =>
              llm.createMessage(request, options),
            )
          : await llm.createMessage(request, options);
        settle(span, request.model, message.model, fullUsage(message.usage), "ok", started);
        span?.setAttribute("gen_ai.response.finish_reasons", [String(message.stop_reason)]);
        return message;
      } catch (err) {
        metrics.recordUpstreamCall(
          request.model,
          isAbort(err) ? "aborted" : "error",
          (performance.now() - started) / 1000,
        );
        fail(span, err);
        throw err;
      } finally {
        span?.end();
      }
    },
    async *streamMessage(
      request: MessageRequest,
      options?: CallOptions,
    ): AsyncGenerator<StreamEvent, void, undefined> {
      const started = performance.now();
      const span = startSpan(request, true);
      const ctx = span ? trace.setSpan(context.active(), span) : undefined;
      const run = <T>(fn: () => T): T => (ctx ? context.with(ctx, fn) : fn());
      const tracker = new StreamTracker();
      const upstream = run(() => llm.streamMessage(request, options)[Symbol.asyncIterator]());
      let done = false;
      let failure: unknown = undefined;
      try {
        for (;;) {
          const next = await run(() => upstream.next());
          if (next.done) break;
          tracker.observe(next.value);
          yield next.value;
        }
        done = true;
      } catch (err) {
        failure = err ?? new Error("stream failed");
        fail(span, err);
        throw err;
      } finally {
        // Neither finished nor failed: the consumer stopped reading. Stop the upstream too.
        if (!done && !failure) await upstream.return?.().catch(() => undefined);
        const outcome = failure
          ? isAbort(failure)
            ? "aborted"
            : "error"
          : done
            ? tracker.completed
              ? "ok"
              : "error"
            : "aborted";
        settle(
          span,
          request.model,
          tracker.model ?? request.model,
          tracker.finalUsage(),
          outcome,
          started,
        );
        span?.end();
      }
    },
  };
}
