import pino from "pino";
import { Redis } from "ioredis";
import { canonicalJson, responseCacheKey } from "../../app/src/cache/key";
import { MemoryResponseCache } from "../../app/src/cache/memory";
import { RedisResponseCache } from "../../app/src/cache/redis";
import { jsonEntryText, type CachedResponse } from "../../app/src/cache/types";
import { requireRedis } from "../support/services";

const message = (text: string): CachedResponse => ({
  kind: "json",
  message: {
    id: "msg_1",
    type: "message",
    role: "assistant",
    model: "m",
    content: [{ type: "text", text, citations: null }],
    stop_reason: "end_turn",
    stop_sequence: null,
    usage: { input_tokens: 1, output_tokens: 1 },
  } as never,
});

describe("response cache keys", () => {
  it("ignore object key order but not values", () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } })).toBe(
      '{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}',
    );
    const a = responseCacheKey("t", "m", { x: 1, y: [1, 2] });
    expect(responseCacheKey("t", "m", { y: [1, 2], x: 1 })).toBe(a);
    expect(responseCacheKey("t", "m", { y: [2, 1], x: 1 })).not.toBe(a);
  });

  it("differ per tenant and per model", () => {
    const body = { messages: [{ role: "user", content: "hi" }] };
    expect(responseCacheKey("alice", "m", body)).not.toBe(responseCacheKey("bob", "m", body));
    expect(responseCacheKey("alice", "m1", body)).not.toBe(responseCacheKey("alice", "m2", body));
  });
});

describe("jsonEntryText (a JSON answer's entry from the message's own JSON)", () => {
  it("is byte for byte the entry's JSON, which both caches read back as the entry", async () => {
    const entry = message('quotes " and \\ and \u2028 and emoji \ud83d\ude00');
    const messageText = JSON.stringify((entry as { message: unknown }).message);
    expect(jsonEntryText(messageText)).toBe(JSON.stringify(entry));
    const cache = new MemoryResponseCache();
    await cache.set("k", entry, 30, jsonEntryText(messageText));
    expect(await cache.get("k")).toEqual(entry);
  });
});

describe("MemoryResponseCache", () => {
  it("expires entries after their TTL", async () => {
    let now = 0;
    const cache = new MemoryResponseCache(10, () => now);
    await cache.set("k", message("a"), 2);
    expect(await cache.get("k")).toEqual(message("a"));
    now = 2_001;
    expect(await cache.get("k")).toBeNull();
  });

  it("evicts the least recently used entry beyond its bound", async () => {
    const cache = new MemoryResponseCache(2);
    await cache.set("a", message("a"), 60);
    await cache.set("b", message("b"), 60);
    await cache.get("a");
    await cache.set("c", message("c"), 60);
    expect(await cache.get("b")).toBeNull();
    expect(await cache.get("a")).not.toBeNull();
    expect(cache.size).toBe(2);
  });

  it("hands out copies, so a caller cannot corrupt an entry", async () => {
    const cache = new MemoryResponseCache();
    await cache.set("k", message("original"), 60);
    const got = (await cache.get("k")) as Extract<CachedResponse, { kind: "json" }>;
    (got.message.content[0] as { text: string }).text = "mutated";
    expect(await cache.get("k")).toEqual(message("original"));
  });
});

describe("RedisResponseCache (real Redis)", () => {
  let redis: Redis | undefined;
  const logger = pino({ level: "silent" });
  const prefix = `test:${process.pid}:${Date.now()}:`;

  beforeAll(async () => {
    const url = await requireRedis();
    if (!url) return;
    redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    await new Promise((r) => redis!.once("ready", r));
  });
  afterAll(async () => {
    if (!redis) return;
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });

  it("stores with a TTL and reads back", async () => {
    if (!redis) return;
    const cache = new RedisResponseCache(redis, logger);
    await cache.set(`${prefix}a`, message("hello"), 30);
    expect(await cache.get(`${prefix}a`)).toEqual(message("hello"));
    // Given its text, the cache stores that instead of serializing the value again.
    const text = jsonEntryText(JSON.stringify((message("again") as { message: unknown }).message));
    await cache.set(`${prefix}t`, message("again"), 30, text);
    expect(await redis.get(`${prefix}t`)).toBe(text);
    expect(await cache.get(`${prefix}t`)).toEqual(message("again"));
    const ttl = await redis.ttl(`${prefix}a`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(30);
  });

  it("treats a corrupt entry as a miss", async () => {
    if (!redis) return;
    await redis.set(`${prefix}bad`, "{not json", "EX", 30);
    expect(await new RedisResponseCache(redis, logger).get(`${prefix}bad`)).toBeNull();
  });

  it("degrades to a miss when Redis is unreachable", async () => {
    const dead = new Redis("redis://127.0.0.1:1", {
      enableOfflineQueue: false,
      lazyConnect: true,
      retryStrategy: () => null,
    });
    const cache = new RedisResponseCache(dead, logger);
    expect(await cache.get("k")).toBeNull();
    await expect(cache.set("k", message("x"), 10)).resolves.toBeUndefined();
    dead.disconnect();
  });
});
