/**
 * The Lua script runner under the rate limiter and the budget engine (store/redis-script.ts):
 * EVALSHA first, the body once when the server does not know the script, and a deadline that
 * turns a Redis that stopped answering into a TimeoutError the callers fail over on.
 */
import { once } from "node:events";
import { randomBytes } from "node:crypto";
import pino from "pino";
import type { Redis } from "ioredis";
import { createRedis } from "../../app/src/bootstrap";
import { TimeoutError } from "../../app/src/budget/timeout";
import { Script } from "../../app/src/store/redis-script";
import { requireRedisSync } from "../support/services";
import { startTcpProxy, targetOf, type TcpProxy } from "../support/tcp-proxy";

const redisUrl = requireRedisSync();
const silent = pino({ level: "silent" });

(redisUrl ? describe : describe.skip)("Script (real Redis)", () => {
  const clients: Redis[] = [];
  let proxy: TcpProxy | undefined;
  const open = async (url = redisUrl!) => {
    const r = createRedis(url, silent);
    clients.push(r);
    if (r.status !== "ready") await once(r, "ready");
    return r;
  };
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await proxy?.close();
  });

  // A script no other test runs, unique per run, so the server cannot know it yet.
  const unique = () =>
    new Script(`-- ${randomBytes(6).toString("hex")}\nreturn {KEYS[1], ARGV[1] + ARGV[2]}`);

  it("sends the body once when the server does not know the script, then runs it by its SHA1", async () => {
    const redis = await open();
    const script = unique();
    expect(await redis.script("EXISTS", script.sha)).toEqual([0]);
    expect(await script.run(redis, ["k"], [2, 3])).toEqual(["k", 5]);
    expect(await redis.script("EXISTS", script.sha)).toEqual([1]);
    expect(await script.run(redis, ["k"], [4, 5], 1000)).toEqual(["k", 9]);
  });

  it("passes on the script's own errors, not as a timeout", async () => {
    const redis = await open();
    const failing = new Script(
      `return redis.error_reply('BUDGET nope ${randomBytes(4).toString("hex")}')`,
    );
    await expect(failing.run(redis, [], [], 1000)).rejects.toThrow(/BUDGET nope/);
  });

  it("rejects with a TimeoutError naming the call when Redis stops answering", async () => {
    proxy = await startTcpProxy(targetOf(redisUrl!, 6379));
    const redis = await open(proxy.url(redisUrl!));
    const script = unique();
    await script.run(redis, ["k"], [1, 1]);
    await proxy.blackhole();
    const err = await script.run(redis, ["k"], [1, 1], 150, "budget reserve").catch((e) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as Error).message).toBe("budget reserve: no answer within 150 ms");
    await proxy.restore();
  });
});
