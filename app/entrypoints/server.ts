/**
 * Node server entrypoint for Cloud Run, Kubernetes and VMs (and `npm start` on a laptop).
 * Thin on purpose: configuration, listen, signals. Everything else is in app/src.
 */
import { serve } from "@hono/node-server";
import type { Server } from "node:http";
import { ConfigError, loadConfig, type AppConfig } from "../src/config";
import { createDeps } from "../src/bootstrap";
import { buildApp } from "../src/app";
import { ensureLocalApiKey } from "./local-key";
import { resolveSecretReferences } from "../src/secrets";

async function main() {
  await resolveSecretReferences(process.env); // <NAME>_SECRET refs -> <NAME>, before validation
  let config: AppConfig;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\nFix the variables above and start again.\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
  const deps = await createDeps(config);
  const { logger } = deps;
  const embedded = !config.DATABASE_URL && !config.AGENT_API_KEYS?.length;
  const localKey = embedded ? await ensureLocalApiKey(deps.store, config.DATA_DIR) : undefined;

  const app = buildApp(deps);
  const server = serve({ fetch: app.fetch, port: config.PORT, hostname: config.HOST }) as Server;
  // Streams can outlive the default request timeout; the upstream timeout bounds them instead.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 65_000; // longer than common load balancer idle timeouts (60 s)
  server.headersTimeout = 66_000;
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : config.PORT;
  const url = `http://${config.HOST === "0.0.0.0" ? "localhost" : config.HOST}:${port}`;
  logger.info(
    { url, store: deps.store.kind, cache: deps.cache.kind, synthetic: deps.llm.synthetic },
    "agent service listening",
  );
  if (localKey) {
    process.stdout.write(
      `\nAgent service: ${url}\nLocal API key: ${localKey}\n` +
        `Try: curl -s ${url}/v1/messages -H 'x-api-key: ${localKey}' -H 'content-type: application/json' ` +
        `-d '{"model":"claude-haiku-4-5","max_tokens":64,"messages":[{"role":"user","content":"Hello"}]}'\n\n`,
    );
  }

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    deps.lifecycle.draining = true;
    logger.info(
      { signal, graceMs: config.SHUTDOWN_GRACE_MS },
      "draining: finishing in-flight requests and streams",
    );
    const force = setTimeout(() => {
      logger.warn("grace period over: closing remaining connections");
      server.closeAllConnections();
    }, config.SHUTDOWN_GRACE_MS);
    force.unref();
    server.close(() => {
      clearTimeout(force);
      void deps
        .close()
        .catch((err: unknown) =>
          logger.error({ err: (err as Error).message }, "error while closing"),
        )
        .finally(() => {
          logger.info("stopped");
          logger.flush?.();
          process.exit(0);
        });
    });
    // Idle keep-alive sockets would hold close() open; busy ones finish their request first.
    server.closeIdleConnections();
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

main().catch((err: unknown) => {
  process.stderr.write(`agent service failed to start: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
