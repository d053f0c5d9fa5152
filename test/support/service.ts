/**
 * Runs the real service (createDeps + buildApp + @hono/node-server) on an ephemeral loopback
 * port, for end-to-end tests through the official SDK.
 */
import { serve } from "@hono/node-server";
import { directWrites } from "../../app/src/routes/direct-writes";
import type { Server } from "node:http";
import pino from "pino";
import { loadConfig } from "../../app/src/config";
import { createDeps, type CreateDepsOptions } from "../../app/src/bootstrap";
import { buildApp } from "../../app/src/app";
import type { AppDeps } from "../../app/src/deps";

export interface RunningService {
  url: string;
  deps: AppDeps;
  close(): Promise<void>;
}

export async function startService(
  env: Record<string, string>,
  options: CreateDepsOptions = {},
): Promise<RunningService> {
  const config = loadConfig({ LOG_LEVEL: "silent", PORT: "0", HOST: "127.0.0.1", ...env });
  const deps = await createDeps(config, { logger: pino({ level: config.LOG_LEVEL }), ...options });
  const app = buildApp(deps);
  const server = serve({
    fetch: directWrites(app.fetch),
    port: 0,
    hostname: "127.0.0.1",
  }) as Server;
  await new Promise<void>((resolve) =>
    server.listening ? resolve() : server.once("listening", () => resolve()),
  );
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    deps,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await deps.close();
    },
  };
}
