/**
 * GET /v1/usage[?session_id=<id>]: the caller's budgets (limit, spend, holds in flight,
 * remaining, window and reset time) for every budget that applies to them, including the
 * session's when a session id of theirs is given.
 */
import type { Hono } from "hono";
import type { AppDeps } from "../deps";
import type { AppEnv } from "../http";
import { notFound } from "../errors";
import type { RouteChains } from "./chain";

export function registerUsageRoutes(app: Hono<AppEnv>, deps: AppDeps, chains: RouteChains) {
  app.get("/v1/usage", chains.plain(), async (c) => {
    const userId = c.get("userId");
    const sessionId = c.req.query("session_id") || null;
    // Another user's session and an unknown id look the same, as on the session routes.
    if (sessionId && !(await deps.store.getSession(sessionId, userId))) {
      throw notFound(`session ${sessionId} not found`);
    }
    if (!deps.budgets) {
      return c.json({
        object: "usage",
        user_id: userId,
        session_id: sessionId,
        at: new Date().toISOString(),
        mode: "disabled",
        budgets: [],
      });
    }
    return c.json(await deps.budgets.usageFor(userId, sessionId));
  });
}
