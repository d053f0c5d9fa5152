/** Liveness and readiness probes, answered before any API guard and logged only when they fail. */
import type { Hono, MiddlewareHandler } from "hono";
import type { AppEnv } from "../http";
import type { AppDeps } from "../deps";
import { SERVICE_CONTRACT } from "../contract";

const CHECK_TIMEOUT_MS = 2000;

/** Resolves with null when `check` answers in time, or with the reason it did not. */
async function probe(check: () => Promise<unknown>): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)),
          CHECK_TIMEOUT_MS,
        );
      }),
    ]);
    return null;
  } catch (err) {
    return (err as Error).message || "unavailable";
  } finally {
    clearTimeout(timer);
  }
}

/** Probes answer many times a minute: the request log leaves them out unless they fail. */
const quiet: MiddlewareHandler<AppEnv> = (c, next) => {
  c.set("probe", true);
  return next();
};

export function registerHealthRoutes(app: Hono<AppEnv>, deps: AppDeps) {
  // Liveness: the process answers. Touches no dependency, so a database outage never restarts pods.
  app.get(SERVICE_CONTRACT.probes.liveness, quiet, (c) => c.json({ status: "ok" }));

  app.get(SERVICE_CONTRACT.probes.readiness, quiet, async (c) => {
    if (deps.lifecycle.draining) return c.json({ status: "draining", down: ["draining"] }, 503);
    const redis = deps.redis;
    const [database, cache] = await Promise.all([
      probe(() => deps.store.ping()),
      redis ? probe(() => redis.ping()) : Promise.resolve(null),
    ]);
    const checks: Record<string, string> = { database: database ?? "ok" };
    if (redis) checks.redis = cache ?? "ok";
    const down = Object.entries(checks)
      .filter(([, v]) => v !== "ok")
      .map(([k]) => k);
    return c.json(
      { status: down.length ? "unavailable" : "ready", down, checks },
      down.length ? 503 : 200,
    );
  });
}
