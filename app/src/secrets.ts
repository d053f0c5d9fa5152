/**
 * Start-up secret resolution. Deployed targets never put a secret's value in an environment
 * variable: they set `<NAME>_SECRET` to a reference into the cloud's secret store, and this module
 * fetches every referenced value (in parallel) and sets `<NAME>` before `loadConfig` runs.
 *
 *   ANTHROPIC_API_KEY_SECRET=aws-sm://arn:aws:secretsmanager:eu-west-1:123456789012:secret:agent/anthropic-AbCdEf
 *   DATABASE_PASSWORD_SECRET=aws-sm://arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1234#password
 *   REDIS_PASSWORD_SECRET=gcp-sm://projects/my-project/secrets/redis-auth/versions/latest
 *
 * `#key` picks one field of a JSON secret (RDS-managed master passwords are `{"username","password"}`).
 * AWS goes through the SDK's GetSecretValue with the runtime role; GCP through the Secret Manager
 * REST API with a token from the metadata server, so Cloud Run and GCE need no extra dependency.
 * Values are never logged and never appear in error messages.
 */
import type {
  SecretsManagerClient,
  SecretsManagerClientConfig,
} from "@aws-sdk/client-secrets-manager";

export const SECRET_SUFFIX = "_SECRET";

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_GCP_METADATA_URL = "http://metadata.google.internal";
const DEFAULT_GCP_SECRET_MANAGER_URL = "https://secretmanager.googleapis.com";

export type SecretReference =
  | {
      store: "aws-sm";
      raw: string;
      secretId: string;
      region: string | undefined;
      jsonKey: string | undefined;
    }
  | { store: "gcp-sm"; raw: string; resource: string; jsonKey: string | undefined };

export interface ResolveSecretsOptions {
  /** Whole-reference deadline (token + access), in milliseconds. @default 10000 */
  timeoutMs?: number;
  aws?: {
    /**
     * Extra client settings (tests point `endpoint` at a fake). The region always comes from the
     * ARN when the reference is one, else from AWS_REGION / AWS_DEFAULT_REGION.
     */
    clientConfig?: SecretsManagerClientConfig;
  };
  gcp?: {
    /** @default GCE_METADATA_HOST when set, else http://metadata.google.internal */
    metadataUrl?: string;
    /** @default https://secretmanager.googleapis.com */
    secretManagerUrl?: string;
  };
}

export interface ResolvedSecret {
  /** The variable that now holds the value. */
  variable: string;
  /** Where it came from: safe to log (names and ARNs are not secret). */
  reference: string;
}

export class SecretResolutionError extends Error {
  constructor(public readonly issues: Array<{ variable: string; message: string }>) {
    super(
      "Could not resolve secret references:\n" +
        issues.map((i) => `  ${i.variable}: ${i.message}`).join("\n"),
    );
    this.name = "SecretResolutionError";
  }
}

/**
 * Parses one reference. Returns undefined for a value that is not a URI at all (so an unrelated
 * variable that happens to end in _SECRET is left alone), and throws for a URI this module does
 * not understand: a typo such as `aws-sms://` must stop start-up, not silently leave the key unset.
 */
export function parseSecretReference(
  value: string,
  env: NodeJS.ProcessEnv = {},
): SecretReference | undefined {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(value)?.[1]?.toLowerCase();
  if (!scheme) {
    // Bare ARNs and resource names are references missing their scheme, not plain values.
    if (/^arn:aws[a-z-]*:secretsmanager:/.test(value))
      throw new Error("a Secrets Manager ARN needs the aws-sm:// prefix");
    if (/^projects\/[^/]+\/secrets\//.test(value))
      throw new Error("a Secret Manager resource name needs the gcp-sm:// prefix");
    return undefined;
  }
  const body = value.slice(scheme.length + 3);
  const hash = body.indexOf("#");
  const target = hash >= 0 ? body.slice(0, hash) : body;
  const jsonKey = hash >= 0 ? body.slice(hash + 1) : undefined;
  if (jsonKey === "") throw new Error("empty JSON key after '#'");

  if (scheme === "aws-sm") {
    if (!target) throw new Error("aws-sm:// needs a secret name or ARN");
    const arn = /^arn:aws[a-z-]*:secretsmanager:([a-z0-9-]+):\d{12}:secret:.+$/.exec(target);
    if (target.startsWith("arn:") && !arn)
      throw new Error(
        "not a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>)",
      );
    if (!arn && !/^[A-Za-z0-9/_+=.@!-]{1,512}$/.test(target))
      throw new Error("not a valid Secrets Manager secret name");
    const region = arn?.[1] ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
    return { store: "aws-sm", raw: value, secretId: target, region: region || undefined, jsonKey };
  }
  if (scheme === "gcp-sm") {
    if (
      !/^projects\/[A-Za-z0-9._:-]+\/secrets\/[A-Za-z0-9_-]+\/versions\/(latest|\d+)$/.test(target)
    ) {
      throw new Error(
        "expected gcp-sm://projects/<project>/secrets/<secret>/versions/<number|latest>",
      );
    }
    return { store: "gcp-sm", raw: value, resource: target, jsonKey };
  }
  throw new Error(`unsupported secret store "${scheme}://" (use aws-sm:// or gcp-sm://)`);
}

/**
 * Whether `env` has anything for resolveSecretReferences to do (or to reject). Synchronous, so a
 * start-up with no references goes straight on to the configuration without yielding.
 */
export function hasSecretReferences(env: NodeJS.ProcessEnv = process.env): boolean {
  for (const [source, value] of Object.entries(env)) {
    if (referencedVariable(source, value)) return true;
  }
  return false;
}

/** For `<NAME>_SECRET` set to something, the NAME it would set; otherwise undefined. */
function referencedVariable(source: string, value: string | undefined): string | undefined {
  if (!source.endsWith(SECRET_SUFFIX) || !value) return undefined;
  const variable = source.slice(0, -SECRET_SUFFIX.length);
  return /^[A-Z][A-Z0-9_]*$/.test(variable) ? variable : undefined;
}

/**
 * Resolves every `<NAME>_SECRET` reference in `env` and sets `<NAME>`. All or nothing: on any
 * failure nothing is set and the error names each variable and reference that failed. Resolved
 * references are removed from `env`, so `env` ends up with exactly one of the pair, as if the
 * value had been configured directly (and a second call is a no-op rather than "ambiguous").
 */
export async function resolveSecretReferences(
  env: NodeJS.ProcessEnv = process.env,
  options: ResolveSecretsOptions = {},
): Promise<ResolvedSecret[]> {
  const issues: Array<{ variable: string; message: string }> = [];
  const wanted: Array<{ variable: string; source: string; ref: SecretReference }> = [];
  for (const [source, value] of Object.entries(env)) {
    const variable = referencedVariable(source, value);
    if (!variable || !value) continue;
    let ref: SecretReference | undefined;
    try {
      ref = parseSecretReference(value, env);
    } catch (err) {
      // The value is not echoed: a malformed "reference" may be a pasted secret or a URL with a password.
      issues.push({ variable: source, message: (err as Error).message });
      continue;
    }
    if (!ref) continue;
    if (env[variable]) {
      issues.push({
        variable,
        message: `both ${variable} and ${source} are set; set only one (${source} points at ${value})`,
      });
      continue;
    }
    wanted.push({ variable, source, ref });
  }
  if (issues.length) throw new SecretResolutionError(issues);
  if (wanted.length === 0) return [];

  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const aws = new AwsSecrets(options.aws?.clientConfig, timeoutMs);
  const gcp = new GcpSecrets(
    options.gcp?.metadataUrl ??
      (env.GCE_METADATA_HOST ? `http://${env.GCE_METADATA_HOST}` : DEFAULT_GCP_METADATA_URL),
    options.gcp?.secretManagerUrl ?? DEFAULT_GCP_SECRET_MANAGER_URL,
    timeoutMs,
  );
  try {
    const results = await Promise.allSettled(
      wanted.map(async ({ ref }) => {
        const raw = ref.store === "aws-sm" ? await aws.fetch(ref) : await gcp.fetch(ref);
        return pickJsonKey(raw, ref.jsonKey);
      }),
    );
    const values: string[] = [];
    results.forEach((r, i) => {
      const w = wanted[i]!;
      if (r.status === "fulfilled") values.push(r.value);
      else issues.push({ variable: w.source, message: `${w.ref.raw}: ${describe(r.reason)}` });
    });
    if (issues.length) throw new SecretResolutionError(issues);
    wanted.forEach(({ variable, source }, i) => {
      env[variable] = values[i];
      delete env[source];
    });
    return wanted.map(({ variable, ref }) => ({ variable, reference: ref.raw }));
  } finally {
    aws.destroy();
  }
}

function describe(err: unknown): string {
  // Duck-typed rather than instanceof Error: errors from another realm (vm contexts, test runners) are errors too.
  if (typeof err === "object" && err !== null && typeof (err as Error).message === "string") {
    const { name: kind, message } = err as Error;
    const name = kind && kind !== "Error" ? `${kind}: ` : "";
    // fetch() reports every network failure as "fetch failed"; the cause says which (ECONNREFUSED, ENOTFOUND).
    const cause = (err as Error).cause as { code?: unknown; message?: unknown } | undefined;
    const detail =
      typeof cause?.code === "string"
        ? cause.code
        : typeof cause?.message === "string"
          ? cause.message
          : "";
    return `${name}${message}${detail ? ` (${detail})` : ""}`;
  }
  return String(err);
}

function pickJsonKey(raw: string, key: string | undefined): string {
  if (key === undefined) {
    if (raw === "") throw new Error("the secret is empty");
    return raw;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    // Not the engine's message: V8 quotes part of the input, which is the secret.
    throw new Error(`#${key} was asked for but the secret is not a JSON object`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error(`#${key} was asked for but the secret is not a JSON object`);
  }
  const value = (parsed as Record<string, unknown>)[key];
  if (typeof value === "string" && value !== "") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  const keys = Object.keys(parsed).join(", ");
  throw new Error(
    `the JSON secret has no non-empty string field "${key}" (fields: ${keys || "none"})`,
  );
}

class AwsSecrets {
  private readonly clients = new Map<string, SecretsManagerClient>();
  private sdk: Promise<typeof import("@aws-sdk/client-secrets-manager")> | undefined;

  constructor(
    private readonly clientConfig: SecretsManagerClientConfig | undefined,
    private readonly timeoutMs: number,
  ) {}

  async fetch(ref: Extract<SecretReference, { store: "aws-sm" }>): Promise<string> {
    const region = ref.region ?? (await this.configuredRegion());
    if (!region) throw new Error("no region: use the secret's full ARN or set AWS_REGION");
    // Loaded on first use: GCP and local runs never pay for the SDK. Lambda's nodejs22.x runtime
    // provides it, so the Lambda bundle leaves it out.
    this.sdk ??= import("@aws-sdk/client-secrets-manager");
    const { SecretsManagerClient, GetSecretValueCommand } = await this.sdk;
    let client = this.clients.get(region);
    if (!client) {
      client = new SecretsManagerClient({ ...this.clientConfig, region });
      this.clients.set(region, client);
    }
    const out = await client.send(new GetSecretValueCommand({ SecretId: ref.secretId }), {
      abortSignal: AbortSignal.timeout(this.timeoutMs),
    });
    if (typeof out.SecretString === "string") return out.SecretString;
    if (out.SecretBinary) return Buffer.from(out.SecretBinary).toString("utf8");
    throw new Error("the secret has no value");
  }

  private async configuredRegion(): Promise<string | undefined> {
    const r = this.clientConfig?.region;
    if (typeof r === "string") return r;
    if (typeof r === "function") return r();
    return undefined;
  }

  destroy() {
    // Closes the SDK's keep-alive sockets: start-up must not leave handles behind.
    for (const c of this.clients.values()) c.destroy();
  }
}

class GcpSecrets {
  private token: Promise<string> | undefined;

  constructor(
    private readonly metadataUrl: string,
    private readonly secretManagerUrl: string,
    private readonly timeoutMs: number,
  ) {}

  async fetch(ref: Extract<SecretReference, { store: "gcp-sm" }>): Promise<string> {
    // One token for all references: they are fetched in parallel at the same moment.
    this.token ??= this.accessToken();
    const token = await this.token;
    const url = `${trimSlash(this.secretManagerUrl)}/v1/${ref.resource}:access`;
    const res = await fetch(url, {
      headers: { authorization: `Bearer ${token}`, accept: "application/json" },
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    if (!res.ok)
      throw new Error(`Secret Manager answered ${res.status}${await gcpErrorMessage(res)}`);
    const body = (await res.json().catch(() => null)) as {
      payload?: { data?: unknown; dataCrc32c?: unknown };
    } | null;
    const data = body?.payload?.data;
    if (typeof data !== "string") throw new Error("Secret Manager answered without payload.data");
    const bytes = Buffer.from(data, "base64");
    const expected = body?.payload?.dataCrc32c;
    // The API's own integrity check: a corrupted payload would otherwise become a wrong password.
    if (expected !== undefined && String(expected) !== String(crc32c(bytes))) {
      throw new Error("payload checksum (dataCrc32c) does not match");
    }
    return bytes.toString("utf8");
  }

  private async accessToken(): Promise<string> {
    const url = `${trimSlash(this.metadataUrl)}/computeMetadata/v1/instance/service-accounts/default/token`;
    let res: Response;
    try {
      res = await fetch(url, {
        headers: { "metadata-flavor": "Google" },
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new Error(
        `cannot reach the GCP metadata server at ${this.metadataUrl} for an access token (${describe(err)})`,
      );
    }
    if (!res.ok)
      throw new Error(`the GCP metadata server answered ${res.status} for an access token`);
    const body = (await res.json().catch(() => null)) as { access_token?: unknown } | null;
    if (typeof body?.access_token !== "string" || !body.access_token) {
      throw new Error("the GCP metadata server answered without access_token");
    }
    return body.access_token;
  }
}

async function gcpErrorMessage(res: Response): Promise<string> {
  const body = (await res.json().catch(() => null)) as {
    error?: { status?: string; message?: string };
  } | null;
  const e = body?.error;
  return e ? ` (${[e.status, e.message].filter(Boolean).join(": ")})` : "";
}

const trimSlash = (u: string) => u.replace(/\/+$/, "");

let crc32cTable: Uint32Array | undefined;

/** CRC-32C (Castagnoli), as Secret Manager's `dataCrc32c`. node:zlib only has plain CRC-32. */
export function crc32c(bytes: Uint8Array): number {
  if (!crc32cTable) {
    crc32cTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
      crc32cTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const b of bytes) crc = crc32cTable[(crc ^ b) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
