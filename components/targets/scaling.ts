/**
 * Scaling and sizing of every deployment target: the shapes, their checks, and the environment's
 * defaults (from components/environment.ts, the one place per-environment numbers live) under
 * the stack's overrides.
 *
 * Pure and cloud-SDK free: targets call `targetScaling(environment, overrides)` and take their
 * part; the stack config layer feeds `overrides`. Every number is validated here, and errors name
 * the field (`cloudRun.minInstances`) so a config typo is reported as what to change.
 *
 * Costs below are list prices for orientation (us-east-1 / us-central1).
 */
import type { Environment } from "../contracts";
import { environmentProfile } from "../environment";

/** AWS Lambda. */
export interface LambdaScaling {
  /** Memory in MB (128-10240). CPU is proportional: 1769 MB is one full vCPU. */
  memoryMb: number;
  /** Seconds (1-900). A Function URL stream is cut when it is reached. */
  timeoutSeconds: number;
  /**
   * Reserved concurrency: caps concurrent sandboxes, hence cost and Postgres connections
   * (`reservedConcurrency * databasePoolMax` is the worst case).
   */
  reservedConcurrency: number;
  /**
   * Pre-initialised sandboxes on the `live` alias (no cold starts up to this many). Billed
   * whether used or not: about $9/month per 1 GB arm64 sandbox. 0 disables.
   */
  provisionedConcurrency: number;
  /** Connections per sandbox. One request per sandbox; the second lets a ledger flush overlap. */
  databasePoolMax: number;
  /** HTTP API stage throttling (only for the `http-api` exposure). */
  throttleBurst: number;
  /** Steady requests per second for the HTTP API stage. */
  throttleRatePerSecond: number;
}

/** Cloud Run v2. */
export interface CloudRunScaling {
  /** Instances kept warm (billed idle when > 0). */
  minInstances: number;
  /** Upper bound on instances: what bounds cost. Always set. */
  maxInstances: number;
  /** Concurrent requests per instance (1-1000). */
  concurrency: number;
  /** vCPU limit: "1", "2", "4", "6", "8" or a fraction below 1 such as "0.5". */
  cpu: string;
  /** Memory limit, `<n>Mi` or `<n>Gi`. */
  memory: string;
}

export interface ContainerResources {
  /** Kubernetes CPU quantity, e.g. "250m" or "1". */
  cpu: string;
  /** Kubernetes memory quantity, e.g. "512Mi" or "1Gi". */
  memory: string;
}

/** EKS Deployment + HorizontalPodAutoscaler. */
export interface EksScaling {
  minReplicas: number;
  maxReplicas: number;
  /** HPA target average CPU utilisation, percent of requests. */
  targetCpuPercent: number;
  requests: ContainerResources;
  limits: ContainerResources;
}

/** Auto Scaling Group (AWS) or regional Managed Instance Group (GCP). */
export interface VmScaling {
  minInstances: number;
  maxInstances: number;
  /** Autoscaler target average CPU utilisation, percent. */
  targetCpuPercent: number;
}

export interface TargetScaling {
  environment: Environment;
  lambda: LambdaScaling;
  cloudRun: CloudRunScaling;
  eks: EksScaling;
  vm: VmScaling;
}

/** Each target's defaults for one environment (components/environment.ts). */
export type TargetScalingDefaults = Omit<TargetScaling, "environment">;

/** What the stack config may override: any field of any target. */
export interface ScalingOverrides {
  lambda?: Partial<LambdaScaling>;
  cloudRun?: Partial<CloudRunScaling>;
  eks?: Partial<Omit<EksScaling, "requests" | "limits">> & {
    requests?: Partial<ContainerResources>;
    limits?: Partial<ContainerResources>;
  };
  vm?: Partial<VmScaling>;
}

/**
 * The scaling of every target for an environment, with overrides applied and validated.
 * Throws an `Error` listing every invalid field, each by its path (`lambda.timeoutSeconds`).
 */
export function targetScaling(
  environment: Environment,
  overrides: ScalingOverrides = {},
): TargetScaling {
  const base = environmentProfile(environment).scaling;
  const eks = overrides.eks ?? {};
  const scaling: TargetScaling = {
    environment,
    lambda: { ...base.lambda, ...defined(overrides.lambda) },
    cloudRun: { ...base.cloudRun, ...defined(overrides.cloudRun) },
    eks: {
      ...base.eks,
      ...defined({ ...eks, requests: undefined, limits: undefined }),
      requests: { ...base.eks.requests, ...defined(eks.requests) },
      limits: { ...base.eks.limits, ...defined(eks.limits) },
    },
    vm: { ...base.vm, ...defined(overrides.vm) },
  };
  const problems = scalingProblems(scaling);
  if (problems.length > 0) {
    throw new Error(`Invalid ${environment} scaling: ${problems.join(" ")}`);
  }
  return scaling;
}

/** Drops `undefined` values so an override object with unset keys does not erase defaults. */
function defined<T extends object>(o: T | undefined): Partial<T> {
  return Object.fromEntries(
    Object.entries(o ?? {}).filter(([, v]) => v !== undefined),
  ) as Partial<T>;
}

/** Every problem with a scaling, each naming its field and saying what to change. */
export function scalingProblems(s: Omit<TargetScaling, "environment">): string[] {
  return [
    ...lambdaScalingProblems(s.lambda),
    ...cloudRunScalingProblems(s.cloudRun),
    ...eksScalingProblems(s.eks),
    ...vmScalingProblems(s.vm),
  ];
}

function integerIn(
  field: string,
  value: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): string | undefined {
  return Number.isInteger(value) && value >= min && value <= max
    ? undefined
    : `${field} is ${value}: use a whole number from ${min}${max === Number.MAX_SAFE_INTEGER ? " up" : ` to ${max}`}.`;
}

function minMax(
  prefix: string,
  minField: string,
  maxField: string,
  min: number,
  max: number,
): string | undefined {
  return Number.isFinite(min) && Number.isFinite(max) && min > max
    ? `${prefix}.${minField} (${min}) is greater than ${prefix}.${maxField} (${max}): lower the minimum or raise the maximum.`
    : undefined;
}

function compact(problems: Array<string | undefined>): string[] {
  return problems.filter((p): p is string => p !== undefined);
}

export function lambdaScalingProblems(l: LambdaScaling): string[] {
  return compact([
    integerIn("lambda.memoryMb", l.memoryMb, 128, 10240),
    integerIn("lambda.timeoutSeconds", l.timeoutSeconds, 1, 900),
    // 0 would be a valid AWS value, but it stops the function from running at all.
    integerIn("lambda.reservedConcurrency", l.reservedConcurrency, 1),
    integerIn("lambda.provisionedConcurrency", l.provisionedConcurrency, 0),
    // AWS refuses provisioned concurrency above the function's reserved concurrency.
    l.provisionedConcurrency > l.reservedConcurrency
      ? `lambda.provisionedConcurrency (${l.provisionedConcurrency}) is greater than lambda.reservedConcurrency (${l.reservedConcurrency}): AWS rejects it; lower provisionedConcurrency or raise reservedConcurrency.`
      : undefined,
    integerIn("lambda.databasePoolMax", l.databasePoolMax, 1, 500),
    integerIn("lambda.throttleBurst", l.throttleBurst, 1),
    Number.isFinite(l.throttleRatePerSecond) && l.throttleRatePerSecond > 0
      ? undefined
      : `lambda.throttleRatePerSecond is ${l.throttleRatePerSecond}: use a positive number of requests per second.`,
  ]);
}

/** vCPU of a Cloud Run cpu string ("1", "0.5", "1000m"), or undefined if malformed. */
export function cloudRunCpu(cpu: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(m?)$/.exec(cpu);
  if (!m) return undefined;
  return m[2] ? Number(m[1]) / 1000 : Number(m[1]);
}

/** MiB of a Kubernetes-style memory quantity ("512Mi", "1Gi"), or undefined if malformed. */
export function memoryMiB(memory: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(Mi|Gi)$/.exec(memory);
  if (!m) return undefined;
  return m[2] === "Gi" ? Number(m[1]) * 1024 : Number(m[1]);
}

/** Millicores of a Kubernetes CPU quantity ("250m", "1", "0.5"), or undefined if malformed. */
export function millicores(cpu: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(m?)$/.exec(cpu);
  if (!m) return undefined;
  return m[2] ? Number(m[1]) : Number(m[1]) * 1000;
}

/** Cloud Run's memory ceiling per whole vCPU count (GiB). */
const CLOUD_RUN_MAX_GIB: Record<number, number> = { 1: 4, 2: 8, 4: 16, 6: 24, 8: 32 };

export function cloudRunScalingProblems(c: CloudRunScaling): string[] {
  const cpu = cloudRunCpu(c.cpu);
  const mem = memoryMiB(c.memory);
  const problems: Array<string | undefined> = [
    integerIn("cloudRun.minInstances", c.minInstances, 0, 1000),
    integerIn("cloudRun.maxInstances", c.maxInstances, 1, 1000),
    minMax("cloudRun", "minInstances", "maxInstances", c.minInstances, c.maxInstances),
    integerIn("cloudRun.concurrency", c.concurrency, 1, 1000),
  ];
  if (
    cpu === undefined ||
    cpu <= 0 ||
    (cpu >= 1 && CLOUD_RUN_MAX_GIB[cpu] === undefined) ||
    cpu > 8
  ) {
    problems.push(
      `cloudRun.cpu is "${c.cpu}": use "1", "2", "4", "6", "8" or a fraction below 1 such as "0.5".`,
    );
  } else if (cpu < 1 && c.concurrency > 1) {
    problems.push(
      `cloudRun.cpu "${c.cpu}" is below one vCPU, which Cloud Run allows only with concurrency 1: set cloudRun.concurrency to 1 or cpu to "1".`,
    );
  }
  if (mem === undefined) {
    problems.push(`cloudRun.memory is "${c.memory}": use a quantity such as "512Mi" or "1Gi".`);
  } else if (mem < 512) {
    // The second-generation execution environment (needed for direct VPC egress) requires 512 MiB.
    problems.push(
      `cloudRun.memory "${c.memory}" is below 512Mi, the minimum of the gen2 execution environment: raise it.`,
    );
  } else if (
    cpu !== undefined &&
    cpu >= 1 &&
    CLOUD_RUN_MAX_GIB[cpu] !== undefined &&
    mem > CLOUD_RUN_MAX_GIB[cpu]! * 1024
  ) {
    problems.push(
      `cloudRun.memory "${c.memory}" exceeds ${CLOUD_RUN_MAX_GIB[cpu]}Gi, the most Cloud Run allows with cpu "${c.cpu}": raise cloudRun.cpu or lower memory.`,
    );
  }
  return compact(problems);
}

export function eksScalingProblems(e: EksScaling): string[] {
  const problems: Array<string | undefined> = [
    integerIn("eks.minReplicas", e.minReplicas, 1),
    integerIn("eks.maxReplicas", e.maxReplicas, 1),
    minMax("eks", "minReplicas", "maxReplicas", e.minReplicas, e.maxReplicas),
    integerIn("eks.targetCpuPercent", e.targetCpuPercent, 1, 100),
  ];
  for (const kind of ["requests", "limits"] as const) {
    if (millicores(e[kind].cpu) === undefined || millicores(e[kind].cpu)! <= 0) {
      problems.push(`eks.${kind}.cpu is "${e[kind].cpu}": use a quantity such as "250m" or "1".`);
    }
    if (memoryMiB(e[kind].memory) === undefined || memoryMiB(e[kind].memory)! <= 0) {
      problems.push(
        `eks.${kind}.memory is "${e[kind].memory}": use a quantity such as "512Mi" or "1Gi".`,
      );
    }
  }
  const [rc, lc] = [millicores(e.requests.cpu), millicores(e.limits.cpu)];
  if (rc !== undefined && lc !== undefined && rc > lc) {
    problems.push(
      `eks.requests.cpu (${e.requests.cpu}) is greater than eks.limits.cpu (${e.limits.cpu}): Kubernetes rejects it; lower the request or raise the limit.`,
    );
  }
  const [rm, lm] = [memoryMiB(e.requests.memory), memoryMiB(e.limits.memory)];
  if (rm !== undefined && lm !== undefined && rm > lm) {
    problems.push(
      `eks.requests.memory (${e.requests.memory}) is greater than eks.limits.memory (${e.limits.memory}): Kubernetes rejects it; lower the request or raise the limit.`,
    );
  }
  return compact(problems);
}

export function vmScalingProblems(v: VmScaling): string[] {
  return compact([
    integerIn("vm.minInstances", v.minInstances, 1),
    integerIn("vm.maxInstances", v.maxInstances, 1),
    minMax("vm", "minInstances", "maxInstances", v.minInstances, v.maxInstances),
    integerIn("vm.targetCpuPercent", v.targetCpuPercent, 1, 100),
  ]);
}
