/**
 * Node server entrypoint for Cloud Run, Kubernetes and VMs (and `npm start` on a laptop, through
 * scripts/start.mjs, which runs this file's bundle). Thin on purpose: configuration, listen,
 * signals. Everything else is in app/src.
 *
 * Deployed targets (DATABASE_URL set) open their dependencies, then listen. Embedded mode listens
 * first (node-server.ts listenEarly): /health answers at once, /ready once the embedded database
 * is open, and requests wait for it meanwhile; the banner (URL, local keys) prints once ready.
 */
import { setFlagsFromString } from "node:v8";
import { ConfigError, loadConfig, type AppConfig } from "../src/config";
import { createDeps, serviceLogger } from "../src/bootstrap";
import type { AppDeps } from "../src/deps";
import { buildApp } from "../src/app";
import { ensureLocalAdminKey, ensureLocalApiKey } from "./local-key";
import { resolveSecretReferences } from "../src/secrets";
import { listenEarly, startNodeServer } from "./node-server";
import { isToolWorker } from "../src/agent/tool-worker";
import { cancelStoreInit } from "../src/store";

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
  // Embedded mode: WebAssembly (PGlite's 9 MB of Postgres, and undici's small HTTP parser) stays
  // on V8's baseline compiler, Liftoff. Tiering PGlite's hot functions up to TurboFan cost ~45 MB
  // more RSS idle and ~45 MB more after 1,000 messages, and was no faster over those (measured
  // through npm start: 2.5 ms per message either way). Set before PGlite compiles (createDeps).
  if (!config.DATABASE_URL) setFlagsFromString("--liftoff-only");
  // The logger createDeps would make, made here so that start-up can log before deps exist.
  const logger = serviceLogger(config);
  const starting = config.DATABASE_URL ? undefined : await listenEarly(config);
  if (starting)
    logger.info({ url: starting.url }, "starting: /health answers, /ready once started");

  // A signal while an embedded service starts: what waits is refused (503), a first initdb under
  // way is stopped, and whatever did open is closed before the process exits.
  let stopping: string | undefined;
  const running: { drain?: () => Promise<void> } = {}; // set once the app serves
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = signal;
    logger.info({ signal }, "shutdown requested");
    if (running.drain) {
      void running.drain().finally(() => process.exit(0));
    } else {
      starting?.refuse("stopping");
      cancelStoreInit();
    }
  };
  const stopStarting = async (deps?: AppDeps): Promise<never> => {
    await deps?.close().catch(() => {});
    await starting?.close();
    logger.info("stopped during start-up");
    logger.flush?.();
    process.exit(0);
  };
  if (starting) {
    process.on("SIGTERM", () => shutdown("SIGTERM"));
    process.on("SIGINT", () => shutdown("SIGINT"));
  }

  let deps: AppDeps;
  try {
    deps = await createDeps(config, { logger });
  } catch (err) {
    if (stopping) return stopStarting();
    starting?.refuse("failed");
    await starting?.close();
    throw err;
  }
  if (stopping) return stopStarting(deps);
  const embedded = !config.DATABASE_URL && !config.AGENT_API_KEYS?.length;
  const localKey = embedded ? await ensureLocalApiKey(deps.store, config.DATA_DIR) : undefined;
  // The operator console's key: ADMIN_API_KEYS when set, else one kept like the local API key.
  const adminKey =
    embedded && !config.ADMIN_API_KEYS?.length
      ? await ensureLocalAdminKey(deps.store, config.DATA_DIR)
      : undefined;
  if (stopping) return stopStarting(deps);

  const app = buildApp(deps);
  const server = starting
    ? await starting.ready(deps, app)
    : await startNodeServer(config, deps, app);
  const { url, metricsUrl } = server;
  running.drain = server.drain;
  // A signal while the app was being made ready: it serves now, so it drains.
  if (stopping) return void server.drain().finally(() => process.exit(0));
  logger.info(
    {
      url,
      metrics: metricsUrl ? `${metricsUrl}/metrics` : "off",
      store: deps.store.kind,
      cache: deps.cache.kind,
      synthetic: deps.llm.synthetic,
    },
    "agent service listening",
  );
  if (localKey) {
    process.stdout.write(
      `\nAgent service: ${url}\nLocal API key: ${localKey}\n` +
        `Try: curl -s ${url}/v1/messages -H 'x-api-key: ${localKey}' -H 'anthropic-version: 2023-06-01' ` +
        `-H 'content-type: application/json' ` +
        `-d '{"model":"claude-haiku-4-5","max_tokens":64,"messages":[{"role":"user","content":"Hello"}]}'\n` +
        `Operator console: ${url}/console (sign in with ${adminKey ? "the local admin key" : "a key of ADMIN_API_KEYS"})\n` +
        (adminKey ? `Local admin key: ${adminKey}\n` : "") +
        "\n",
    );
  }

  if (!starting) {
    process.on("SIGTERM", () => shutdown("SIGTERM"));
    process.on("SIGINT", () => shutdown("SIGINT"));
  }
}

// The bundle is also the script of the tool worker threads: there it serves tool calls only.
if (!isToolWorker()) {
  main().catch((err: unknown) => {
    process.stderr.write(
      `agent service failed to start: ${(err as Error)?.stack ?? String(err)}\n`,
    );
    process.exit(1);
  });
}
