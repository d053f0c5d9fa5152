/**
 * Real services for integration tests. A service that does not answer makes its tests skip on a
 * laptop but fail in CI (`CI=true`), so a broken CI service container can never pass as green.
 *
 *   const pg = requirePostgresSync();          // at collection time: choose describe or describe.skip
 *   (pg ? describe : describe.skip)("...", ...);
 *   const url = await requireRedis();          // in beforeAll, when the test returns early on null
 */
import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { Client } from "pg";

export const POSTGRES_URL =
  process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
export const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

type Service = "postgres" | "redis";

/**
 * Probe in a child process so the same code serves the synchronous variant, which jest needs to
 * decide between describe and describe.skip while it collects tests. Exit 0 means reachable.
 */
const PROBE = `
const [kind, url] = process.argv.slice(1);
const fail = (e) => { process.stderr.write(String(e && e.message || e)); process.exit(1); };
setTimeout(() => fail("timed out after 3s"), 3000).unref();
if (kind === "postgres") {
  const { Client } = require("pg");
  const c = new Client({ connectionString: url, connectionTimeoutMillis: 2500 });
  c.connect().then(() => c.query("SELECT 1")).then(() => c.end()).then(() => process.exit(0), fail);
} else {
  const u = new URL(url);
  const s = require("net").connect(Number(u.port || 6379), u.hostname);
  s.on("connect", () => s.write("PING\\r\\n"));
  s.on("data", (d) => (/^(\\+PONG|-NOAUTH)/.test(String(d)) ? process.exit(0) : fail("unexpected reply " + d)));
  s.on("error", fail);
}`;

function decide(service: Service, url: string, error: string | null): string | null {
  if (error === null) return url;
  const message = `${service} is not reachable at ${url}: ${error}`;
  if (process.env.CI === "true") throw new Error(`${message} (required when CI=true)`);
  process.stderr.write(`[services] skipping ${service} tests: ${message}\n`);
  return null;
}

function probeSync(service: Service, url: string): string | null {
  try {
    execFileSync(process.execPath, ["-e", PROBE, service, url], { cwd: __dirname, stdio: "pipe" });
    return decide(service, url, null);
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    return decide(service, url, stderr || (err as Error).message);
  }
}

function probe(service: Service, url: string): Promise<string | null> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ["-e", PROBE, service, url],
      { cwd: __dirname },
      (err, _out, stderr) => {
        try {
          resolve(decide(service, url, err ? stderr.trim() || err.message : null));
        } catch (e) {
          reject(e);
        }
      },
    );
  });
}

/** Connection URL of the test Postgres, or null (locally) when it does not answer. */
export const requirePostgres = () => probe("postgres", POSTGRES_URL);
export const requireRedis = () => probe("redis", REDIS_URL);
export const requirePostgresSync = () => probeSync("postgres", POSTGRES_URL);
export const requireRedisSync = () => probeSync("redis", REDIS_URL);

/**
 * A fresh, empty database on the server behind `baseUrl`, for tests that need isolation (such
 * as migrations). `drop()` removes it, disconnecting anyone still attached.
 */
export async function createTestDatabase(
  baseUrl: string,
): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `agent_test_${randomBytes(6).toString("hex")}`;
  const admin = new URL(baseUrl);
  admin.pathname = "/postgres";
  const run = async (sql: string) => {
    const client = new Client({ connectionString: admin.toString() });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await run(`CREATE DATABASE ${name}`);
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => run(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

/** Where a service under test keeps its state: see `serviceBackends`. */
export interface ServiceBackend {
  name: string;
  /** The service's store and cache settings, and how to remove what the run created. */
  open: () => Promise<{ env: Record<string, string>; cleanup(): Promise<void> }>;
}

/**
 * The embedded defaults (PGlite, in-process cache and counters), and real PostgreSQL and Redis
 * when both are reachable (always under CI=true: `requirePostgresSync` fails the run otherwise).
 */
export function serviceBackends(): ServiceBackend[] {
  const backends: ServiceBackend[] = [
    {
      name: "embedded defaults (PGlite, in-process cache)",
      open: async () => ({ env: { DATA_DIR: "memory://" }, cleanup: async () => {} }),
    },
  ];
  const pg = requirePostgresSync();
  const redis = requireRedisSync();
  if (pg && redis) {
    backends.push({
      name: "real Postgres and Redis",
      open: async () => {
        const db = await createTestDatabase(pg);
        return { env: { DATABASE_URL: db.url, REDIS_URL: redis }, cleanup: () => db.drop() };
      },
    });
  }
  return backends;
}
