/**
 * Shared harness of the abuse suite (test/app/abuse-*.test.ts): the real service on one of the
 * `serviceBackends()` in front of the fake Anthropic API, one user with one key, and readings of
 * what an operator would check afterwards (ledger rows and sums, budget counters).
 */
import { randomBytes } from "node:crypto";
import pino from "pino";
import { loadConfig } from "../../app/src/config";
import { createDeps } from "../../app/src/bootstrap";
import { buildApp } from "../../app/src/app";
import type { ModelCatalog } from "../../app/src/llm/models";
import { startNodeServer, type NodeServer } from "../../app/entrypoints/node-server";
import type { SqlClient } from "../../app/src/store/types";
import type { AppDeps } from "../../app/src/deps";
import type { CreateDepsOptions } from "../../app/src/bootstrap";
import { FAKE_API_KEY, startFakeAnthropic, type FakeAnthropic } from "./fake-anthropic";
import { startService, type RunningService } from "./service";
import type { ServiceBackend } from "./services";

export interface AbuseRig {
  fake: FakeAnthropic;
  service: RunningService;
  user: string;
  key: string;
  /** POST JSON with the user's key. */
  post(
    path: string,
    body: unknown,
    headers?: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<Response>;
  get(path: string): Promise<Response>;
  /** Ledger rows of the user, after flushing what is queued. */
  ledger(): Promise<LedgerRow[]>;
  /** Sum of the user's ledger costs (USD), after flushing. */
  spent(): Promise<number>;
  close(): Promise<void>;
}

export interface LedgerRow {
  request_id: string;
  model: string;
  input_tokens: number;
  output_tokens: number;
  cost_usd: number;
  status: string;
  kind: string;
}

export const QUIET = { RATE_LIMIT_RPM: "0", RATE_LIMIT_TPM: "0" };

/** The store's SQL client (the abuse tests read the ledger as an operator would). */
export function sqlOf(deps: AppDeps): SqlClient {
  return (deps.store as unknown as { db: SqlClient }).db;
}

export async function ledgerRows(deps: AppDeps, userId: string): Promise<LedgerRow[]> {
  await deps.usage.flush();
  const { rows } = await sqlOf(deps).query<Record<string, unknown>>(
    `SELECT request_id, model, input_tokens, output_tokens, cost_usd, status, kind
       FROM usage_ledger WHERE user_id = $1 ORDER BY id`,
    [userId],
  );
  return rows.map((r) => ({
    request_id: String(r.request_id),
    model: String(r.model),
    input_tokens: Number(r.input_tokens),
    output_tokens: Number(r.output_tokens),
    cost_usd: Number(r.cost_usd),
    status: String(r.status),
    kind: String(r.kind),
  }));
}

export async function openRig(
  backend: ServiceBackend,
  env: Record<string, string>,
  options: { fake?: Parameters<typeof startFakeAnthropic>[0]; deps?: CreateDepsOptions } = {},
): Promise<AbuseRig> {
  const fake = await startFakeAnthropic(options.fake);
  const opened = await backend.open();
  const user = `abuse-${randomBytes(4).toString("hex")}`;
  const key = `key-${randomBytes(8).toString("hex")}`;
  const service = await startService(
    {
      ...opened.env,
      ANTHROPIC_API_KEY: FAKE_API_KEY,
      ANTHROPIC_BASE_URL: fake.url,
      AGENT_API_KEYS: `${user}:${key}`,
      ...env,
    },
    options.deps,
  );
  const headers = {
    "content-type": "application/json",
    "x-api-key": key,
    "anthropic-version": "2023-06-01",
  };
  return {
    fake,
    service,
    user,
    key,
    post: (path, body, extra = {}, signal) =>
      fetch(`${service.url}${path}`, {
        method: "POST",
        headers: { ...headers, ...extra },
        body: typeof body === "string" ? body : JSON.stringify(body),
        signal,
      }),
    get: (path) => fetch(`${service.url}${path}`, { headers }),
    ledger: () => ledgerRows(service.deps, user),
    spent: async () =>
      (await ledgerRows(service.deps, user)).reduce((sum, r) => sum + r.cost_usd, 0),
    async close() {
      await service.close();
      await fake.close();
      await opened.cleanup();
    },
  };
}

/** Poll `fn` until it returns something truthy (no timing is asserted: only the outcome). */
export async function until<T>(
  fn: () => Promise<T | undefined | null | false>,
  what: string,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface ErrorJson {
  type: string;
  error: { type: string; message: string; budget?: string; [k: string]: unknown };
  request_id: string | null;
}

/**
 * For the tests that run the Node server itself (timeouts, metrics port, shutdown): a fake
 * upstream, the backend's store and cache, one user and key, and the environment that ties them
 * together (ephemeral loopback ports, silent logs). `start` runs createDeps + buildApp + the Node
 * server of app/entrypoints with more variables on top.
 */
export interface ServerRig {
  fake: FakeAnthropic;
  env: Record<string, string>;
  user: string;
  key: string;
  start(
    env?: Record<string, string>,
    options?: { catalog?: ModelCatalog },
  ): Promise<{ node: NodeServer; deps: AppDeps }>;
  close(): Promise<void>;
}

export async function openServerRig(backend: ServiceBackend, tag: string): Promise<ServerRig> {
  const fake = await startFakeAnthropic();
  const opened = await backend.open();
  const user = `${tag}-${randomBytes(3).toString("hex")}`;
  const key = `${tag}-key-${randomBytes(6).toString("hex")}`;
  const env: Record<string, string> = {
    ...opened.env,
    PORT: "0",
    HOST: "127.0.0.1",
    METRICS_PORT: "0",
    METRICS_HOST: "127.0.0.1",
    LOG_LEVEL: "silent",
    ANTHROPIC_API_KEY: FAKE_API_KEY,
    ANTHROPIC_BASE_URL: fake.url,
    AGENT_API_KEYS: `${user}:${key}`,
    RATE_LIMIT_RPM: "0",
    RATE_LIMIT_TPM: "0",
    CACHE_TTL_SECONDS: "0",
  };
  return {
    fake,
    env,
    user,
    key,
    async start(more = {}, options = {}) {
      const config = loadConfig({ ...env, ...more });
      const deps = await createDeps(config, {
        logger: pino({ level: "silent" }),
        catalog: options.catalog,
      });
      const node = await startNodeServer(config, deps, buildApp(deps, options));
      return { node, deps };
    },
    async close() {
      await fake.close();
      await opened.cleanup();
    },
  };
}
