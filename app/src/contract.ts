/**
 * The service's contract with whatever runs it, stated once: the port it serves, its probes, how
 * long it drains, the metrics port. The app reads these as its defaults; the deployment
 * components (components/) import them, and the names and types of the variables it reads from
 * the config schema (`AppEnvName`, type-only), so the two cannot drift. Nothing here imports
 * Pulumi or anything else heavy: it is plain data.
 */
export const SERVICE_CONTRACT = {
  /** The HTTP port (`PORT`). */
  port: 8080,
  /** Prometheus metrics (`METRICS_PORT`): never exposed by a deployment target. */
  metricsPort: 9464,
  probes: {
    /** Liveness: touches no dependency. */
    liveness: "/health",
    /** Readiness: 503 when Postgres (or Redis) does not answer, and while draining. */
    readiness: "/ready",
  },
  /** Variables an entrypoint reads before the config schema (app/entrypoints/lambda.ts). */
  entrypointEnv: ["LAMBDA_INVOKE_MODE"],
  drain: {
    /** After SIGTERM, in-flight requests and streams get this long (`SHUTDOWN_GRACE_MS`). */
    graceMs: 25_000,
    /** Then what was cut is settled and written, for at most this long, before the process exits. */
    settleMs: 5_000,
  },
} as const;

/**
 * The Lambda zip's entry points (scripts/build.mjs builds both into it): the default one carries
 * every upstream but Bedrock, whose SDK would add ~0.5 MiB to every cold start; a Bedrock stack
 * runs the other.
 */
export const LAMBDA_HANDLERS = {
  default: "index.handler",
  bedrock: "bedrock.handler",
} as const;

/** The Lambda handler that serves an upstream (`LLM_UPSTREAM`). */
export function lambdaHandler(upstream: string | undefined): string {
  return upstream === "bedrock" ? LAMBDA_HANDLERS.bedrock : LAMBDA_HANDLERS.default;
}

/** The longest a stop takes after SIGTERM: what a platform's kill timeout must exceed. */
export function stopSeconds(graceMs: number = SERVICE_CONTRACT.drain.graceMs): number {
  return Math.ceil((graceMs + SERVICE_CONTRACT.drain.settleMs) / 1000);
}
