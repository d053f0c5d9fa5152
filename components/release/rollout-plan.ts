/**
 * Progressive delivery, one description for every target: the canary steps a stack asks for
 * (`agent:rollout.steps`, e.g. 10 % for 5 minutes, then everything), the gates that stop it (the
 * service's own signals: 5xx ratio and p99 latency, over one-minute windows), and what each
 * platform's own mechanism is given:
 *
 * - Lambda: a CodeDeploy deployment configuration (canary or linear) on the `live` alias;
 * - AWS VM group: instance refresh checkpoints and their delay;
 * - EKS: Argo Rollouts canary steps;
 * - Cloud Run and the GCP VM group: a plan the rollout driver (`infra/rollout/`) carries out
 *   during `pulumi up`, since neither platform advances a canary by itself.
 *
 * Pure: the components turn these into resources, the driver into API calls, and tests read
 * both. Every limit below is a platform's documented one, with its source.
 */

/** One canary step: `percent` of traffic (or instances) on the new release for `minutes`. */
export interface RolloutStep {
  percent: number;
  minutes: number;
}

/**
 * What stops a rollout and rolls it back: the service's own alarm signals, evaluated over
 * one-minute windows (a canary step is minutes long; the 5-minute alarms that page people
 * would only fire after it ended).
 */
export interface RolloutGates {
  /** 5xx as a percent of requests, per one-minute window. */
  errorRatePercent: number;
  /** p99 latency in milliseconds. */
  p99LatencyMs: number;
  /** Below this many requests in a minute the ratio is noise and does not count. */
  minRequestsPerMinute: number;
  /** Bad minutes out of `windowMinutes` that fail the gate. */
  badMinutes: number;
  /** The window the gate looks at, in minutes. */
  windowMinutes: number;
}

/**
 * The platform limits the steps must fit, as data (checked by `rolloutProblems`, cited in its
 * messages and tests). Looked up 2026-12-06.
 */
export const ROLLOUT_RULES = {
  /**
   * Percentages are whole numbers: CodeDeploy's TimeBasedCanary/TimeBasedLinear take integer
   * percentages and minutes (https://docs.aws.amazon.com/codedeploy/latest/APIReference/API_TimeBasedCanary.html),
   * and Auto Scaling checkpoints are ascending, unique integers, the last one 100 to replace
   * every instance (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RefreshPreferences.html).
   */
  wholeNumbers: true,
  /**
   * One delay for every checkpoint, 0 to 172800 seconds (48 hours): RefreshPreferences.CheckpointDelay
   * (same page). The strictest per-step limit of the four platforms, applied to all.
   */
  maxStepMinutes: 2880,
  /**
   * A step must last at least the gate's window, or it can end before a bad release could fail
   * the gate (our rule: the gates look at 3 one-minute windows).
   */
  minStepMinutes: 3,
  /** Ten steps is more than any sane rollout; CodeDeploy and instance refresh accept up to 10 alarms. */
  maxSteps: 10,
  /** CodeDeploy and instance refresh watch at most 10 CloudWatch alarms (RefreshPreferences.AlarmSpecification). */
  maxAlarms: 10,
} as const;

/** The gates' default thresholds: those of the alarms and alert policies that page people. */
export function defaultGates(p99LatencyMs: number): RolloutGates {
  return {
    errorRatePercent: 5,
    p99LatencyMs,
    // The 5-minute alarms ignore fewer than 20 requests; per minute, 4.
    minRequestsPerMinute: 4,
    badMinutes: 2,
    windowMinutes: ROLLOUT_RULES.minStepMinutes,
  };
}

/** Problems with the steps, each naming `key` and saying what to change. Empty when fine. */
export function rolloutProblems(
  steps: readonly RolloutStep[],
  key = "agent:rollout.steps",
): string[] {
  const problems: string[] = [];
  if (steps.length > ROLLOUT_RULES.maxSteps) {
    problems.push(`${key} has ${steps.length} steps: use at most ${ROLLOUT_RULES.maxSteps}.`);
  }
  steps.forEach((s, i) => {
    const at = `${key}[${i}]`;
    if (!Number.isInteger(s.percent) || s.percent < 1 || s.percent > 99) {
      problems.push(
        `${at}.percent is ${s.percent}: use a whole number from 1 to 99 (the last step to 100 % is implied).`,
      );
    }
    if (i > 0 && s.percent <= steps[i - 1]!.percent) {
      problems.push(
        `${at}.percent is ${s.percent}, not above the step before (${steps[i - 1]!.percent}): each step moves more traffic.`,
      );
    }
    if (
      !Number.isInteger(s.minutes) ||
      s.minutes < ROLLOUT_RULES.minStepMinutes ||
      s.minutes > ROLLOUT_RULES.maxStepMinutes
    ) {
      problems.push(
        `${at}.minutes is ${s.minutes}: use a whole number from ${ROLLOUT_RULES.minStepMinutes} (the gates' window) to ${ROLLOUT_RULES.maxStepMinutes} (48 h, the instance refresh limit).`,
      );
    }
  });
  return problems;
}

/** Shown in every "steps" message: how to turn progressive delivery off. */
const OFF_HINT = "or set agent:rollout.steps to [] to deploy all at once";

// ---------------------------------------------------------------------------------------------
// Lambda: CodeDeploy

export type CodeDeployTrafficRouting =
  | { type: "TimeBasedCanary"; timeBasedCanary: { percentage: number; interval: number } }
  | { type: "TimeBasedLinear"; timeBasedLinear: { percentage: number; interval: number } };

/**
 * The CodeDeploy traffic routing for the steps. CodeDeploy shifts a Lambda alias in two ways
 * only: a canary (one step, then the rest) or linearly (equal increments, equal intervals)
 * (https://docs.aws.amazon.com/codedeploy/latest/userguide/deployment-configurations.html).
 * Throws, naming the key, for steps that are neither.
 */
export function codeDeployTrafficRouting(
  steps: readonly RolloutStep[],
  key = "agent:rollout.steps",
): CodeDeployTrafficRouting {
  if (steps.length === 1) {
    return {
      type: "TimeBasedCanary",
      timeBasedCanary: { percentage: steps[0]!.percent, interval: steps[0]!.minutes },
    };
  }
  const increment = steps[0]?.percent ?? 0;
  const linear =
    steps.length > 1 &&
    100 % increment === 0 &&
    steps.length === 100 / increment - 1 &&
    steps.every((s, i) => s.percent === increment * (i + 1) && s.minutes === steps[0]!.minutes);
  if (!linear) {
    throw new Error(
      `${key}: CodeDeploy shifts Lambda traffic as a canary (one step, e.g. [{percent: 10, minutes: 5}]) or linearly (equal increments that reach 100, each for the same minutes, e.g. 25, 50, 75); ${describeSteps(steps)} is neither: change the steps, ${OFF_HINT}.`,
    );
  }
  return {
    type: "TimeBasedLinear",
    timeBasedLinear: { percentage: increment, interval: steps[0]!.minutes },
  };
}

// ---------------------------------------------------------------------------------------------
// AWS VM group: instance refresh

export interface InstanceRefreshCheckpoints {
  checkpointPercentages: number[];
  /** Seconds, as the Auto Scaling API takes it. */
  checkpointDelaySeconds: number;
}

/**
 * Checkpoints for an instance refresh: the steps' percentages then 100, and the one delay the
 * API allows for all of them (RefreshPreferences.CheckpointDelay). Throws when the steps ask for
 * different minutes.
 */
export function instanceRefreshCheckpoints(
  steps: readonly RolloutStep[],
  key = "agent:rollout.steps",
): InstanceRefreshCheckpoints {
  const minutes = new Set(steps.map((s) => s.minutes));
  if (minutes.size > 1) {
    throw new Error(
      `${key}: an instance refresh waits the same time at every checkpoint (CheckpointDelay), but ${describeSteps(steps)} asks for ${[...minutes].join(", ")} minutes: use one duration, ${OFF_HINT}.`,
    );
  }
  return {
    checkpointPercentages: [...steps.map((s) => s.percent), 100],
    checkpointDelaySeconds: (steps[0]?.minutes ?? 0) * 60,
  };
}

// ---------------------------------------------------------------------------------------------
// EKS: Argo Rollouts

export type ArgoCanaryStep = { setWeight: number } | { pause: { duration: string } };

/** Argo Rollouts canary steps: set the weight, then pause for the step's minutes. */
export function argoCanarySteps(steps: readonly RolloutStep[]): ArgoCanaryStep[] {
  return steps.flatMap((s) => [{ setWeight: s.percent }, { pause: { duration: `${s.minutes}m` } }]);
}

// ---------------------------------------------------------------------------------------------
// Plans the rollout driver carries out during `pulumi up` (infra/rollout/)

/** Lambda: start a CodeDeploy deployment of `targetVersion` on the alias and wait for its end. */
export interface CodeDeployPlan {
  kind: "lambda-codedeploy";
  region: string;
  application: string;
  deploymentGroup: string;
  functionName: string;
  alias: string;
  targetVersion: string;
}

/** AWS VM group: wait for the instance refresh the launch template change started. */
export interface InstanceRefreshPlan {
  kind: "aws-instance-refresh";
  region: string;
  autoScalingGroupName: string;
}

/** Cloud Run: move traffic from the serving revision to the newest one, step by step. */
export interface CloudRunPlan {
  kind: "cloud-run";
  project: string;
  region: string;
  service: string;
  steps: RolloutStep[];
  gates: RolloutGates;
}

/** GCP VM group: a canary version of the managed instance group, grown step by step. */
export interface MigPlan {
  kind: "gce-mig";
  project: string;
  region: string;
  instanceGroupManager: string;
  /** The new instance template's self link. */
  instanceTemplate: string;
  /** The HTTPS load balancer's URL map, whose metrics are the gates' signals. */
  urlMap: string;
  steps: RolloutStep[];
  gates: RolloutGates;
}

export type RolloutPlan = CodeDeployPlan | InstanceRefreshPlan | CloudRunPlan | MigPlan;

/** The version name the program and the driver give a managed instance group's serving template. */
export const STABLE_VERSION = "stable";

/**
 * The template a group serves from: its only version's, or, when a rollout was cut short and left
 * a canary beside it, the version named "stable" (read by the program and by the driver).
 */
export function stableTemplate(
  versions: readonly { name?: string; instanceTemplate: string }[],
): string | undefined {
  if (versions.length === 1) return versions[0]!.instanceTemplate;
  return versions.find((v) => v.name === STABLE_VERSION)?.instanceTemplate;
}

/** The environment variable the driver reads its plan from. */
export const ROLLOUT_PLAN_ENV = "AGENT_ROLLOUT_PLAN";

function describeSteps(steps: readonly RolloutStep[]): string {
  return `[${steps.map((s) => `${s.percent} % for ${s.minutes} min`).join(", ")}]`;
}
