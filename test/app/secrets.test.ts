/**
 * Start-up secret resolution against local fakes: AWS Secrets Manager's GetSecretValue (the real
 * SDK, pointed at a local endpoint) and GCP's metadata token + Secret Manager `:access` REST API.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  crc32c,
  parseSecretReference,
  resolveSecretReferences,
  SecretResolutionError,
  type ResolveSecretsOptions,
} from "../../app/src/secrets";
import { startFakeSecretsManager } from "../support/lambda-events";
import { closedPort } from "../support/ports";

const ANTHROPIC = "sk-ant-api03-this-is-a-test-value-not-a-real-key";
const DB_PASSWORD = "pg p@ss: with spaces & symbols";
const REDIS_PASSWORD = "redis-auth-token-0123456789abcdef";

async function errorOf(p: Promise<unknown>): Promise<SecretResolutionError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SecretResolutionError);
  return err as SecretResolutionError;
}

describe("parseSecretReference", () => {
  it("reads AWS names, ARNs (region from the ARN) and JSON keys", () => {
    expect(parseSecretReference("aws-sm://agent/anthropic", { AWS_REGION: "eu-west-1" })).toEqual({
      store: "aws-sm",
      raw: "aws-sm://agent/anthropic",
      secretId: "agent/anthropic",
      region: "eu-west-1",
      jsonKey: undefined,
    });
    const arn = "arn:aws:secretsmanager:us-east-2:123456789012:secret:rds!db-1a2b-AbCdEf";
    expect(
      parseSecretReference(`aws-sm://${arn}#password`, { AWS_REGION: "eu-west-1" }),
    ).toMatchObject({
      secretId: arn,
      region: "us-east-2",
      jsonKey: "password",
    });
    expect(
      parseSecretReference("aws-sm://name", { AWS_DEFAULT_REGION: "ap-south-1" }),
    ).toMatchObject({ region: "ap-south-1" });
  });

  it("reads GCP resource names with a version number or latest", () => {
    expect(
      parseSecretReference("gcp-sm://projects/my-proj/secrets/redis-auth/versions/latest"),
    ).toEqual({
      store: "gcp-sm",
      raw: "gcp-sm://projects/my-proj/secrets/redis-auth/versions/latest",
      resource: "projects/my-proj/secrets/redis-auth/versions/latest",
      jsonKey: undefined,
    });
    expect(
      parseSecretReference("gcp-sm://projects/123456/secrets/db/versions/7#password"),
    ).toMatchObject({ jsonKey: "password" });
  });

  it("ignores plain values and rejects malformed references", () => {
    expect(parseSecretReference("just-a-value")).toBeUndefined();
    expect(() => parseSecretReference("gcp-sm://projects/p/secrets/s")).toThrow(/versions/);
    expect(() => parseSecretReference("aws-sms://x")).toThrow(
      /unsupported secret store "aws-sms:\/\/"/,
    );
    expect(() => parseSecretReference("aws-sm://arn:aws:s3:::bucket")).toThrow(
      /not a Secrets Manager secret ARN/,
    );
    expect(() =>
      parseSecretReference("arn:aws:secretsmanager:eu-west-1:123456789012:secret:x"),
    ).toThrow(/aws-sm:\/\/ prefix/);
    expect(() => parseSecretReference("projects/p/secrets/s/versions/1")).toThrow(
      /gcp-sm:\/\/ prefix/,
    );
    expect(() => parseSecretReference("aws-sm://name#")).toThrow(/empty JSON key/);
  });
});

describe("crc32c", () => {
  it("matches the Castagnoli check value", () => {
    expect(crc32c(Buffer.from("123456789"))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(0))).toBe(0);
  });
});

describe("resolveSecretReferences: common rules", () => {
  it("does nothing when there are no references", async () => {
    const env = { ANTHROPIC_API_KEY: "x", SOME_SECRET: "plain value, not a reference" };
    await expect(resolveSecretReferences(env)).resolves.toEqual([]);
    expect(env).toEqual({ ANTHROPIC_API_KEY: "x", SOME_SECRET: "plain value, not a reference" });
  });

  it("refuses a variable set both directly and by reference", async () => {
    const env = {
      ANTHROPIC_API_KEY: ANTHROPIC,
      ANTHROPIC_API_KEY_SECRET: "aws-sm://agent/anthropic",
      AWS_REGION: "eu-west-1",
    };
    const err = await errorOf(resolveSecretReferences(env));
    expect(err.issues).toEqual([
      {
        variable: "ANTHROPIC_API_KEY",
        message: expect.stringMatching(
          /both ANTHROPIC_API_KEY and ANTHROPIC_API_KEY_SECRET are set/,
        ),
      },
    ]);
    expect(err.message).not.toContain(ANTHROPIC);
  });

  it("reports malformed references without echoing the value", async () => {
    const env = { DATABASE_URL_SECRET: "postgres://app:hunter2@db/app" };
    const err = await errorOf(resolveSecretReferences(env));
    expect(err.message).toMatch(/DATABASE_URL_SECRET: unsupported secret store "postgres:\/\/"/);
    expect(err.message).not.toContain("hunter2");
  });
});

describe("resolveSecretReferences: AWS Secrets Manager", () => {
  let sm: Awaited<ReturnType<typeof startFakeSecretsManager>>;
  let options: ResolveSecretsOptions;

  beforeAll(async () => {
    sm = await startFakeSecretsManager([
      { name: "agent/anthropic", string: ANTHROPIC },
      {
        name: "rds!db-1a2b",
        region: "us-east-2",
        string: JSON.stringify({ username: "agent", password: DB_PASSWORD, port: 5432 }),
      },
      { name: "agent/redis", binary: Buffer.from(REDIS_PASSWORD) },
      { name: "agent/not-json", string: "s3cr3t-not-json-value" },
      { name: "agent/forbidden", string: "never-returned", denied: true },
    ]);
    options = {
      aws: {
        clientConfig: {
          endpoint: sm.endpoint,
          credentials: {
            accessKeyId: "AKIDEXAMPLE",
            secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
          },
        },
      },
    };
  });
  afterAll(() => sm.close());
  beforeEach(() => sm.requests.splice(0));

  it("resolves names and ARNs (signed for the ARN's region), JSON keys and binary secrets", async () => {
    const env: NodeJS.ProcessEnv = {
      AWS_REGION: "eu-west-1",
      ANTHROPIC_API_KEY_SECRET: "aws-sm://agent/anthropic",
      DATABASE_PASSWORD_SECRET: `aws-sm://${sm.arnOf({ name: "rds!db-1a2b", region: "us-east-2" })}#password`,
      REDIS_PASSWORD_SECRET: "aws-sm://agent/redis",
      DATABASE_PORT_SECRET: `aws-sm://${sm.arnOf({ name: "rds!db-1a2b", region: "us-east-2" })}#port`,
    };
    const resolved = await resolveSecretReferences(env, options);
    expect(resolved.map((r) => r.variable).sort()).toEqual([
      "ANTHROPIC_API_KEY",
      "DATABASE_PASSWORD",
      "DATABASE_PORT",
      "REDIS_PASSWORD",
    ]);
    expect(env).toEqual({
      AWS_REGION: "eu-west-1",
      ANTHROPIC_API_KEY: ANTHROPIC,
      DATABASE_PASSWORD: DB_PASSWORD,
      DATABASE_PORT: "5432",
      REDIS_PASSWORD: REDIS_PASSWORD,
    });
    const byId = Object.fromEntries(sm.requests.map((r) => [r.secretId, r]));
    expect(byId["agent/anthropic"]).toMatchObject({
      target: "secretsmanager.GetSecretValue",
      signedRegion: "eu-west-1",
      signedService: "secretsmanager",
    });
    expect(byId[sm.arnOf({ name: "rds!db-1a2b", region: "us-east-2" })]).toMatchObject({
      signedRegion: "us-east-2",
    });

    // References are consumed: a second start-up pass (a retried Lambda init) is a no-op.
    await expect(resolveSecretReferences(env, options)).resolves.toEqual([]);
  });

  it("fails naming every variable and reference that failed, and sets nothing", async () => {
    const env: NodeJS.ProcessEnv = {
      AWS_REGION: "eu-west-1",
      ANTHROPIC_API_KEY_SECRET: "aws-sm://agent/anthropic",
      DATABASE_PASSWORD_SECRET: "aws-sm://agent/missing",
      REDIS_PASSWORD_SECRET: "aws-sm://agent/forbidden",
      OTHER_SECRET: "aws-sm://agent/not-json#password",
      MORE_SECRET: `aws-sm://${sm.arnOf({ name: "rds!db-1a2b", region: "us-east-2" })}#pasword`,
    };
    const before = { ...env };
    const err = await errorOf(resolveSecretReferences(env, options));
    const byVar = Object.fromEntries(err.issues.map((i) => [i.variable, i.message]));
    expect(Object.keys(byVar).sort()).toEqual([
      "DATABASE_PASSWORD_SECRET",
      "MORE_SECRET",
      "OTHER_SECRET",
      "REDIS_PASSWORD_SECRET",
    ]);
    expect(byVar.DATABASE_PASSWORD_SECRET).toMatch(
      /^aws-sm:\/\/agent\/missing: ResourceNotFoundException/,
    );
    expect(byVar.REDIS_PASSWORD_SECRET).toMatch(/AccessDeniedException/);
    expect(byVar.OTHER_SECRET).toMatch(
      /#password was asked for but the secret is not a JSON object/,
    );
    expect(byVar.MORE_SECRET).toMatch(
      /no non-empty string field "pasword" \(fields: username, password, port\)/,
    );
    expect(env).toEqual(before);
    for (const value of [ANTHROPIC, DB_PASSWORD, "s3cr3t-not-json-value"])
      expect(err.message).not.toContain(value);
  });

  it("needs a region for a bare name", async () => {
    const err = await errorOf(
      resolveSecretReferences({ ANTHROPIC_API_KEY_SECRET: "aws-sm://agent/anthropic" }, options),
    );
    expect(err.issues[0]?.message).toMatch(
      /no region: use the secret's full ARN or set AWS_REGION/,
    );
    expect(sm.requests).toHaveLength(0);
  });
});

interface GcpFake {
  metadataUrl: string;
  secretManagerUrl: string;
  tokenRequests: number;
  accessRequests: string[];
  close(): Promise<void>;
}

/** Metadata server and Secret Manager in one local server, with the real request/response shapes. */
async function startFakeGcp(
  secrets: Record<string, string>,
  opts: { delayMs?: number; hang?: boolean; badChecksum?: boolean } = {},
): Promise<GcpFake> {
  const TOKEN = "ya29.fake-access-token";
  const fake = { tokenRequests: 0, accessRequests: [] as string[] };
  const send = (res: ServerResponse, status: number, body: object) => {
    res.writeHead(status, { "content-type": "application/json; charset=utf-8" });
    res.end(JSON.stringify(body));
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname === "/computeMetadata/v1/instance/service-accounts/default/token") {
      fake.tokenRequests++;
      // The real metadata server refuses requests without this header (SSRF protection).
      if (req.headers["metadata-flavor"] !== "Google")
        return send(res, 403, { error: "Missing Metadata-Flavor:Google header." });
      return send(res, 200, { access_token: TOKEN, expires_in: 3599, token_type: "Bearer" });
    }
    const m = /^\/v1\/(projects\/[^/]+\/secrets\/[^/]+\/versions\/[^/:]+):access$/.exec(
      url.pathname,
    );
    if (m && req.method === "GET") {
      fake.accessRequests.push(m[1]!);
      if (opts.hang) return; // never answers
      if (req.headers.authorization !== `Bearer ${TOKEN}`) {
        return send(res, 401, {
          error: {
            code: 401,
            message: "Request had invalid authentication credentials.",
            status: "UNAUTHENTICATED",
          },
        });
      }
      const name = m[1]!.replace(/\/versions\/latest$/, "/versions/3");
      const value = secrets[name];
      if (value === undefined) {
        return send(res, 404, {
          error: { code: 404, message: `Secret Version [${m[1]}] not found.`, status: "NOT_FOUND" },
        });
      }
      const data = Buffer.from(value, "utf8");
      const checksum = opts.badChecksum ? crc32c(data) ^ 1 : crc32c(data);
      setTimeout(
        () =>
          send(res, 200, {
            name,
            payload: { data: data.toString("base64"), dataCrc32c: String(checksum) },
          }),
        opts.delayMs ?? 0,
      );
      return;
    }
    send(res, 404, { error: { code: 404, message: "no such path", status: "NOT_FOUND" } });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(fake, {
    metadataUrl: base,
    secretManagerUrl: base,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

describe("resolveSecretReferences: GCP Secret Manager", () => {
  const secrets = {
    "projects/agent-dev/secrets/anthropic/versions/3": ANTHROPIC,
    "projects/agent-dev/secrets/redis-auth/versions/3": REDIS_PASSWORD,
    "projects/agent-dev/secrets/db/versions/3": JSON.stringify({ password: DB_PASSWORD }),
  };
  let gcp: GcpFake | undefined;
  afterEach(async () => {
    await gcp?.close();
    gcp = undefined;
  });
  const opts = (g: GcpFake, timeoutMs?: number): ResolveSecretsOptions => ({
    gcp: { metadataUrl: g.metadataUrl, secretManagerUrl: g.secretManagerUrl },
    timeoutMs,
  });

  it("fetches one metadata token and every version (numbered, latest, JSON key) with it", async () => {
    gcp = await startFakeGcp(secrets);
    const env: NodeJS.ProcessEnv = {
      ANTHROPIC_API_KEY_SECRET: "gcp-sm://projects/agent-dev/secrets/anthropic/versions/3",
      REDIS_PASSWORD_SECRET: "gcp-sm://projects/agent-dev/secrets/redis-auth/versions/latest",
      DATABASE_PASSWORD_SECRET: "gcp-sm://projects/agent-dev/secrets/db/versions/latest#password",
    };
    const resolved = await resolveSecretReferences(env, opts(gcp));
    expect(env).toEqual({
      ANTHROPIC_API_KEY: ANTHROPIC,
      REDIS_PASSWORD: REDIS_PASSWORD,
      DATABASE_PASSWORD: DB_PASSWORD,
    });
    expect(resolved).toContainEqual({
      variable: "REDIS_PASSWORD",
      reference: "gcp-sm://projects/agent-dev/secrets/redis-auth/versions/latest",
    });
    expect(gcp.tokenRequests).toBe(1);
    expect(gcp.accessRequests.sort()).toEqual([
      "projects/agent-dev/secrets/anthropic/versions/3",
      "projects/agent-dev/secrets/db/versions/latest",
      "projects/agent-dev/secrets/redis-auth/versions/latest",
    ]);
  });

  it("fetches references in parallel", async () => {
    gcp = await startFakeGcp(secrets, { delayMs: 300 });
    const env: NodeJS.ProcessEnv = {
      ANTHROPIC_API_KEY_SECRET: "gcp-sm://projects/agent-dev/secrets/anthropic/versions/3",
      REDIS_PASSWORD_SECRET: "gcp-sm://projects/agent-dev/secrets/redis-auth/versions/3",
      DATABASE_PASSWORD_SECRET: "gcp-sm://projects/agent-dev/secrets/db/versions/3#password",
    };
    const started = performance.now();
    await resolveSecretReferences(env, opts(gcp));
    expect(performance.now() - started).toBeLessThan(800); // one round of 300 ms, not three
  });

  it("names the reference on NOT_FOUND and on a checksum mismatch", async () => {
    gcp = await startFakeGcp(secrets, { badChecksum: true });
    const env: NodeJS.ProcessEnv = {
      ANTHROPIC_API_KEY_SECRET: "gcp-sm://projects/agent-dev/secrets/anthropic/versions/3",
      REDIS_PASSWORD_SECRET: "gcp-sm://projects/agent-dev/secrets/nope/versions/1",
    };
    const err = await errorOf(resolveSecretReferences(env, opts(gcp)));
    const byVar = Object.fromEntries(err.issues.map((i) => [i.variable, i.message]));
    expect(byVar.ANTHROPIC_API_KEY_SECRET).toMatch(
      /anthropic\/versions\/3: payload checksum \(dataCrc32c\) does not match/,
    );
    expect(byVar.REDIS_PASSWORD_SECRET).toMatch(
      /nope\/versions\/1: Secret Manager answered 404 \(NOT_FOUND: Secret Version/,
    );
    expect(err.message).not.toContain(ANTHROPIC);
    expect(env.ANTHROPIC_API_KEY).toBeUndefined();
  });

  it("times out instead of hanging start-up", async () => {
    gcp = await startFakeGcp(secrets, { hang: true });
    const started = performance.now();
    const err = await errorOf(
      resolveSecretReferences(
        { ANTHROPIC_API_KEY_SECRET: "gcp-sm://projects/agent-dev/secrets/anthropic/versions/3" },
        opts(gcp, 250),
      ),
    );
    expect(err.issues[0]?.message).toMatch(/TimeoutError/);
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it("says when the metadata server cannot be reached", async () => {
    gcp = await startFakeGcp(secrets);
    const unreachable = `http://127.0.0.1:${await closedPort()}`;
    const err = await errorOf(
      resolveSecretReferences(
        { REDIS_PASSWORD_SECRET: "gcp-sm://projects/agent-dev/secrets/redis-auth/versions/latest" },
        { gcp: { metadataUrl: unreachable, secretManagerUrl: gcp.secretManagerUrl } },
      ),
    );
    expect(err.issues[0]).toEqual({
      variable: "REDIS_PASSWORD_SECRET",
      message: `gcp-sm://projects/agent-dev/secrets/redis-auth/versions/latest: cannot reach the GCP metadata server at ${unreachable} for an access token (TypeError: fetch failed (ECONNREFUSED))`,
    });
  });

  it("takes the metadata host from GCE_METADATA_HOST, as Google's client libraries do", async () => {
    gcp = await startFakeGcp(secrets);
    const env: NodeJS.ProcessEnv = {
      GCE_METADATA_HOST: gcp.metadataUrl.replace("http://", ""),
      REDIS_PASSWORD_SECRET: "gcp-sm://projects/agent-dev/secrets/redis-auth/versions/latest",
    };
    await resolveSecretReferences(env, { gcp: { secretManagerUrl: gcp.secretManagerUrl } });
    expect(env.REDIS_PASSWORD).toBe(REDIS_PASSWORD);
    expect(gcp.tokenRequests).toBe(1);
  });
});
