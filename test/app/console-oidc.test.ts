/**
 * OIDC sign-in for the operator console (console/oidc.ts) against a local fake provider
 * (test/support/fake-oidc.ts): the Authorization Code flow with PKCE followed request by request
 * (fetch, manual redirects, the sign-in cookie carried by hand), what is refused (not an admin, an
 * unverified e-mail, each way an ID token can be wrong, a failed exchange, a replayed state, a
 * callback without the browser's cookie), sessions on the admin API and their sign-out, the
 * configuration, and one sign-in in headless Chromium under the console's CSP.
 *
 * Chromium is required under CI=true (.ci/run installs it); elsewhere that part skips without it.
 */
import { createHash, randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import pino from "pino";
import type { Browser } from "playwright-core";
import { ConfigError, loadConfig } from "../../app/src/config";
import { CONSOLE_CSP } from "../../app/src/console/page";
import { haveChromium, launchChromium, watchPageProblems } from "../support/chromium";
import { startFakeOidc, type FakeOidc, type Misbehaviour } from "../support/fake-oidc";
import { startService, type RunningService } from "../support/service";
import { serviceBackends } from "../support/services";

const run = randomBytes(4).toString("hex");
const CLIENT_ID = `console-${run}`;
const ADMIN_EMAIL = "ada@example.com";
const ADMIN_KEY = `oidc-test-admin-${run}-0123456789`;
const ADA = { sub: "sub-ada", email: "Ada@Example.com", email_verified: true };

/** The service's log lines, to check that no code or token is ever logged. */
function capturedLogger() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString("utf8"));
      done();
    },
  });
  return { lines, logger: pino({ level: "info" }, stream) };
}

interface Flow {
  /** The redirect the service's login route answered with (to the provider). */
  authorize: URL;
  /** The provider's redirect back to the callback. */
  callback: URL;
  cookie: string;
  /** Where the callback sent the browser. */
  landing: URL;
}

/** One sign-in, as a browser would follow it. */
async function signIn(service: RunningService, options: { cookie?: string } = {}): Promise<Flow> {
  const login = await fetch(`${service.url}/console/oidc/login`, { redirect: "manual" });
  expect(login.status).toBe(302);
  expect(login.headers.get("cache-control")).toBe("no-store");
  const authorize = new URL(login.headers.get("location")!);
  const setCookie = login.headers.getSetCookie().find((c) => c.startsWith("agent_console_oidc="));
  expect(setCookie).toMatch(/HttpOnly/i);
  expect(setCookie).toMatch(/SameSite=Lax/i);
  expect(setCookie).toMatch(/Path=\/console\/oidc/);
  const cookie = options.cookie ?? setCookie!.split(";")[0]!;
  const atProvider = await fetch(authorize, { redirect: "manual" });
  expect(atProvider.status).toBe(302);
  const callback = new URL(atProvider.headers.get("location")!);
  const landing = await callbackWith(service, callback, cookie);
  return { authorize, callback, cookie, landing };
}

async function callbackWith(service: RunningService, callback: URL, cookie: string) {
  const res = await fetch(callback, { redirect: "manual", headers: cookie ? { cookie } : {} });
  expect(res.status).toBe(302);
  expect(res.headers.get("cache-control")).toBe("no-store");
  const landing = new URL(res.headers.get("location")!, service.url);
  expect(landing.pathname).toBe("/console");
  expect(landing.search).toBe("");
  return landing;
}

const fragment = (landing: URL) => new URLSearchParams(landing.hash.slice(1));
const sessionOf = (flow: Flow) => fragment(flow.landing).get("session");
const errorOf = (flow: Flow) => fragment(flow.landing).get("oidc_error");

const overview = (service: RunningService, key: string) =>
  fetch(`${service.url}/v1/admin/overview`, { headers: { "x-api-key": key } });

interface AuditJson {
  data: Array<{
    admin: string;
    action: string;
    target: string | null;
    details: Record<string, unknown>;
  }>;
}
const auditLog = async (service: RunningService) =>
  (await (
    await fetch(`${service.url}/v1/admin/audit?limit=50`, { headers: { "x-api-key": ADMIN_KEY } })
  ).json()) as AuditJson;

describe("OIDC configuration", () => {
  const base = {
    OIDC_ISSUER: "https://login.example.com/realms/ops",
    OIDC_CLIENT_ID: "console",
  };
  const failure = (env: Record<string, string>) => {
    try {
      loadConfig(env);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).issues;
    }
    throw new Error("loadConfig accepted it");
  };

  it("reads admins as e-mail addresses (lower-cased) and group:<name> entries", () => {
    const config = loadConfig({
      ...base,
      OIDC_ADMINS: "Ada@Example.com, group:platform-admins ,grace@example.com",
    });
    expect(config.OIDC_ADMINS).toEqual({
      emails: ["ada@example.com", "grace@example.com"],
      groups: ["platform-admins"],
    });
    expect(config.OIDC_SESSION_TTL_SECONDS).toBe(8 * 3600);
  });

  it("refuses OIDC_ISSUER without OIDC_ADMINS, naming the variable", () => {
    expect(failure(base)).toEqual([
      expect.objectContaining({
        variable: "OIDC_ADMINS",
        message: expect.stringMatching(/required/),
      }),
    ]);
    expect(() => loadConfig(base)).toThrow(/OIDC_ADMINS/);
  });

  it("is all or nothing, https only off the loopback, and checks each admin entry", () => {
    expect(failure({ OIDC_ISSUER: base.OIDC_ISSUER, OIDC_ADMINS: "a@example.com" })).toEqual([
      expect.objectContaining({ variable: "OIDC_CLIENT_ID" }),
    ]);
    expect(failure({ OIDC_CLIENT_ID: "console", OIDC_ADMINS: "a@example.com" })).toEqual([
      expect.objectContaining({ variable: "OIDC_ISSUER" }),
    ]);
    expect(
      failure({ ...base, OIDC_ISSUER: "http://login.example.com", OIDC_ADMINS: "a@example.com" }),
    ).toEqual([expect.objectContaining({ variable: "OIDC_ISSUER" })]);
    expect(failure({ ...base, OIDC_ADMINS: "not-an-address" })).toEqual([
      expect.objectContaining({ variable: "OIDC_ADMINS" }),
    ]);
    expect(
      loadConfig({ ...base, OIDC_ISSUER: "http://127.0.0.1:8080", OIDC_ADMINS: "group:ops" })
        .OIDC_ISSUER,
    ).toBe("http://127.0.0.1:8080");
    expect(loadConfig({}).OIDC_ISSUER).toBeUndefined();
  });
});

describe.each(serviceBackends())("OIDC sign-in for the console with $name", ({ open }) => {
  let fake: FakeOidc;
  let service: RunningService;
  let cleanup: () => Promise<void>;
  const log = capturedLogger();

  beforeAll(async () => {
    const e = await open();
    cleanup = e.cleanup;
    fake = await startFakeOidc({ clientId: CLIENT_ID, user: { ...ADA } });
    service = await startService(
      {
        ...e.env,
        ADMIN_API_KEYS: `ops:${ADMIN_KEY}`,
        OIDC_ISSUER: fake.issuer,
        OIDC_CLIENT_ID: CLIENT_ID,
        OIDC_ADMINS: `${ADMIN_EMAIL}, group:platform-admins`,
      },
      { logger: log.logger },
    );
  }, 60_000);

  afterAll(async () => {
    await service?.close();
    await fake?.close();
    await cleanup?.();
  });

  beforeEach(() => {
    fake.user = { ...ADA };
    fake.misbehave.clear();
  });

  it("offers the sign-in on the console page, under the same CSP", async () => {
    const res = await fetch(`${service.url}/console`);
    expect(res.headers.get("content-security-policy")).toBe(CONSOLE_CSP);
    const html = await res.text();
    expect(html).toContain(
      `<a class="button" id="oidc-link" href="/console/oidc/login">Sign in with ${new URL(fake.issuer).host}</a>`,
    );
    expect(html).not.toMatch(/<script>|<style|\sstyle=|\son[a-z]+=/i);
  });

  it("signs an admin in: the session works on the admin API and the audit log says oidc.login", async () => {
    const flow = await signIn(service);
    const q = flow.authorize.searchParams;
    expect(flow.authorize.origin + flow.authorize.pathname).toBe(`${fake.issuer}/authorize`);
    expect(q.get("response_type")).toBe("code");
    expect(q.get("client_id")).toBe(CLIENT_ID);
    expect(q.get("scope")).toBe("openid email profile");
    expect(q.get("code_challenge_method")).toBe("S256");
    expect(q.get("redirect_uri")).toBe(`${service.url}/console/oidc/callback`);
    expect(q.get("state")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(q.get("nonce")).toMatch(/^[A-Za-z0-9_-]{43}$/);

    // The token request: the code, the verifier whose S256 is the challenge, a public client.
    const tokenRequest = fake.requests.filter((r) => r.path === "/token").at(-1)!;
    expect(tokenRequest.form).toEqual(
      expect.objectContaining({
        grant_type: "authorization_code",
        code: flow.callback.searchParams.get("code"),
        client_id: CLIENT_ID,
        redirect_uri: `${service.url}/console/oidc/callback`,
      }),
    );
    expect(tokenRequest.form.client_secret).toBeUndefined();
    expect(tokenRequest.authorization).toBeUndefined();
    const verifier = tokenRequest.form.code_verifier!;
    expect(createHash("sha256").update(verifier).digest("base64url")).toBe(q.get("code_challenge"));

    const token = sessionOf(flow);
    expect(token).toMatch(/^cs_[A-Za-z0-9_-]{43}$/);
    const res = await overview(service, token!);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(expect.objectContaining({ deployment: expect.any(Object) }));
    // As a bearer token too, like any admin credential.
    const bearer = await fetch(`${service.url}/v1/admin/teams`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(bearer.status).toBe(200);

    // An action taken with the session is the user's, by e-mail.
    const created = await fetch(`${service.url}/v1/admin/teams`, {
      method: "POST",
      headers: { "x-api-key": token!, "content-type": "application/json" },
      body: JSON.stringify({ name: `oidc-team-${run}` }),
    });
    expect(created.status).toBe(201);
    const audit = await auditLog(service);
    expect(audit.data).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          admin: ADMIN_EMAIL,
          action: "oidc.login",
          target: ADMIN_EMAIL,
          details: expect.objectContaining({
            issuer: fake.issuer,
            subject: "sub-ada",
            via: "email",
          }),
        }),
        expect.objectContaining({ admin: ADMIN_EMAIL, action: "team.create" }),
      ]),
    );

    // Nothing secret in the service's log: not the code, the verifier, the ID token or the session.
    await new Promise((r) => setTimeout(r, 50));
    const logged = log.lines.join("");
    expect(logged).toContain("console OIDC sign-in");
    for (const secret of [flow.callback.searchParams.get("code")!, verifier, token!])
      expect(logged).not.toContain(secret);
    expect(logged).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./); // no JWT
  });

  it("signs in an admin by group", async () => {
    fake.user = {
      sub: "sub-grace",
      email: "grace@example.com",
      email_verified: true,
      groups: ["staff", "platform-admins"],
    };
    const flow = await signIn(service);
    const token = sessionOf(flow)!;
    expect((await overview(service, token)).status).toBe(200);
    const audit = await auditLog(service);
    expect(audit.data).toContainEqual(
      expect.objectContaining({
        admin: "grace@example.com",
        action: "oidc.login",
        details: expect.objectContaining({ via: "group:platform-admins" }),
      }),
    );
  });

  it("refuses someone not in OIDC_ADMINS, and an unverified e-mail address", async () => {
    fake.user = {
      sub: "sub-eve",
      email: "eve@example.com",
      email_verified: true,
      groups: ["staff"],
    };
    const flow = await signIn(service);
    expect(sessionOf(flow)).toBeNull();
    expect(errorOf(flow)).toBe("not_admin");
    expect(fragment(flow.landing).get("email")).toBe("eve@example.com");

    fake.user = { ...ADA, email_verified: false };
    const unverified = await signIn(service);
    expect(sessionOf(unverified)).toBeNull();
    expect(errorOf(unverified)).toBe("email");

    const audit = await auditLog(service);
    expect(audit.data.filter((e) => e.admin === "eve@example.com")).toEqual([]);
  });

  it.each<[Misbehaviour, string, string]>([
    ["wrong_audience", "id_token", 'unexpected "aud" claim value'],
    ["wrong_issuer", "id_token", 'unexpected "iss" claim value'],
    ["bad_signature", "id_token", "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"],
    ["expired", "id_token", "ERR_JWT_EXPIRED"],
    ["nonce", "id_token", "the ID token's nonce is not ours"],
    ["token_error", "token", "HTTP 500 server_error"],
    ["deny", "provider", "the provider refused: access_denied"],
  ])("refuses a sign-in when the provider misbehaves: %s", async (misbehaviour, reason, logged) => {
    fake.misbehave.add(misbehaviour);
    const before = log.lines.length;
    const flow = await signIn(service);
    expect(sessionOf(flow)).toBeNull();
    expect(errorOf(flow)).toBe(reason);
    // Refused for that reason, not another one.
    await new Promise((r) => setTimeout(r, 20));
    const failure = log.lines
      .slice(before)
      .map((l) => JSON.parse(l) as { msg: string; reason?: string; err?: string })
      .find((l) => l.msg === "console OIDC sign-in failed");
    expect(failure).toEqual(expect.objectContaining({ reason }));
    expect(failure?.err).toContain(logged);
  });

  it("checks PKCE: the exchange of a code bound to another challenge fails", async () => {
    fake.misbehave.add("pkce_mismatch");
    const flow = await signIn(service);
    expect(errorOf(flow)).toBe("token");
    const last = fake.requests.filter((r) => r.path === "/token").at(-1)!;
    expect(last.form.code).toBe(flow.callback.searchParams.get("code"));
  });

  it("refuses a replayed state, and a callback without the browser's sign-in cookie", async () => {
    const flow = await signIn(service);
    expect(sessionOf(flow)).toMatch(/^cs_/);
    const exchanges = fake.requests.filter((r) => r.path === "/token").length;
    const replay = await callbackWith(service, flow.callback, flow.cookie);
    expect(new URLSearchParams(replay.hash.slice(1)).get("oidc_error")).toBe("state");
    // Refused before the code went anywhere.
    expect(fake.requests.filter((r) => r.path === "/token").length).toBe(exchanges);

    // Another browser (no cookie, or another one) cannot finish this browser's sign-in.
    const stolen = await signIn(service, { cookie: "" });
    expect(errorOf(stolen)).toBe("state");
    const other = await signIn(service, { cookie: "agent_console_oidc=somebody-else" });
    expect(errorOf(other)).toBe("state");
    // Nor can a made-up state.
    const forged = new URL(`${service.url}/console/oidc/callback?code=abc&state=${"x".repeat(43)}`);
    const landing = await callbackWith(service, forged, flow.cookie);
    expect(new URLSearchParams(landing.hash.slice(1)).get("oidc_error")).toBe("state");
  });

  it("signs out: the session is revoked at once and the audit log says oidc.logout", async () => {
    const token = sessionOf(await signIn(service))!;
    expect((await overview(service, token)).status).toBe(200);
    const out = await fetch(`${service.url}/v1/admin/session`, {
      method: "DELETE",
      headers: { "x-api-key": token },
    });
    expect(out.status).toBe(200);
    expect((await overview(service, token)).status).toBe(401);
    const audit = await auditLog(service);
    expect(audit.data[0]).toEqual(
      expect.objectContaining({ admin: ADMIN_EMAIL, action: "oidc.logout" }),
    );
    // An admin key is not a session: it stays valid.
    const notSession = await fetch(`${service.url}/v1/admin/session`, {
      method: "DELETE",
      headers: { "x-api-key": ADMIN_KEY },
    });
    expect(notSession.status).toBe(400);
    expect((await overview(service, ADMIN_KEY)).status).toBe(200);
  });

  it("refuses an expired session", async () => {
    const { token } = await service.deps.store.admin.createConsoleSession({
      email: ADMIN_EMAIL,
      subject: "sub-ada",
      expiresAt: new Date(Date.now() - 1000).toISOString(),
    });
    expect((await overview(service, token)).status).toBe(401);
    expect((await overview(service, `cs_${"a".repeat(43)}`)).status).toBe(401);
  });
});

describe("OIDC sign-in with a confidential client", () => {
  let fake: FakeOidc;
  let service: RunningService;
  const secret = `secret ${run}:&=`;

  beforeAll(async () => {
    fake = await startFakeOidc({ clientId: CLIENT_ID, clientSecret: secret, user: { ...ADA } });
    service = await startService({
      DATA_DIR: "memory://",
      OIDC_ISSUER: fake.issuer,
      OIDC_CLIENT_ID: CLIENT_ID,
      OIDC_CLIENT_SECRET: secret,
      OIDC_ADMINS: ADMIN_EMAIL,
      OIDC_REDIRECT_URL: "http://console.localhost:8080/console/oidc/callback",
    });
  }, 60_000);

  afterAll(async () => {
    await service?.close();
    await fake?.close();
  });

  it("authenticates with client_secret_basic (and PKCE), at OIDC_REDIRECT_URL", async () => {
    const login = await fetch(`${service.url}/console/oidc/login`, { redirect: "manual" });
    const authorize = new URL(login.headers.get("location")!);
    expect(authorize.searchParams.get("redirect_uri")).toBe(
      "http://console.localhost:8080/console/oidc/callback",
    );
    const cookie = login.headers.getSetCookie()[0]!.split(";")[0]!;
    const atProvider = await fetch(authorize, { redirect: "manual" });
    // The provider redirects to the registered URL; the test brings the callback to the service.
    const registered = new URL(atProvider.headers.get("location")!);
    expect(registered.origin).toBe("http://console.localhost:8080");
    const callback = new URL(`${registered.pathname}${registered.search}`, service.url);
    const landing = await callbackWith(service, callback, cookie);
    const token = new URLSearchParams(landing.hash.slice(1)).get("session");
    expect(token).toMatch(/^cs_/);
    expect((await overview(service, token!)).status).toBe(200);
    const tokenRequest = fake.requests.filter((r) => r.path === "/token").at(-1)!;
    expect(tokenRequest.authorization).toMatch(/^Basic /);
    expect(tokenRequest.form.client_secret).toBeUndefined();
    expect(tokenRequest.form.code_verifier).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it("gets no session with a wrong client secret", async () => {
    const wrong = await startService({
      DATA_DIR: "memory://",
      OIDC_ISSUER: fake.issuer,
      OIDC_CLIENT_ID: CLIENT_ID,
      OIDC_CLIENT_SECRET: "not-the-secret",
      OIDC_ADMINS: ADMIN_EMAIL,
    });
    try {
      const flow = await signIn(wrong);
      expect(sessionOf(flow)).toBeNull();
      expect(errorOf(flow)).toBe("token");
    } finally {
      await wrong.close();
    }
  });
});

(haveChromium ? describe : describe.skip)("OIDC sign-in in Chromium", () => {
  let fake: FakeOidc;
  let service: RunningService;
  let browser: Browser;
  const problems: string[] = [];

  beforeAll(async () => {
    fake = await startFakeOidc({ clientId: CLIENT_ID, user: { ...ADA } });
    service = await startService({
      DATA_DIR: "memory://",
      OIDC_ISSUER: fake.issuer,
      OIDC_CLIENT_ID: CLIENT_ID,
      OIDC_ADMINS: ADMIN_EMAIL,
      BUDGET_DAILY_USD: "40",
    });
    await service.deps.store.recordUsage([
      {
        requestId: `req-${randomBytes(6).toString("hex")}`,
        userId: "ada",
        model: "claude-haiku-4-5",
        inputTokens: 1000,
        outputTokens: 200,
        cacheCreationInputTokens: 0,
        cacheReadInputTokens: 0,
        costUsd: 2.5,
        status: "ok",
        createdAt: new Date().toISOString(),
      },
    ]);
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await service?.close();
    await fake?.close();
  });

  it("signs in with the provider, shows the console with no token in the URL, signs out; no CSP violations", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await watchPageProblems(page, problems);

    await page.goto(`${service.url}/console`);
    const host = new URL(fake.issuer).host;
    await page.getByRole("link", { name: `Sign in with ${host}` }).click();
    await page.locator("#dashboard").waitFor({ state: "visible" });
    expect(page.url()).toBe(`${service.url}/console`); // the fragment is gone
    expect(await page.evaluate("location.hash")).toBe("");
    const stored = (await page.evaluate(
      `sessionStorage.getItem("agent-console-admin-key")`,
    )) as string;
    expect(stored).toMatch(/^cs_[A-Za-z0-9_-]{43}$/);
    expect(await page.locator("#k-requests").innerText()).toBe("1");
    expect(await page.locator("#k-spent-today").innerText()).toBe("$2.50");
    // The token was never in a URL the service saw, and is not in the address bar now.
    expect(fake.requests.every((r) => !JSON.stringify(r).includes(stored))).toBe(true);

    // Sign out: back to the form, and the session is revoked on the server.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByText("Signed out.").waitFor();
    expect(await page.evaluate("sessionStorage.length")).toBe(0);
    expect((await overview(service, stored)).status).toBe(401);

    // Someone not in OIDC_ADMINS: the console says so, and keeps no credential.
    fake.user = { sub: "sub-eve", email: "eve@example.com", email_verified: true };
    await page.getByRole("link", { name: `Sign in with ${host}` }).click();
    await page.getByText("eve@example.com is not an admin of this service (OIDC_ADMINS)").waitFor();
    expect(page.url()).toBe(`${service.url}/console`);
    expect(await page.evaluate("sessionStorage.length")).toBe(0);
    await page.close();

    expect(problems).toEqual([]);
  }, 60_000);
});
