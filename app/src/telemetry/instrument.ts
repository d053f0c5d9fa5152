/**
 * Spans and metrics around the app's dependencies, each returned as is when telemetry is off:
 * the store and the response cache (CLIENT spans), the model provider (a span per logical call,
 * with its tokens, cost and latency), and `withSpan` for the rest.
 *
 * Postgres and Redis spans are manual spans around store and response-cache calls rather than
 * auto-instrumentation: instrumentations patch `require`, which a bundled build (dist/, Lambda)
 * never calls for pg or ioredis. The upstream span wraps each logical model call (with retries
 * and fallbacks inside it); the Anthropic SDK adds one child span per API call on its own.
 */
import { GEN_AI_PROVIDER_NAMES } from "../llm/upstream-kinds";
import {
  context,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Span,
  type Tracer,
} from "@opentelemetry/api";
import type { ResponseCache } from "../cache/types";
import type { ModelCatalog } from "../llm/models";
import { fullUsage, StreamTracker, type FullUsage } from "../llm/stream-usage";
import type {
  CallOptions,
  LlmProvider,
  MessageRequest,
  MessageResponse,
  StreamEvent,
} from "../llm/types";
import type { Telemetry } from "./otel";

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
    set: (key, value, ttl, text) =>
      withSpan(
        tracer,
        "cache.set",
        { "db.system.name": system, "db.operation.name": "SET" },
        () => cache.set(key, value, ttl, text),
        SpanKind.CLIENT,
      ),
  };
}

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
  /** `gen_ai.provider.name` of the calls (GEN_AI_PROVIDER_NAMES); the offline model's is "synthetic". */
  providerName: string = GEN_AI_PROVIDER_NAMES.anthropic,
): LlmProvider {
  const { tracer } = telemetry;
  const metrics = telemetry.metrics;
  if (!tracer && !metrics.enabled) return llm;

  const startSpan = (request: MessageRequest, stream: boolean) =>
    tracer?.startSpan(`chat ${request.model}`, {
      kind: SpanKind.INTERNAL,
      attributes: {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": llm.synthetic ? "synthetic" : providerName,
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
