/**
 * Message batches end to end: the service (real HTTP, embedded PGlite) submits to the fake
 * Anthropic API's Message Batches endpoints, the poller fetches the results when the upstream
 * batch ends, results land in Postgres and in the ledger at the batch price. Also: ownership,
 * validation, the official SDK against our routes, budget hooks, and the offline synthetic mode.
 */
import Anthropic from "@anthropic-ai/sdk";
import { ApiError } from "../../app/src/errors";
import { ModelCatalog, SYNTHETIC_MODEL } from "../../app/src/llm/models";
import { SYNTHETIC_NOTICE } from "../../app/src/llm/offline";
import { FAKE_API_KEY, startFakeAnthropic, type FakeAnthropic } from "../support/fake-anthropic";
import { startService, type RunningService } from "../support/service";

const catalog = ModelCatalog.load();
const ALICE = { user: "alice", key: "alice-key-0001" };
const BOB = { user: "bob", key: "bob-key-00001" };
const KEYS = `${ALICE.user}:${ALICE.key},${BOB.user}:${BOB.key}`;
const QUIET = { METRICS_ENABLED: "false", RATE_LIMIT_RPM: "0", RATE_LIMIT_TPM: "0" };

interface BatchJson {
  id: string;
  type: string;
  processing_status: string;
  request_counts: Record<string, number>;
  results_url: string | null;
  mode: string;
  synthetic: boolean;
  cost_usd: number;
  error: string | null;
}

/** A results line's `result`, loosely: what these tests read of it. */
interface BatchLineResult {
  type: string;
  message: {
    model: string;
    content: Array<{ text: string }>;
    usage: {
      input_tokens: number;
      output_tokens: number;
      cache_creation_input_tokens: number;
      cache_read_input_tokens: number;
    };
  };
  error: { error: { type: string } };
}

async function waitFor<T>(
  fn: () => Promise<T | undefined | null | false>,
  timeoutMs = 8000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 25));
  }
}

function client(service: RunningService, key: string) {
  const call = (path: string, init: RequestInit = {}) =>
    fetch(`${service.url}${path}`, {
      ...init,
      headers: {
        "x-api-key": key,
        "content-type": "application/json",
        ...(init.headers as object),
      },
    });
  return {
    call,
    create: (body: unknown) => call("/v1/batches", { method: "POST", body: JSON.stringify(body) }),
    get: async (id: string) => call(`/v1/batches/${id}`),
    results: (id: string) => call(`/v1/batches/${id}/results`),
    async untilEnded(id: string) {
      return waitFor(async () => {
        const b = (await (await call(`/v1/batches/${id}`)).json()) as BatchJson;
        return b.processing_status === "ended" ? b : undefined;
      });
    },
  };
}

const params = (content: string, over: Record<string, unknown> = {}) => ({
  model: "claude-sonnet-4-6",
  max_tokens: 64,
  messages: [{ role: "user", content }],
  ...over,
});

describe("batches through the Message Batches API (fake upstream)", () => {
  let fake: FakeAnthropic;
  let service: RunningService;
  let alice: ReturnType<typeof client>;
  let bob: ReturnType<typeof client>;

  beforeAll(async () => {
    fake = await startFakeAnthropic({ batchDelayMs: 150 });
    service = await startService({
      ...QUIET,
      DATA_DIR: "memory://",
      ANTHROPIC_API_KEY: FAKE_API_KEY,
      ANTHROPIC_BASE_URL: fake.url,
      AGENT_API_KEYS: KEYS,
      BATCH_POLL_INTERVAL_MS: "50",
      BATCH_MAX_REQUESTS: "5",
    });
    alice = client(service, ALICE.key);
    bob = client(service, BOB.key);
  });
  afterAll(async () => {
    await service.close();
    await fake.close();
  });

  it("submits, polls, stores the results and records each in the ledger at the batch price", async () => {
    const system = `You are terse. ${"policy text ".repeat(600)}`;
    const res = await alice.create({
      requests: [
        { custom_id: "simple", params: params("Hello there", { model: "auto" }) },
        { custom_id: "cached", params: params("Summarise the policy", { system }) },
        { custom_id: "broken", params: params('[[fake:{"fault":{"kind":"api_error"}}]] fail') },
      ],
    });
    expect(res.status).toBe(200);
    const created = (await res.json()) as BatchJson;
    expect(created).toMatchObject({
      type: "message_batch",
      processing_status: "in_progress",
      mode: "upstream",
      synthetic: false,
      results_url: null,
      request_counts: { processing: 3, succeeded: 0 },
    });

    // What went upstream: the routed model and the automatic cache breakpoint.
    const submitted = fake.requests.find(
      (r) => r.method === "POST" && r.path === "/v1/messages/batches",
    )!;
    const sent = (
      submitted.body as { requests: Array<{ custom_id: string; params: Record<string, unknown> }> }
    ).requests;
    expect(sent.map((r) => r.custom_id)).toEqual(["simple", "cached", "broken"]);
    expect(sent[0]!.params.model).toBe("claude-haiku-4-5");
    expect(JSON.stringify(sent[1]!.params.system)).toContain("cache_control");

    const ended = await alice.untilEnded(created.id);
    expect(ended.request_counts).toEqual({
      processing: 0,
      succeeded: 2,
      errored: 1,
      canceled: 0,
      expired: 0,
    });
    expect(ended.results_url).toBe(`/v1/batches/${created.id}/results`);

    const results = await alice.results(created.id);
    expect(results.status).toBe(200);
    const lines = (await results.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { custom_id: string; result: BatchLineResult });
    expect(lines.map((l) => [l.custom_id, l.result.type])).toEqual([
      ["simple", "succeeded"],
      ["cached", "succeeded"],
      ["broken", "errored"],
    ]);
    expect(lines[0]!.result.message.model).toBe("claude-haiku-4-5");
    expect(lines[0]!.result.message.content[0]!.text).toContain("Hello there");
    expect(lines[1]!.result.message.usage.cache_creation_input_tokens).toBeGreaterThan(1000);
    expect(lines[2]!.result.error.error.type).toBe("api_error");

    await service.deps.usage.flush();
    const ledger = (await service.deps.store.listUsage({ userId: ALICE.user })).filter(
      (e) => e.kind === "batch",
    );
    expect(ledger.map((e) => [e.requestId, e.status])).toEqual(
      expect.arrayContaining([
        [`batch:${created.id}:simple`, "ok"],
        [`batch:${created.id}:cached`, "ok"],
        [`batch:${created.id}:broken`, "error"],
      ]),
    );
    let expected = 0;
    for (const line of lines.filter((l) => l.result.type === "succeeded")) {
      const m = line.result.message;
      const cost = catalog.costUsd(m.model, m.usage, { batch: true });
      expect(cost).toBeCloseTo(catalog.costUsd(m.model, m.usage) / 2, 12);
      const entry = ledger.find((e) => e.requestId === `batch:${created.id}:${line.custom_id}`)!;
      expect(entry.costUsd).toBeCloseTo(cost, 9);
      expect(entry.cacheCreationInputTokens).toBe(m.usage.cache_creation_input_tokens);
      expect(entry.model).toBe(m.model);
      expected += cost;
    }
    expect(ended.cost_usd).toBeCloseTo(expected, 9);
    // The results were fetched from upstream once, however often the batch was read.
    const fetched = fake.requests.filter((r) => r.path.endsWith(`/results`) && r.method === "GET");
    expect(fetched).toHaveLength(1);
  });

  it("answers 404 for another user's batch, an unknown id and a malformed one", async () => {
    const created = (await (
      await alice.create({ requests: [{ custom_id: "a", params: params("hi") }] })
    ).json()) as BatchJson;
    for (const path of [`/v1/batches/${created.id}`, `/v1/batches/${created.id}/results`]) {
      const res = await bob.call(path);
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { type: string } }).error.type).toBe(
        "not_found_error",
      );
    }
    expect((await alice.get("00000000-0000-4000-8000-000000000000")).status).toBe(404);
    expect((await alice.get("not-a-uuid")).status).toBe(404);
    expect((await alice.get(created.id)).status).toBe(200);
    // And no key at all is a 401, as everywhere under /v1.
    expect((await fetch(`${service.url}/v1/batches/${created.id}`)).status).toBe(401);
  });

  it("refuses results before the batch has ended", async () => {
    const created = (await (
      await alice.create({ requests: [{ custom_id: "a", params: params("hi") }] })
    ).json()) as BatchJson;
    // Not due for an hour: neither the poller nor a read polls it, whatever the machine's load.
    await service.deps.store.updateBatch(created.id, { nextPollInMs: 3_600_000 });
    const res = await alice.results(created.id);
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: { type: string } }).error.type).toBe("conflict_error");
  });

  it.each([
    ["no requests", { requests: [] }, /at least one request/],
    [
      "a duplicate custom_id",
      {
        requests: [
          { custom_id: "a", params: params("x") },
          { custom_id: "a", params: params("y") },
        ],
      },
      /duplicate custom_id/,
    ],
    [
      "a streaming request",
      { requests: [{ custom_id: "a", params: params("x", { stream: true }) }] },
      /streaming is not supported/,
    ],
    [
      "a bad custom_id",
      { requests: [{ custom_id: "no spaces", params: params("x") }] },
      /custom_id/,
    ],
    [
      "invalid params",
      { requests: [{ custom_id: "a", params: { model: "x", messages: [] } }] },
      /max_tokens|messages/,
    ],
    [
      "too many requests",
      {
        requests: Array.from({ length: 6 }, (_, i) => ({
          custom_id: `r${i}`,
          params: params("x"),
        })),
      },
      /at most 5 requests/,
    ],
  ])("rejects %s with a 400 that says why", async (_name, body, message) => {
    const before = fake.requests.filter((r) => r.method === "POST").length;
    const res = await alice.create(body);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(message);
    expect(fake.requests.filter((r) => r.method === "POST").length).toBe(before);
  });

  it("works with the official SDK's messages.batches (create, retrieve, results)", async () => {
    const sdk = new Anthropic({ baseURL: service.url, apiKey: ALICE.key, maxRetries: 0 });
    const batch = await sdk.messages.batches.create({
      requests: [
        {
          custom_id: "one",
          params: {
            model: "claude-haiku-4-5",
            max_tokens: 32,
            messages: [{ role: "user", content: "first" }],
          },
        },
        {
          custom_id: "two",
          params: {
            model: "claude-haiku-4-5",
            max_tokens: 32,
            messages: [{ role: "user", content: "second" }],
          },
        },
      ],
    });
    expect(batch.processing_status).toBe("in_progress");
    const done = await waitFor(async () => {
      const b = await sdk.messages.batches.retrieve(batch.id);
      return b.processing_status === "ended" ? b : undefined;
    });
    expect(done.request_counts.succeeded).toBe(2);
    const seen: string[] = [];
    for await (const r of await sdk.messages.batches.results(batch.id)) {
      expect(r.result.type).toBe("succeeded");
      seen.push(r.custom_id);
    }
    expect(seen).toEqual(["one", "two"]);
  });

  it("holds the worst case with the budget hook, settles the real cost once, and honours a refusal", async () => {
    const reserves: Array<{ batchId: string; worstCaseUsd: number; requestCount: number }> = [];
    const settles: Array<{ batchId: string; reservedUsd: number; actualUsd: number }> = [];
    const batches = service.deps.batches!;
    batches.budget = {
      reserveBatch: async (i) => void reserves.push(i),
      settleBatch: async (i) => void settles.push(i),
    };
    try {
      const res = await alice.create({
        requests: [{ custom_id: "a", params: params("budgeted", { max_tokens: 1000 }) }],
      });
      const created = (await res.json()) as BatchJson;
      expect(reserves).toHaveLength(1);
      expect(reserves[0]!.batchId).toBe(created.id);
      // At least the output side: 1,000 tokens at Sonnet's $15/MTok, at half price.
      expect(reserves[0]!.worstCaseUsd).toBeGreaterThanOrEqual(0.0075);
      const ended = await alice.untilEnded(created.id);
      await waitFor(async () => settles.length === 1);
      expect(settles[0]).toEqual({
        userId: ALICE.user,
        batchId: created.id,
        reservedUsd: expect.closeTo(reserves[0]!.worstCaseUsd, 9),
        actualUsd: expect.closeTo(ended.cost_usd, 9),
      });
      expect(settles[0]!.actualUsd).toBeLessThan(settles[0]!.reservedUsd);

      // A refusal: nothing is stored or submitted.
      batches.budget = {
        reserveBatch: async () => {
          throw new ApiError(429, "budget_exceeded", "daily budget reached");
        },
      };
      const submits = fake.requests.filter((r) => r.method === "POST").length;
      const refused = await alice.create({
        requests: [{ custom_id: "a", params: params("too much") }],
      });
      expect(refused.status).toBe(429);
      expect(((await refused.json()) as { error: { type: string } }).error.type).toBe(
        "budget_exceeded",
      );
      expect(fake.requests.filter((r) => r.method === "POST").length).toBe(submits);
    } finally {
      batches.budget = undefined;
    }
  });
});

describe("a batch the upstream refuses", () => {
  let fake: FakeAnthropic;
  let service: RunningService;
  beforeAll(async () => {
    fake = await startFakeAnthropic();
    service = await startService({
      ...QUIET,
      DATA_DIR: "memory://",
      ANTHROPIC_API_KEY: "sk-ant-not-the-right-key",
      ANTHROPIC_BASE_URL: fake.url,
      AGENT_API_KEYS: KEYS,
      BATCH_POLLER_ENABLED: "false",
    });
  });
  afterAll(async () => {
    await service.close();
    await fake.close();
  });

  it("passes the refusal on, keeps nothing and releases the budget hold", async () => {
    const calls: string[] = [];
    let batchId = "";
    service.deps.batches!.budget = {
      reserveBatch: async (i) => {
        batchId = i.batchId;
        calls.push("reserve");
      },
      settleBatch: async (i) => void calls.push(`settle:${i.actualUsd}`),
    };
    const res = await client(service, ALICE.key).create({
      requests: [{ custom_id: "a", params: params("hi") }],
    });
    // Issue 13: the upstream refused the service's key, not the client's: 502 api_error.
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { type: string } }).error.type).toBe("api_error");
    expect(calls).toEqual(["reserve", "settle:0"]);
    expect(await service.deps.store.getBatch(batchId)).toBeNull();
  });
});

describe("batches without an API key (offline synthetic model)", () => {
  let service: RunningService;
  beforeAll(async () => {
    service = await startService({
      ...QUIET,
      DATA_DIR: "memory://",
      AGENT_API_KEYS: KEYS,
      BATCH_POLL_INTERVAL_MS: "60000",
    });
  });
  afterAll(() => service.close());

  it("runs the requests in-process, marks the batch synthetic and charges nothing", async () => {
    const alice = client(service, ALICE.key);
    const res = await alice.create({
      requests: [
        { custom_id: "a", params: params("first question", { model: "auto" }) },
        { custom_id: "b", params: params("second question") },
      ],
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-agent-synthetic")).toBe("true");
    const created = (await res.json()) as BatchJson;
    expect(created).toMatchObject({ mode: "local", synthetic: true });
    // Creating a local batch starts the work at once: no need to wait for the poll interval.
    const ended = await alice.untilEnded(created.id);
    expect(ended.request_counts).toMatchObject({ succeeded: 2, errored: 0, processing: 0 });
    expect(ended.cost_usd).toBe(0);
    const results = await alice.results(created.id);
    expect(results.headers.get("x-agent-synthetic")).toBe("true");
    expect(results.headers.get("content-type")).toBe("application/x-jsonl; charset=utf-8");
    const lines = (await results.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.custom_id)).toEqual(["a", "b"]);
    expect(lines[0].result.message.model).toBe(SYNTHETIC_MODEL);
    expect(lines[0].result.message.content[0].text).toContain(SYNTHETIC_NOTICE);
    expect(lines[1].result.message.content[0].text).toContain("second question");
    await service.deps.usage.flush();
    const ledger = (await service.deps.store.listUsage({ userId: ALICE.user })).filter(
      (e) => e.kind === "batch",
    );
    expect(ledger).toHaveLength(2);
    expect(ledger.every((e) => e.costUsd === 0 && e.model === SYNTHETIC_MODEL)).toBe(true);
  });
});
