/**
 * The admin API (/v1/admin), for operators: teams and their budgets, users' keys and budget
 * overrides, usage for chargeback, admin keys, and the audit log. Every route takes an admin key
 * (admin-auth.ts) and none of the user routes' chain (rate limits, concurrency): a user key gets
 * 403. Every change, and every usage export, is written to the audit log (who, what, when, from
 * where) once it succeeded.
 *
 *   POST   /v1/admin/teams                 {"name", "budgets": {"daily_usd"?, "monthly_usd"?}}
 *   GET    /v1/admin/teams                 GET/PATCH/DELETE /v1/admin/teams/{id}
 *   POST   /v1/admin/keys                  {"user", "team"?, "name"?}: the key, shown once
 *   GET    /v1/admin/keys[?user=]          DELETE /v1/admin/keys/{id} (revoke)
 *   PATCH  /v1/admin/users/{user}          {"team": id | name | null}
 *   PUT    /v1/admin/users/{user}/budgets  {"<kind>": usd | null, ...}: replaces the user's overrides
 *   GET    /v1/admin/usage?group_by=user|team|model&from=&to=   (JSON, or CSV with Accept: text/csv)
 *   GET    /v1/admin/audit[?limit=]
 *   GET    /v1/admin/overview              the operator console's snapshot (console/overview.ts)
 *   POST   /v1/admin/admin-keys {"name"}   GET /v1/admin/admin-keys   DELETE /v1/admin/admin-keys/{id}
 *   DELETE /v1/admin/session               sign-out: revokes the console session presented (OIDC)
 *
 * Caches: a revoked key, a changed team or override takes effect at once on the replica that
 * served the change; other replicas see it when their caches expire (keys 30 s, limits 30 s).
 */
import type { Hono } from "hono";
import * as z from "zod";
import { AdminKeyResolver, CONSOLE_SESSION, adminAuthMiddleware } from "../admin-auth";
import { presentedKey } from "../auth";
import { isUserBudgetName, USER_BUDGET_NAMES } from "../budget/kinds";
import { buildOverview } from "../console/overview";
import type { AppDeps } from "../deps";
import type { ModelCatalog } from "../llm/models";
import { ApiError, badRequest, notFound } from "../errors";
import { readJson, respond, setHeader, type AppContext, type AppEnv } from "../http";
import { UUID } from "../store/sql-rows";
import {
  TeamNameTakenError,
  type AdminKeyRecord,
  type ApiKeyRecord,
  type Team,
  type UsageGroup,
  type UsageGroupBy,
} from "../store/types";

const ADMIN = "/v1/admin";
const USER_ID = /^[A-Za-z0-9._@-]{1,128}$/;

const usd = z.number().positive().finite();
const teamName = z.string().trim().min(1).max(128);
const userId = z.string().regex(USER_ID, "must be 1 to 128 letters, digits, or . _ @ -");

const newTeamBody = z.strictObject({
  name: teamName,
  budgets: z.strictObject({ daily_usd: usd.optional(), monthly_usd: usd.optional() }).optional(),
});
const teamPatchBody = z.strictObject({
  name: teamName.optional(),
  /** null lifts that limit. */
  budgets: z
    .strictObject({ daily_usd: usd.nullable().optional(), monthly_usd: usd.nullable().optional() })
    .optional(),
});
const newKeyBody = z.strictObject({
  user: userId,
  team: z.string().min(1).max(128).optional(),
  name: z.string().max(200).optional(),
});
const userPatchBody = z.strictObject({ team: z.string().min(1).max(128).nullable() });
/** One entry per kind a user may have their own limit of: USD, or null for no limit. */
const userBudgetsBody = z.record(z.string(), z.number().min(0).finite().nullable());
const newAdminKeyBody = z.strictObject({ name: userId });

export function registerAdminRoutes(app: Hono<AppEnv>, deps: AppDeps, catalog: ModelCatalog) {
  const admins = new AdminKeyResolver({
    staticKeys: deps.config.ADMIN_API_KEYS,
    store: deps.store.admin,
    // Console sessions from an OIDC sign-in (console/oidc.ts) only when it is configured.
    sessions: deps.config.OIDC_ISSUER ? deps.store.admin : undefined,
  });
  const store = deps.store.admin;
  app.use(`${ADMIN}/*`, adminAuthMiddleware(admins, deps.auth, deps.logger));

  /** The audit entry of an action that succeeded. */
  const audit = (c: AppContext, action: string, target: string | null, details = {}) =>
    store.recordAudit({
      admin: c.get("admin") ?? "unknown",
      action,
      target,
      ip: clientIp(c),
      userAgent: c.req.header("user-agent")?.slice(0, 512) ?? null,
      details,
    });

  /** A team by id or by name; 400 naming `field` when there is none. */
  const teamNamed = async (ref: string, field: string): Promise<Team> => {
    const team = UUID.test(ref)
      ? await store.getTeam(ref)
      : ((await store.listTeams()).find((t) => t.name === ref) ?? null);
    if (!team) throw badRequest(`${field}: no team ${JSON.stringify(ref)}`);
    return team;
  };

  const teamOr404 = async (id: string): Promise<Team> => {
    const team = await store.getTeam(id);
    if (!team) throw notFound(`team ${id} not found`);
    return team;
  };

  const teamJson = async (team: Team) => teamView(team, await store.listTeamMembers(team.id));

  // ---- teams -------------------------------------------------------------------------------

  app.post(`${ADMIN}/teams`, async (c) => {
    const body = await readJson(c, newTeamBody);
    const team = await store
      .createTeam({
        name: body.name,
        dailyUsd: body.budgets?.daily_usd ?? null,
        monthlyUsd: body.budgets?.monthly_usd ?? null,
      })
      .catch(conflict);
    await audit(c, "team.create", team.id, { name: team.name, budgets: budgetsOf(team) });
    return c.json(teamView(team, []), 201);
  });

  app.get(`${ADMIN}/teams`, async (c) => {
    const teams = await store.listTeams();
    return c.json({ data: await Promise.all(teams.map(teamJson)) });
  });

  app.get(`${ADMIN}/teams/:id`, async (c) =>
    c.json(await teamJson(await teamOr404(c.req.param("id")))),
  );

  app.patch(`${ADMIN}/teams/:id`, async (c) => {
    const id = c.req.param("id");
    await teamOr404(id);
    const body = await readJson(c, teamPatchBody);
    const team = await store
      .updateTeam(id, {
        name: body.name,
        dailyUsd: body.budgets?.daily_usd,
        monthlyUsd: body.budgets?.monthly_usd,
      })
      .catch(conflict);
    if (!team) throw notFound(`team ${id} not found`);
    // Every member's limits changed: forget them all on this replica.
    deps.budgets?.invalidateOverrides();
    await audit(c, "team.update", id, body);
    return c.json(await teamJson(team));
  });

  app.delete(`${ADMIN}/teams/:id`, async (c) => {
    const id = c.req.param("id");
    if (!(await store.deleteTeam(id))) throw notFound(`team ${id} not found`);
    deps.budgets?.invalidateOverrides();
    await audit(c, "team.delete", id);
    return c.json({ id, object: "team", deleted: true });
  });

  // ---- users' keys, teams and budgets ------------------------------------------------------

  app.post(`${ADMIN}/keys`, async (c) => {
    const body = await readJson(c, newKeyBody);
    const team = body.team === undefined ? null : await teamNamed(body.team, "team");
    if (team) {
      await store.setUserTeam(body.user, team.id);
      deps.budgets?.invalidateOverrides(body.user);
    }
    const { key, record } = await deps.store.createApiKey(body.user, body.name);
    await audit(c, "key.create", record.id, { user: body.user, team: team?.id ?? null });
    return c.json({ ...keyView(record), key, team: team?.id ?? null }, 201);
  });

  app.get(`${ADMIN}/keys`, async (c) => {
    const user = c.req.query("user");
    if (user !== undefined && !USER_ID.test(user)) throw badRequest("user: not a user id");
    return c.json({ data: (await deps.store.listApiKeys(user)).map(keyView) });
  });

  app.delete(`${ADMIN}/keys/:id`, async (c) => {
    const id = c.req.param("id");
    const record = await deps.store.getApiKey(id);
    if (!record) throw notFound(`key ${id} not found`);
    await deps.store.revokeApiKey(id);
    // This replica stops accepting it now; others within their key cache's lifetime (30 s).
    deps.auth.forgetUser?.(record.userId);
    await audit(c, "key.revoke", id, { user: record.userId });
    const revoked = await deps.store.getApiKey(id);
    return c.json(keyView(revoked ?? record));
  });

  app.patch(`${ADMIN}/users/:user`, async (c) => {
    const user = userParam(c);
    const body = await readJson(c, userPatchBody);
    const team = body.team === null ? null : await teamNamed(body.team, "team");
    await store.setUserTeam(user, team?.id ?? null);
    deps.budgets?.invalidateOverrides(user);
    await audit(c, "user.team", user, { team: team?.id ?? null });
    return c.json({
      object: "user",
      id: user,
      team: team ? { id: team.id, name: team.name } : null,
    });
  });

  app.put(`${ADMIN}/users/:user/budgets`, async (c) => {
    const user = userParam(c);
    const body = await readJson(c, userBudgetsBody);
    const unknown = Object.keys(body).filter((k) => !isUserBudgetName(k));
    if (unknown.length > 0)
      throw badRequest(
        `${unknown.join(", ")}: not a per-user budget (use ${USER_BUDGET_NAMES.join(", ")})`,
      );
    // PUT replaces: kinds left out go back to the configured default.
    for (const name of USER_BUDGET_NAMES) {
      const value = body[name];
      if (value === undefined) await deps.store.deleteBudgetOverride(user, name);
      else await deps.store.setBudgetOverride(user, name, value);
    }
    deps.budgets?.invalidateOverrides(user);
    await audit(c, "user.budgets", user, body);
    return c.json({
      object: "user_budgets",
      user,
      budgets: await deps.store.getBudgetOverrides(user),
    });
  });

  // ---- usage for chargeback ----------------------------------------------------------------

  app.get(`${ADMIN}/usage`, async (c) => {
    const groupBy = c.req.query("group_by") ?? "user";
    if (!isGroupBy(groupBy)) throw badRequest("group_by: must be user, team or model");
    const from = timeParam(c, "from");
    const to = timeParam(c, "to");
    if (from && to && from >= to) throw badRequest("to: must be after from");
    const groups = await store.usageBy(groupBy, { sinceIso: from, untilIso: to });
    await audit(c, "usage.export", null, { group_by: groupBy, from: from ?? null, to: to ?? null });
    if (/\btext\/csv\b/i.test(c.req.header("accept") ?? "")) {
      return respond(c, usageCsv(groupBy, groups), 200, "text/csv; charset=utf-8");
    }
    return c.json({
      object: "usage_report",
      group_by: groupBy,
      from: from ?? null,
      to: to ?? null,
      data: groups.map((g) => usageRow(groupBy, g)),
    });
  });

  // ---- the operator console's snapshot (GET /console polls it; reads are not audited) ----------

  app.get(`${ADMIN}/overview`, async (c) => {
    setHeader(c, "cache-control", "no-store");
    return c.json(await buildOverview(deps, catalog));
  });

  // ---- audit log and admin keys ------------------------------------------------------------

  app.get(`${ADMIN}/audit`, async (c) => {
    const raw = c.req.query("limit") ?? "100";
    const limit = Number(raw);
    if (!/^\d+$/.test(raw) || limit < 1 || limit > 1000)
      throw badRequest("limit: must be an integer from 1 to 1000");
    const entries = await store.listAudit(limit);
    return c.json({
      data: entries.map((e) => ({
        id: e.id,
        at: e.at,
        admin: e.admin,
        action: e.action,
        target: e.target,
        ip: e.ip,
        user_agent: e.userAgent,
        details: e.details,
      })),
    });
  });

  app.post(`${ADMIN}/admin-keys`, async (c) => {
    const body = await readJson(c, newAdminKeyBody);
    const { key, record } = await store.createAdminKey(body.name);
    await audit(c, "admin_key.create", record.id, { name: record.name });
    return c.json({ ...adminKeyView(record), key }, 201);
  });

  app.get(`${ADMIN}/admin-keys`, async (c) =>
    c.json({ data: (await store.listAdminKeys()).map(adminKeyView) }),
  );

  app.delete(`${ADMIN}/admin-keys/:id`, async (c) => {
    const id = c.req.param("id");
    if (!(await store.revokeAdminKey(id))) throw notFound(`admin key ${id} not found`);
    admins.forget();
    await audit(c, "admin_key.revoke", id);
    return c.json({ id, object: "admin_key", revoked: true });
  });

  // ---- the console's sign-out: ends the OIDC session presented (console/oidc.ts) ----------------

  app.delete(`${ADMIN}/session`, async (c) => {
    const token = presentedKey({ get: (n) => c.req.header(n) }) ?? "";
    if (!CONSOLE_SESSION.test(token))
      throw badRequest("only a console session (OIDC sign-in) can be ended here, not an API key");
    await store.revokeConsoleSession(token);
    admins.forget();
    await audit(c, "oidc.logout", c.get("admin") ?? null);
    return c.json({ object: "console_session", revoked: true });
  });

  // Before the user routes' guard: an admin path no route matches is a 404, not a user-key check.
  app.all(`${ADMIN}/*`, (c) => {
    throw notFound(`no route for ${c.req.method} ${c.req.path}`);
  });
}

function conflict(err: unknown): never {
  if (err instanceof TeamNameTakenError) throw new ApiError(409, "conflict_error", err.message);
  throw err;
}

function userParam(c: AppContext): string {
  const user = c.req.param("user") ?? "";
  if (!USER_ID.test(user)) throw badRequest("user: must be 1 to 128 letters, digits, or . _ @ -");
  return user;
}

/** An ISO 8601 time (or date) query parameter, as a canonical ISO string; 400 naming it if not one. */
function timeParam(c: AppContext, name: "from" | "to"): string | undefined {
  const raw = c.req.query(name);
  if (raw === undefined || raw === "") return undefined;
  const t = /^\d{4}-\d{2}-\d{2}/.test(raw) ? Date.parse(raw) : NaN;
  if (Number.isNaN(t))
    throw badRequest(
      `${name}: must be an ISO 8601 date or time, got ${JSON.stringify(raw.slice(0, 64))}`,
    );
  return new Date(t).toISOString();
}

const isGroupBy = (v: string): v is UsageGroupBy => v === "user" || v === "team" || v === "model";

/** Behind a load balancer the client is the first X-Forwarded-For entry; else the socket's peer. */
export function clientIp(c: AppContext): string | null {
  const forwarded = c.req.header("x-forwarded-for")?.split(",")[0]?.trim();
  if (forwarded) return forwarded.slice(0, 64);
  const env: unknown = c.env;
  if (typeof env !== "object" || env === null || !("incoming" in env)) return null;
  const incoming: unknown = env.incoming;
  if (typeof incoming !== "object" || incoming === null || !("socket" in incoming)) return null;
  const socket: unknown = incoming.socket;
  if (typeof socket !== "object" || socket === null || !("remoteAddress" in socket)) return null;
  return typeof socket.remoteAddress === "string" ? socket.remoteAddress : null;
}

const budgetsOf = (team: Team) => ({ daily_usd: team.dailyUsd, monthly_usd: team.monthlyUsd });

function teamView(team: Team, members: string[]) {
  return {
    id: team.id,
    object: "team",
    name: team.name,
    budgets: budgetsOf(team),
    members,
    created_at: team.createdAt,
    updated_at: team.updatedAt,
  };
}

/** A user's key as listed: never the key itself, only its first characters. */
function keyView(record: ApiKeyRecord) {
  return {
    id: record.id,
    object: "api_key",
    user: record.userId,
    name: record.name,
    prefix: record.prefix,
    created_at: record.createdAt,
    revoked_at: record.revokedAt,
    last_used_at: record.lastUsedAt,
  };
}

function adminKeyView(record: AdminKeyRecord) {
  return {
    id: record.id,
    object: "admin_key",
    name: record.name,
    prefix: record.prefix,
    created_at: record.createdAt,
    revoked_at: record.revokedAt,
  };
}

const round10 = (n: number) => Math.round(n * 1e10) / 1e10;

function usageRow(groupBy: UsageGroupBy, g: UsageGroup) {
  return {
    [groupBy]: g.key,
    ...(groupBy === "team" ? { team_name: g.name ?? null } : {}),
    requests: g.requests,
    input_tokens: g.inputTokens,
    output_tokens: g.outputTokens,
    cache_creation_input_tokens: g.cacheCreationInputTokens,
    cache_read_input_tokens: g.cacheReadInputTokens,
    cost_usd: round10(g.costUsd),
  };
}

/** RFC 4180: fields with a comma, quote or line break are quoted, quotes doubled. */
function csvField(v: string | number | null): string {
  const s = v === null ? "" : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function usageCsv(groupBy: UsageGroupBy, groups: UsageGroup[]): string {
  const rows = groups.map((g) => usageRow(groupBy, g));
  const header = [
    groupBy,
    ...(groupBy === "team" ? ["team_name"] : []),
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "cost_usd",
  ];
  const lines = rows.map((r) => {
    const values: Record<string, string | number | null> = r;
    return header.map((h) => csvField(values[h] ?? null)).join(",");
  });
  return [header.join(","), ...lines].join("\r\n") + "\r\n";
}
