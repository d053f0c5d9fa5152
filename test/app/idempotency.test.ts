/**
 * Idempotency-Key on POST /v1/messages and POST /v1/sessions/{id}/messages, through the real
 * service and a fake upstream, on real Postgres and on the embedded PGlite; and the store's
 * claim rules (conflicts, expiry, a crashed replica's stale claim) directly.
 */
import { randomBytes } from "node:crypto";
import {
  startFakeAnthropic,
  FAKE_API_KEY,
  type FakeAnthropic,
  type FakeBehavior,
} from "../support/fake-anthropic";
import { startService, type RunningService } from "../support/service";
import { createTestDatabase, requirePostgresSync } from "../support/services";
import { AnthropicProvider } from "../../app/src/llm/anthropic";
import { openStore } from "../../app/src/store";
import type { Store } from "../../app/src/store/types";
import { fingerprint, streamCompleted } from "../../app/src/idempotency";

const pg = requirePostgresSync();
const run = randomBytes(4).toString("hex");
const ALICE = { user: `idem-alice-${run}`, key: `idem-alice-key-${run}` };
const BOB = { user: `idem-bob-${run}`, key: `idem-bob-key-${run}` };
const MODEL = "claude-haiku-4-5";
const tag = () => randomBytes(6).toString("hex");
const directive = (b: FakeBehavior) => `[[fake:${JSON.stringify(b)}]]`;

type Setup = {
  name: string;
  open: () => Promise<{ env: Record<string, string>; cleanup(): Promise<void> }>;
};
const setups: Setup[] = [
  {
    name: "PGlite",
    open: async () => ({ env: { DATA_DIR: "memory://" }, cleanup: async () => {} }),
  },
];
if (pg) {
  setups.push({
    name: "PostgreSQL",
    open: async () => {
      const db = await createTestDatabase(pg);
      return { env: { DATABASE_URL: db.url }, cleanup: () => db.drop() };
    },
  });
}

describe("request fingerprints and stream completeness", () => {
  it("ignore key order and whitespace but not values, paths or methods", () => {
    const a = fingerprint("POST", "/v1/messages", '{"model":"m","max_tokens":5}');
    expect(fingerprint("POST", "/v1/messages", '{ "max_tokens": 5, "model": "m" }')).toBe(a);
    expect(fingerprint("POST", "/v1/messages", '{"model":"m","max_tokens":6}')).not.toBe(a);
    expect(fingerprint("POST", "/v1/sessions/x/messages", '{"model":"m","max_tokens":5}')).not.toBe(
      a,
    );
  });

  it("replay only streams that ended with message_stop or turn_complete and carried no error", () => {
    const ok =
      'event: message_start\ndata: {}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n';
    expect(streamCompleted(ok)).toBe(true);
    expect(
      streamCompleted('event: message_start\ndata: {}\n\nevent: turn_complete\ndata: {"x":1}\n\n'),
    ).toBe(true);
    expect(
      streamCompleted("event: message_start\ndata: {}\n\nevent: content_block_delta\ndata: {}\n\n"),
    ).toBe(false);
    expect(
      streamCompleted(
        "event: message_start\ndata: {}\n\nevent: error\ndata: {}\n\nevent: message_stop\ndata: {}\n\n",
      ),
    ).toBe(false);
  });
});

describe.each(setups)("Idempotency-Key with $name", ({ open }) => {
  let fake: FakeAnthropic;
  let service: RunningService;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    fake = await startFakeAnthropic();
    const s = await open();
    cleanup = s.cleanup;
    service = await startService(
      {
        ...s.env,
        AGENT_API_KEYS: `${ALICE.user}:${ALICE.key},${BOB.user}:${BOB.key}`,
        // The response cache would also spare the upstream a repeat; keep it out of the way.
        CACHE_TTL_SECONDS: "0",
      },
      {
        llm: new AnthropicProvider({ apiKey: FAKE_API_KEY, baseURL: fake.url, timeoutMs: 10_000 }),
      },
    );
  });
  afterAll(async () => {
    await service?.close();
    await fake?.close();
    await cleanup?.();
  });

  const post = (path: string, body: unknown, key: string | null, who = ALICE) =>
    fetch(`${service.url}${path}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-api-key": who.key,
        "anthropic-version": "2023-06-01",
        ...(key ? { "idempotency-key": key } : {}),
      },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  const message = (text: string, extra: Record<string, unknown> = {}) => ({
    model: MODEL,
    max_tokens: 64,
    messages: [{ role: "user", content: text }],
    ...extra,
  });
  const ledger = async (userId: string) => {
    await service.deps.usage.flush();
    return (await service.deps.store.listUsage({ userId })).filter((e) => e.status === "ok");
  };

  it("replays the stored response for the same key and body, without a second upstream call or charge", async () => {
    const key = `k-${tag()}`;
    const body = message(`charge me once ${tag()}`);
    const before = fake.requestCount;
    const charged = (await ledger(ALICE.user)).length;
    const first = await post("/v1/messages", body, key);
    expect(first.status).toBe(200);
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    const firstText = await first.text();

    // Same request, keys reordered and spaced differently: still the same request.
    const reordered = JSON.stringify(
      { messages: body.messages, max_tokens: body.max_tokens, model: body.model },
      null,
      2,
    );
    const again = await post("/v1/messages", reordered, key);
    expect(again.status).toBe(200);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.headers.get("content-type")).toMatch(/^application\/json/);
    expect(again.headers.get("x-agent-model")).toBe(first.headers.get("x-agent-model"));
    expect(again.headers.get("request-id")).not.toBe(first.headers.get("request-id"));
    expect(await again.text()).toBe(firstText);
    expect(fake.requestCount - before).toBe(1);
    expect((await ledger(ALICE.user)).length - charged).toBe(1);
  });

  it("refuses the same key with a different body: 409 conflict_error, no upstream call", async () => {
    const key = `k-${tag()}`;
    expect((await post("/v1/messages", message("first body"), key)).status).toBe(200);
    const before = fake.requestCount;
    const res = await post("/v1/messages", message("another body"), key);
    expect(res.status).toBe(409);
    const err = (await res.json()) as { type: string; error: { type: string; message: string } };
    expect(err.type).toBe("error");
    expect(err.error.type).toBe("conflict_error");
    expect(err.error.message).toMatch(/different request/);
    expect(fake.requestCount).toBe(before);
  });

  it("refuses a duplicate while the first is still in flight (409, retry-after), then replays", async () => {
    const key = `k-${tag()}`;
    const body = message(`slow ${tag()} ${directive({ latencyMs: 1500 })}`);
    const before = fake.requestCount;
    const first = post("/v1/messages", body, key);
    // Wait until the first has claimed the key and reached the upstream.
    while (fake.requestCount === before) await new Promise((r) => setTimeout(r, 10));
    const dup = await post("/v1/messages", body, key);
    expect(dup.status).toBe(409);
    expect(dup.headers.get("retry-after")).toBe("1");
    expect(((await dup.json()) as { error: { message: string } }).error.message).toMatch(
      /in progress/,
    );
    const done = await first;
    expect(done.status).toBe(200);
    const firstText = await done.text();
    const replay = await post("/v1/messages", body, key);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(await replay.text()).toBe(firstText);
    expect(fake.requestCount - before).toBe(1);
  });

  it("does not store a failed request: the same key may be retried and then replays the success", async () => {
    const key = `k-${tag()}`;
    const body = message(
      `flaky ${directive({ failFirst: { key: tag(), times: 1, fault: { kind: "api_error" } } })}`,
    );
    const before = fake.requestCount;
    // An upstream 500 reaches the client as a 502 (issue 13, item 9).
    expect((await post("/v1/messages", body, key)).status).toBe(502);
    const ok = await post("/v1/messages", body, key);
    expect(ok.status).toBe(200);
    expect(ok.headers.get("idempotent-replayed")).toBeNull();
    const replay = await post("/v1/messages", body, key);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(fake.requestCount - before).toBe(2);
  });

  it("replays a completed event stream byte for byte", async () => {
    const key = `k-${tag()}`;
    const body = message(`stream once ${tag()}`, { stream: true });
    const before = fake.requestCount;
    const first = await post("/v1/messages", body, key);
    expect(first.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const text = await first.text();
    expect(text).toMatch(/event: message_stop/);
    // The record is written when the body ends, which the client may see a moment earlier.
    let replay: Response;
    for (let i = 0; ; i++) {
      replay = await post("/v1/messages", body, key);
      if (replay.status !== 409 || i > 50) break;
      await replay.text();
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(replay.status).toBe(200);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(await replay.text()).toBe(text);
    expect(fake.requestCount - before).toBe(1);
  });

  it("does not store a stream that failed mid-way", async () => {
    const key = `k-${tag()}`;
    const body = message(
      `cut ${directive({ failFirst: { key: tag(), times: 1, fault: { kind: "stream_error", afterDeltas: 1 } } })}`,
      {
        stream: true,
      },
    );
    const before = fake.requestCount;
    const first = await (await post("/v1/messages", body, key)).text();
    expect(first).toMatch(/event: error/);
    let second: Response;
    for (let i = 0; ; i++) {
      second = await post("/v1/messages", body, key);
      if (second.status !== 409 || i > 50) break;
      await second.text();
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(second.headers.get("idempotent-replayed")).toBeNull();
    expect(await second.text()).toMatch(/event: message_stop/);
    expect(fake.requestCount - before).toBe(2);
  });

  it("scopes keys per user", async () => {
    const key = `k-${tag()}`;
    const body = message(`shared key ${tag()}`);
    const before = fake.requestCount;
    expect((await post("/v1/messages", body, key, ALICE)).status).toBe(200);
    const bob = await post("/v1/messages", body, key, BOB);
    expect(bob.status).toBe(200);
    expect(bob.headers.get("idempotent-replayed")).toBeNull();
    expect(fake.requestCount - before).toBe(2);
  });

  it("replays a session turn without running it or storing it twice", async () => {
    const created = await post("/v1/sessions", { model: MODEL }, null);
    const session = (await created.json()) as { id: string };
    const key = `k-${tag()}`;
    const turn = { content: `remember this ${tag()}` };
    const before = fake.requestCount;
    const first = await post(`/v1/sessions/${session.id}/messages`, turn, key);
    expect(first.status).toBe(200);
    const firstText = await first.text();
    const again = await post(`/v1/sessions/${session.id}/messages`, turn, key);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(await again.text()).toBe(firstText);
    expect(fake.requestCount - before).toBe(1);
    expect(await service.deps.store.listMessages(session.id)).toHaveLength(2);
  });

  it("requests without the header are untouched, and malformed keys are a 400", async () => {
    const body = message(`plain ${tag()}`);
    const before = fake.requestCount;
    await post("/v1/messages", body, null);
    await post("/v1/messages", body, null);
    expect(fake.requestCount - before).toBe(2);
    const bad = await post("/v1/messages", body, "x".repeat(256));
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { type: string } }).error.type).toBe(
      "invalid_request_error",
    );
  });
});

describe.each(setups)("idempotency records in the store ($name)", ({ open }) => {
  let store: Store;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    const s = await open();
    cleanup = s.cleanup;
    store = await openStore({
      DATA_DIR: "memory://",
      DATABASE_POOL_MAX: 4,
      DATABASE_URL: s.env.DATABASE_URL,
    });
  });
  afterAll(async () => {
    await store?.close();
    await cleanup?.();
  });
  const claim = (
    key: string,
    requestHash: string,
    o: { ttlSeconds?: number; lockSeconds?: number; userId?: string } = {},
  ) =>
    store.claimIdempotencyKey({
      userId: o.userId ?? "u1",
      key,
      requestHash,
      ttlSeconds: o.ttlSeconds ?? 3600,
      lockSeconds: o.lockSeconds ?? 600,
    });

  it("one claim wins among concurrent ones", async () => {
    const key = tag();
    const results = await Promise.all(Array.from({ length: 8 }, () => claim(key, "h")));
    expect(results.filter((r) => r.claimed)).toHaveLength(1);
    for (const r of results) if (!r.claimed) expect(r.record.state).toBe("in_progress");
  });

  it("stores a response, replays it, and frees the key when it expires", async () => {
    const key = tag();
    expect(await claim(key, "h1", { ttlSeconds: 1 })).toEqual({ claimed: true });
    expect(
      await store.completeIdempotencyKey("u1", key, {
        status: 200,
        headers: { "content-type": "application/json" },
        body: "{}",
      }),
    ).toBe(true);
    const held = await claim(key, "h1");
    expect(held.claimed).toBe(false);
    if (!held.claimed)
      expect(held.record.response).toEqual({
        status: 200,
        headers: { "content-type": "application/json" },
        body: "{}",
      });
    // Another user's key of the same name is another key.
    expect((await claim(key, "h1", { userId: "u2" })).claimed).toBe(true);
    await new Promise((r) => setTimeout(r, 1100));
    expect((await claim(key, "h2")).claimed).toBe(true);
  });

  it("lets the same request take over a claim whose lock ran out, but not a different one", async () => {
    const key = tag();
    expect((await claim(key, "h", { lockSeconds: 0 })).claimed).toBe(true);
    expect((await claim(key, "other")).claimed).toBe(false);
    expect((await claim(key, "h")).claimed).toBe(true);
    expect((await claim(key, "h")).claimed).toBe(false);
  });

  it("release frees an unfinished claim; purge deletes expired records", async () => {
    const key = tag();
    await claim(key, "h");
    await store.releaseIdempotencyKey("u1", key);
    expect((await claim(key, "h2", { ttlSeconds: 0 })).claimed).toBe(true);
    await store.completeIdempotencyKey("u1", key, { status: 200, headers: {}, body: "x" });
    expect(await store.purgeIdempotencyKeys()).toBeGreaterThanOrEqual(1);
    expect((await claim(key, "h3")).claimed).toBe(true);
  });
});
