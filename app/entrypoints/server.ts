/**
 * Node server entrypoint for Cloud Run, Kubernetes and VMs (and `npm start` on a laptop).
 * Thin on purpose: configuration, listen, signals. Everything else is in app/src.
 */
import { ConfigError, loadConfig, type AppConfig } from "../src/config";
import { createDeps } from "../src/bootstrap";
import { buildApp } from "../src/app";
import { ensureLocalAdminKey, ensureLocalApiKey } from "./local-key";
import { resolveSecretReferences } from "../src/secrets";
import { startNodeServer } from "./node-server";
import { isToolWorker } from "../src/agent/tool-worker";

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
  // The operator console's key: ADMIN_API_KEYS when set, else one kept like the local API key.
  const adminKey =
    embedded && !config.ADMIN_API_KEYS?.length
      ? await ensureLocalAdminKey(deps.store, config.DATA_DIR)
      : undefined;

  const app = buildApp(deps);
  const { url, metricsUrl, drain } = await startNodeServer(config, deps, app);
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

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutdown requested");
    void drain().finally(() => process.exit(0));
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
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
