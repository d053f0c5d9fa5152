/**
 * The service's whole configuration: environment variables, validated once at boot.
 * A bad value stops start-up with a message naming the variable and what to change.
 */
import { z } from "zod";

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

const apiKeys = z
  .string()
  .transform((raw, ctx) => {
    const pairs: Array<{ user: string; key: string }> = [];
    for (const part of raw.split(",").map((p) => p.trim()).filter(Boolean)) {
      const i = part.indexOf(":");
      const user = i > 0 ? part.slice(0, i).trim() : "";
      const key = i > 0 ? part.slice(i + 1).trim() : "";
      if (!/^[A-Za-z0-9._@-]{1,128}$/.test(user) || key.length < 8) {
        ctx.addIssue({
          code: "custom",
          message: "each entry must be user:key with a user of letters, digits, . _ @ - and a key of at least 8 characters",
        });
        return z.NEVER;
      }
      pairs.push({ user, key });
    }
    return pairs;
  });

export const envSchema = z.object({
  NODE_ENV: z.enum(["development", "test", "production"]).default("development"),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().min(1).default("0.0.0.0"),
  ANTHROPIC_API_KEY: z.string().min(1).optional(),
  ANTHROPIC_BASE_URL: url(["http", "https"]).optional(),
  /** Upstream request timeout, per attempt. */
  UPSTREAM_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(120_000),
  DATABASE_URL: url(["postgres", "postgresql"]).optional(),
  /** Password for DATABASE_URL when the URL carries none (deployed targets read it from the secret store at start-up). */
  DATABASE_PASSWORD: z.string().min(1).optional(),
  DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(500).default(10),
  DATA_DIR: z.string().min(1).default(".data"),
  REDIS_URL: url(["redis", "rediss"]).optional(),
  /** AUTH password for REDIS_URL when the URL carries none (read from the secret store at start-up when deployed). */
  REDIS_PASSWORD: z.string().min(1).optional(),
  /** PEM CA bundle for a Redis whose TLS certificate is not signed by a public CA (Memorystore). */
  REDIS_TLS_CA: z.string().includes("BEGIN CERTIFICATE", { message: "must be a PEM certificate" }).optional(),
  AGENT_API_KEYS: apiKeys.optional(),
  CACHE_TTL_SECONDS: z.coerce.number().int().min(0).max(30 * 24 * 3600).default(3600),
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  /** Log prompt and completion text. Off by default: prompts can hold personal data. */
  LOG_PROMPTS: bool.default(false),
  /** Largest accepted request body, in bytes. */
  MAX_BODY_BYTES: z.coerce.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
  /** How long SIGTERM waits for in-flight requests and streams before closing. */
  SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).max(600_000).default(25_000),
  /** Default model when a request or session names none. */
  DEFAULT_MODEL: z.string().min(1).default("claude-sonnet-4-6"),
  /** Upper bound on tool-use iterations in one agent turn. */
  AGENT_MAX_TOOL_ITERATIONS: z.coerce.number().int().min(1).max(50).default(8),
  // budgets
  /** Most one request may cost, in USD; max_tokens is capped to fit. Unset: no per-request limit. */
  BUDGET_REQUEST_USD: z.coerce.number().positive().optional(),
  /** Most one session may cost over its whole life, in USD (never resets). Unset: no limit. */
  BUDGET_SESSION_USD: z.coerce.number().positive().optional(),
  /** Most one user may spend per UTC day, in USD; per-user overrides live in Postgres. Unset: no limit. */
  BUDGET_USER_DAILY_USD: z.coerce.number().positive().optional(),
  /** Most the whole deployment may spend per UTC day, in USD. Unset: no limit. */
  BUDGET_DAILY_USD: z.coerce.number().positive().optional(),
  /** A reservation never settled (crashed replica) is released after this long: keep it above the longest request. */
  BUDGET_RESERVATION_TTL_SECONDS: z.coerce.number().int().min(30).max(86_400).default(900),
  /**
   * While Redis is unreachable each replica enforces budgets alone, allowed this share of what
   * remained of each budget. 1 / (most replicas) keeps the limits strict; larger keeps more traffic.
   */
  BUDGET_DEGRADED_SHARE: z.coerce.number().gt(0).max(1).default(0.25),
  /** Budget alerts (50 %, 80 %, 100 %) are POSTed here as JSON when set. */
  ALERT_WEBHOOK_URL: url(["http", "https"]).optional(),
});

export type AppConfig = z.infer<typeof envSchema>;

export class ConfigError extends Error {
  constructor(public readonly issues: Array<{ variable: string; message: string }>) {
    super(
      "Invalid configuration:\n" +
        issues.map((i) => `  ${i.variable}: ${i.message}`).join("\n"),
    );
    this.name = "ConfigError";
  }
}

/** Parse the environment. Empty strings count as unset, as shells and manifests often leave them. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const input: Record<string, string> = {};
  for (const key of Object.keys(envSchema.shape)) {
    const v = env[key];
    if (v !== undefined && v !== "") input[key] = v;
  }
  const parsed = envSchema.safeParse(input);
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
