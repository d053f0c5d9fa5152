/**
 * The service's whole configuration: environment variables, validated once at boot.
 * A bad value stops start-up with a message naming the variable and what to change.
 */
import * as z from "zod";
import { budgetEnvShape } from "./budget/kinds";
import { SERVICE_CONTRACT } from "./contract";
import { BEDROCK_PROFILES, UPSTREAMS } from "./llm/upstream-kinds";

const bool = z
  .enum(["true", "false", "1", "0", "yes", "no"])
  .transform((v) => v === "true" || v === "1" || v === "yes");

const url = (protocols: string[]) =>
  z.string().refine(
    (v) => {
      try {
        return protocols.includes(new URL(v).protocol.replace(/:$/, ""));
      } catch {
        return false;
      }
    },
    { message: `must be a URL with scheme ${protocols.join(" or ")}` },
  );

const NAME = /^[A-Za-z0-9._@-]{1,128}$/;

const apiKeys = z.string().transform((raw, ctx) => {
  const pairs: Array<{ user: string; key: string }> = [];
  for (const part of raw
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const i = part.indexOf(":");
    const user = i > 0 ? part.slice(0, i).trim() : "";
    const key = i > 0 ? part.slice(i + 1).trim() : "";
    if (!NAME.test(user) || key.length < 8) {
      ctx.addIssue({
        code: "custom",
        message:
          "each entry must be user:key with a user of letters, digits, . _ @ - and a key of at least 8 characters",
      });
      return z.NEVER;
    }
    pairs.push({ user, key });
  }
  return pairs;
});

/**
 * ADMIN_API_KEYS: `name:key` pairs like AGENT_API_KEYS (the name is who the audit log says acted),
 * or bare keys, named "admin". An entry whose text before the first colon is not a valid name is a
 * bare key.
 */
const adminKeys = z.string().transform((raw, ctx) => {
  const admins: Array<{ name: string; key: string }> = [];
  for (const part of raw
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const i = part.indexOf(":");
    const name = i > 0 ? part.slice(0, i).trim() : "";
    const named = NAME.test(name);
    const key = named ? part.slice(i + 1).trim() : part;
    if (key.length < 16) {
      ctx.addIssue({
        code: "custom",
        message:
          "each entry must be name:key or a bare key, with a name of letters, digits, . _ @ - and a key of at least 16 characters",
      });
      return z.NEVER;
    }
    admins.push({ name: named ? name : "admin", key });
  }
  return admins;
});

/** OIDC_ISSUER: https, or http on the loopback only (a local fake issuer in tests, a dev IdP). */
const issuerUrl = z.string().refine(
  (v) => {
    try {
      const u = new URL(v);
      if (u.search || u.hash || u.username || u.password) return false;
      if (u.protocol === "https:") return true;
      return u.protocol === "http:" && ["127.0.0.1", "localhost", "[::1]"].includes(u.hostname);
    } catch {
      return false;
    }
  },
  {
    message:
      "must be the provider's issuer URL (https; http only on 127.0.0.1 or localhost), with no query or fragment",
  },
);

const EMAIL = /^[^\s@,]+@[^\s@,]+$/;
const GROUP = /^[^\s,]{1,256}$/;

/**
 * OIDC_ADMINS: who may administer through OIDC sign-in: e-mail addresses (matched case-insensitively
 * against the ID token's verified `email`) and `group:<name>` entries (matched against `groups`).
 */
const oidcAdmins = z.string().transform((raw, ctx) => {
  const emails: string[] = [];
  const groups: string[] = [];
  for (const part of raw
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    if (part.startsWith("group:")) {
      const group = part.slice("group:".length).trim();
      if (GROUP.test(group)) {
        groups.push(group);
        continue;
      }
    } else if (EMAIL.test(part)) {
      emails.push(part.toLowerCase());
      continue;
    }
    ctx.addIssue({
      code: "custom",
      message: `each entry must be an e-mail address or group:<name> (got ${JSON.stringify(part.slice(0, 64))})`,
    });
    return z.NEVER;
  }
  if (emails.length + groups.length === 0) {
    ctx.addIssue({ code: "custom", message: "must name at least one e-mail address or group" });
    return z.NEVER;
  }
  return { emails, groups };
});

export const envSchema = z.object({
  NODE_ENV: z.enum(["development", "test", "production"]).default("development"),
  PORT: z.coerce.number().int().min(0).max(65535).default(SERVICE_CONTRACT.port),
  HOST: z.string().min(1).default("0.0.0.0"),
  ANTHROPIC_API_KEY: z.string().min(1).optional(),
  ANTHROPIC_BASE_URL: url(["http", "https"]).optional(),
  /** Upstream request timeout, per attempt. */
  UPSTREAM_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(120_000),
  // upstreams (llm/upstream.ts checks what each one needs at boot, with the model table)
  /**
   * Who serves model calls: the Anthropic API (ANTHROPIC_API_KEY; without one, the offline
   * synthetic model), Amazon Bedrock or Vertex AI (the workload's own cloud identity, no key).
   */
  LLM_UPSTREAM: z.enum(UPSTREAMS).default("anthropic"),
  /** Bedrock: the region of the bedrock-runtime endpoint (Lambda and EKS set it themselves). */
  AWS_REGION: z
    .string()
    .regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, { message: "must be an AWS region such as us-east-1" })
    .optional(),
  /** Bedrock: an API key for Bedrock instead of SigV4 with the default AWS credential chain. */
  AWS_BEARER_TOKEN_BEDROCK: z.string().min(1).optional(),
  /** Bedrock: another endpoint than https://bedrock-runtime.<AWS_REGION>.amazonaws.com (a VPC endpoint). */
  ANTHROPIC_BEDROCK_BASE_URL: url(["http", "https"]).optional(),
  /**
   * Bedrock: call models through this geography's cross-region inference profile
   * (`<geo>.<model id>`), or `none` for the base model id in AWS_REGION only. Regional profiles
   * keep data in the geography and cost about 10% more than `global` (app/config/models.json).
   */
  BEDROCK_INFERENCE_PROFILE: z.enum(BEDROCK_PROFILES).default("us"),
  /** Vertex AI: the Google Cloud project (default: the project of the credentials). */
  ANTHROPIC_VERTEX_PROJECT_ID: z
    .string()
    .regex(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/, { message: "must be a Google Cloud project id" })
    .optional(),
  /** Vertex AI: `global`, a multi-region (`us`, `eu`) or a region such as us-east5. */
  CLOUD_ML_REGION: z
    .string()
    .regex(/^(global|us|eu|[a-z]+-[a-z]+\d+)$/, {
      message: "must be global, us, eu or a Google Cloud region such as us-east5",
    })
    .optional(),
  /** Vertex AI: another endpoint than the region's aiplatform.googleapis.com (Private Service Connect). */
  ANTHROPIC_VERTEX_BASE_URL: url(["http", "https"]).optional(),
  DATABASE_URL: url(["postgres", "postgresql"]).optional(),
  /** Password for DATABASE_URL when the URL carries none (deployed targets read it from the secret store at start-up). */
  DATABASE_PASSWORD: z.string().min(1).optional(),
  DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(500).default(10),
  DATA_DIR: z.string().min(1).default(".data"),
  REDIS_URL: url(["redis", "rediss"]).optional(),
  /** AUTH password for REDIS_URL when the URL carries none (read from the secret store at start-up when deployed). */
  REDIS_PASSWORD: z.string().min(1).optional(),
  /** PEM CA bundle for a Redis whose TLS certificate is not signed by a public CA (Memorystore). */
  REDIS_TLS_CA: z
    .string()
    .includes("BEGIN CERTIFICATE", { message: "must be a PEM certificate" })
    .optional(),
  AGENT_API_KEYS: apiKeys.optional(),
  /**
   * Operators' keys for /v1/admin (local runs, tests): `name:key,...` or bare keys. Admin keys can
   * also be kept in Postgres (`admin_keys`, hashes only). Keep them apart from AGENT_API_KEYS.
   */
  ADMIN_API_KEYS: adminKeys.optional(),
  // operator console sign-in (OIDC, console/oidc.ts): all of ISSUER, CLIENT_ID and ADMINS, or none
  /** The OIDC provider's issuer URL (its /.well-known/openid-configuration is read at first sign-in). */
  OIDC_ISSUER: issuerUrl.optional(),
  /** The client id registered with the provider (the ID token's audience). */
  OIDC_CLIENT_ID: z.string().min(1).max(512).optional(),
  /** A confidential client's secret; without one the service is a public client (PKCE, always used). */
  OIDC_CLIENT_SECRET: z.string().min(1).max(4096).optional(),
  /** Who may administer: comma-separated e-mail addresses and group:<name> entries. */
  OIDC_ADMINS: oidcAdmins.optional(),
  /**
   * The redirect URL registered with the provider. Default: the request's origin and
   * /console/oidc/callback; set it behind a proxy that changes the scheme or host.
   */
  OIDC_REDIRECT_URL: url(["http", "https"]).optional(),
  /** How long a console session from an OIDC sign-in lasts. */
  OIDC_SESSION_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(300)
    .max(7 * 86_400)
    .default(8 * 3600),
  CACHE_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .max(30 * 24 * 3600)
    .default(3600),
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  /** Log prompt and completion text. Off by default: prompts can hold personal data. */
  LOG_PROMPTS: bool.default(false),
  /** Largest accepted request body, in bytes. */
  MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .default(32 * 1024 * 1024),
  /** A client must send a request's headers within this long (Node's headersTimeout). */
  HTTP_HEADERS_TIMEOUT_MS: z.coerce.number().int().min(1000).max(600_000).default(10_000),
  /**
   * A client must send its whole request, headers and body, within this long, or it gets 408
   * (Node's requestTimeout; the response, a stream say, is not bounded by it).
   */
  HTTP_BODY_TIMEOUT_MS: z.coerce.number().int().min(1000).max(3_600_000).default(30_000),
  /** An idle keep-alive connection is closed after this long (above load balancers' 60 s). */
  HTTP_KEEP_ALIVE_TIMEOUT_MS: z.coerce.number().int().min(1000).max(3_600_000).default(65_000),
  /**
   * Most requests one user (all of their keys) may have in flight on one replica; more are 429.
   * 0: no limit.
   */
  MAX_CONCURRENT_REQUESTS_PER_USER: z.coerce.number().int().min(0).max(100_000).default(64),
  /**
   * Admission under overload (overload.ts): new API requests get 503 overloaded_error with
   * retry-after while the event loop's smoothed lag is above this many ms and at least
   * OVERLOAD_MIN_IN_FLIGHT requests are in flight on the process. 0: off.
   */
  OVERLOAD_LAG_MS: z.coerce.number().int().min(0).max(60_000).default(500),
  OVERLOAD_MIN_IN_FLIGHT: z.coerce.number().int().min(1).max(1_000_000).default(64),
  /**
   * Admission under overload, second signal (overload.ts, Sojourn): new API requests get 503 while
   * even the quickest request of each half second waited more than this many ms in the process
   * before its model call (a standing queue), with OVERLOAD_MIN_IN_FLIGHT in flight. 0 (the
   * default): off. Measured at 100 ms (npm run bench, 2026-12-06): it refused 1,106 of 13,400
   * requests of the x100 spike and lowered the sustained JSON rate from 1,000 to 845 req/s, while
   * 1,024 streams still stalled: opt in where refusing early is worth those refusals.
   */
  OVERLOAD_SOJOURN_MS: z.coerce.number().int().min(0).max(60_000).default(0),
  /**
   * Most streams (SSE responses) one process relays at once (overload.ts, StreamGate); the next
   * gets 503 overloaded_error with retry-after. Past its capacity every stream a process holds
   * stalls together, and the lag notices only once they are in. The default is what one process
   * relayed without a stall on a vCPU of the benchmark's VM (npm run bench -- --only streams,
   * 2026-12-06): raise it on faster cores, lower it where JSON traffic shares the process. 0: off.
   */
  OVERLOAD_MAX_STREAMS: z.coerce.number().int().min(0).max(1_000_000).default(384),
  /**
   * While the event loop's mean lag over 250 ms is above this many ms, the stream limit drops
   * below the streams open (to 0.8x them, at most once per 250 ms and again only once they are
   * back within it, never under OVERLOAD_MIN_IN_FLIGHT); under half of it, it climbs back to
   * OVERLOAD_MAX_STREAMS while streams ask for places.
   * 0: the ceiling alone.
   */
  OVERLOAD_STREAM_LAG_MS: z.coerce.number().int().min(0).max(60_000).default(100),
  /**
   * Descriptors of the listening socket the event loop watches (app/entrypoints/accept.ts). Node
   * accepts one connection per descriptor per turn of its loop, so a busy process took new
   * connections at tens a second and they waited in the kernel's queue for seconds. 1: the
   * socket's own descriptor alone.
   */
  LISTEN_ACCEPTORS: z.coerce.number().int().min(1).max(256).default(16),
  /**
   * A stream the client has not read any of for this long is ended (its usage settled): the
   * service writes only as fast as the client reads, so the upstream is not read meanwhile.
   */
  STREAM_STALL_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(30_000),
  /** How long SIGTERM waits for in-flight requests and streams before closing. */
  SHUTDOWN_GRACE_MS: z.coerce
    .number()
    .int()
    .min(0)
    .max(600_000)
    .default(SERVICE_CONTRACT.drain.graceMs),
  /** Default model when a request or session names none. */
  DEFAULT_MODEL: z.string().min(1).default("claude-sonnet-4-6"),
  /** Upper bound on tool-use iterations in one agent turn. */
  AGENT_MAX_TOOL_ITERATIONS: z.coerce.number().int().min(1).max(50).default(8),
  // rate limits and resilience
  /** Requests per minute per user, shared by all replicas through Redis. 0 turns the limit off. */
  RATE_LIMIT_RPM: z.coerce.number().int().min(0).max(10_000_000).default(600),
  /**
   * Tokens per minute per user (input + cache writes + output). A request reserves its estimated
   * input plus max_tokens up front; the difference is refunded or charged when it ends. 0: off.
   */
  RATE_LIMIT_TPM: z.coerce.number().int().min(0).max(1_000_000_000).default(1_000_000),
  /**
   * While Redis is unreachable each replica enforces the limits in memory with this share of
   * them: 1 / (replicas) keeps the total strict, 1 lets each replica allow the full limit.
   */
  RATE_LIMIT_DEGRADED_SHARE: z.coerce.number().gt(0).max(1).default(1),
  /** Overall time budget of one model call across retries, waits and fallbacks (streams: to the first event). */
  UPSTREAM_DEADLINE_MS: z.coerce.number().int().min(100).max(900_000).default(180_000),
  /** Upstream attempts per request, retries and fallback models included. 1 disables retries. */
  UPSTREAM_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(10).default(4),
  /** Serve from the next model of the tier's chain (models.json `fallbacks`) while a model fails or cools down. */
  MODEL_FALLBACK: bool.default(true),
  /** Circuit breaker: failure percentage over the window that opens a model's breaker. */
  BREAKER_ERROR_PERCENT: z.coerce.number().int().min(1).max(100).default(50),
  /** Circuit breaker: calls within the window before the failure percentage counts. */
  BREAKER_MIN_CALLS: z.coerce.number().int().min(1).max(10_000).default(10),
  /** Circuit breaker: length of the rolling window. */
  BREAKER_WINDOW_MS: z.coerce.number().int().min(1000).max(600_000).default(30_000),
  /** Circuit breaker: time open before one half-open probe is let through. */
  BREAKER_OPEN_MS: z.coerce.number().int().min(100).max(600_000).default(30_000),
  /** How long a response is replayed for a repeated Idempotency-Key. */
  IDEMPOTENCY_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(60)
    .max(7 * 86_400)
    .default(86_400),
  // budgets
  /** BUDGET_REQUEST_USD, BUDGET_SESSION_USD, ...: a default limit in USD per kind (budget/kinds.ts). Unset: no limit. */
  ...budgetEnvShape,
  /**
   * Near the edge of a budget, max_tokens is capped to what remains (header
   * x-agent-max-tokens-capped) rather than the request refused, but not below this many output
   * tokens (or the request's own max_tokens, if smaller): below it the request is refused.
   */
  BUDGET_MIN_OUTPUT_TOKENS: z.coerce.number().int().min(1).max(200_000).default(64),
  /** A reservation never settled (crashed replica) is released after this long: keep it above the longest request. */
  BUDGET_RESERVATION_TTL_SECONDS: z.coerce.number().int().min(30).max(86_400).default(900),
  /**
   * While Redis is unreachable each replica enforces budgets alone, allowed this share of what
   * remained of each budget. 1 / (most replicas) keeps the limits strict; larger keeps more traffic.
   */
  BUDGET_DEGRADED_SHARE: z.coerce.number().gt(0).max(1).default(0.25),
  /** Budget alerts (50 %, 80 %, 100 %) are POSTed here as JSON when set. */
  ALERT_WEBHOOK_URL: url(["http", "https"]).optional(),
  // routing, batches, telemetry
  /**
   * Most estimated tokens of a session's history sent with a turn; older turns are dropped beyond
   * it (whole turns, in steps of a quarter of the budget so the prompt cache stays warm). 0: never trim.
   */
  SESSION_HISTORY_TOKEN_BUDGET: z.coerce.number().int().min(0).max(10_000_000).default(100_000),
  /** Place prompt-cache breakpoints automatically (tools, system prompt, conversation prefix). */
  PROMPT_CACHING: bool.default(true),
  /** Run the batch poller in this process (submitted batches are fetched when they end; resumes after restarts). */
  BATCH_POLLER_ENABLED: bool.default(true),
  /** How often the poller looks for batches that are due (upstream status checks, local work). */
  BATCH_POLL_INTERVAL_MS: z.coerce.number().int().min(50).max(3_600_000).default(30_000),
  /** Most requests in one batch (the Message Batches API allows 100,000; MAX_BODY_BYTES also applies). */
  BATCH_MAX_REQUESTS: z.coerce.number().int().min(1).max(100_000).default(10_000),
  /** Serve Prometheus metrics on GET /metrics of METRICS_PORT (no API key: keep that port private). */
  METRICS_ENABLED: bool.default(true),
  /**
   * The port /metrics is served on, apart from PORT (which never serves it): expose it to the
   * scraper only, never publicly. 9464 is the OpenTelemetry Prometheus exporter's usual port.
   */
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(SERVICE_CONTRACT.metricsPort),
  /** Listen address of METRICS_PORT (127.0.0.1 keeps it to the host's own scraper). */
  METRICS_HOST: z.string().min(1).default("0.0.0.0"),
  /** Standard OpenTelemetry variables; OTLP export is on when an endpoint is set (telemetry/otel.ts). */
  OTEL_SDK_DISABLED: bool.default(false),
  OTEL_SERVICE_NAME: z.string().min(1).default("agent-service"),
  OTEL_EXPORTER_OTLP_ENDPOINT: url(["http", "https"]).optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: url(["http", "https"]).optional(),
  OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: url(["http", "https"]).optional(),
  /** "none" turns trace export off; anything else (default "otlp") keeps it. */
  OTEL_TRACES_EXPORTER: z.string().min(1).optional(),
  /** "none" turns OTLP metric export off (/metrics is METRICS_ENABLED). */
  OTEL_METRICS_EXPORTER: z.string().min(1).optional(),
  /** Milliseconds between OTLP metric exports. */
  OTEL_METRIC_EXPORT_INTERVAL: z.coerce.number().int().min(1000).max(3_600_000).default(60_000),
});

export type AppConfig = z.infer<typeof envSchema>;

export class ConfigError extends Error {
  constructor(public readonly issues: Array<{ variable: string; message: string }>) {
    super(
      "Invalid configuration:\n" + issues.map((i) => `  ${i.variable}: ${i.message}`).join("\n"),
    );
    this.name = "ConfigError";
  }
}

/** Parse the environment. Empty strings count as unset, as shells and manifests often leave them. */
/** The variables the service reads: what deployment targets may set (checked in test/infra). */
export type AppEnvName = keyof z.input<typeof envSchema>;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const input: Record<string, string> = {};
  for (const key of Object.keys(envSchema.shape)) {
    const v = env[key];
    if (v !== undefined && v !== "") input[key] = v;
  }
  const parsed = envSchema
    .refine((c) => !c.METRICS_ENABLED || c.PORT === 0 || c.METRICS_PORT !== c.PORT, {
      path: ["METRICS_PORT"],
      message: "must differ from PORT: /metrics is never served on the public port",
    })
    .refine((c) => c.HTTP_HEADERS_TIMEOUT_MS <= c.HTTP_BODY_TIMEOUT_MS, {
      path: ["HTTP_HEADERS_TIMEOUT_MS"],
      message: "must not exceed HTTP_BODY_TIMEOUT_MS (the whole request, headers included)",
    })
    .superRefine((c, ctx) => {
      const need = (variable: "OIDC_ISSUER" | "OIDC_CLIENT_ID" | "OIDC_ADMINS", why: string) =>
        ctx.addIssue({ code: "custom", path: [variable], message: why });
      if (c.OIDC_ISSUER) {
        if (!c.OIDC_CLIENT_ID)
          need("OIDC_CLIENT_ID", "is required with OIDC_ISSUER: the client id registered there");
        if (!c.OIDC_ADMINS)
          need(
            "OIDC_ADMINS",
            "is required with OIDC_ISSUER: the e-mail addresses and group:<name> entries who may administer",
          );
      } else if (c.OIDC_CLIENT_ID || c.OIDC_CLIENT_SECRET || c.OIDC_ADMINS || c.OIDC_REDIRECT_URL) {
        need("OIDC_ISSUER", "is required when any other OIDC_ variable is set");
      }
    })
    .safeParse(input);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => ({
        variable: String(issue.path[0] ?? "environment"),
        message: issue.message,
      })),
    );
  }
  return parsed.data;
}
