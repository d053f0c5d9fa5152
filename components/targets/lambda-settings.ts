/**
 * The Lambda target's arguments and everything pure about them: resolved settings and their
 * problems, the code location, the environment and its secret guard, the runtime policy and the
 * alarm thresholds. The component is in lambda.ts.
 */
import * as pulumi from "@pulumi/pulumi";
import type { DataPlaneOutputs, ZipArtifact } from "../contracts";
import { environmentProfile } from "../environment";
import { serviceEnv } from "../runtime-env";
import type { PolicyDocument } from "../aws/secrets";
import { type ServiceAlarmThresholds } from "../aws/service-alarms";
import { checkLogRetention } from "../aws/checks";
import { type ServiceEnvArgs } from "./service";
import { attempt, problemsOf, secretsProblem, natProblem } from "./problems";

import type { RolloutGates, RolloutStep } from "../release/rollout-plan";
import type { UpstreamKind } from "../upstream";
import { targetScaling, type LambdaScaling } from "./scaling";

/**
 * How clients reach the function.
 * - `function-url`: a Lambda Function URL in RESPONSE_STREAM mode, so SSE replies arrive token by
 *   token, for up to 15 minutes. No per-request charge beyond Lambda's own.
 * - `http-api`: an API Gateway HTTP API with stage throttling, for rate limits at the edge. It
 *   buffers the whole reply (no streaming) and gives up after 30 seconds; $1 per million requests.
 */
export type LambdaExposure = "function-url" | "http-api";
export type LambdaInvokeMode = "RESPONSE_STREAM" | "BUFFERED";

export interface LambdaTargetArgs extends ServiceEnvArgs {
  /** The AWS data plane's contract: stores, secrets, private network, alarm topic. */
  dataPlane: DataPlaneOutputs<"aws">;
  /** The `lambda-zip` artifact: a local `dist/lambda.zip` or `s3://bucket/key`, with its SHA-256. */
  artifact: ZipArtifact;
  /** @default "function-url" */
  exposure?: LambdaExposure;
  /** Memory in MB (CPU scales with it). @default targetScaling(env).lambda.memoryMb (dev 512, prod 1024) */
  memoryMb?: number;
  /**
   * Function timeout in seconds: the longest a streamed reply may run.
   * @default targetScaling(env).lambda.timeoutSeconds (300); at most 30 with `http-api`
   */
  timeoutSeconds?: number;
  /** Cap on concurrent sandboxes (cost and Postgres connections). @default dev 10, staging 50, prod 200 */
  reservedConcurrency?: number;
  /** Warm sandboxes on the `live` alias; 0 creates no config. @default dev 0, staging 0, prod 2 */
  provisionedConcurrency?: number;
  /**
   * Remaining Lambda scaling fields (database pool size, HTTP API throttling).
   * @default targetScaling(env).lambda
   */
  scaling?: Partial<
    Pick<LambdaScaling, "databasePoolMax" | "throttleBurst" | "throttleRatePerSecond">
  >;
  /**
   * Service alarm thresholds.
   * @default ServiceAlarms defaults, with p99LatencyMs at 80 % of the timeout
   */
  alarmThresholds?: ServiceAlarmThresholds;
  /**
   * Progressive delivery of each new version on the `live` alias through CodeDeploy (canary or
   * linear steps), stopped and rolled back by the gate alarms. Needs the data plane's alarm topic.
   * @default no steps: the alias moves to the new version at once
   */
  rollout?: LambdaRollout;
  /**
   * Who serves the model calls (`LLM_UPSTREAM`, set through extraEnv): picks the zip's build
   * (app/src/contract.ts LAMBDA_HANDLERS; Bedrock has a build of its own).
   * @default "anthropic"
   */
  upstream?: UpstreamKind;
}

export interface LambdaRollout {
  steps: RolloutStep[];
  /** @default defaultGates with the p99 alarm's threshold */
  gates?: RolloutGates;
  /** Runs the rollout driver. @default the repository's (`DRIVER_COMMAND`) */
  driverCommand?: string;
}

/** Everything the constructor needs, resolved from args and defaults. Pure. */
export interface LambdaSettings {
  exposure: LambdaExposure;
  invokeMode: LambdaInvokeMode;
  scaling: LambdaScaling;
  logRetentionDays: number;
  /** Keep the log group when the stack is destroyed (prod). */
  retainLogs: boolean;
}

/** API Gateway HTTP APIs wait at most 30 s for an integration. */
export const HTTP_API_MAX_TIMEOUT_SECONDS = 30;

export const LAMBDA_RUNTIME = "nodejs22.x";
export const LAMBDA_ALIAS = "live";

/** The handler mode the app must run in for an exposure (app/entrypoints/lambda.ts reads it). */
export function lambdaInvokeMode(exposure: LambdaExposure): LambdaInvokeMode {
  return exposure === "function-url" ? "RESPONSE_STREAM" : "BUFFERED";
}

/**
 * Resolves settings and lists every problem with the args, each saying what to change. Returns
 * `settings` only when there are no problems.
 */
export function resolveLambdaSettings(args: LambdaTargetArgs): {
  settings?: LambdaSettings;
  problems: string[];
} {
  const dp = args.dataPlane;
  const exposure = args.exposure ?? "function-url";
  const problems = problemsOf(
    natProblem(dp.network.hasNat, "the function could not reach the LLM API or Secrets Manager"),
    exposure === "function-url" || exposure === "http-api"
      ? undefined
      : `exposure "${String(exposure)}" is unknown: use "function-url" or "http-api".`,
    secretsProblem(
      dp.secrets,
      "the function must be granted the secrets it reads (Anthropic key, database and Redis passwords)",
    ),
    checkLogRetention(
      environmentProfile(args.dataPlane.environment).logRetentionDays,
      "profile.logRetentionDays",
    ),
  );

  const scaling: LambdaScaling | undefined = attempt(problems, () => {
    const defaults = targetScaling(
      environmentProfile(args.dataPlane.environment).environment,
    ).lambda;
    const timeoutSeconds =
      args.timeoutSeconds ??
      (exposure === "http-api"
        ? Math.min(defaults.timeoutSeconds, HTTP_API_MAX_TIMEOUT_SECONDS)
        : undefined);
    return targetScaling(environmentProfile(args.dataPlane.environment).environment, {
      lambda: {
        ...args.scaling,
        memoryMb: args.memoryMb,
        timeoutSeconds,
        reservedConcurrency: args.reservedConcurrency,
        provisionedConcurrency: args.provisionedConcurrency,
      },
    }).lambda;
  });
  if (scaling && exposure === "http-api" && scaling.timeoutSeconds > HTTP_API_MAX_TIMEOUT_SECONDS) {
    problems.push(
      `timeoutSeconds ${scaling.timeoutSeconds} exceeds the ${HTTP_API_MAX_TIMEOUT_SECONDS} s an HTTP API waits for Lambda: lower it to ${HTTP_API_MAX_TIMEOUT_SECONDS}, or use exposure "function-url" (streaming, up to 900 s).`,
    );
  }
  const t = args.alarmThresholds ?? {};
  for (const [field, value] of Object.entries(t)) {
    const max = field === "errorRatePercent" ? 100 : Infinity;
    if (value !== undefined && !(value > 0 && value < max)) {
      problems.push(
        `alarmThresholds.${field} is ${value}: use a positive number${max === 100 ? " below 100" : ""}.`,
      );
    }
  }
  // The shared builder refuses secret-looking extra names; ask it now, before creating anything.
  attempt(
    problems,
    () => serviceEnv(dp, { extra: args.extraEnv }),
    (m) => `extraEnv: ${m}.`,
  );
  for (const name of Object.keys(args.extraEnv ?? {})) {
    if (name === "LAMBDA_INVOKE_MODE" || name === "DATABASE_POOL_MAX") {
      problems.push(
        `extraEnv sets ${name}, which the target derives: use exposure / scaling.databasePoolMax instead.`,
      );
    }
  }
  if (problems.length > 0 || !scaling) return { problems };
  return {
    problems,
    settings: {
      exposure,
      invokeMode: lambdaInvokeMode(exposure),
      scaling,
      logRetentionDays: environmentProfile(args.dataPlane.environment).logRetentionDays,
      retainLogs: environmentProfile(args.dataPlane.environment).protectData,
    },
  };
}

/** Where the bundle comes from: a local zip (uploaded with the function) or an object in S3. */
export type LambdaCode =
  { kind: "file"; path: string } | { kind: "s3"; bucket: string; key: string };

export function parseLambdaCodeLocation(location: string): LambdaCode {
  if (location.startsWith("s3://")) {
    const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\/(.+)$/.exec(location);
    if (!m)
      throw new Error(
        `artifact location "${location}" is not s3://<bucket>/<key>: fix the bucket name or add the object key.`,
      );
    return { kind: "s3", bucket: m[1]!, key: m[2]! };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location)) {
    throw new Error(`artifact location "${location}" must be a local path or s3://bucket/key.`);
  }
  if (location.trim() === "")
    throw new Error("artifact location is empty: pass the bundle path or s3://bucket/key.");
  // A zip or a bundle directory (LambdaBundle passes either): Pulumi uploads archives as a zip.
  return { kind: "file", path: location };
}

/**
 * The function's environment: the shared service environment (`<NAME>_SECRET` references, never
 * values) plus the Lambda handler's mode and a small pool, since every sandbox holds its own.
 */
export function lambdaEnvironment(
  dp: DataPlaneOutputs,
  options: {
    invokeMode: LambdaInvokeMode;
    databasePoolMax: number;
    logLevel?: string;
    extraEnv?: Record<string, pulumi.Input<string>>;
  },
): Record<string, pulumi.Output<string>> {
  return serviceEnv(dp, {
    logLevel: options.logLevel,
    extra: {
      ...options.extraEnv,
      LAMBDA_INVOKE_MODE: options.invokeMode,
      DATABASE_POOL_MAX: String(options.databasePoolMax),
    },
  });
}

const SECRET_NAME = /(KEY|TOKEN|PASSWORD|SECRET|CREDENTIAL)/i;
const SECRET_REFERENCE = /^(aws-sm|gcp-sm):\/\/\S+$/;

/**
 * Why an environment would put a secret in plain sight (Lambda configuration is readable by
 * anyone with `lambda:GetFunctionConfiguration`), or [] when it only holds references.
 * `anySecret` is whether any value was a Pulumi secret: a secret has no business in plain env.
 */
export function plaintextSecretProblems(env: Record<string, string>, anySecret = false): string[] {
  const problems: string[] = [];
  if (anySecret) {
    problems.push(
      "an environment value is a Pulumi secret: pass secrets as <NAME>_SECRET references to the secret store, never as values.",
    );
  }
  for (const [name, value] of Object.entries(env)) {
    if (name.endsWith("_SECRET")) {
      if (!SECRET_REFERENCE.test(value))
        problems.push(`${name} must be an aws-sm:// or gcp-sm:// reference, not a value.`);
    } else if (SECRET_NAME.test(name)) {
      problems.push(
        `${name} looks like a secret: pass it as ${name}_SECRET (a secret store reference) instead.`,
      );
    }
    if (/:\/\/[^/@\s]*:[^/@\s]*@/.test(value))
      problems.push(`${name} embeds credentials in a URL: keep the password in the secret store.`);
    if (/sk-ant-[A-Za-z0-9_-]{8,}/.test(value))
      problems.push(`${name} holds what looks like an Anthropic API key.`);
  }
  return problems;
}

/**
 * The environment as one Output that fails the deployment rather than ship a plaintext secret:
 * checked once values (and their secretness) are known.
 */
export function guardedEnvironment(
  env: Record<string, pulumi.Output<string>>,
): pulumi.Output<Record<string, string>> {
  const all = pulumi.all(env);
  return pulumi.all([all, pulumi.isSecret(all)]).apply(([vars, secret]) => {
    const problems = plaintextSecretProblems(vars, secret);
    if (problems.length > 0)
      throw new Error(`Lambda environment would expose secrets: ${problems.join(" ")}`);
    return vars;
  });
}

/**
 * What the function's role may do besides reading secrets: write to its own log group (the
 * logs part of AWSLambdaBasicExecutionRole, scoped), manage its VPC network interfaces (the EC2
 * part of AWSLambdaVPCAccessExecutionRole: those actions take no resource-level permissions, hence
 * `*`), and send X-Ray segments (also unscoped by AWS design). The managed policies are not
 * attached because both grant `logs:*` actions on every log group in the account.
 */
export function lambdaRuntimePolicyDocument(logGroupArn: string): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "WriteOwnLogs",
        Effect: "Allow",
        // The log group is created by this component, so no logs:CreateLogGroup.
        Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
        Resource: [`${logGroupArn}:*`],
      },
      {
        Sid: "VpcNetworkInterfaces",
        Effect: "Allow",
        Action: [
          "ec2:CreateNetworkInterface",
          "ec2:DescribeNetworkInterfaces",
          "ec2:DescribeSubnets",
          "ec2:DeleteNetworkInterface",
          "ec2:AssignPrivateIpAddresses",
          "ec2:UnassignPrivateIpAddresses",
        ],
        Resource: ["*"],
      },
      {
        Sid: "XRayWrite",
        Effect: "Allow",
        Action: ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
        Resource: ["*"],
      },
    ],
  };
}

/** p99 duration alarm threshold: this fraction of the timeout, where streams are about to be cut. */
export const DURATION_ALARM_FRACTION = 0.8;

/**
 * The service alarms' thresholds for a function: the shared defaults, with p99 latency set near
 * the timeout unless given.
 */
export function lambdaAlarmThresholds(
  timeoutSeconds: number,
  thresholds: ServiceAlarmThresholds = {},
): ServiceAlarmThresholds {
  return {
    ...thresholds,
    p99LatencyMs:
      thresholds.p99LatencyMs ?? Math.round(timeoutSeconds * 1000 * DURATION_ALARM_FRACTION),
  };
}
