/**
 * The floor: the least any gateway with shared-Redis controls can add. Not the service (it shares
 * none of app/src); a reference the latency scenario measures beside it. Per POST /v1/messages:
 * API-key check, ONE Redis round trip before the upstream (a script that counts the request in
 * a per-minute window AND looks the body's hash up in a response cache), the raw body to the
 * upstream, its answer passed through (JSON parsed for its usage, as any metering gateway must;
 * SSE written chunk by chunk), then ONE fire-and-forget round trip to settle.
 *
 *   node --import tsx bench/support/floor-proxy.ts '{"upstreamUrl":"http://127.0.0.1:4000",
 *     "upstreamApiKey":"...","redisUrl":"redis://127.0.0.1:6379","prefix":"bench:floor:x:",
 *     "apiKey":"..."}'
 *
 * Prints `{"url","port"}` on one line once listening; on SIGTERM/SIGINT closes and exits 0.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { pipeline } from "node:stream/promises";
import { Redis } from "ioredis";
import { Pool } from "undici";

export interface FloorProxyConfig {
  upstreamUrl: string;
  upstreamApiKey: string;
  redisUrl: string;
  /** Every Redis key starts with this (unique to the run). */
  prefix: string;
  /** The key clients must send (x-api-key or Authorization: Bearer). */
  apiKey: string;
  anthropicVersion?: string;
  /** Requests per minute admitted. @default 10_000_000 */
  rpm?: number;
}

const TTL_SECONDS = 300;
// KEYS: rate counter, cache entry. ARGV: window seconds. Returns [count, cached value or nil].
const ADMIT = `local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('GET', KEYS[2])}`;
// KEYS: spend counter, cache entry. ARGV: amount, TTL, answer to cache ('' = none).
const SETTLE = `redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[2]) end
return 1`;

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? "{}") as FloorProxyConfig;
  const rpm = cfg.rpm ?? 10_000_000;
  const redis = new Redis(cfg.redisUrl, { enableAutoPipelining: true });
  const [admitSha, settleSha] = (await Promise.all([
    redis.script("LOAD", ADMIT),
    redis.script("LOAD", SETTLE),
  ])) as [string, string];
  // Enough connections for the peers scenario's 256 clients (the service's own upstream agent
  // has no limit): with 16, a 20 ms upstream capped the floor at 16 / 0.02 s = 800 req/s.
  const upstream = new Pool(cfg.upstreamUrl, { connections: 512, keepAliveTimeout: 60_000 });
  const upstreamHeaders = {
    "x-api-key": cfg.upstreamApiKey,
    "anthropic-version": cfg.anthropicVersion ?? "2023-06-01",
    "content-type": "application/json",
  };
  const spendKey = `${cfg.prefix}spend`;

  const reply = (res: ServerResponse, status: number, body: string | Buffer, cache?: string) => {
    res.writeHead(status, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(body),
      ...(cache ? { "x-cache": cache } : {}),
    });
    res.end(body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method !== "POST" || req.url !== "/v1/messages") return reply(res, 404, "{}");
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    const body = JSON.parse(raw.toString("utf8")) as { stream?: boolean };
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    if ((req.headers["x-api-key"] ?? bearer) !== cfg.apiKey)
      return reply(res, 401, '{"type":"error","error":{"type":"authentication_error"}}');

    // Admission and cache lookup: one round trip.
    const cacheKey = `${cfg.prefix}rc:${createHash("sha256").update(raw).digest("base64url")}`;
    const windowKey = `${cfg.prefix}rpm:${Math.floor(Date.now() / 60_000)}`;
    const [count, cached] = (await redis.evalsha(admitSha, 2, windowKey, cacheKey, 60)) as [
      number,
      string | null,
    ];
    if (count > rpm) return reply(res, 429, '{"type":"error","error":{"type":"rate_limit_error"}}');
    if (cached !== null && !body.stream) return reply(res, 200, cached, "HIT");

    const up = await upstream.request({
      path: "/v1/messages",
      method: "POST",
      headers: upstreamHeaders,
      body: raw,
    });
    const settle = (amount: number, answer: string) => {
      redis.evalsha(settleSha, 2, spendKey, cacheKey, amount, TTL_SECONDS, answer).catch(() => {});
    };
    if (body.stream) {
      res.writeHead(up.statusCode, {
        "content-type": String(up.headers["content-type"] ?? "text/event-stream"),
        "cache-control": "no-cache",
        "x-cache": "MISS",
      });
      await pipeline(up.body, res);
      settle(100, "");
      return;
    }
    const answer = Buffer.from(await up.body.arrayBuffer());
    const text = answer.toString("utf8");
    const usage = (JSON.parse(text) as { usage?: { output_tokens?: number } }).usage;
    reply(res, up.statusCode, answer, "MISS");
    settle(usage?.output_tokens ?? 0, up.statusCode === 200 ? text : "");
  };

  const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) reply(res, 502, JSON.stringify({ error: String(err) }));
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) =>
    server.listen({ port: 0, host: "127.0.0.1", backlog: 4096 }, resolve),
  );
  const port = (server.address() as { port: number }).port;
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}`, port })}\n`);

  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    server.closeAllConnections();
    server.close();
    // Its keys expire on their own, and the run's cleanRedis (bench/lib/harness.ts) removes
    // every key naming the run's user, which the prefix does.
    redis.disconnect();
    await upstream.close();
  };
  const exit = () =>
    stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  process.on("SIGTERM", exit);
  process.on("SIGINT", exit);
}

main().catch((err: unknown) => {
  process.stderr.write(`floor proxy: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
