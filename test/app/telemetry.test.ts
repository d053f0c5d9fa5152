/**
 * Observability: /metrics exposition after real requests (and that scrapes are neither logged nor
 * counted nor behind the API key), the hooks other modules use, trace ids in log lines, server and
 * upstream spans (with the fake Anthropic API), OTLP export to a collector, and that with
 * telemetry off nothing is wrapped or loaded.
 */
import { execFile } from "node:child_process";
import fs from "node:fs";
import { createServer, type Server } from "node:http";
import os from "node:os";
import path from "node:path";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { context, trace, SpanKind } from "@opentelemetry/api";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { buildApp } from "../../app/src/app";
import { buildMetricsApp } from "../../app/src/routes/metrics";
import { createDeps } from "../../app/src/bootstrap";
import { loadConfig } from "../../app/src/config";
import type { AppDeps } from "../../app/src/deps";
import { AnthropicProvider } from "../../app/src/llm/anthropic";
import { ModelCatalog } from "../../app/src/llm/models";
import { OfflineProvider } from "../../app/src/llm/offline";
import type { LlmProvider, MessageRequest, StreamEvent } from "../../app/src/llm/types";
import { createLogger, traceContextMixin } from "../../app/src/telemetry/logger";
import { instrumentLlm, traceStore } from "../../app/src/telemetry/instrument";
import { GEN_AI_PROVIDER_NAMES, UPSTREAMS } from "../../app/src/llm/upstream-kinds";
import { createTelemetry, telemetryPlan, type Telemetry } from "../../app/src/telemetry/otel";
import { telemetryMiddleware } from "../../app/src/telemetry/server-spans";
import { FAKE_API_KEY, startFakeAnthropic, type FakeAnthropic } from "../support/fake-anthropic";

const KEY = "alice-key-0001";
const BASE_ENV = {
  DATA_DIR: "memory://",
  AGENT_API_KEYS: `alice:${KEY}`,
  BATCH_POLLER_ENABLED: "false",
  RATE_LIMIT_RPM: "0",
  RATE_LIMIT_TPM: "0",
};
const headers = {
  "x-api-key": KEY,
  "anthropic-version": "2023-06-01",
  "content-type": "application/json",
};
const catalog = ModelCatalog.load();

/** A pino destination that keeps each JSON line. */
function captureLogs() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split("\n")) if (l.trim()) lines.push(JSON.parse(l));
      done();
    },
  });
  return { lines, stream };
}

const messagesBody = (content: string, over: Record<string, unknown> = {}) =>
  JSON.stringify({
    model: "claude-haiku-4-5",
    max_tokens: 32,
    messages: [{ role: "user", content }],
    ...over,
  });

describe("telemetryPlan", () => {
  const base = loadConfig({});
  it.each([
    [
      "nothing set: /metrics only",
      {},
      { tracesUrl: undefined, metricsUrl: undefined, prometheus: true },
    ],
    [
      "base endpoint: traces and metrics under it",
      { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" },
      {
        tracesUrl: "http://collector:4318/v1/traces",
        metricsUrl: "http://collector:4318/v1/metrics",
      },
    ],
    [
      "signal endpoints win over the base",
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://a:4318",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://b/traces",
      },
      { tracesUrl: "https://b/traces", metricsUrl: "http://a:4318/v1/metrics" },
    ],
    [
      "exporter none",
      { OTEL_EXPORTER_OTLP_ENDPOINT: "http://a", OTEL_TRACES_EXPORTER: "none" },
      { tracesUrl: undefined, metricsUrl: "http://a/v1/metrics" },
    ],
    [
      "sdk disabled",
      { OTEL_EXPORTER_OTLP_ENDPOINT: "http://a", OTEL_SDK_DISABLED: "true" },
      { tracesUrl: undefined, metricsUrl: undefined },
    ],
    ["metrics off", { METRICS_ENABLED: "false" }, { prometheus: false }],
  ])("%s", (_name, env, expected) => {
    expect(telemetryPlan(loadConfig({ ...env }))).toMatchObject(expected);
    void base;
  });

  it("rejects an endpoint that is not a URL, naming the variable", () => {
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" })).toThrow(
      /OTEL_EXPORTER_OTLP_ENDPOINT/,
    );
  });
});

describe("/metrics", () => {
  let deps: AppDeps;
  let app: ReturnType<typeof buildApp>;
  // /metrics has an app (and a port: METRICS_PORT) of its own since issue 13.
  let metricsApp: NonNullable<ReturnType<typeof buildMetricsApp>>;
  const logs = captureLogs();

  beforeAll(async () => {
    const config = loadConfig({ ...BASE_ENV, LOG_LEVEL: "info" });
    deps = await createDeps(config, {
      llm: new OfflineProvider(),
      logger: createLogger({ level: "info", destination: logs.stream }),
    });
    app = buildApp(deps);
    metricsApp = buildMetricsApp(deps)!;
  });
  afterAll(() => deps.close());

  it("exposes request, token, cache and hook metrics after requests, without an API key, unlogged", async () => {
    const metrics = deps.telemetry!.metrics;
    metrics.rateLimitRefused("rpm");
    metrics.observeBreakers(() => [
      { model: "claude-haiku-4-5", state: "open" },
      { model: "claude-sonnet-4-6", state: "halfOpen" },
    ]);
    metrics.observeBudgetUtilisation(() => [{ budget: "daily", ratio: 0.25 }]);
    let depth = 7;
    const stop = metrics.registerGauge(
      "agent.custom.queue_depth",
      { description: "test gauge" },
      () => [{ value: depth, attributes: { queue: "q1" } }],
    );

    for (let i = 0; i < 2; i++) {
      const res = await app.request("/v1/messages", {
        method: "POST",
        headers,
        body: messagesBody("count me"),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get("x-cache")).toBe(i === 0 ? "MISS" : "HIT");
    }
    expect(
      (
        await app.request("/v1/messages", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: messagesBody("x"),
        })
      ).status,
    ).toBe(401);

    const res = await metricsApp.request("/metrics");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const has = (re: RegExp) => expect(text).toMatch(re);
    has(/^# TYPE http_server_request_duration histogram$/m);
    has(
      /^http_server_request_duration_count\{http_request_method="POST",http_route="\/v1\/messages",http_response_status_code="200"[^}]*\} 2$/m,
    );
    has(
      /^http_server_request_duration_count\{http_request_method="POST",http_route="\/v1\/messages",http_response_status_code="401"[^}]*\} 1$/m,
    );
    has(/^http_server_request_duration_bucket\{[^}]*le="0\.005"[^}]*\} \d+$/m);
    has(/^agent_response_cache_requests_total\{result="miss"[^}]*\} 1$/m);
    has(/^agent_response_cache_requests_total\{result="hit"[^}]*\} 1$/m);
    has(/^agent_response_cache_hit_ratio\{[^}]*\} 0\.5$/m);
    has(
      /^agent_llm_tokens_total\{model="synthetic-offline",kind="input",source="live"[^}]*\} \d+$/m,
    );
    has(
      /^agent_llm_tokens_total\{model="synthetic-offline",kind="output",source="live"[^}]*\} \d+$/m,
    );
    has(
      /^gen_ai_client_operation_duration_count\{gen_ai_request_model="claude-haiku-4-5",outcome="ok"[^}]*\} 1$/m,
    );
    has(/^agent_ratelimit_refusals_total\{scope="rpm"[^}]*\} 1$/m);
    has(/^agent_breaker_state\{model="claude-haiku-4-5"[^}]*\} 2$/m);
    has(/^agent_breaker_state\{model="claude-sonnet-4-6"[^}]*\} 1$/m);
    has(/^agent_budget_utilisation\{budget="daily"[^}]*\} 0\.25$/m);
    has(/^agent_custom_queue_depth\{queue="q1"[^}]*\} 7$/m);
    // The stream gate (OVERLOAD_MAX_STREAMS at its default): none open, the ceiling admitted.
    has(/^agent_overload_streams\{state="open"[^}]*\} 0$/m);
    has(/^agent_overload_streams\{state="limit"[^}]*\} 384$/m);
    has(/^process_memory_usage\{[^}]*\} \d+$/m);
    // Scrapes are not counted, and unmatched paths share one label.
    expect(text).not.toContain('http_route="/metrics"');
    // Gauges are read at each scrape, until their callback is removed.
    depth = 9;
    expect(await (await metricsApp.request("/metrics")).text()).toMatch(
      /^agent_custom_queue_depth\{queue="q1"[^}]*\} 9$/m,
    );
    stop();
    depth = 11;
    expect(await (await metricsApp.request("/metrics")).text()).not.toMatch(
      /^agent_custom_queue_depth\{[^}]*\} 11$/m,
    );
    // Requests are logged; scrapes are not.
    const requests = logs.lines.filter((l) => l.msg === "request");
    expect(requests.some((l) => l.path === "/v1/messages")).toBe(true);
    expect(requests.some((l) => String(l.path).includes("metrics"))).toBe(false);
    const line = requests.find((l) => l.path === "/v1/messages")!;
    expect(line).toMatchObject({ level: "info", service: "agent", method: "POST", status: 200 });
    expect(line.requestId).toMatch(/^req_/);
    expect(typeof line.ms).toBe("number");
    // The access line's logger skips the redaction paths (app.ts); the app's own logger keeps them.
    deps.logger.warn(
      { key: "sk-ant-secret", nested: { apiKey: "sk-ant-other" } },
      "redaction probe",
    );
    const probe = logs.lines.find((l) => l.msg === "redaction probe")!;
    expect(probe).toMatchObject({ key: "[redacted]", nested: { apiKey: "[redacted]" } });
  });

  it("labels requests no route matched as 'unmatched'", async () => {
    await app.request("/nothing/here/42");
    const text = await (await metricsApp.request("/metrics")).text();
    expect(text).toMatch(/http_route="unmatched",http_response_status_code="404"/);
    expect(text).not.toContain("/nothing/here/42");
  });
});

describe("with METRICS_ENABLED=false and no OTLP endpoint", () => {
  it("has no /metrics route and wraps nothing", async () => {
    const config = loadConfig({ ...BASE_ENV, LOG_LEVEL: "silent", METRICS_ENABLED: "false" });
    const telemetry = await createTelemetry(config);
    expect(telemetry.tracer).toBeUndefined();
    expect(telemetry.metrics.enabled).toBe(false);
    expect(telemetryMiddleware(telemetry)).toBeUndefined();
    const llm = new OfflineProvider();
    expect(instrumentLlm(llm, telemetry, catalog)).toBe(llm);
    const store = { kind: "pglite", ping: async () => {} };
    expect(traceStore(store, telemetry)).toBe(store);
    const deps = await createDeps(config, { llm });
    try {
      expect(deps.llm).toBe(llm);
      const app = buildApp(deps);
      expect((await app.request("/metrics")).status).toBe(404);
      expect(buildMetricsApp(deps)).toBeNull();
    } finally {
      await deps.close();
    }
  });

  it("log lines carry no trace fields without an active span", () => {
    expect(traceContextMixin()).toEqual({});
  });
});

describe("traces", () => {
  let fake: FakeAnthropic;
  let deps: AppDeps;
  let app: ReturnType<typeof buildApp>;
  let telemetry: Telemetry;
  const exporter = new InMemorySpanExporter();
  const logs = captureLogs();

  beforeAll(async () => {
    fake = await startFakeAnthropic({ recordHeaders: ["traceparent"] });
    const config = loadConfig({
      ...BASE_ENV,
      LOG_LEVEL: "info",
      METRICS_ENABLED: "false",
      ANTHROPIC_API_KEY: FAKE_API_KEY,
      ANTHROPIC_BASE_URL: fake.url,
    });
    telemetry = await createTelemetry(config, { spanExporter: exporter });
    // The upstream as the configuration makes it (upstream.ts): while tracing is on, its calls go
    // through the SDK, whose call span the tests below look for.
    deps = await createDeps(config, {
      telemetry,
      logger: createLogger({ level: "info", destination: logs.stream }),
    });
    app = buildApp(deps);
  });
  afterAll(async () => {
    await deps.close();
    await telemetry.shutdown();
    await fake.close();
  });
  beforeEach(() => exporter.reset());

  const byName = (spans: ReadableSpan[], name: string) => spans.find((s) => s.name === name);
  const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;

  it("names the provider by the upstream, as OpenTelemetry's GenAI conventions do (aws.bedrock, gcp.vertex_ai)", async () => {
    const llm = new AnthropicProvider({
      apiKey: FAKE_API_KEY,
      baseURL: fake.url,
      timeoutMs: 10_000,
    });
    for (const kind of UPSTREAMS) {
      exporter.reset();
      const wrapped = instrumentLlm(llm, telemetry, catalog, GEN_AI_PROVIDER_NAMES[kind]);
      await wrapped.createMessage({
        model: "claude-haiku-4-5",
        max_tokens: 8,
        messages: [{ role: "user", content: `provider ${kind}` }],
      } as MessageRequest);
      const span = byName(exporter.getFinishedSpans(), "chat claude-haiku-4-5")!;
      expect([kind, span.attributes["gen_ai.provider.name"]]).toEqual([
        kind,
        { anthropic: "anthropic", bedrock: "aws.bedrock", vertex: "gcp.vertex_ai" }[kind],
      ]);
    }
  });

  it("continues the caller's trace with a server span, an upstream span with usage and cost, and the SDK's call span", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const callerSpan = "00f067aa0ba902b7";
    const system = [
      {
        type: "text",
        text: `Policy. ${"rule ".repeat(1500)}`,
        cache_control: { type: "ephemeral" },
      },
    ];
    const res = await app.request("/v1/messages", {
      method: "POST",
      headers: {
        ...headers,
        traceparent: `00-${traceId}-${callerSpan}-01`,
        "cache-control": "no-store",
      },
      body: messagesBody("traced", { system }),
    });
    expect(res.status).toBe(200);
    const spans = exporter.getFinishedSpans();
    const server = byName(spans, "POST /v1/messages")!;
    expect(server).toBeDefined();
    expect(server.kind).toBe(SpanKind.SERVER);
    expect(server.spanContext().traceId).toBe(traceId);
    expect(parentOf(server)).toBe(callerSpan);
    expect(server.attributes).toMatchObject({
      "http.route": "/v1/messages",
      "http.response.status_code": 200,
      "http.request.method": "POST",
      "enduser.id": "alice",
    });

    const upstream = byName(spans, "chat claude-haiku-4-5")!;
    expect(parentOf(upstream)).toBe(server.spanContext().spanId);
    expect(upstream.attributes).toMatchObject({
      "gen_ai.request.model": "claude-haiku-4-5",
      "gen_ai.response.model": "claude-haiku-4-5",
      "gen_ai.provider.name": "anthropic",
    });
    expect(upstream.attributes["gen_ai.usage.input_tokens"]).toBeGreaterThan(0);
    expect(upstream.attributes["gen_ai.usage.output_tokens"]).toBeGreaterThan(0);
    expect(upstream.attributes["gen_ai.usage.cache_write.input_tokens"]).toBeGreaterThan(1000);
    expect(upstream.attributes["gen_ai.usage.cache_read.input_tokens"]).toBe(0);
    expect(upstream.attributes["agent.cost_usd"]).toBeGreaterThan(0);
    // The SDK's own span for the API call sits under ours (context flows through the providers).
    const sdkSpan = spans.find(
      (s) =>
        s.instrumentationScope.name.startsWith("com.anthropic") &&
        s.name.includes("messages.create"),
    );
    expect(sdkSpan && parentOf(sdkSpan)).toBeTruthy();
    const ancestors = new Set<string>();
    for (
      let s: ReadableSpan | undefined = sdkSpan;
      s;
      s = spans.find((x) => x.spanContext().spanId === parentOf(s!))
    ) {
      ancestors.add(s.spanContext().spanId);
    }
    expect(ancestors.has(upstream.spanContext().spanId)).toBe(true);
    // The upstream request carried our trace context on to the API.
    expect(fake.lastRequest()!.headers.traceparent ?? "").toContain(traceId);
  });

  it("puts trace_id and span_id of the request's server span on its log line", async () => {
    const res = await app.request("/v1/sessions", { method: "POST", headers, body: "{}" });
    expect(res.status).toBe(201);
    const server = byName(exporter.getFinishedSpans(), "POST /v1/sessions")!;
    const line = logs.lines.filter((l) => l.msg === "request" && l.path === "/v1/sessions").at(-1)!;
    expect(line.trace_id).toBe(server.spanContext().traceId);
    expect(line.span_id).toBe(server.spanContext().spanId);
    // Store calls are spans of the same trace.
    const db = byName(exporter.getFinishedSpans(), "db.createSession")!;
    expect(db.kind).toBe(SpanKind.CLIENT);
    expect(db.spanContext().traceId).toBe(server.spanContext().traceId);
    expect(db.attributes).toMatchObject({
      "db.system.name": "pglite",
      "db.operation.name": "createSession",
    });
  });

  it("any log line written inside an active span carries its ids", () => {
    const tracer = telemetry.tracer!;
    const span = tracer.startSpan("unit");
    const out = context.with(trace.setSpan(context.active(), span), () => traceContextMixin());
    span.end();
    expect(out).toEqual({
      trace_id: span.spanContext().traceId,
      span_id: span.spanContext().spanId,
    });
  });

  it("marks a failed upstream call on its span and the server span", async () => {
    const res = await app.request("/v1/messages", {
      method: "POST",
      headers: { ...headers, "cache-control": "no-store" },
      body: messagesBody(
        '[[fake:{"fault":{"kind":"http_error","status":500,"type":"api_error"}}]] boom',
      ),
    });
    expect(res.status).toBeGreaterThanOrEqual(500);
    const spans = exporter.getFinishedSpans();
    const upstream = byName(spans, "chat claude-haiku-4-5")!;
    expect(upstream.status.code).toBe(2); // ERROR
    expect(upstream.attributes["error.type"]).toBe("api_error");
    expect(byName(spans, "POST /v1/messages")!.status.code).toBe(2);
  });
});

describe("OTLP export", () => {
  let collector: Server;
  let url: string;
  const received: Array<{ path: string; body: string }> = [];
  beforeAll(async () => {
    collector = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        received.push({ path: req.url ?? "", body });
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      });
    });
    await new Promise<void>((r) => collector.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => collector.close(() => r())));

  // In a real Node process: the OTLP exporter loads its HTTP transport with a dynamic import(),
  // which jest's module sandbox refuses (plain Node, bundles and tsx all allow it).
  it("sends spans and metrics to OTEL_EXPORTER_OTLP_ENDPOINT", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "otlp-"));
    const script = path.join(dir, "export.ts");
    const src = (m: string) => JSON.stringify(path.resolve(__dirname, "../../app/src", m));
    fs.writeFileSync(
      script,
      `import { createTelemetry } from ${src("telemetry/otel")};
       import { loadConfig } from ${src("config")};
       (async () => {
         const t = await createTelemetry(loadConfig(process.env));
         if (!t.tracer || t.prometheus) throw new Error("expected tracing on and /metrics off");
         t.tracer.startSpan("exported-span").end();
         t.metrics.recordUsage("claude-haiku-4-5", { input_tokens: 10, output_tokens: 5 }, 0.001);
         await t.flush();
         await t.shutdown();
       })().catch((e) => { console.error(e); process.exit(1); });`,
    );
    try {
      await new Promise<void>((resolve, reject) =>
        execFile(
          process.execPath,
          [require.resolve("tsx/cli"), script],
          {
            env: {
              ...process.env,
              METRICS_ENABLED: "false",
              OTEL_EXPORTER_OTLP_ENDPOINT: url,
              OTEL_SERVICE_NAME: "agent-under-test",
            },
            timeout: 60_000,
          },
          (err, _out, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve()),
        ),
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const traces = received
      .filter((r) => r.path === "/v1/traces")
      .map((r) => r.body)
      .join("");
    const metrics = received
      .filter((r) => r.path === "/v1/metrics")
      .map((r) => r.body)
      .join("");
    expect(traces).toContain("exported-span");
    expect(traces).toContain("agent-under-test");
    expect(metrics).toContain("agent.llm.tokens");
    expect(JSON.parse(received.find((r) => r.path === "/v1/traces")!.body)).toHaveProperty(
      "resourceSpans",
    );
  });
});

describe("instrumentLlm on streams", () => {
  it("closes the upstream when the consumer stops and records the call as aborted", async () => {
    let returned = false;
    const events = [
      {
        type: "message_start",
        message: {
          id: "m",
          model: "claude-haiku-4-5",
          usage: { input_tokens: 7, output_tokens: 1 },
        },
      },
      { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "abcd" } },
      { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "efgh" } },
    ] as unknown as StreamEvent[];
    const llm: LlmProvider = {
      synthetic: false,
      createMessage: () => Promise.reject(new Error("unused")),
      async *streamMessage() {
        try {
          for (const e of events) yield e;
          await new Promise(() => {}); // a stream that would never end
        } finally {
          returned = true;
        }
      },
    };
    const telemetry = await createTelemetry(loadConfig({}));
    try {
      const wrapped = instrumentLlm(llm, telemetry, catalog);
      const seen: string[] = [];
      for await (const e of wrapped.streamMessage({
        model: "claude-haiku-4-5",
        max_tokens: 10,
        messages: [],
      } as unknown as MessageRequest)) {
        seen.push(e.type);
        if (seen.length === 2) break;
      }
      expect(returned).toBe(true);
      const text = await telemetry.scrape();
      expect(text).toMatch(
        /gen_ai_client_operation_duration_count\{gen_ai_request_model="claude-haiku-4-5",outcome="aborted"[^}]*\} 1/,
      );
      expect(text).toMatch(
        /agent_llm_tokens_total\{model="claude-haiku-4-5",kind="input",source="live"[^}]*\} 7/,
      );
    } finally {
      await telemetry.shutdown();
    }
  });
});
