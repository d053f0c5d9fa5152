/**
 * The rollout driver: what `pulumi up` runs after a target's new release exists
 * (components/release/rollout-driver.ts), with the plan as JSON in AGENT_ROLLOUT_PLAN and the
 * deployer's cloud credentials:
 *
 *   AGENT_ROLLOUT_PLAN='{"kind":"cloud-run",...}' npx tsx infra/rollout/cli.ts
 *
 * It starts or follows the platform's rollout (CodeDeploy, instance refresh) or carries out the
 * canary itself (Cloud Run traffic, managed instance group versions), printing one timestamped
 * line per step or poll. Exit codes: 0 the release is fully rolled out (or was already), 1 it was
 * rolled back or did not roll out (the message says what serves now and why), 2 the plan is
 * missing or invalid.
 */
import * as z from "zod";
import {
  ROLLOUT_PLAN_ENV,
  rolloutProblems,
  type RolloutPlan,
} from "../../components/release/rollout-plan";
import type { AutoScalingClient } from "@aws-sdk/client-auto-scaling";
import {
  autoScalingClient,
  codeDeployClients,
  runCodeDeploy,
  runInstanceRefresh,
  type CodeDeployClients,
} from "./aws";
import { runCloudRun } from "./cloud-run";
import { defaultTokenProvider, GcpClient, type GcpBaseUrls, type TokenProvider } from "./gcp-http";
import { runMig } from "./mig";
import {
  errorMessage,
  RolloutFailed,
  systemClock,
  timestampedLog,
  type Clock,
  type Log,
  type RolloutOutcome,
} from "./runtime";

export const EXIT = { ok: 0, failed: 1, badPlan: 2 } as const;

const nonEmpty = z.string().min(1);
const step = z.object({ percent: z.number(), minutes: z.number() });
const gates = z
  .object({
    errorRatePercent: z.number().min(0).max(100),
    p99LatencyMs: z.number().positive(),
    minRequestsPerMinute: z.number().min(0),
    badMinutes: z.number().int().min(1),
    windowMinutes: z.number().int().min(1),
  })
  .refine((g) => g.badMinutes <= g.windowMinutes, {
    message: "badMinutes must not exceed windowMinutes (the gate could never fail)",
    path: ["badMinutes"],
  });

/** Checked with the same rules the stack config is (`rolloutProblems`). */
const steps = z.array(step).superRefine((value, ctx) => {
  for (const problem of rolloutProblems(value, "steps"))
    ctx.addIssue({ code: "custom", message: problem });
});

/** The plan's schema: the compiler checks that it parses into `RolloutPlan`. */
export const planSchema: z.ZodType<RolloutPlan> = z.discriminatedUnion("kind", [
  z.object({
    kind: z.literal("lambda-codedeploy"),
    region: nonEmpty,
    application: nonEmpty,
    deploymentGroup: nonEmpty,
    functionName: nonEmpty,
    alias: nonEmpty,
    targetVersion: nonEmpty,
  }),
  z.object({
    kind: z.literal("aws-instance-refresh"),
    region: nonEmpty,
    autoScalingGroupName: nonEmpty,
  }),
  z.object({
    kind: z.literal("cloud-run"),
    project: nonEmpty,
    region: nonEmpty,
    service: nonEmpty,
    steps,
    gates,
  }),
  z.object({
    kind: z.literal("gce-mig"),
    project: nonEmpty,
    region: nonEmpty,
    instanceGroupManager: nonEmpty,
    instanceTemplate: nonEmpty,
    urlMap: nonEmpty,
    steps,
    gates,
  }),
]);

/** A missing or invalid plan; the message names the variable. */
export class PlanError extends Error {
  override readonly name = "PlanError";
}

/** Reads the plan from the variable's value; throws `PlanError` saying what is wrong. */
export function parsePlan(raw: string | undefined): RolloutPlan {
  if (raw === undefined || raw.trim() === "") {
    throw new PlanError(
      `${ROLLOUT_PLAN_ENV} is not set: the rollout driver reads its plan (JSON) from it; pulumi up sets it (components/release/rollout-driver.ts).`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    throw new PlanError(`${ROLLOUT_PLAN_ENV} is not valid JSON: ${errorMessage(err)}`);
  }
  const parsed = planSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (i) => `${i.path.length ? i.path.join(".") : "(plan)"}: ${i.message}`,
    );
    throw new PlanError(`${ROLLOUT_PLAN_ENV} is not a valid rollout plan: ${problems.join("; ")}`);
  }
  return parsed.data;
}

/** Everything the driver talks to, injectable; what is left out is built from the plan. */
export interface DriverDeps {
  clock?: Clock;
  log?: Log;
  /** The AWS clients for the plan's region (tests pass mocked ones). */
  aws?: {
    codeDeploy?: (region: string) => CodeDeployClients;
    autoScaling?: (region: string) => AutoScalingClient;
  };
  gcp?: {
    tokens?: TokenProvider;
    baseUrls?: GcpBaseUrls;
    /** Polling interval for GCP operations and reconciliation. */
    pollMs?: number;
  };
  /** Polling interval for the AWS kinds. */
  awsPollMs?: number;
}

/** Carries out `plan`: resolves when rolled out, rejects with `RolloutFailed` when not. */
export async function runPlan(plan: RolloutPlan, deps: DriverDeps = {}): Promise<RolloutOutcome> {
  const clock = deps.clock ?? systemClock;
  const log = deps.log ?? timestampedLog(clock, (t) => process.stdout.write(t));
  const gcpClient = () =>
    new GcpClient({
      tokens: deps.gcp?.tokens ?? defaultTokenProvider(),
      clock,
      baseUrls: deps.gcp?.baseUrls,
    });
  switch (plan.kind) {
    case "lambda-codedeploy": {
      const clients = (deps.aws?.codeDeploy ?? codeDeployClients)(plan.region);
      return runCodeDeploy(plan, clients, { clock, log, pollMs: deps.awsPollMs });
    }
    case "aws-instance-refresh": {
      const autoScaling = (deps.aws?.autoScaling ?? autoScalingClient)(plan.region);
      return runInstanceRefresh(plan, autoScaling, { clock, log, pollMs: deps.awsPollMs });
    }
    case "cloud-run":
      return runCloudRun(plan, { client: gcpClient(), clock, log, pollMs: deps.gcp?.pollMs });
    case "gce-mig":
      return runMig(plan, { client: gcpClient(), clock, log, pollMs: deps.gcp?.pollMs });
  }
}

export interface MainIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const processIo: MainIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
};

/** The whole CLI: reads the plan from `env`, runs it, returns the exit code. */
export async function main(
  env: NodeJS.ProcessEnv = process.env,
  deps: DriverDeps = {},
  io: MainIo = processIo,
): Promise<number> {
  let plan: RolloutPlan;
  try {
    plan = parsePlan(env[ROLLOUT_PLAN_ENV]);
  } catch (err) {
    io.stderr(`rollout: ${errorMessage(err)}\n`);
    return EXIT.badPlan;
  }
  const clock = deps.clock ?? systemClock;
  const log = deps.log ?? timestampedLog(clock, io.stdout);
  log(`rollout: ${plan.kind} plan`);
  try {
    const outcome = await runPlan(plan, { ...deps, clock, log });
    log(
      `rollout: ${outcome.status === "rolled-out" ? "done" : "nothing to do"}: ${outcome.detail}`,
    );
    return EXIT.ok;
  } catch (err) {
    const kind = err instanceof RolloutFailed ? "rolled back or not rolled out" : "failed";
    io.stderr(`rollout ${kind}: ${errorMessage(err)}\n`);
    return EXIT.failed;
  }
}

if (require.main === module) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(
        `rollout: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exitCode = EXIT.failed;
    },
  );
}
