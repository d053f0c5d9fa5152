/**
 * The service's metrics, as one object every part of the app records into. It depends only on
 * `@opentelemetry/api`: with metrics off its instruments are the API's no-op ones (a method call
 * that does nothing), and the SDK is never loaded. `telemetry/otel.ts` builds it over a real
 * MeterProvider when /metrics (METRICS_ENABLED) or OTLP export is on.
 *
 * Names follow the OpenTelemetry semantic conventions where one exists; on /metrics dots become
 * underscores and counters get `_total` (`http_server_request_duration`, `agent_llm_tokens_total`;
 * units are in `# UNIT` lines, not in the names), and every series carries `otel_scope_name`:
 *
 *   http.server.request.duration        histogram, s   http.request.method, http.route, http.response.status_code
 *   agent.response_cache.requests       counter        result = hit | miss | bypass (the x-cache header)
 *   agent.response_cache.hit_ratio      gauge          hits / (hits + misses) since start
 *   gen_ai.client.operation.duration    histogram, s   gen_ai.request.model, outcome
 *   agent.llm.tokens                    counter        model, kind = input | output | cache_read | cache_write, source = live | batch
 *   agent.llm.cost                      counter, USD   model, source
 *   agent.prompt_cache.read_ratio       gauge          cache-read input tokens / all input tokens since start
 *   agent.ratelimit.refusals            counter        scope (hook: rateLimitRefused)
 *   agent.breaker.state                 gauge          model; 0 closed, 1 half-open, 2 open (hook: observeBreakers)
 *   agent.budget.utilisation            gauge          budget, ...; spent / limit (hook: observeBudgetUtilisation)
 *   agent.overload.lag                  gauge, ms      the event loop's smoothed lag (hook: observeOverload)
 *   agent.overload.refusals             gauge          requests refused as overloaded since start (503)
 *   agent.overload.streams              gauge          state = open | limit: streams relayed, and admitted at most
 *   agent.batches.created               counter        mode = upstream | local
 *   agent.batch.results                 counter        type = succeeded | errored | canceled | expired
 *
 * Other modules add their own with `counter()`, `histogram()` and `registerGauge()`.
 *
 * Every label takes values from a known, small set: a model label is a model of the table (or
 * `other`, see `labelModels`), routes are route patterns, statuses are the service's own. A
 * client choosing label values could otherwise grow the exposition without bound.
 */
import {
  createNoopMeter,
  ValueType,
  type Attributes,
  type Counter,
  type Histogram,
  type Meter,
  type MetricOptions,
} from "@opentelemetry/api";
import { SummedCounter } from "./summed-counter";

/** Both spellings of half-open are accepted (opossum-style "halfOpen" too). */
export type BreakerState = "closed" | "half_open" | "halfOpen" | "open";
const BREAKER_VALUE: Record<BreakerState, number> = {
  closed: 0,
  half_open: 1,
  halfOpen: 1,
  open: 2,
};

export interface GaugeSample {
  value: number;
  attributes?: Attributes;
}

export interface UsageTokens {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
}

/** The label of every model outside the known set. */
export const OTHER_MODEL = "other";
/** Distinct model labels kept before `labelModels` says which models are known. */
const MAX_MODEL_LABELS = 32;

/** Request latencies: an LLM gateway spans milliseconds (cache hits) to minutes (long generations). */
const SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export class AgentMetrics {
  private readonly requestDuration: Histogram;
  private readonly cacheRequests: SummedCounter;
  private readonly upstreamDuration: Histogram;
  private readonly tokens: SummedCounter;
  private readonly cost: SummedCounter;
  private readonly refusals: Counter;
  private readonly batchesCreated: Counter;
  private readonly batchResults: Counter;
  private cacheHits = 0;
  private cacheMisses = 0;
  private inputTotal = 0;
  private cacheReadTotal = 0;
  private readonly seenModels = new Set<string>();
  /** Until `labelModels` is called: the first MAX_MODEL_LABELS models seen, then `other`. */
  private modelLabel = (model: string): string => {
    if (this.seenModels.has(model)) return model;
    if (this.seenModels.size >= MAX_MODEL_LABELS) return OTHER_MODEL;
    this.seenModels.add(model);
    return model;
  };

  /** Metrics that record nothing: the default when telemetry is off. */
  static noop(): AgentMetrics {
    return new AgentMetrics(createNoopMeter(), false);
  }

  constructor(
    readonly meter: Meter,
    /** False for the no-op instance: callers may skip work that only feeds metrics. */
    readonly enabled = true,
  ) {
    this.requestDuration = meter.createHistogram("http.server.request.duration", {
      description: "Duration of HTTP server requests (to the response headers for streams).",
      unit: "s",
      advice: { explicitBucketBoundaries: SECONDS_BUCKETS },
    });
    // The counters recorded on every request keep their sums here (summed-counter.ts): the
    // SDK's Counter would hash each call's attributes.
    this.cacheRequests = new SummedCounter(
      meter,
      "agent.response_cache.requests",
      { description: "Requests by response-cache outcome (the x-cache header)." },
      ["result"],
    );
    this.upstreamDuration = meter.createHistogram("gen_ai.client.operation.duration", {
      description: "Duration of model API calls (streams: until the last event).",
      unit: "s",
      advice: { explicitBucketBoundaries: SECONDS_BUCKETS },
    });
    this.tokens = new SummedCounter(
      meter,
      "agent.llm.tokens",
      { description: "Model tokens by kind.", valueType: ValueType.INT },
      ["model", "kind", "source"],
    );
    this.cost = new SummedCounter(
      meter,
      "agent.llm.cost",
      {
        description: "Model spend in USD, at list prices (batch results at the batch discount).",
        unit: "USD",
        valueType: ValueType.DOUBLE,
      },
      ["model", "source"],
    );
    this.refusals = meter.createCounter("agent.ratelimit.refusals", {
      description: "Requests refused by the rate limiter.",
    });
    this.batchesCreated = meter.createCounter("agent.batches.created", {
      description: "Message batches accepted.",
    });
    this.batchResults = meter.createCounter("agent.batch.results", {
      description: "Message batch results stored, by result type.",
    });
    if (enabled) {
      meter
        .createObservableGauge("agent.response_cache.hit_ratio", {
          description: "Response-cache hits / (hits + misses) since the process started.",
          valueType: ValueType.DOUBLE,
        })
        .addCallback((r) => {
          const n = this.cacheHits + this.cacheMisses;
          if (n > 0) r.observe(this.cacheHits / n);
        });
      meter
        .createObservableGauge("agent.prompt_cache.read_ratio", {
          description: "Prompt-cache read tokens / all input tokens since the process started.",
          valueType: ValueType.DOUBLE,
        })
        .addCallback((r) => {
          if (this.inputTotal > 0) r.observe(this.cacheReadTotal / this.inputTotal);
        });
    }
  }

  /**
   * Which model ids may appear as label values: `label(id)` returns the id to show (a dated
   * snapshot as its alias, say) or null for a model outside the table, shown as `other`.
   */
  labelModels(label: (model: string) => string | null): void {
    this.modelLabel = (model) => label(model) ?? OTHER_MODEL;
  }

  recordRequest(method: string, route: string, status: number, seconds: number): void {
    this.requestDuration.record(seconds, {
      "http.request.method": method,
      "http.route": route,
      "http.response.status_code": status,
    });
  }

  /** `result` is the x-cache header: HIT, MISS or BYPASS. */
  recordCacheLookup(result: string): void {
    const r = result.toLowerCase();
    if (r === "hit") this.cacheHits++;
    else if (r === "miss") this.cacheMisses++;
    this.cacheRequests.add(1, r);
  }

  recordUpstreamCall(model: string, outcome: "ok" | "error" | "aborted", seconds: number): void {
    this.upstreamDuration.record(seconds, {
      "gen_ai.request.model": this.modelLabel(model),
      outcome,
    });
  }

  /** Tokens and spend of one model response (live call or batch result). */
  recordUsage(
    model: string,
    usage: UsageTokens,
    costUsd: number,
    source: "live" | "batch" = "live",
  ): void {
    if (!this.enabled) return;
    model = this.modelLabel(model);
    const cacheRead = usage.cache_read_input_tokens ?? 0;
    const cacheWrite = usage.cache_creation_input_tokens ?? 0;
    this.inputTotal += usage.input_tokens + cacheRead + cacheWrite;
    this.cacheReadTotal += cacheRead;
    if (usage.input_tokens > 0) this.tokens.add(usage.input_tokens, model, "input", source);
    if (usage.output_tokens > 0) this.tokens.add(usage.output_tokens, model, "output", source);
    if (cacheRead > 0) this.tokens.add(cacheRead, model, "cache_read", source);
    if (cacheWrite > 0) this.tokens.add(cacheWrite, model, "cache_write", source);
    if (costUsd > 0) this.cost.add(costUsd, model, source);
  }

  /** Hook for the rate limiter: one refused request. Keep `scope` low-cardinality (rpm, tpm, ...). */
  rateLimitRefused(scope: string, attributes: Attributes = {}): void {
    this.refusals.add(1, { ...attributes, scope });
  }

  batchCreated(mode: "upstream" | "local"): void {
    this.batchesCreated.add(1, { mode });
  }

  batchResult(type: string, count = 1): void {
    if (count > 0) this.batchResults.add(count, { type });
  }

  /**
   * An observable gauge read at each collection (scrape or export). `callback` returns the
   * current samples; returns a function that stops observing.
   */
  registerGauge(
    name: string,
    options: MetricOptions,
    callback: () => Iterable<GaugeSample>,
  ): () => void {
    const gauge = this.meter.createObservableGauge(name, {
      valueType: ValueType.DOUBLE,
      ...options,
    });
    const observe = (result: { observe(value: number, attributes?: Attributes): void }) => {
      for (const s of callback()) result.observe(s.value, s.attributes);
    };
    gauge.addCallback(observe);
    return () => gauge.removeCallback(observe);
  }

  /** Hook for the overload guard (overload.ts): the lag it judges by, and what it refused. */
  observeOverload(guard: {
    lag: { lagMs: number };
    refused: number;
    streams?: { streams: number; limit: number };
  }): () => void {
    const lag = this.registerGauge(
      "agent.overload.lag",
      {
        description: "The event loop's smoothed lag (what OVERLOAD_LAG_MS is compared with).",
        unit: "ms",
      },
      () => [{ value: guard.lag.lagMs }],
    );
    const refused = this.registerGauge(
      "agent.overload.refusals",
      { description: "API requests refused with 503 as overloaded since the process started." },
      () => [{ value: guard.refused }],
    );
    const gate = guard.streams;
    const streams = gate
      ? this.registerGauge(
          "agent.overload.streams",
          {
            description:
              "Streams this process relays now (state=open), and how many it admits now (state=limit: OVERLOAD_MAX_STREAMS, lowered while the loop lags).",
          },
          () => [
            { value: gate.streams, attributes: { state: "open" } },
            { value: gate.limit, attributes: { state: "limit" } },
          ],
        )
      : () => {};
    return () => {
      lag();
      refused();
      streams();
    };
  }

  /** Hook for circuit breakers: their states, read at each collection. */
  observeBreakers(callback: () => Iterable<{ model: string; state: BreakerState }>): () => void {
    const label = (model: string) => this.modelLabel(model);
    return this.registerGauge(
      "agent.breaker.state",
      { description: "Circuit breaker state per model: 0 closed, 1 half-open, 2 open." },
      function* (this: void) {
        for (const b of callback()) {
          const model = label(b.model);
          // Breakers of models outside the table would all share one series: left out.
          if (model !== OTHER_MODEL) yield { value: BREAKER_VALUE[b.state], attributes: { model } };
        }
      },
    );
  }

  /**
   * Hook for budgets: spent / limit per budget, read at each collection. Keep attributes
   * low-cardinality: a deployment-wide budget, or a handful of named ones, not one per user.
   */
  observeBudgetUtilisation(
    callback: () => Iterable<{ budget: string; ratio: number; attributes?: Attributes }>,
  ): () => void {
    return this.registerGauge(
      "agent.budget.utilisation",
      { description: "Budget spent / limit (1 = exhausted)." },
      function* () {
        for (const b of callback())
          yield { value: b.ratio, attributes: { ...b.attributes, budget: b.budget } };
      },
    );
  }

  /** A counter of the caller's own (the meter is shared, so it appears on /metrics and in OTLP). */
  counter(name: string, options?: MetricOptions): Counter {
    return this.meter.createCounter(name, options);
  }

  histogram(name: string, options?: MetricOptions): Histogram {
    return this.meter.createHistogram(name, options);
  }
}
