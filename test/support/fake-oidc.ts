/**
 * A local fake OIDC provider (node:http on a loopback port) for the console's sign-in tests:
 * discovery, a JWKS of an RSA key made with jose, an authorization endpoint that signs the
 * configured user in at once (a redirect back with a code) and a token endpoint that checks the
 * code (once), the redirect URI, the PKCE verifier (S256), the client id and, when configured, the
 * client secret (client_secret_basic or client_secret_post), then returns an ID token signed with
 * its key. It misbehaves on demand (`misbehave`), and records every request (`requests`).
 *
 */
import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeUser {
  sub: string;
  email?: string;
  email_verified?: boolean;
  groups?: string[];
}

export type Misbehaviour =
  | "wrong_audience" // aud is another client's
  | "wrong_issuer" // iss is another issuer's
  | "bad_signature" // signed by another key under the JWKS key's kid
  | "expired" // exp an hour ago
  | "nonce" // a nonce the service never sent
  | "deny" // the authorization endpoint answers error=access_denied
  | "token_error" // the token endpoint answers 500
  | "pkce_mismatch"; // the code is bound to another challenge than the one sent

export interface FakeRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  form: Record<string, string>;
  authorization?: string;
}

export interface FakeOidc {
  issuer: string;
  clientId: string;
  /** Who the authorization endpoint signs in; change it between sign-ins. */
  user: FakeUser;
  misbehave: Set<Misbehaviour>;
  requests: FakeRequest[];
  /** Codes issued and not yet exchanged. */
  readonly pendingCodes: number;
  close(): Promise<void>;
}

export interface FakeOidcOptions {
  clientId: string;
  clientSecret?: string;
  /** What discovery advertises. @default ["client_secret_basic", "client_secret_post", "none"] */
  authMethods?: string[];
  user: FakeUser;
}

interface IssuedCode {
  clientId: string;
  redirectUri: string;
  challenge: string;
  nonce?: string;
  user: FakeUser;
}

const b64url = (b: Buffer) => b.toString("base64url");

export async function startFakeOidc(options: FakeOidcOptions): Promise<FakeOidc> {
  const jose = await import("jose");
  const kid = `fake-${randomBytes(4).toString("hex")}`;
  const { privateKey, publicKey } = await jose.generateKeyPair("RS256", { extractable: true });
  const other = await jose.generateKeyPair("RS256");
  const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg: "RS256", use: "sig" };
  const codes = new Map<string, IssuedCode>();
  const requests: FakeRequest[] = [];
  let issuer = "";

  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
    res.end(JSON.stringify(body));
  };
  const readBody = async (req: IncomingMessage) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  };

  const fake: FakeOidc = {
    issuer: "",
    clientId: options.clientId,
    user: options.user,
    misbehave: new Set(),
    requests,
    get pendingCodes() {
      return codes.size;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  const authorize = (res: ServerResponse, q: Record<string, string>) => {
    const redirect = q.redirect_uri;
    if (!redirect || q.client_id !== options.clientId)
      return json(res, 400, { error: "invalid_request", error_description: "client or redirect" });
    const back = new URL(redirect);
    if (q.state) back.searchParams.set("state", q.state);
    const bad =
      q.response_type !== "code"
        ? "unsupported_response_type"
        : !q.scope?.split(" ").includes("openid")
          ? "invalid_scope"
          : q.code_challenge_method !== "S256" || !q.code_challenge
            ? "invalid_request"
            : fake.misbehave.has("deny")
              ? "access_denied"
              : null;
    if (bad) {
      back.searchParams.set("error", bad);
    } else {
      const code = b64url(randomBytes(24));
      codes.set(code, {
        clientId: q.client_id,
        redirectUri: redirect,
        challenge: fake.misbehave.has("pkce_mismatch")
          ? b64url(randomBytes(32))
          : q.code_challenge!,
        nonce: q.nonce,
        user: { ...fake.user },
      });
      back.searchParams.set("code", code);
    }
    res.writeHead(302, { location: back.toString() });
    res.end();
  };

  const token = async (req: IncomingMessage, res: ServerResponse, form: Record<string, string>) => {
    if (fake.misbehave.has("token_error")) return json(res, 500, { error: "server_error" });
    // Client authentication: Basic, or client_id (and client_secret) in the form.
    let clientId = form.client_id;
    let secret = form.client_secret;
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? "");
    if (basic) {
      const [id, pw] = Buffer.from(basic[1]!, "base64").toString("utf8").split(":");
      clientId = decodeURIComponent((id ?? "").replace(/\+/g, " "));
      secret = decodeURIComponent((pw ?? "").replace(/\+/g, " "));
    }
    if (clientId !== options.clientId) return json(res, 401, { error: "invalid_client" });
    if (options.clientSecret !== undefined && secret !== options.clientSecret)
      return json(res, 401, { error: "invalid_client" });
    if (form.grant_type !== "authorization_code")
      return json(res, 400, { error: "unsupported_grant_type" });
    const issued = codes.get(form.code ?? "");
    codes.delete(form.code ?? ""); // once, right or wrong
    if (!issued || issued.clientId !== clientId || issued.redirectUri !== form.redirect_uri)
      return json(res, 400, { error: "invalid_grant" });
    const verifier = form.code_verifier ?? "";
    if (
      !/^[A-Za-z0-9._~-]{43,128}$/.test(verifier) ||
      b64url(createHash("sha256").update(verifier).digest()) !== issued.challenge
    )
      return json(res, 400, {
        error: "invalid_grant",
        error_description: "PKCE verification failed",
      });

    const m = fake.misbehave;
    const now = Math.floor(Date.now() / 1000);
    const claims: Record<string, unknown> = {
      nonce: m.has("nonce") ? "not-the-nonce" : issued.nonce,
    };
    const u = issued.user;
    if (u.email !== undefined) claims.email = u.email;
    if (u.email_verified !== undefined) claims.email_verified = u.email_verified;
    if (u.groups !== undefined) claims.groups = u.groups;
    const idToken = await new jose.SignJWT(claims)
      .setProtectedHeader({ alg: "RS256", kid, typ: "JWT" })
      .setIssuer(m.has("wrong_issuer") ? "https://elsewhere.example" : issuer)
      .setAudience(m.has("wrong_audience") ? "another-client" : options.clientId)
      .setSubject(u.sub)
      .setIssuedAt(m.has("expired") ? now - 7200 : now)
      .setExpirationTime(m.has("expired") ? now - 3600 : now + 3600)
      .sign(m.has("bad_signature") ? other.privateKey : privateKey);
    json(res, 200, {
      access_token: b64url(randomBytes(24)),
      token_type: "Bearer",
      expires_in: 3600,
      id_token: idToken,
    });
  };

  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", issuer);
      const query = Object.fromEntries(url.searchParams);
      const raw = req.method === "POST" ? await readBody(req) : "";
      const form = Object.fromEntries(new URLSearchParams(raw));
      requests.push({
        method: req.method ?? "GET",
        path: url.pathname,
        query,
        form,
        authorization: req.headers.authorization,
      });
      if (req.method === "GET" && url.pathname === "/.well-known/openid-configuration")
        return json(res, 200, {
          issuer,
          authorization_endpoint: `${issuer}/authorize`,
          token_endpoint: `${issuer}/token`,
          jwks_uri: `${issuer}/jwks`,
          response_types_supported: ["code"],
          subject_types_supported: ["public"],
          id_token_signing_alg_values_supported: ["RS256"],
          code_challenge_methods_supported: ["S256"],
          scopes_supported: ["openid", "email", "profile"],
          token_endpoint_auth_methods_supported: options.authMethods ?? [
            "client_secret_basic",
            "client_secret_post",
            "none",
          ],
        });
      if (req.method === "GET" && url.pathname === "/jwks") return json(res, 200, { keys: [jwk] });
      if (req.method === "GET" && url.pathname === "/authorize") return authorize(res, query);
      if (req.method === "POST" && url.pathname === "/token") return token(req, res, form);
      json(res, 404, { error: "not_found" });
    })().catch((err: unknown) => {
      if (!res.headersSent) json(res, 500, { error: "server_error", detail: String(err) });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.issuer = issuer;
  return fake;
}
