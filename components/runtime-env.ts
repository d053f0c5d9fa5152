/**
 * The agent service's environment, derived from a data plane's contract: the one place that
 * knows how the app (app/src/config.ts, app/src/secrets.ts) is configured, shared by every target.
 *
 * No secret value appears here. Secrets travel as references (`<NAME>_SECRET`) that the service
 * resolves at start-up with its own least-privilege identity; targets with a native mechanism
 * (Cloud Run secret env, Kubernetes secret volumes) may use `secretBindings` instead.
 */
import * as pulumi from "@pulumi/pulumi";
import type { Cloud, DataPlaneOutputs, SecretRef } from "./contracts";
import { SERVICE_CONTRACT } from "../app/src/contract";
import type { AppEnvName } from "../app/src/config";

export interface ServiceEnvOptions {
  /** @default SERVICE_CONTRACT.port */
  port?: number;
  /** @default "info" */
  logLevel?: string;
  /** Extra non-secret variables (OTEL endpoint, budgets, ...). Validated: no secret-looking names. */
  extra?: Record<string, pulumi.Input<string>>;
}

/** A secret the service needs, by the variable it ends up in. */
export interface SecretBinding<C extends Cloud = Cloud> {
  variable: "ANTHROPIC_API_KEY" | "DATABASE_PASSWORD" | "REDIS_PASSWORD";
  secret: SecretRef<C>;
}

export function secretBindings<C extends Cloud>(
  dp: Pick<DataPlaneOutputs<C>, "anthropicKey" | "postgres" | "redis">,
): SecretBinding<C>[] {
  return [
    ...(dp.anthropicKey
      ? [{ variable: "ANTHROPIC_API_KEY" as const, secret: dp.anthropicKey }]
      : []),
    { variable: "DATABASE_PASSWORD", secret: dp.postgres.passwordSecret },
    { variable: "REDIS_PASSWORD", secret: dp.redis.authSecret },
  ];
}

/** The reference format app/src/secrets.ts resolves: `aws-sm://<arn>` or `gcp-sm://<resource>/versions/<v>`. */
export function secretReference(ref: SecretRef): pulumi.Output<string> {
  return ref.store === "aws-secretsmanager"
    ? pulumi.interpolate`aws-sm://${ref.id}`
    : pulumi.interpolate`gcp-sm://${ref.id}/versions/${ref.version}`;
}

const SECRETISH = /(KEY|TOKEN|PASSWORD|SECRET|CREDENTIAL)(?!_SECRET$)/i;

/** Plain (non-secret) variables: endpoints, ports, settings. */
export function plainServiceEnv(
  dp: Pick<DataPlaneOutputs, "postgres" | "redis">,
  options: ServiceEnvOptions = {},
): Record<string, pulumi.Output<string>> {
  for (const name of Object.keys(options.extra ?? {})) {
    if (SECRETISH.test(name) && !name.startsWith("OTEL_")) {
      throw new Error(
        `extra environment variable ${name} looks like a secret: pass it through the secret store instead`,
      );
    }
  }
  const pg = dp.postgres;
  // libpq semantics for sslmode=require (encrypt; the server is reached only inside the private network).
  const tls = pg.requireTls ? "?sslmode=require&uselibpqcompat=true" : "";
  // Typed by the app's own config schema: a name the service does not read does not compile.
  const env: { [K in AppEnvName]?: pulumi.Output<string> } & Record<string, pulumi.Output<string>> =
    {
      NODE_ENV: pulumi.output("production"),
      PORT: pulumi.output(String(options.port ?? SERVICE_CONTRACT.port)),
      // Metrics stay on the host: no target publishes the metrics port, and a sidecar may scrape it.
      METRICS_HOST: pulumi.output("127.0.0.1"),
      LOG_LEVEL: pulumi.output(options.logLevel ?? "info"),
      DATABASE_URL: pulumi.interpolate`postgres://${pg.user}@${pg.host}:${pg.port}/${pg.database}${tls}`,
      REDIS_URL: pulumi.interpolate`${dp.redis.tls ? "rediss" : "redis"}://${dp.redis.host}:${dp.redis.port}`,
    };
  if (dp.redis.caCertificate) env.REDIS_TLS_CA = dp.redis.caCertificate;
  for (const [k, v] of Object.entries(options.extra ?? {})) env[k] = pulumi.output(v);
  return env;
}

/**
 * The full environment for targets that let the service read its own secrets at start-up
 * (Lambda, EKS with IRSA, VMs): plain variables plus `<NAME>_SECRET` references.
 */
export function serviceEnv(
  dp: DataPlaneOutputs,
  options: ServiceEnvOptions = {},
): Record<string, pulumi.Output<string>> {
  const env = plainServiceEnv(dp, options);
  for (const b of secretBindings(dp)) env[`${b.variable}_SECRET`] = secretReference(b.secret);
  return env;
}
