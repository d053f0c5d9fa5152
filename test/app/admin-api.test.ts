/**
 * The admin API (/v1/admin) through the real service (createDeps + buildApp on a loopback port,
 * the offline model): who may call it, teams, users' keys and budgets, usage for chargeback and
 * the audit log. On the embedded defaults and on real Postgres and Redis.
 */
import { randomBytes } from "node:crypto";
import { CachedKeyResolver } from "../../app/src/auth";
import { loadConfig } from "../../app/src/config";
import { startService, type RunningService } from "../support/service";
import { serviceBackends } from "../support/services";

const run = randomBytes(4).toString("hex");
const ADMIN = { name: "ops-alice", key: `admin-key-${run}-0123456789` };
const USER = { user: `static-${run}`, key: `user-key-${run}` };
const MODEL = "claude-haiku-4-5";

interface ErrorShape {
  type: string;
  error: { type: string; message: string; budget?: string; scope_id?: string };
  request_id: string | null;
}
interface TeamJson {
  id: string;
  name: string;
  budgets: { daily_usd: number | null; monthly_usd: number | null };
  members: string[];
}

describe("ADMIN_API_KEYS", () => {
  it("reads name:key pairs and bare keys (named admin), and refuses short keys naming the variable", () => {
    const config = loadConfig({
      ADMIN_API_KEYS: "ops:0123456789abcdef, fedcba9876543210fedc",
    });
    expect(config.ADMIN_API_KEYS).toEqual([
      { name: "ops", key: "0123456789abcdef" },
      { name: "admin", key: "fedcba9876543210fedc" },
    ]);
    expect(() => loadConfig({ ADMIN_API_KEYS: "ops:short" })).toThrow(/ADMIN_API_KEYS/);
  });
});

describe("revoking a key through the admin API", () => {
  it("is not undone by a lookup of the key that was under way when it was revoked", async () => {
    const key = `ak_${"k".repeat(43)}`;
    let owner: string | null = "alice";
    let answer: (user: string | null) => void = () => {};
    let lookups = 0;
    const resolver = new CachedKeyResolver({
      store: {
        findUserByApiKey: () => {
          lookups++;
          return new Promise<string | null>((resolve) => (answer = resolve));
        },
      },
    });
    const racing = resolver.resolve(key);
    owner = null; // revoked in the database...
    resolver.forgetUser("alice"); // ...and forgotten by the admin route
    answer("alice"); // the lookup read the row before the revocation
    expect(await racing).toBe("alice");
    const next = resolver.resolve(key);
    answer(owner);
    expect(await next).toBeNull();
    expect(lookups).toBe(2);
  });
});

describe.each(serviceBackends())("admin API with $name", ({ open }) => {
  let service: RunningService;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    const e = await open();
    cleanup = e.cleanup;
    service = await startService({
      ...e.env,
      AGENT_API_KEYS: `${USER.user}:${USER.key}`,
      ADMIN_API_KEYS: `${ADMIN.name}:${ADMIN.key}`,
      BUDGET_USER_DAILY_USD: "50",
    });
  }, 60_000);

  afterAll(async () => {
    await service?.close();
    await cleanup?.();
  });

  const call = (
    method: string,
    path: string,
    options: { key?: string | null; body?: unknown; headers?: Record<string, string> } = {},
  ) => {
    const key = options.key === undefined ? ADMIN.key : options.key;
    return fetch(`${service.url}${path}`, {
      method,
      headers: {
        ...(key ? { authorization: `Bearer ${key}` } : {}),
        ...(options.body === undefined ? {} : { "content-type": "application/json" }),
        "user-agent": "admin-api-test/1.0",
        ...options.headers,
      },
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  };
  const json = async <T>(res: Response | Promise<Response>): Promise<T> =>
    (await (await res).json()) as T;
  const message = (key: string, text = "hello") =>
    fetch(`${service.url}/v1/messages`, {
      method: "POST",
      headers: {
        "x-api-key": key,
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
      },
      body: JSON.stringify({
        model: MODEL,
        max_tokens: 32,
        messages: [{ role: "user", content: `${text} ${randomBytes(4).toString("hex")}` }],
      }),
    });
  const unique = (label: string) => `${label}-${randomBytes(4).toString("hex")}`;
  const newTeam = async (budgets: Record<string, number> = {}) => {
    const res = await call("POST", "/v1/admin/teams", { body: { name: unique("team"), budgets } });
    expect(res.status).toBe(201);
    return json<TeamJson>(res);
  };

  it("answers 401 without a key or with an unknown one and 403 to a user's key, on every admin route", async () => {
    const team = await newTeam();
    const routes: Array<[string, string, unknown?]> = [
      ["GET", "/v1/admin/teams"],
      ["POST", "/v1/admin/teams", { name: unique("t") }],
      ["GET", `/v1/admin/teams/${team.id}`],
      ["PATCH", `/v1/admin/teams/${team.id}`, { name: unique("t") }],
      ["DELETE", `/v1/admin/teams/${team.id}`],
      ["GET", "/v1/admin/keys"],
      ["POST", "/v1/admin/keys", { user: unique("u") }],
      ["DELETE", "/v1/admin/keys/00000000-0000-4000-8000-000000000000"],
      ["PATCH", "/v1/admin/users/someone", { team: null }],
      ["PUT", "/v1/admin/users/someone/budgets", {}],
      ["GET", "/v1/admin/usage"],
      ["GET", "/v1/admin/audit"],
      ["GET", "/v1/admin/admin-keys"],
      ["POST", "/v1/admin/admin-keys", { name: "x" }],
      ["DELETE", "/v1/admin/admin-keys/00000000-0000-4000-8000-000000000000"],
      ["GET", "/v1/admin/no-such-route"],
    ];
    const before = await json<{ data: unknown[] }>(call("GET", "/v1/admin/audit?limit=1000"));
    for (const [method, path, body] of routes) {
      for (const [key, status, type] of [
        [null, 401, "authentication_error"],
        ["ak_" + "x".repeat(43), 401, "authentication_error"],
        [USER.key, 403, "permission_error"],
      ] as const) {
        const res = await call(method, path, { key, body });
        const err = await json<ErrorShape>(res);
        expect([method, path, key, res.status]).toEqual([method, path, key, status]);
        expect(err).toMatchObject({ type: "error", error: { type } });
        expect(err.request_id).toMatch(/^req_/);
        expect(res.headers.get("request-id")).toBe(err.request_id);
      }
    }
    // Nothing was done: the team is still there, and nothing new in the audit log.
    expect((await call("GET", `/v1/admin/teams/${team.id}`)).status).toBe(200);
    const after = await json<{ data: unknown[] }>(call("GET", "/v1/admin/audit?limit=1000"));
    expect(after.data).toHaveLength(before.data.length);
    // The admin key reaches every route; it is no user key.
    expect((await call("GET", "/v1/admin/no-such-route")).status).toBe(404);
    expect((await message(ADMIN.key)).status).toBe(401);
  });

  it("creates, lists, reads, changes and deletes teams", async () => {
    const name = unique("platform");
    const created = await call("POST", "/v1/admin/teams", {
      body: { name, budgets: { daily_usd: 25, monthly_usd: 400 } },
    });
    expect(created.status).toBe(201);
    const team = await json<TeamJson>(created);
    expect(team).toMatchObject({
      name,
      budgets: { daily_usd: 25, monthly_usd: 400 },
      members: [],
    });
    expect(team.id).toMatch(/^[0-9a-f-]{36}$/);

    const list = await json<{ data: TeamJson[] }>(call("GET", "/v1/admin/teams"));
    expect(list.data.find((t) => t.id === team.id)).toMatchObject({ name });
    expect(await json(call("GET", `/v1/admin/teams/${team.id}`))).toMatchObject({ id: team.id });

    const patched = await call("PATCH", `/v1/admin/teams/${team.id}`, {
      body: { budgets: { daily_usd: null, monthly_usd: 300 } },
    });
    expect(patched.status).toBe(200);
    expect(await json(patched)).toMatchObject({
      name,
      budgets: { daily_usd: null, monthly_usd: 300 },
    });

    // A taken name, a bad body, an unknown team.
    const dup = await call("POST", "/v1/admin/teams", { body: { name } });
    expect(dup.status).toBe(409);
    const bad = await call("POST", "/v1/admin/teams", {
      body: { name: unique("t"), budgets: { daily_usd: -1 } },
    });
    expect(bad.status).toBe(400);
    expect((await json<ErrorShape>(bad)).error).toMatchObject({
      type: "invalid_request_error",
      message: expect.stringContaining("budgets.daily_usd"),
    });
    const unknownField = await call("POST", "/v1/admin/teams", {
      body: { name: unique("t"), budgets: { weekly_usd: 1 } },
    });
    expect(unknownField.status).toBe(400);

    const deleted = await call("DELETE", `/v1/admin/teams/${team.id}`);
    expect(deleted.status).toBe(200);
    expect((await call("GET", `/v1/admin/teams/${team.id}`)).status).toBe(404);
    expect((await call("DELETE", `/v1/admin/teams/${team.id}`)).status).toBe(404);
    expect((await call("GET", "/v1/admin/teams/not-a-uuid")).status).toBe(404);
  });

  it("mints a key that works on /v1/messages, lists keys without secrets, and revokes it at once", async () => {
    const team = await newTeam();
    const user = unique("dev");
    const minted = await call("POST", "/v1/admin/keys", {
      body: { user, team: team.id, name: "laptop" },
    });
    expect(minted.status).toBe(201);
    const { id, key } = await json<{ id: string; key: string }>(minted);
    expect(key).toMatch(/^ak_[A-Za-z0-9_-]{43}$/);

    const ok = await message(key);
    expect(ok.status).toBe(200);
    // Membership was set with the key.
    expect(await json(call("GET", `/v1/admin/teams/${team.id}`))).toMatchObject({
      members: [user],
    });

    const listed = await call("GET", `/v1/admin/keys?user=${user}`);
    const text = await listed.text();
    expect(text).not.toContain(key);
    expect(JSON.parse(text)).toMatchObject({
      data: [{ id, user, name: "laptop", prefix: key.slice(0, 11), revoked_at: null }],
    });

    const revoked = await call("DELETE", `/v1/admin/keys/${id}`);
    expect(revoked.status).toBe(200);
    expect(await json(revoked)).toMatchObject({ id, revoked_at: expect.any(String) });
    // The key was remembered by the auth cache after its first use; it stops working anyway.
    const refused = await message(key);
    expect(refused.status).toBe(401);
    expect((await json<ErrorShape>(refused)).error.type).toBe("authentication_error");

    expect((await call("POST", "/v1/admin/keys", { body: { user: "bad user" } })).status).toBe(400);
    const noTeam = await call("POST", "/v1/admin/keys", { body: { user, team: "nope" } });
    expect(noTeam.status).toBe(400);
    expect((await json<ErrorShape>(noTeam)).error.message).toMatch(/^team: /);
    expect(
      (await call("DELETE", "/v1/admin/keys/00000000-0000-4000-8000-000000000000")).status,
    ).toBe(404);
  });

  it("sets per-user overrides and team membership, and a member is refused by the team's budget", async () => {
    const user = unique("member");
    const { key } = await json<{ key: string }>(call("POST", "/v1/admin/keys", { body: { user } }));
    const put = await call("PUT", `/v1/admin/users/${user}/budgets`, {
      body: { user_daily: 7.5, session: null },
    });
    expect(put.status).toBe(200);
    expect(await json(put)).toMatchObject({ budgets: { user_daily: 7.5, session: null } });
    const usage = await json<{ budgets: Array<{ budget: string; limit_usd: number }> }>(
      fetch(`${service.url}/v1/usage`, { headers: { "x-api-key": key } }),
    );
    expect(usage.budgets).toEqual([
      expect.objectContaining({ budget: "user_daily", limit_usd: 7.5, source: "override" }),
    ]);
    const badKind = await call("PUT", `/v1/admin/users/${user}/budgets`, { body: { daily: 1 } });
    expect(badKind.status).toBe(400);
    expect((await json<ErrorShape>(badKind)).error.message).toMatch(/^daily: /);

    // A team whose daily budget cannot cover one request: its member is refused, naming it.
    const team = await newTeam({ daily_usd: 0.000001 });
    const joined = await call("PATCH", `/v1/admin/users/${user}`, { body: { team: team.name } });
    expect(await json(joined)).toMatchObject({ id: user, team: { id: team.id } });
    const refused = await message(key);
    expect(refused.status).toBe(429);
    expect((await json<ErrorShape>(refused)).error).toMatchObject({
      type: "budget_exceeded",
      budget: "team_daily",
      scope_id: team.id,
    });
    // Leaving the team lifts it.
    await call("PATCH", `/v1/admin/users/${user}`, { body: { team: null } });
    expect((await message(key)).status).toBe(200);
  });

  it("sums the ledger per user, team or model, as JSON or CSV, and names a bad parameter", async () => {
    const team = await newTeam();
    const [a, b, c] = [unique("cb-a"), unique("cb-b"), unique("cb-c")];
    for (const u of [a, b])
      await call("PATCH", `/v1/admin/users/${u}`, { body: { team: team.id } });
    const at = "2020-03-05T10:00:00.000Z";
    const entry = (userId: string, model: string, costUsd: number, createdAt = at) => ({
      requestId: unique("req"),
      userId,
      model,
      inputTokens: 100,
      outputTokens: 10,
      cacheCreationInputTokens: 0,
      cacheReadInputTokens: 5,
      costUsd,
      status: "ok" as const,
      createdAt,
    });
    await service.deps.store.recordUsage([
      entry(a, "model-x", 1.5),
      entry(a, "model-y", 0.25),
      entry(b, "model-x", 2),
      entry(c, "model-y", 4),
      entry(a, "model-x", 100, "2020-03-07T00:00:00.000Z"), // outside the range
    ]);
    const range = "from=2020-03-05&to=2020-03-06T00:00:00Z";

    const byUser = await json<{ data: Array<Record<string, unknown>> }>(
      call("GET", `/v1/admin/usage?group_by=user&${range}`),
    );
    expect(byUser).toMatchObject({
      object: "usage_report",
      group_by: "user",
      from: "2020-03-05T00:00:00.000Z",
      to: "2020-03-06T00:00:00.000Z",
    });
    expect(byUser.data).toEqual([
      expect.objectContaining({ user: c, requests: 1, cost_usd: 4 }),
      expect.objectContaining({ user: b, requests: 1, cost_usd: 2 }),
      expect.objectContaining({
        user: a,
        requests: 2,
        input_tokens: 200,
        output_tokens: 20,
        cache_read_input_tokens: 10,
        cost_usd: 1.75,
      }),
    ]);
    const byTeam = await json<{ data: Array<Record<string, unknown>> }>(
      call("GET", `/v1/admin/usage?group_by=team&${range}`),
    );
    expect(byTeam.data).toEqual([
      expect.objectContaining({ team: null, team_name: null, requests: 1, cost_usd: 4 }),
      expect.objectContaining({ team: team.id, team_name: team.name, requests: 3, cost_usd: 3.75 }),
    ]);
    const byModel = await json<{ data: Array<Record<string, unknown>> }>(
      call("GET", `/v1/admin/usage?group_by=model&${range}`),
    );
    expect(byModel.data.map((r) => [r.model, r.cost_usd])).toEqual([
      ["model-y", 4.25],
      ["model-x", 3.5],
    ]);

    const csv = await call("GET", `/v1/admin/usage?group_by=team&${range}`, {
      headers: { accept: "text/csv" },
    });
    expect(csv.status).toBe(200);
    expect(csv.headers.get("content-type")).toMatch(/^text\/csv/);
    expect((await csv.text()).split("\r\n")).toEqual([
      "team,team_name,requests,input_tokens,output_tokens,cache_creation_input_tokens,cache_read_input_tokens,cost_usd",
      ",,1,100,10,0,5,4",
      `${team.id},${team.name},3,300,30,0,15,3.75`,
      "",
    ]);

    for (const [query, param] of [
      ["group_by=project", "group_by"],
      ["from=yesterday", "from"],
      ["to=2020-13-45", "to"],
      ["from=2020-03-06&to=2020-03-05", "to"],
    ]) {
      const res = await call("GET", `/v1/admin/usage?${query}`);
      expect([query, res.status]).toEqual([query, 400]);
      const err = await json<ErrorShape>(res);
      expect(err.error.type).toBe("invalid_request_error");
      expect(err.error.message.startsWith(`${param}: `)).toBe(true);
    }
  });

  it("records who did what, when and from where, and keeps admin keys in the database", async () => {
    const name = unique("audited");
    const created = await json<TeamJson>(
      call("POST", "/v1/admin/teams", {
        body: { name },
        headers: { "x-forwarded-for": "203.0.113.7, 10.0.0.1" },
      }),
    );
    const minted = await call("POST", "/v1/admin/admin-keys", { body: { name: "ops-bob" } });
    expect(minted.status).toBe(201);
    const bob = await json<{ id: string; key: string }>(minted);
    expect(bob.key).toMatch(/^adm_/);
    // Bob's stored key works; what he does is recorded under his name.
    const patched = await call("PATCH", `/v1/admin/teams/${created.id}`, {
      key: bob.key,
      body: { budgets: { daily_usd: 3 } },
    });
    expect(patched.status).toBe(200);
    const listed = await call("GET", "/v1/admin/admin-keys");
    expect(await listed.text()).not.toContain(bob.key);

    const audit = await json<{ data: Array<Record<string, unknown>> }>(
      call("GET", "/v1/admin/audit?limit=3"),
    );
    expect(audit.data).toEqual([
      expect.objectContaining({
        admin: "ops-bob",
        action: "team.update",
        target: created.id,
        ip: "127.0.0.1",
        user_agent: "admin-api-test/1.0",
        details: { budgets: { daily_usd: 3 } },
      }),
      expect.objectContaining({ admin: ADMIN.name, action: "admin_key.create", target: bob.id }),
      expect.objectContaining({
        admin: ADMIN.name,
        action: "team.create",
        target: created.id,
        ip: "203.0.113.7",
      }),
    ]);
    for (const e of audit.data) expect(Date.parse(String(e.at))).not.toBeNaN();
    expect(JSON.stringify(audit.data)).not.toContain(bob.key);

    const revoked = await call("DELETE", `/v1/admin/admin-keys/${bob.id}`);
    expect(revoked.status).toBe(200);
    expect((await call("GET", "/v1/admin/teams", { key: bob.key })).status).toBe(401);

    for (const limit of ["0", "1001", "ten"]) {
      const res = await call("GET", `/v1/admin/audit?limit=${limit}`);
      expect(res.status).toBe(400);
      expect((await json<ErrorShape>(res)).error.message).toMatch(/^limit: /);
    }
  });
});
