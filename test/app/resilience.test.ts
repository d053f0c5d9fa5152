/**
 * The retry loop, circuit breakers and model fallback (ResilientProvider) against the fake
 * Anthropic API through the official SDK (its own retries off). A model-wide outage is one fake
 * server per model, so a 529 storm hits one model and not its fallback.
 */
import Anthropic from "@anthropic-ai/sdk";
import { randomBytes } from "node:crypto";
import {
  startFakeAnthropic,
  FAKE_API_KEY,
  type FakeAnthropic,
  type FakeBehavior,
} from "../support/fake-anthropic";
import { startService, type RunningService } from "../support/service";
import { AnthropicProvider } from "../../app/src/llm/anthropic";
import { ModelCatalog } from "../../app/src/llm/models";
import {
  ResilientProvider,
  type ResilienceEvent,
  type ResilientOptions,
} from "../../app/src/llm/resilient";
import { backoffMs, classify, countsAgainstModel, retryAfterMs } from "../../app/src/llm/retry";
import type {
  CallOptions,
  LlmProvider,
  MessageRequest,
  StreamEvent,
} from "../../app/src/llm/types";
import { UpstreamError } from "../../app/src/llm/types";

const A = "claude-haiku-4-5";
const B = "claude-sonnet-4-6";
const catalog = ModelCatalog.load();

/** Sends each model to its own fake upstream: an outage of one model leaves the other healthy. */
class PerModelUpstream implements LlmProvider {
  readonly synthetic = false;
  constructor(private readonly byModel: Record<string, LlmProvider>) {}
  private pick(model: string): LlmProvider {
    const p = this.byModel[model];
    if (!p) throw new Error(`no upstream for ${model}`);
    return p;
  }
  createMessage(request: MessageRequest, options?: CallOptions) {
    return this.pick(request.model).createMessage(request, options);
  }
  streamMessage(request: MessageRequest, options?: CallOptions): AsyncIterable<StreamEvent> {
    return this.pick(request.model).streamMessage(request, options);
  }
}

const sdk = (fake: FakeAnthropic) =>
  new AnthropicProvider({ apiKey: FAKE_API_KEY, baseURL: fake.url, timeoutMs: 10_000 });
const tag = () => randomBytes(6).toString("hex");
const directive = (b: FakeBehavior) => `[[fake:${JSON.stringify(b)}]]`;
const ask = (model: string, text: string, extra: Partial<MessageRequest> = {}): MessageRequest => ({
  model,
  max_tokens: 64,
  messages: [{ role: "user", content: text }],
  ...extra,
});
async function failure(p: Promise<unknown>): Promise<UpstreamError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof UpstreamError) return err;
    throw err;
  }
  throw new Error("expected the call to fail");
}
const messagesTo = (fake: FakeAnthropic, since = 0) =>
  fake.requests.filter((r) => r.path === "/v1/messages" && r.seq > since);
/**
 * Attempts of one test's call: the requests whose body carries `marker`. A test before it may
 * leave an attempt in flight (cut at its deadline) that reaches the fake after afterEach's reset:
 * seen once under load as a count of 2 where this test's own call made 1.
 */
const attemptsWith = (fake: FakeAnthropic, marker: string) =>
  messagesTo(fake).filter((r) => JSON.stringify(r.body).includes(marker)).length;

let fakeA: FakeAnthropic;
let fakeB: FakeAnthropic;
const providers: ResilientProvider[] = [];
function resilient(options: ResilientOptions, inner?: LlmProvider): ResilientProvider {
  const p = new ResilientProvider(
    inner ?? new PerModelUpstream({ [A]: sdk(fakeA), [B]: sdk(fakeB) }),
    {
      catalog,
      backoff: { baseMs: 20, maxMs: 200 },
      ...options,
    },
  );
  providers.push(p);
  return p;
}
function record(p: ResilientProvider): ResilienceEvent[] {
  const events: ResilienceEvent[] = [];
  p.onEvent((e) => events.push(e));
  return events;
}
const nextEvent = (p: ResilientProvider, match: (e: ResilienceEvent) => boolean) =>
  new Promise<ResilienceEvent>((resolve) => {
    const off = p.onEvent((e) => {
      if (match(e)) {
        off();
        resolve(e);
      }
    });
  });

/** Resolves once `model`'s breaker is in `state`, whether it got there before or after the call. */
function untilState(p: ResilientProvider, model: string, state: string): Promise<void> {
  return new Promise((resolve) => {
    const off = p.onEvent((e) => {
      if (e.type === "breaker" && e.model === model && e.state === state) {
        off();
        resolve();
      }
    });
    if (p.breakerStates().find((s) => s.model === model)?.state === state) {
      off();
      resolve();
    }
  });
}

beforeAll(async () => {
  [fakeA, fakeB] = await Promise.all([startFakeAnthropic(), startFakeAnthropic()]);
});
afterEach(() => {
  fakeA.reset();
  fakeB.reset();
  for (const p of providers.splice(0)) p.close();
});
afterAll(async () => {
  await Promise.all([fakeA?.close(), fakeB?.close()]);
});

describe("failure classification", () => {
  const err = (status: number, type: string, headers: Record<string, string> = {}, message = "x") =>
    new UpstreamError(status, type, message, headers);

  it("retries 408, 409, 429, 5xx and 529; never other 4xx, spend limits or aborts", () => {
    expect(classify(err(429, "rate_limit_error"))).toBe("rate_limited");
    expect(classify(err(529, "overloaded_error"))).toBe("overloaded");
    for (const s of [408, 409, 500, 502, 503, 504])
      expect(classify(err(s, "api_error"))).toBe("transient");
    for (const s of [400, 401, 403, 404, 413, 422])
      expect(classify(err(s, "invalid_request_error"))).toBe("fatal");
    expect(classify(err(429, "rate_limit_error", { "x-should-retry": "false" }))).toBe("fatal");
    expect(
      classify(
        err(400, "invalid_request_error", {}, "You have reached your specified API usage limits."),
      ),
    ).toBe("fatal");
    expect(classify(err(499, "aborted"))).toBe("fatal");
  });

  it("counts capacity and server failures against the model, client errors not", () => {
    expect(countsAgainstModel(err(529, "overloaded_error"))).toBe(true);
    expect(countsAgainstModel(err(429, "rate_limit_error"))).toBe(true);
    expect(countsAgainstModel(err(504, "timeout_error"))).toBe(true);
    expect(countsAgainstModel(err(500, "api_error"))).toBe(true);
    expect(countsAgainstModel(err(400, "invalid_request_error"))).toBe(false);
    expect(countsAgainstModel(err(404, "not_found_error"))).toBe(false);
    expect(countsAgainstModel(err(499, "aborted"))).toBe(false);
    expect(countsAgainstModel(err(429, "rate_limit_error", { "x-should-retry": "false" }))).toBe(
      false,
    );
  });

  it("reads retry-after-ms before retry-after, which may be seconds or a date", () => {
    expect(
      retryAfterMs(err(429, "rate_limit_error", { "retry-after": "2", "retry-after-ms": "150" })),
    ).toBe(150);
    expect(retryAfterMs(err(429, "rate_limit_error", { "retry-after": "3" }))).toBe(3000);
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(
      retryAfterMs(
        err(429, "rate_limit_error", { "retry-after": "Thu, 01 Jan 2026 00:00:05 GMT" }),
        now,
      ),
    ).toBe(5000);
    expect(retryAfterMs(err(500, "api_error"))).toBeUndefined();
  });

  it("backs off exponentially with jitter between half and all of each step, capped", () => {
    const opts = { baseMs: 100, maxMs: 1000 };
    expect([1, 2, 3, 4, 5].map((n) => backoffMs(n, opts, () => 0))).toEqual([
      50, 100, 200, 400, 500,
    ]);
    expect([1, 2, 3, 4, 5].map((n) => backoffMs(n, opts, () => 1))).toEqual([
      100, 200, 400, 800, 1000,
    ]);
  });

  it("builds the fallback chain from the model table's tier", () => {
    const p = resilient({});
    expect(p.modelChain(A)).toEqual([A, B]);
    expect(p.modelChain(B)).toEqual([B, A]);
    expect(p.modelChain("claude-opus-4-5")).toEqual(["claude-opus-4-5", B]);
    expect(p.modelChain("some-unknown-model")).toEqual(["some-unknown-model"]);
    expect(resilient({ fallback: false }).modelChain(A)).toEqual([A]);
  });
});

describe("retry loop", () => {
  it("never retries a spend-limit refusal: exactly one upstream call, no fallback", async () => {
    const p = resilient({});
    const events = record(p);
    for (const status of [429, 400] as const) {
      const before = fakeA.requestCount + fakeB.requestCount;
      const e = await failure(
        p.createMessage(
          ask(A, `pay up ${tag()} ${directive({ fault: { kind: "spend_limit", status } })}`),
        ),
      );
      expect(e.status).toBe(status);
      expect(e.headers["x-should-retry"]).toBe("false");
      expect(fakeA.requestCount + fakeB.requestCount - before).toBe(1);
    }
    expect(events.filter((e) => e.type === "retry" || e.type === "fallback")).toEqual([]);
    // An account-level cap says nothing about the model: its breaker saw no failure.
    expect(p.breakerStates().find((s) => s.model === A)!.stats.failures).toBe(0);
  });

  it("does not retry a 400 but retries 409 and 500 on the same model", async () => {
    const p = resilient({});
    const bad = await failure(
      p.createMessage(
        ask(
          A,
          `bad ${directive({ fault: { kind: "http_error", status: 400, type: "invalid_request_error" } })}`,
        ),
      ),
    );
    expect(bad.status).toBe(400);
    expect(fakeA.requestCount).toBe(1);

    for (const fault of [
      { kind: "http_error", status: 409, type: "api_error" },
      { kind: "api_error" },
    ] as const) {
      const before = fakeA.requestCount;
      const key = tag();
      const msg = await p.createMessage(
        ask(A, `blip ${directive({ failFirst: { key, times: 1, fault } })}`),
      );
      expect(msg.model).toBe(A);
      expect(fakeA.requestCount - before).toBe(2);
    }
    expect(fakeB.requestCount).toBe(0);
  });

  it("honours retry-after: the retry comes no sooner than the upstream asked", async () => {
    // One model only, so the loop has to wait instead of moving to a fallback.
    const p = resilient({ fallback: false });
    const key = tag();
    const msg = await p.createMessage(
      ask(
        A,
        `slow down ${directive({ failFirst: { key, times: 1, fault: { kind: "rate_limit", retryAfterSeconds: 1 } } })}`,
      ),
    );
    expect(msg.model).toBe(A);
    const [first, second] = messagesTo(fakeA);
    expect(first!.status).toBe(429);
    expect(second!.status).toBe(200);
    expect(second!.receivedAt - first!.receivedAt).toBeGreaterThanOrEqual(1000);
  });

  it("prefers retry-after-ms to retry-after", async () => {
    const p = resilient({ fallback: false });
    const key = tag();
    await p.createMessage(
      ask(
        A,
        `ms ${directive({ failFirst: { key, times: 1, fault: { kind: "rate_limit", retryAfterSeconds: 5, retryAfterMs: 300 } } })}`,
      ),
    );
    const [first, second] = messagesTo(fakeA);
    expect(second!.receivedAt - first!.receivedAt).toBeGreaterThanOrEqual(300);
  });

  it("returns a retry-after longer than the deadline to the client instead of sleeping through it", async () => {
    const p = resilient({ fallback: false, deadlineMs: 2000 });
    const marker = `later ${tag()}`;
    const e = await failure(
      p.createMessage(
        ask(A, `${marker} ${directive({ fault: { kind: "rate_limit", retryAfterSeconds: 30 } })}`),
      ),
    );
    expect(e.status).toBe(429);
    expect(Number(e.headers["retry-after"])).toBeGreaterThanOrEqual(29);
    expect(attemptsWith(fakeA, marker)).toBe(1);
  });

  it("stops at the deadline: a slow attempt is cut off with 504 and not retried", async () => {
    const p = resilient({ fallback: false, deadlineMs: 300 });
    const marker = `sloth ${tag()}`;
    const e = await failure(p.createMessage(ask(A, `${marker} ${directive({ latencyMs: 3000 })}`)));
    expect(e.status).toBe(504);
    expect(e.type).toBe("timeout_error");
    expect(e.message).toMatch(/UPSTREAM_DEADLINE_MS/);
    expect(attemptsWith(fakeA, marker)).toBe(1);
  });

  it("stops at the deadline before the attempts run out when every attempt fails", async () => {
    const p = resilient({
      fallback: false,
      deadlineMs: 400,
      maxAttempts: 10,
      backoff: { baseMs: 150, maxMs: 150 },
    });
    const e = await failure(
      p.createMessage(ask(A, `down ${directive({ latencyMs: 50, fault: { kind: "api_error" } })}`)),
    );
    expect([500, 504]).toContain(e.status);
    expect(fakeA.requestCount).toBeGreaterThanOrEqual(1);
    expect(fakeA.requestCount).toBeLessThan(10);
  });

  it("stops retrying when the caller goes away", async () => {
    const p = resilient({ fallback: false, backoff: { baseMs: 5000, maxMs: 5000 } });
    const controller = new AbortController();
    const marker = `bye ${tag()}`;
    const call = p.createMessage(
      ask(A, `${marker} ${directive({ fault: { kind: "api_error" } })}`),
      {
        signal: controller.signal,
      },
    );
    setTimeout(() => controller.abort(), 100);
    const e = await failure(call);
    expect(e.status).toBe(499);
    expect(attemptsWith(fakeA, marker)).toBe(1);
  });
});

describe("fallback and circuit breakers", () => {
  it("moves a 529 to the tier's fallback model at once; the answer names the model that served", async () => {
    const p = resilient({});
    const events = record(p);
    fakeA.failNext(1, { kind: "overloaded" });
    const msg = await p.createMessage(ask(A, `busy ${tag()}`));
    expect(msg.model).toBe(B);
    expect(fakeA.requestCount).toBe(1);
    expect(fakeB.requestCount).toBe(1);
    expect(events).toContainEqual(
      expect.objectContaining({ type: "fallback", from: A, to: B, reason: "overloaded" }),
    );
  });

  it("cools down a 429ed model for everyone, without blocking its fallback", async () => {
    const p = resilient({});
    fakeA.failNext(1, { kind: "rate_limit", retryAfterSeconds: 30 });
    expect((await p.createMessage(ask(A, "one"))).model).toBe(B);
    // The next requests skip the cooling model instead of spending a call on it.
    for (let i = 0; i < 3; i++) expect((await p.createMessage(ask(A, `again ${i}`))).model).toBe(B);
    expect(fakeA.requestCount).toBe(1);
    const a = p.breakerStates().find((s) => s.model === A)!;
    expect(a.cooldownUntil).toBeGreaterThan(Date.now() + 20_000);
    expect(a.state).toBe("closed");
  });

  it("a 529 storm opens the model's breaker; the fallback serves; the half-open probe closes it on recovery", async () => {
    const resetMs = 1500;
    const p = resilient({
      breaker: {
        volumeThreshold: 4,
        errorThresholdPercentage: 50,
        resetTimeoutMs: resetMs,
        rollingCountTimeoutMs: 10_000,
      },
    });
    const events = record(p);
    fakeA.setBehavior({ fault: { kind: "overloaded" } });

    const served: string[] = [];
    for (let i = 0; i < 30; i++) served.push((await p.createMessage(ask(A, `storm ${i}`))).model);
    // Concurrent traffic while open goes straight to the fallback too.
    const burst = await Promise.all(
      Array.from({ length: 10 }, (_, i) => p.createMessage(ask(A, `burst ${i}`))),
    );
    served.push(...burst.map((m) => m.model));
    expect(served).toEqual(Array(40).fill(B));
    // Four failures open it (volumeThreshold); after that only half-open probes (one per
    // resetTimeout, none on a fast machine) reach the failing model.
    const callsToA = fakeA.requestCount;
    const probes = events.filter(
      (e) => e.type === "breaker" && e.model === A && e.state === "halfOpen",
    ).length;
    expect(callsToA).toBeGreaterThanOrEqual(4);
    expect(callsToA).toBeLessThanOrEqual(4 + probes);
    expect(p.breakerStates().find((s) => s.model === B)!.state).toBe("closed");

    // The model recovers; after resetTimeout one probe goes through and closes the breaker.
    fakeA.setBehavior({ fault: undefined });
    await untilState(p, A, "halfOpen");
    const probe = await p.createMessage(ask(A, "probe"));
    expect(probe.model).toBe(A);
    expect(p.breakerStates().find((s) => s.model === A)!.state).toBe("closed");

    const transitions = events.filter(
      (e): e is Extract<ResilienceEvent, { type: "breaker" }> =>
        e.type === "breaker" && e.model === A,
    );
    expect(transitions.at(-1)!.state).toBe("closed");
    const firstOpen = transitions.find((e) => e.state === "open")!;
    const lastHalfOpen = transitions.filter((e) => e.state === "halfOpen").at(-1)!;
    const lastOpen = transitions
      .filter((e) => e.state === "open" && e.at <= lastHalfOpen.at)
      .at(-1)!;
    const openFor = lastHalfOpen.at - lastOpen.at;
    expect(openFor).toBeGreaterThanOrEqual(resetMs - 5);
    process.stdout.write(
      `[resilience] 529 storm: ${callsToA} calls to the failing model for 40 requests; ` +
        `first failure -> open ${firstOpen.at - fakeA.requests[0]!.receivedAt} ms; ` +
        `open -> half-open ${openFor} ms (resetTimeout ${resetMs})\n`,
    );
  });

  it("a failed half-open probe opens the breaker again", async () => {
    const p = resilient({ breaker: { volumeThreshold: 2, resetTimeoutMs: 300 } });
    fakeA.setBehavior({ fault: { kind: "api_error" } });
    for (let i = 0; i < 4; i++) expect((await p.createMessage(ask(A, `x ${i}`))).model).toBe(B);
    await untilState(p, A, "halfOpen");
    const before = fakeA.requestCount;
    const reopened = nextEvent(
      p,
      (e) => e.type === "breaker" && e.model === A && e.state === "open",
    );
    expect((await p.createMessage(ask(A, "probe"))).model).toBe(B);
    await reopened;
    expect(fakeA.requestCount - before).toBe(1);
    expect(p.breakerStates().find((s) => s.model === A)!.state).toBe("open");
  });

  it("fails fast with 503 overloaded_error and retry-after when no model of the chain can take the call", async () => {
    const resetMs = 5000;
    const p = resilient({
      fallback: false,
      maxAttempts: 1,
      breaker: { volumeThreshold: 3, resetTimeoutMs: resetMs },
    });
    const events = record(p);
    fakeA.setBehavior({ fault: { kind: "overloaded" } });
    for (let i = 0; i < 3; i++)
      expect((await failure(p.createMessage(ask(A, `f ${i}`)))).status).toBe(529);
    const callsBefore = fakeA.requestCount;
    const e = await failure(p.createMessage(ask(A, "fast")));
    expect(e.status).toBe(503);
    expect(e.type).toBe("overloaded_error");
    const retryAfter = Number(e.headers["retry-after"]);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(resetMs / 1000);
    expect(fakeA.requestCount).toBe(callsBefore);
    expect(events).toContainEqual(
      expect.objectContaining({ type: "rejected", model: A, reason: "open" }),
    );
  });

  it("client errors do not open a breaker", async () => {
    const p = resilient({ breaker: { volumeThreshold: 2 } });
    fakeA.setBehavior({
      fault: { kind: "http_error", status: 400, type: "invalid_request_error" },
    });
    for (let i = 0; i < 6; i++)
      expect((await failure(p.createMessage(ask(A, `bad ${i}`)))).status).toBe(400);
    expect(p.breakerStates().find((s) => s.model === A)!.state).toBe("closed");
    expect(fakeA.requestCount).toBe(6);
  });
});

describe("streams", () => {
  const collect = async (it: AsyncIterable<StreamEvent>) => {
    const out: StreamEvent[] = [];
    for await (const e of it) out.push(e);
    return out;
  };

  it("falls back before the first event: the stream comes from the fallback model", async () => {
    const p = resilient({});
    fakeA.failNext(1, { kind: "overloaded" });
    const events = await collect(p.streamMessage(ask(A, "stream please")));
    const start = events[0] as Extract<StreamEvent, { type: "message_start" }>;
    expect(start.type).toBe("message_start");
    expect(start.message.model).toBe(B);
    expect(events.at(-1)!.type).toBe("message_stop");
    expect(fakeA.requestCount).toBe(1);
    expect(fakeB.requestCount).toBe(1);
  });

  it("never retries once an event was delivered: a mid-stream error reaches the consumer", async () => {
    const p = resilient({});
    const seen: StreamEvent[] = [];
    let error: unknown;
    try {
      for await (const e of p.streamMessage(
        ask(A, `cut ${directive({ deltas: 6, fault: { kind: "stream_error", afterDeltas: 2 } })}`),
      ))
        seen.push(e);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(UpstreamError);
    expect((error as UpstreamError).type).toBe("overloaded_error");
    expect(seen.filter((e) => e.type === "content_block_delta")).toHaveLength(2);
    expect(fakeA.requestCount + fakeB.requestCount).toBe(1);
    // The cut counts against the model (recorded asynchronously).
    await new Promise((r) => setImmediate(r));
    expect(p.breakerStates().find((s) => s.model === A)!.stats.failures).toBe(1);
  });

  it("a consumer that stops early ends the call without a retry", async () => {
    const p = resilient({});
    for await (const e of p.streamMessage(
      ask(A, `long ${directive({ deltas: 50, deltaIntervalMs: 20 })}`),
    )) {
      if (e.type === "content_block_delta") break;
    }
    // The fake notices the client left; no retry happened.
    expect(fakeA.requestCount).toBe(1);
  });
});

describe("wired into the service", () => {
  let service: RunningService;
  let client: Anthropic;
  const user = `res-${tag()}`;
  const key = `key-${tag()}`;

  beforeAll(async () => {
    service = await startService({
      DATA_DIR: "memory://",
      ANTHROPIC_API_KEY: FAKE_API_KEY,
      ANTHROPIC_BASE_URL: fakeA.url,
      AGENT_API_KEYS: `${user}:${key}`,
      UPSTREAM_DEADLINE_MS: "10000",
    });
    client = new Anthropic({ baseURL: service.url, apiKey: key, maxRetries: 0 });
  });
  afterAll(() => service?.close());

  it("bootstrap wraps the real provider: a 529 then an answer reaches the client as a 200", async () => {
    expect(service.deps.resilience).toBeDefined();
    const k = tag();
    const { data, response } = await client.messages
      .create({
        model: B,
        max_tokens: 32,
        messages: [
          {
            role: "user",
            content: `hi ${directive({ failFirst: { key: k, times: 1, fault: { kind: "overloaded" } } })}`,
          },
        ],
      })
      .withResponse();
    expect(response.status).toBe(200);
    // The fallback of the smart tier served it; the message says so.
    expect(data.model).toBe(A);
    expect(fakeA.requests.map((r) => r.status)).toEqual([529, 200]);
    expect(
      service.deps
        .resilience!.breakerStates()
        .map((s) => s.model)
        .sort(),
    ).toEqual(catalog.table.models.map((m) => m.id).sort());
  });

  // Issue 13: the upstream's spend limit is the service's unavailability, not the client's rate
  // limit: 503 with a fixed message, still marked as not worth retrying.
  it("a spend-limit refusal reaches the client once, as a 503 not worth retrying", async () => {
    const before = fakeA.requestCount;
    const err = await client.messages
      .create({
        model: B,
        max_tokens: 32,
        messages: [
          { role: "user", content: `cap ${directive({ fault: { kind: "spend_limit" } })}` },
        ],
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.InternalServerError);
    expect((err as InstanceType<typeof Anthropic.APIError>).status).toBe(503);
    expect((err as InstanceType<typeof Anthropic.APIError>).headers?.get("x-should-retry")).toBe(
      "false",
    );
    expect(fakeA.requestCount - before).toBe(1);
  });
});
