/**
 * What every scenario shares: the run's options, the stores, and `withStack`, which starts a
 * fresh fake upstream and a fresh service process (from the built bundle) for one scenario and
 * stops both afterwards, so no scenario inherits another's heap, caches or connections.
 */
import { randomBytes, createHash } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { Client } from "pg";
import type { FakeAnthropicOptions } from "../../test/support/fake-anthropic";
import {
  startFloorProxy,
  startPortkey,
  startService,
  startUpstream,
  type FloorProxy,
  type Portkey,
  type Service,
  type Upstream,
} from "./procs";
import { Target } from "./http";

export interface BenchOptions {
  quick: boolean;
  /** Scenarios to run (all when empty). */
  only: Set<string>;
  /** Directory for latest.json / latest.md. */
  outDir: string;
  /** Directory holding server/index.js, lambda/index.js and lambda.zip. */
  distDir: string;
  cpuProf: boolean;
  /** Soak duration for the memory scenario. */
  soakSeconds: number;
  /** Rounds for the latency and cache figures. */
  rounds: number;
  databaseUrl: string;
  redisUrl: string;
  logLevel: string;
  /** Log progress lines to stderr. */
  verbose: boolean;
  /** Scheduling priority of the benchmark's processes, when set with --nice. */
  nice?: number;
}

/** Each run gets its own database, so two runs (say, the smoke test and a full run) never collide. */
export function benchDatabaseName(id: Identity): string {
  return `agent_bench_${id.user.replace(/[^a-z0-9]/g, "_")}`;
}

/** One API key for the run, under a user id no other run shares (rate-limit and budget keys are per user). */
export interface Identity {
  user: string;
  key: string;
}

export function newIdentity(): Identity {
  return {
    user: `bench-${randomBytes(4).toString("hex")}`,
    key: `bench-key-${randomBytes(12).toString("hex")}`,
  };
}

/** Anthropic version header the SDK sends; the fake requires one. */
export const ANTHROPIC_VERSION = "2023-06-01";

/**
 * Service environment: production mode, real Redis and Postgres, budgets and rate limits on but
 * generous enough never to refuse a benchmark request (a refusal would be measured as an error).
 */
export function serviceEnv(
  opts: BenchOptions,
  upstream: Upstream,
  id: Identity,
  overrides: Record<string, string> = {},
): Record<string, string> {
  return {
    NODE_ENV: "production",
    LOG_LEVEL: opts.logLevel,
    ANTHROPIC_API_KEY: upstream.apiKey,
    ANTHROPIC_BASE_URL: upstream.url,
    UPSTREAM_TIMEOUT_MS: "30000",
    DATABASE_URL: opts.databaseUrl,
    REDIS_URL: opts.redisUrl,
    AGENT_API_KEYS: `${id.user}:${id.key}`,
    // Every miss writes its answer to Redis: a short TTL keeps the shared Redis from filling up.
    CACHE_TTL_SECONDS: "300",
    BUDGET_REQUEST_USD: "50",
    BUDGET_SESSION_USD: "100000",
    BUDGET_USER_DAILY_USD: "1000000",
    BUDGET_DAILY_USD: "10000000",
    RATE_LIMIT_RPM: "10000000",
    RATE_LIMIT_TPM: "1000000000",
    // The run's one key stands for the many users of a deployment: the per-user cap on requests
    // in flight (default 64) stays on, above any load a scenario offers (at most 4,096 open).
    MAX_CONCURRENT_REQUESTS_PER_USER: "8192",
    ...overrides,
  };
}

export interface Stack {
  upstream: Upstream;
  service: Service;
  /** The service, with the run's API key. */
  viaService: (connections?: number, timeoutMs?: number) => Target;
  /** The fake upstream directly, with its API key: the baseline. */
  direct: (connections?: number, timeoutMs?: number) => Target;
  /**
   * Starts the floor proxy (bench/support/floor-proxy.ts: API-key check, one Redis round trip
   * before the upstream, one after, raw pass-through) in front of this stack's upstream, with
   * the run's API key; stopped with the stack. The least a gateway with shared-Redis controls adds.
   */
  viaFloor: (connections?: number, timeoutMs?: number) => Promise<Target>;
  /** The floor proxy's process, once viaFloor has started it. */
  floor?: FloorProxy;
  /**
   * Starts the open-source Portkey gateway in front of this stack's upstream (provider
   * `anthropic`, custom host: the fake); stopped with the stack. A peer users would pick instead.
   */
  viaPortkey: (connections?: number, timeoutMs?: number) => Promise<Target>;
  /** Portkey's process, once viaPortkey has started it. */
  portkey?: Portkey;
}

let stackCounter = 0;

/** Where the services' logs go (JSON lines at LOG_LEVEL); removed after a run without failures. */
export const LOG_DIR = path.join(os.tmpdir(), `agent-bench-${process.pid}`);

export async function withStack<T>(
  opts: BenchOptions,
  id: Identity,
  name: string,
  upstreamOptions: FakeAnthropicOptions,
  envOverrides: Record<string, string>,
  fn: (stack: Stack) => Promise<T>,
): Promise<T> {
  const upstream = await startUpstream(upstreamOptions);
  let service: Service | undefined;
  let floor: FloorProxy | undefined;
  let portkey: Portkey | undefined;
  const targets: Target[] = [];
  try {
    const n = ++stackCounter;
    service = await startService({
      entry: path.join(opts.distDir, "server", "index.js"),
      env: serviceEnv(opts, upstream, id, envOverrides),
      cpuProfile: opts.cpuProf ? { dir: opts.outDir, name: `${name}.cpuprofile` } : undefined,
      logFile: path.join(LOG_DIR, `${String(n).padStart(2, "0")}-${name}.log`),
    });
    const svc = service;
    const target = (
      url: string,
      apiKey: string,
      connections: number,
      timeoutMs?: number,
      headers: Record<string, string> = {},
    ) => {
      const t = new Target({
        url,
        headers: { "x-api-key": apiKey, "anthropic-version": ANTHROPIC_VERSION, ...headers },
        connections,
        timeoutMs,
      });
      targets.push(t);
      return t;
    };
    const stack: Stack = {
      upstream,
      service: svc,
      viaService: (connections = 1, timeoutMs) => target(svc.url, id.key, connections, timeoutMs),
      direct: (connections = 1, timeoutMs) =>
        target(upstream.url, upstream.apiKey, connections, timeoutMs),
      viaFloor: async (connections = 1, timeoutMs) => {
        floor ??= await startFloorProxy({
          upstreamUrl: upstream.url,
          upstreamApiKey: upstream.apiKey,
          redisUrl: opts.redisUrl,
          // Contains the run's user, so cleanRedis also finds anything a crash left behind.
          prefix: `bench:floor:${id.user}:${n}:`,
          apiKey: id.key,
          anthropicVersion: ANTHROPIC_VERSION,
        });
        stack.floor = floor;
        return target(floor.url, id.key, connections, timeoutMs);
      },
      viaPortkey: async (connections = 1, timeoutMs) => {
        portkey ??= await startPortkey();
        stack.portkey = portkey;
        // Portkey's gateway headers: which provider, and its base URL (the fake, not Anthropic's).
        return target(portkey.url, upstream.apiKey, connections, timeoutMs, {
          "x-portkey-provider": "anthropic",
          "x-portkey-custom-host": `${upstream.url}/v1`,
        });
      },
    };
    return await fn(stack);
  } finally {
    await Promise.all(targets.map((t) => t.close()));
    await floor?.stop();
    await portkey?.stop();
    const code = await service?.stop();
    if (code !== undefined && code !== 0 && code !== null) {
      progress(opts, `  (service for ${name} exited with code ${code}; log: ${service?.logFile})`);
    }
    await upstream.stop();
  }
}

export function progress(opts: Pick<BenchOptions, "verbose">, line: string): void {
  if (opts.verbose) process.stderr.write(`${line}\n`);
}

// ---------------------------------------------------------------------------------------------
// Request bodies

let nonceCounter = 0;
/** A value no other request of this run carries: its prompt is new, so the response cache misses. */
export function nonce(): string {
  return `${process.pid.toString(36)}-${(++nonceCounter).toString(36)}-${randomBytes(3).toString("hex")}`;
}

/**
 * A small, realistic Messages request: one user question, a short system prompt. With the same
 * nonce it is byte-identical for the direct and the service call.
 */
export function messageBody(
  n: string,
  opts: { stream?: boolean; model?: string; maxTokens?: number } = {},
): string {
  return JSON.stringify({
    model: opts.model ?? "claude-haiku-4-5",
    max_tokens: opts.maxTokens ?? 512,
    system: "You are a concise assistant for an online bookshop. Answer in two or three sentences.",
    messages: [
      {
        role: "user",
        content: `Order ${n}: my parcel shows as delivered but I have not received it. What should I do next?`,
      },
    ],
    ...(opts.stream ? { stream: true } : {}),
  });
}

// ---------------------------------------------------------------------------------------------
// Stores

/**
 * Unless a database URL was given, the run creates its own database (migrated by the service at
 * start-up) and drops it at the end, so the usage ledger does not pile up from run to run.
 */
export async function createDatabase(adminUrl: string, name: string): Promise<string> {
  const admin = new Client({ connectionString: adminUrl, connectionTimeoutMillis: 5000 });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  const admin = new Client({ connectionString: adminUrl, connectionTimeoutMillis: 5000 });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

/** Removes the response-cache entries this run's user wrote (keys are tenant-scoped: agent:rc:v1:<tenant hash>:...). */
export async function cleanRedis(redisUrl: string, id: Identity): Promise<number> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  let removed = 0;
  try {
    const tenant = createHash("sha256").update(id.user).digest("base64url").slice(0, 22);
    for (const pattern of [`agent:rc:v1:${tenant}:*`, `*${id.user}*`]) {
      let cursor = "0";
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
        cursor = next;
        if (keys.length > 0) removed += await redis.unlink(...keys);
      } while (cursor !== "0");
    }
  } finally {
    redis.disconnect();
  }
  return removed;
}
