/**
 * The service as the entrypoints build it, on a cloud upstream, for test/app/upstream-*.test.ts:
 * createDeps from the validated configuration (the upstream's provider, in the retry loop), a
 * catalog priced as the upstream's cloud charges shared by createDeps and buildApp, real Postgres
 * (a database of its own) and Redis, on an ephemeral loopback port.
 */
import { serve } from "@hono/node-server";
import type { Server } from "node:http";
import pino from "pino";
import { buildApp } from "../../app/src/app";
import { createDeps } from "../../app/src/bootstrap";
import { loadConfig } from "../../app/src/config";
import type { AppDeps } from "../../app/src/deps";
import { ModelCatalog } from "../../app/src/llm/models";
import { upstreamPricing, type UpstreamOverrides } from "../../app/src/llm/upstream";
import { sseEvents } from "../support/fake-bedrock";
import { createTestDatabase } from "../support/services";

export interface CloudService {
  url: string;
  deps: AppDeps;
  catalog: ModelCatalog;
  close(): Promise<void>;
}

export async function startCloudService(
  env: Record<string, string>,
  stores: { pg: string; redis: string },
  upstream: UpstreamOverrides,
): Promise<CloudService> {
  const db = await createTestDatabase(stores.pg);
  const config = loadConfig({
    LOG_LEVEL: "silent",
    PORT: "0",
    HOST: "127.0.0.1",
    BATCH_POLLER_ENABLED: "false",
    DATABASE_URL: db.url,
    REDIS_URL: stores.redis,
    ...env,
  });
  // As the entrypoints build it: createDeps prices the catalog for the upstream, the app charges
  // with it (a test that passed its own catalog would not see list prices charged on a cloud).
  const deps = await createDeps(config, { logger: pino({ level: "silent" }), upstream });
  const app = buildApp(deps);
  const catalog = deps.catalog ?? ModelCatalog.load(undefined, upstreamPricing(config));
  const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }) as Server;
  await new Promise<void>((resolve) =>
    server.listening ? resolve() : server.once("listening", () => resolve()),
  );
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    deps,
    catalog,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await deps.close();
      await db.drop();
    },
  };
}

/** Every event of an SSE response, in order. */
export async function readSse(response: Response): Promise<Array<{ event: string; data: string }>> {
  const events: Array<{ event: string; data: string }> = [];
  for await (const e of sseEvents(response)) events.push(e);
  return events;
}
