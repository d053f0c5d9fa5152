/**
 * Per-user requests and tokens per minute: shared by replicas through the real Redis, enforced
 * in memory while Redis cannot be reached or does not answer, and exposed through the service
 * as Anthropic-style 429s and headers.
 */
import Anthropic from "@anthropic-ai/sdk";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import net from "node:net";
import pino from "pino";
import type { Redis } from "ioredis";
import { ApiError } from "../../app/src/errors";
import { createRedis } from "../../app/src/bootstrap";
import { AnthropicProvider } from "../../app/src/llm/anthropic";
import { RequestRateLimiter } from "../../app/src/ratelimit/limiter";
import { usageTokens } from "../../app/src/ratelimit/middleware";
import { startFakeAnthropic, FAKE_API_KEY, type FakeAnthropic } from "../support/fake-anthropic";
import { startService, type RunningService } from "../support/service";
import { requireRedisSync } from "../support/services";
import { closedPort } from "../support/ports";

const redisUrl = requireRedisSync();
const silent = pino({ level: "silent" });
const tag = () => randomBytes(5).toString("hex");

async function rejection(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error("expected a 429");
}

/** The production client options (bootstrap's createRedis), connected. */
async function connect(url: string): Promise<Redis> {
  const r = createRedis(url, silent);
  if (r.status !== "ready") await once(r, "ready");
  return r;
}

describe("in-process limits (no Redis)", () => {
  it("admits N requests a minute and refuses the next with 429, retry-after and rate-limit headers", async () => {
    const limiter = new RequestRateLimiter({ rpm: 3, tpm: 0 });
    for (let i = 0; i < 3; i++) {
      const ok = await limiter.admit("u", 0);
      expect(ok.headers["anthropic-ratelimit-requests-remaining"]).toBe(String(2 - i));
      expect(ok.headers["anthropic-ratelimit-requests-limit"]).toBe("3");
    }
    const e = await rejection(limiter.admit("u", 0));
    expect(e.status).toBe(429);
    expect(e.type).toBe("rate_limit_error");
    expect(e.message).toMatch(/RATE_LIMIT_RPM/);
    expect(Number(e.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    expect(Number(e.headers["retry-after"])).toBeLessThanOrEqual(60);
    expect(e.headers["anthropic-ratelimit-requests-remaining"]).toBe("0");
    expect(Date.parse(e.headers["anthropic-ratelimit-requests-reset"]!)).toBeGreaterThan(
      Date.now(),
    );
    // Limits are per user.
    await expect(limiter.admit("someone-else", 0)).resolves.toBeDefined();
  });

  it("reads what counts toward TPM from a usage object: cache reads do not", () => {
    expect(
      usageTokens({
        input_tokens: 10,
        output_tokens: 5,
        cache_creation_input_tokens: 100,
        cache_read_input_tokens: 1000,
      }),
    ).toBe(115);
    expect(usageTokens(undefined)).toBeUndefined();
    expect(usageTokens({})).toBeUndefined();
  });
});

(redisUrl ? describe : describe.skip)("limits shared through Redis", () => {
  const clients: Redis[] = [];
  const open = async (url = redisUrl!) => {
    const r = await connect(url);
    clients.push(r);
    return r;
  };
  afterAll(() => {
    for (const c of clients) c.disconnect();
  });

  it("two replicas share one request budget", async () => {
    const keyPrefix = `rltest-${tag()}`;
    const replica1 = new RequestRateLimiter({ rpm: 5, tpm: 0, redis: await open(), keyPrefix });
    const replica2 = new RequestRateLimiter({ rpm: 5, tpm: 0, redis: await open(), keyPrefix });
    for (let i = 0; i < 3; i++) await replica1.admit("alice", 0);
    for (let i = 0; i < 2; i++) await replica2.admit("alice", 0);
    const e1 = await rejection(replica1.admit("alice", 0));
    const e2 = await rejection(replica2.admit("alice", 0));
    expect([e1.status, e2.status]).toEqual([429, 429]);
    // Alone, each replica's in-memory limiter would still have room: the refusal came from Redis.
    expect(await replica2.usage("alice")).toEqual({ requests: 7, tokens: undefined });
  });

  it("reserves tokens up front, gives back a refused reservation, and refunds the unused part", async () => {
    const keyPrefix = `rltest-${tag()}`;
    const limiter = new RequestRateLimiter({ rpm: 0, tpm: 1000, redis: await open(), keyPrefix });
    const first = await limiter.admit("bob", 600);
    expect(first.reservedTokens).toBe(600);
    expect(first.headers["anthropic-ratelimit-tokens-remaining"]).toBe("400");
    const refused = await rejection(limiter.admit("bob", 600));
    expect(refused.message).toMatch(/RATE_LIMIT_TPM/);
    expect(refused.headers["anthropic-ratelimit-tokens-remaining"]).toBe("400");
    expect((await limiter.usage("bob")).tokens).toBe(600);

    await first.settle(100); // used 100 of 600
    expect((await limiter.usage("bob")).tokens).toBe(100);
    const second = await limiter.admit("bob", 600);
    expect(second.headers["anthropic-ratelimit-tokens-remaining"]).toBe("300");
    await second.settle(900); // used more than reserved: the overrun is charged
    expect((await limiter.usage("bob")).tokens).toBe(1000);
    await second.settle(0); // settling twice changes nothing
    expect((await limiter.usage("bob")).tokens).toBe(1000);
  });

  it("counts requests and tokens in one round trip, and a request refused for RPM keeps no tokens", async () => {
    const keyPrefix = `rltest-${tag()}`;
    const limiter = new RequestRateLimiter({ rpm: 2, tpm: 10_000, redis: await open(), keyPrefix });
    const ok = await limiter.admit("carol", 700);
    expect(ok.headers["anthropic-ratelimit-requests-remaining"]).toBe("1");
    expect(ok.headers["anthropic-ratelimit-tokens-remaining"]).toBe("9300");
    await limiter.admit("carol", 300);
    const refused = await rejection(limiter.admit("carol", 5000));
    expect(refused.message).toMatch(/RATE_LIMIT_RPM/);
    // The 5,000 tokens reserved beside the refused request were given back.
    const deadline = Date.now() + 2000;
    while ((await limiter.usage("carol")).tokens !== 1000 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(await limiter.usage("carol")).toEqual({ requests: 3, tokens: 1000 });
  });

  it("issues a settlement before returning, so the next request is counted after it", async () => {
    const keyPrefix = `rltest-${tag()}`;
    const limiter = new RequestRateLimiter({ rpm: 0, tpm: 1000, redis: await open(), keyPrefix });
    const first = await limiter.admit("dave", 900);
    // Not awaited, as the routes do: the refund's command is already on the connection.
    void first.settle(100);
    const second = await limiter.admit("dave", 900);
    expect(second.headers["anthropic-ratelimit-tokens-remaining"]).toBe("0");
    expect((await limiter.usage("dave")).tokens).toBe(1000);
  });

  it("caps one request's reservation at the whole minute, so a large request can still run", async () => {
    const limiter = new RequestRateLimiter({
      rpm: 0,
      tpm: 500,
      redis: await open(),
      keyPrefix: `rltest-${tag()}`,
    });
    const big = await limiter.admit("carol", 50_000);
    expect(big.reservedTokens).toBe(500);
    await rejection(limiter.admit("carol", 1));
  });

  it("keeps each window in one Redis counter, <prefix>:rpm:<user>, that expires with the window", async () => {
    const keyPrefix = `rltest-${tag()}`;
    const redis = await open();
    const limiter = new RequestRateLimiter({ rpm: 10, tpm: 1000, redis, keyPrefix });
    const admission = await limiter.admit("gina", 300);
    expect(await redis.get(`${keyPrefix}:rpm:gina`)).toBe("1");
    expect(await redis.get(`${keyPrefix}:tpm:gina`)).toBe("300");
    const ttl = await redis.pttl(`${keyPrefix}:rpm:gina`);
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    await admission.settle(120);
    expect(await redis.get(`${keyPrefix}:tpm:gina`)).toBe("120");
    // A counter left without an expiry (written by hand) gets the window's on its next count.
    await redis.set(`${keyPrefix}:rpm:hank`, "2");
    await limiter.admit("hank", 0);
    expect(await redis.get(`${keyPrefix}:rpm:hank`)).toBe("3");
    expect(await redis.pttl(`${keyPrefix}:rpm:hank`)).toBeGreaterThan(50_000);
  });

  it("counts a request and its tokens with one script when its body is already parsed, and the request at once when it is not", async () => {
    const keyPrefix = `rltest-${tag()}`;
    const redis = await open();
    const limiter = new RequestRateLimiter({ rpm: 10, tpm: 10_000, redis, keyPrefix });
    const scripts = jest.spyOn(redis, "evalsha");
    await limiter.admit("jill", Promise.resolve(400));
    expect(scripts).toHaveBeenCalledTimes(1);
    expect(await limiter.usage("jill")).toEqual({ requests: 1, tokens: 400 });

    // A body still arriving: the request is counted now, its tokens once the body is read.
    scripts.mockClear();
    let bodyRead!: (tokens: number) => void;
    const admitting = limiter.admit("jill", new Promise<number>((r) => (bodyRead = r)));
    const deadline = Date.now() + 2000;
    while ((await limiter.usage("jill")).requests !== 2 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 5));
    expect(await limiter.usage("jill")).toEqual({ requests: 2, tokens: 400 });
    bodyRead(600);
    const admission = await admitting;
    expect(admission.reservedTokens).toBe(600);
    expect(scripts).toHaveBeenCalledTimes(2);
    expect(await limiter.usage("jill")).toEqual({ requests: 2, tokens: 1000 });
    scripts.mockRestore();
  });

  it("with one script for both, a request refused for RPM counts no tokens at all", async () => {
    const keyPrefix = `rltest-${tag()}`;
    const redis = await open();
    const limiter = new RequestRateLimiter({ rpm: 1, tpm: 10_000, redis, keyPrefix });
    await limiter.admit("kate", Promise.resolve(100));
    const scripts = jest.spyOn(redis, "evalsha");
    expect((await rejection(limiter.admit("kate", Promise.resolve(5000)))).message).toMatch(
      /RATE_LIMIT_RPM/,
    );
    // Nothing to give back: the tokens counter never moved.
    expect(scripts).toHaveBeenCalledTimes(1);
    expect(await limiter.usage("kate")).toEqual({ requests: 2, tokens: 100 });
    scripts.mockRestore();
  });

  it("counts in Redis again after the server has forgotten its scripts (SCRIPT FLUSH, a failover)", async () => {
    const keyPrefix = `rltest-${tag()}`;
    const redis = await open();
    const limiter = new RequestRateLimiter({ rpm: 2, tpm: 0, redis, keyPrefix });
    await limiter.admit("ivan", 0);
    await redis.script("FLUSH");
    await limiter.admit("ivan", 0);
    // Counted in Redis, not by the in-memory insurance (which would still have room).
    expect(await redis.get(`${keyPrefix}:rpm:ivan`)).toBe("2");
    expect((await rejection(limiter.admit("ivan", 0))).status).toBe(429);
  });

  it("with Redis unreachable, the in-memory insurance limiter still enforces the limit", async () => {
    const down = await connectRefused();
    const limiter = new RequestRateLimiter({
      rpm: 4,
      tpm: 0,
      redis: down,
      keyPrefix: `rltest-${tag()}`,
    });
    for (let i = 0; i < 4; i++) await limiter.admit("dave", 0);
    expect((await rejection(limiter.admit("dave", 0))).status).toBe(429);
  });

  it("enforces a share of the limit per replica while degraded", async () => {
    const down = await connectRefused();
    const limiter = new RequestRateLimiter({
      rpm: 8,
      tpm: 0,
      redis: down,
      degradedShare: 0.25,
      keyPrefix: `rltest-${tag()}`,
    });
    for (let i = 0; i < 2; i++) await limiter.admit("erin", 0);
    expect((await rejection(limiter.admit("erin", 0))).status).toBe(429);
  });

  it("with Redis connected but not answering, falls back to memory after the timeout", async () => {
    const proxy = await blackholeProxy(redisUrl!);
    try {
      const redis = await open(proxy.url);
      const limiter = new RequestRateLimiter({
        rpm: 3,
        tpm: 0,
        redis,
        keyPrefix: `rltest-${tag()}`,
        redisTimeoutMs: 100,
      });
      await limiter.admit("frank", 0); // through Redis
      proxy.blackhole = true;
      for (let i = 0; i < 3; i++) await limiter.admit("frank", 0); // from memory, after 100 ms each
      expect((await rejection(limiter.admit("frank", 0))).status).toBe(429);
    } finally {
      proxy.close();
    }
  });

  async function connectRefused(): Promise<Redis> {
    const r = createRedis(`redis://127.0.0.1:${await closedPort()}`, silent);
    clients.push(r);
    return r;
  }
});

/** Forwards to Redis until `blackhole` is set; then swallows commands, like a hung server. */
async function blackholeProxy(target: string) {
  const t = new URL(target);
  const sockets: net.Socket[] = [];
  const state = { blackhole: false };
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(t.port || 6379), t.hostname);
    sockets.push(client, upstream);
    client.on("data", (d) => {
      if (!state.blackhole) upstream.write(d);
    });
    upstream.on("data", (d) => client.write(d));
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `redis://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    set blackhole(v: boolean) {
      state.blackhole = v;
    },
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

(redisUrl ? describe : describe.skip)("through the service (two replicas, one Redis)", () => {
  let fake: FakeAnthropic;
  const replicas: RunningService[] = [];
  const user = `rl-${tag()}`;
  const key = `key-${tag()}`;
  const tokenUser = `rlt-${tag()}`;
  const tokenKey = `key-${tag()}`;
  let a: Anthropic;
  let b: Anthropic;

  beforeAll(async () => {
    fake = await startFakeAnthropic();
    for (let i = 0; i < 2; i++) {
      replicas.push(
        await startService(
          {
            DATA_DIR: "memory://",
            REDIS_URL: redisUrl!,
            AGENT_API_KEYS: `${user}:${key},${tokenUser}:${tokenKey}`,
            RATE_LIMIT_RPM: "4",
            RATE_LIMIT_TPM: "5000",
            CACHE_TTL_SECONDS: "0",
          },
          {
            llm: new AnthropicProvider({
              apiKey: FAKE_API_KEY,
              baseURL: fake.url,
              timeoutMs: 10_000,
            }),
          },
        ),
      );
    }
    a = new Anthropic({ baseURL: replicas[0]!.url, apiKey: key, maxRetries: 0 });
    b = new Anthropic({ baseURL: replicas[1]!.url, apiKey: key, maxRetries: 0 });
  });
  afterAll(async () => {
    for (const r of replicas) await r.close();
    await fake?.close();
  });

  const params = (text: string, max_tokens = 50) => ({
    model: "claude-haiku-4-5",
    max_tokens,
    messages: [{ role: "user" as const, content: text }],
  });

  it("the N+1th request in a minute, on either replica, is a 429 rate_limit_error with headers", async () => {
    const first = await a.messages.create(params("one")).withResponse();
    expect(first.response.headers.get("anthropic-ratelimit-requests-limit")).toBe("4");
    expect(first.response.headers.get("anthropic-ratelimit-requests-remaining")).toBe("3");
    expect(first.response.headers.get("anthropic-ratelimit-tokens-limit")).toBe("5000");
    await b.messages.create(params("two"));
    await a.messages.create(params("three"));
    const fourth = await b.messages.create(params("four")).withResponse();
    expect(fourth.response.headers.get("anthropic-ratelimit-requests-remaining")).toBe("0");
    const before = fake.requestCount;
    const err = await a.messages.create(params("five")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    const e = err as InstanceType<typeof Anthropic.RateLimitError>;
    expect(e.status).toBe(429);
    expect((e.error as { error: { type: string } }).error.type).toBe("rate_limit_error");
    expect(Number(e.headers?.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(e.headers?.get("anthropic-ratelimit-requests-remaining")).toBe("0");
    expect(e.headers?.get("anthropic-ratelimit-requests-reset")).toMatch(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
    );
    // Refused before any model call.
    expect(fake.requestCount).toBe(before);
  });

  it("reserves input + max_tokens, then refunds what a JSON answer and a stream did not use", async () => {
    const client = new Anthropic({ baseURL: replicas[0]!.url, apiKey: tokenKey, maxRetries: 0 });
    const limiter = replicas[0]!.deps.rateLimiter!;
    const first = await client.messages.create(params("count me", 2000)).withResponse();
    const remainingAfterReserve = Number(
      first.response.headers.get("anthropic-ratelimit-tokens-remaining"),
    );
    expect(remainingAfterReserve).toBeLessThanOrEqual(5000 - 2000);
    const used = usageTokens(first.data.usage)!;
    expect((await limiter.usage(tokenUser)).tokens).toBe(used);

    const stream = client.messages.stream(params("stream me", 2000));
    const final = await stream.finalMessage();
    const streamed = usageTokens(final.usage)!;
    // The stream settles when its body ends, just after the client has read it.
    const deadline = Date.now() + 5000;
    while ((await limiter.usage(tokenUser)).tokens !== used + streamed && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((await limiter.usage(tokenUser)).tokens).toBe(used + streamed);
  });
});
