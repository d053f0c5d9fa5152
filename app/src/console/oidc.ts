/**
 * OIDC sign-in for the operator console (OIDC_ISSUER, OIDC_CLIENT_ID, OIDC_ADMINS): the
 * Authorization Code flow with PKCE (S256, always; a client secret too when OIDC_CLIENT_SECRET is
 * set), against any provider found by its issuer URL.
 *
 *   GET /console/oidc/login     discovery (cached), a new state, nonce and PKCE verifier kept in
 *                               Postgres (`oidc_logins`, ten minutes, taken once: any replica can
 *                               finish it), a cookie binding the sign-in to this browser, and a
 *                               redirect to the provider's authorization endpoint
 *   GET /console/oidc/callback  the state taken, the code exchanged at the token endpoint, the ID
 *                               token verified (the issuer's JWKS, issuer, audience = client id,
 *                               nonce, expiry with 30 s of clock skew), the user checked against
 *                               OIDC_ADMINS; then a console session: a random "cs_" token whose
 *                               hash is kept (`console_sessions`), handed to the page in the
 *                               redirect's fragment (/console#session=...), which browsers never
 *                               send to a server; the page keeps it in sessionStorage and sends it
 *                               as x-api-key like an admin key (admin-auth.ts). Every failure
 *                               redirects to /console#oidc_error=<reason> and issues nothing.
 *
 * Codes, tokens and verifiers are never logged; failures log their reason and the provider's
 * error code only.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Logger } from "pino";
import type { AppConfig } from "../config";
import type { AdminStore } from "../store/types";

/** jose is ECMAScript-module only: loaded with import() (esbuild bundles it; tsx and Node load it). */
const importJose = () => import("jose");
type Jose = Awaited<ReturnType<typeof importJose>>;
let jose: Promise<Jose> | undefined;
const loadJose = () => (jose ??= importJose());

export const OIDC_LOGIN_PATH = "/console/oidc/login";
export const OIDC_CALLBACK_PATH = "/console/oidc/callback";
/** The cookie binding a sign-in to the browser that started it (HttpOnly, only on /console/oidc). */
export const OIDC_COOKIE = "agent_console_oidc";
/** How long a sign-in may take at the provider. */
const LOGIN_TTL_MS = 10 * 60_000;
/** Most sign-ins under way at once (the login route is public). */
const MAX_PENDING_LOGINS = 10_000;
const DISCOVERY_TTL_MS = 60 * 60_000;
const HTTP_TIMEOUT_MS = 10_000;
const CLOCK_TOLERANCE_S = 30;

/** Why a sign-in ended without a session: the console shows a message for each. */
export type OidcFailure =
  | "unavailable" // discovery or the provider cannot be reached
  | "busy" // too many sign-ins under way
  | "provider" // the provider answered the callback with an error
  | "state" // unknown, expired, reused or another browser's state
  | "token" // the code exchange failed
  | "id_token" // the ID token failed verification
  | "email" // no verified e-mail address in the ID token
  | "not_admin"; // not in OIDC_ADMINS

export class OidcError extends Error {
  constructor(
    readonly reason: OidcFailure,
    message: string,
    readonly email?: string,
  ) {
    super(message);
    this.name = "OidcError";
  }
}

interface Discovery {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  jwks_uri: string;
  token_endpoint_auth_methods_supported?: string[];
  id_token_signing_alg_values_supported?: string[];
}

export interface OidcSettings {
  issuer: string;
  clientId: string;
  clientSecret?: string;
  admins: { emails: string[]; groups: string[] };
  redirectUrl?: string;
  sessionTtlSeconds: number;
}

export function oidcSettings(config: AppConfig): OidcSettings | undefined {
  if (!config.OIDC_ISSUER || !config.OIDC_CLIENT_ID || !config.OIDC_ADMINS) return undefined;
  return {
    issuer: config.OIDC_ISSUER,
    clientId: config.OIDC_CLIENT_ID,
    clientSecret: config.OIDC_CLIENT_SECRET,
    admins: config.OIDC_ADMINS,
    redirectUrl: config.OIDC_REDIRECT_URL,
    sessionTtlSeconds: config.OIDC_SESSION_TTL_SECONDS,
  };
}

const b64url = (bytes: Buffer) => bytes.toString("base64url");
const random = () => b64url(randomBytes(32));
const sha256 = (s: string) => createHash("sha256").update(s).digest();
const trimSlash = (s: string) => s.replace(/\/+$/, "");
/** A provider's error code as it may be logged and shown: short, plain. */
const errorCode = (v: unknown) =>
  typeof v === "string" && /^[A-Za-z0-9_.-]{1,64}$/.test(v) ? v : "unknown";

/** Endpoints must be https, or http on the loopback when the issuer itself is (a local fake). */
function endpoint(value: unknown, name: string, issuer: URL): string {
  let u: URL;
  try {
    u = new URL(String(value));
  } catch {
    throw new Error(`discovery: ${name} is not a URL`);
  }
  const loopbackOk = issuer.protocol === "http:" && u.hostname === issuer.hostname;
  if (u.protocol !== "https:" && !(u.protocol === "http:" && loopbackOk))
    throw new Error(`discovery: ${name} must be https`);
  return u.toString();
}

export interface FinishedSignIn {
  token: string;
  expiresAt: string;
  email: string;
  subject: string;
  /** What made them an admin: "email" or "group:<name>". */
  via: string;
}

export class OidcSignIn {
  /** The issuer's host, for the "Sign in with <host>" button. */
  readonly issuerHost: string;
  private discovery: { doc: Promise<Discovery>; until: number } | undefined;
  private jwks: { uri: string; set: ReturnType<Jose["createRemoteJWKSet"]> } | undefined;

  constructor(
    readonly settings: OidcSettings,
    private readonly store: AdminStore,
    private readonly logger: Pick<Logger, "warn" | "info">,
    private readonly now: () => number = Date.now,
  ) {
    this.issuerHost = new URL(settings.issuer).host;
  }

  /** The redirect URL: OIDC_REDIRECT_URL, or this request's origin and the callback's path. */
  redirectUri(requestUrl: string): string {
    return this.settings.redirectUrl ?? new URL(OIDC_CALLBACK_PATH, requestUrl).toString();
  }

  private async discover(): Promise<Discovery> {
    const now = this.now();
    if (this.discovery && this.discovery.until > now) return this.discovery.doc;
    const doc = this.fetchDiscovery();
    this.discovery = { doc, until: now + DISCOVERY_TTL_MS };
    // A failure is not remembered: the next sign-in tries again.
    doc.catch(() => (this.discovery = undefined));
    return doc;
  }

  private async fetchDiscovery(): Promise<Discovery> {
    const issuer = new URL(this.settings.issuer);
    const url = `${trimSlash(this.settings.issuer)}/.well-known/openid-configuration`;
    const res = await fetch(url, {
      headers: { accept: "application/json" },
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    });
    if (!res.ok) throw new Error(`discovery: HTTP ${res.status}`);
    const raw = (await res.json()) as Record<string, unknown>;
    if (typeof raw.issuer !== "string" || trimSlash(raw.issuer) !== trimSlash(issuer.toString()))
      throw new Error("discovery: its issuer is not OIDC_ISSUER");
    const list = (v: unknown) =>
      Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : undefined;
    return {
      issuer: raw.issuer,
      authorization_endpoint: endpoint(
        raw.authorization_endpoint,
        "authorization_endpoint",
        issuer,
      ),
      token_endpoint: endpoint(raw.token_endpoint, "token_endpoint", issuer),
      jwks_uri: endpoint(raw.jwks_uri, "jwks_uri", issuer),
      token_endpoint_auth_methods_supported: list(raw.token_endpoint_auth_methods_supported),
      id_token_signing_alg_values_supported: list(raw.id_token_signing_alg_values_supported),
    };
  }

  /** The discovery document, or OidcError("unavailable") naming why it could not be read. */
  private async discoveredOrUnavailable(): Promise<Discovery> {
    try {
      return await this.discover();
    } catch (err) {
      throw new OidcError(
        "unavailable",
        `cannot read the provider's discovery document: ${msg(err)}`,
      );
    }
  }

  /**
   * Starts a sign-in: where to send the browser, and the cookie value to set (the browser binder).
   * Throws OidcError("unavailable" | "busy").
   */
  async begin(requestUrl: string): Promise<{ location: string; binder: string }> {
    const doc = await this.discoveredOrUnavailable();
    const state = random();
    const nonce = random();
    const verifier = random(); // 43 characters of base64url: RFC 7636's minimum length
    const binder = random();
    const redirectUri = this.redirectUri(requestUrl);
    const saved = await this.store.saveOidcLogin(
      {
        state,
        browserHash: sha256(binder).toString("hex"),
        nonce,
        codeVerifier: verifier,
        redirectUri,
        expiresAt: new Date(this.now() + LOGIN_TTL_MS).toISOString(),
      },
      MAX_PENDING_LOGINS,
    );
    if (!saved) throw new OidcError("busy", "too many sign-ins under way");
    const location = new URL(doc.authorization_endpoint);
    const params = location.searchParams;
    params.set("response_type", "code");
    params.set("client_id", this.settings.clientId);
    params.set("redirect_uri", redirectUri);
    params.set("scope", "openid email profile");
    params.set("state", state);
    params.set("nonce", nonce);
    params.set("code_challenge", b64url(sha256(verifier)));
    params.set("code_challenge_method", "S256");
    return { location: location.toString(), binder };
  }

  /** Finishes a sign-in from the callback's query and the browser's cookie: a console session. */
  async finish(query: Record<string, string | undefined>, binder: string | undefined) {
    const state = query.state;
    if (!state || state.length > 512) throw new OidcError("state", "the callback has no state");
    // Taken whatever happens next: a state is good for one callback.
    const login = await this.store.takeOidcLogin(state);
    if (!login) throw new OidcError("state", "unknown, expired or already used state");
    const expected = Buffer.from(login.browserHash, "hex");
    const presented = sha256(binder ?? "");
    if (!binder || expected.length !== presented.length || !timingSafeEqual(expected, presented))
      throw new OidcError("state", "the sign-in was started in another browser (cookie mismatch)");
    if (query.error)
      throw new OidcError("provider", `the provider refused: ${errorCode(query.error)}`);
    const code = query.code;
    if (!code || code.length > 4096) throw new OidcError("provider", "the callback has no code");

    const doc = await this.discoveredOrUnavailable();
    const idToken = await this.exchange(doc, code, login.codeVerifier, login.redirectUri);
    const claims = await this.verify(doc, idToken, login.nonce);

    const subject = String(claims.sub);
    const email = typeof claims.email === "string" ? claims.email.trim().toLowerCase() : "";
    const verified = claims.email_verified;
    if (!email || (verified !== undefined && verified !== true && verified !== "true"))
      throw new OidcError("email", "the ID token has no verified e-mail address");
    const groups = Array.isArray(claims.groups)
      ? claims.groups.filter((g): g is string => typeof g === "string")
      : typeof claims.groups === "string"
        ? [claims.groups]
        : [];
    const { admins } = this.settings;
    const group = admins.groups.find((g) => groups.includes(g));
    const via = admins.emails.includes(email) ? "email" : group ? `group:${group}` : undefined;
    if (!via) throw new OidcError("not_admin", `${email} is not in OIDC_ADMINS`, email);

    const session = await this.store.createConsoleSession({
      email,
      subject,
      expiresAt: new Date(this.now() + this.settings.sessionTtlSeconds * 1000).toISOString(),
    });
    return { ...session, email, subject, via } satisfies FinishedSignIn;
  }

  private async exchange(
    doc: Discovery,
    code: string,
    verifier: string,
    redirectUri: string,
  ): Promise<string> {
    const body = new URLSearchParams({
      grant_type: "authorization_code",
      code,
      redirect_uri: redirectUri,
      code_verifier: verifier,
    });
    const headers: Record<string, string> = {
      "content-type": "application/x-www-form-urlencoded",
      accept: "application/json",
    };
    const { clientId, clientSecret } = this.settings;
    const methods = doc.token_endpoint_auth_methods_supported;
    if (!clientSecret) {
      body.set("client_id", clientId); // a public client: PKCE is its proof
    } else if (!methods || methods.includes("client_secret_basic")) {
      // RFC 6749 2.3.1: both parts form-encoded, then Basic.
      const enc = (s: string) => new URLSearchParams({ v: s }).toString().slice(2);
      headers.authorization = `Basic ${Buffer.from(`${enc(clientId)}:${enc(clientSecret)}`).toString("base64")}`;
    } else {
      body.set("client_id", clientId);
      body.set("client_secret", clientSecret);
    }
    let res: Response;
    try {
      res = await fetch(doc.token_endpoint, {
        method: "POST",
        headers,
        body,
        redirect: "error",
        signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
      });
    } catch (err) {
      throw new OidcError("token", `the token endpoint did not answer: ${msg(err)}`);
    }
    const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok)
      throw new OidcError(
        "token",
        `the token endpoint refused the code: HTTP ${res.status} ${errorCode(json.error)}`,
      );
    if (typeof json.id_token !== "string" || json.id_token.length > 64_000)
      throw new OidcError("token", "the token endpoint returned no id_token");
    return json.id_token;
  }

  private async verify(doc: Discovery, idToken: string, nonce: string) {
    const { createRemoteJWKSet, jwtVerify } = await loadJose();
    if (this.jwks?.uri !== doc.jwks_uri) {
      this.jwks = {
        uri: doc.jwks_uri,
        set: createRemoteJWKSet(new URL(doc.jwks_uri), {
          timeoutDuration: 5000,
          cooldownDuration: 30_000,
          cacheMaxAge: 10 * 60_000,
        }),
      };
    }
    // Asymmetric algorithms only: never "none", never an HMAC keyed with a public value.
    const algorithms = (doc.id_token_signing_alg_values_supported ?? ["RS256"]).filter(
      (a) => a !== "none" && !a.startsWith("HS"),
    );
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(idToken, this.jwks.set, {
        issuer: doc.issuer,
        audience: this.settings.clientId,
        algorithms: algorithms.length ? algorithms : ["RS256"],
        clockTolerance: CLOCK_TOLERANCE_S,
        requiredClaims: ["sub", "exp", "iat"],
        currentDate: new Date(this.now()),
      }));
    } catch (err) {
      // jose's error code and message (which claim failed): never the token itself.
      const code = (err as { code?: unknown }).code;
      throw new OidcError(
        "id_token",
        `the ID token failed verification: ${errorCode(code)} ${msg(err).slice(0, 120)}`,
      );
    }
    if (payload.nonce !== nonce)
      throw new OidcError("id_token", "the ID token's nonce is not ours");
    // Several audiences: the authorized party must be us (OIDC Core 3.1.3.7).
    const aud = payload.aud;
    if (Array.isArray(aud) && aud.length > 1 && payload.azp !== this.settings.clientId)
      throw new OidcError("id_token", "the ID token's azp is not our client id");
    return payload;
  }
}

const msg = (err: unknown) => (err instanceof Error ? err.message : String(err)).slice(0, 200);
