/**
 * The GCP VM group's arguments and what is resolved from them before a resource exists:
 * settings, checks, the image's repository. Pure.
 */
import type { DataPlaneOutputs, ImageArtifact, NetworkAttachment } from "../contracts";
import { environmentProfile } from "../environment";
import { checkThresholds, type ServiceAlertThresholds } from "../gcp/monitoring";
import { checkAutonamedName, checkProjectId, GCP_NAME_PATTERN } from "../gcp/naming";
import type { GcpRollout } from "../release/rollout-gcp";

import { type ServiceEnvArgs, hostNameProblem } from "./service";

import { problemsOf, secretsProblem, wholeNumberProblem } from "./problems";
import { resolveVmScaling } from "./vm-service";
import type { VmScaling } from "./scaling";
import { SERVICE_CONTRACT } from "../../app/src/contract";

export type GcpNetwork = NetworkAttachment<"gcp">;

export interface GcpVmGroupTargetArgs extends ServiceEnvArgs {
  /** GCP project of the VMs, the load balancer, the service account and the alerts. */
  project: string;
  /** The GCP data plane's contract: stores, secrets, network, notification channels. */
  dataPlane: DataPlaneOutputs<"gcp">;
  /** The `image` artifact, pinned by digest, in Artifact Registry (`<location>-docker.pkg.dev`). */
  artifact: ImageArtifact;
  /** @default "e2-small" (2 shared vCPUs, 2 GB) */
  machineType?: string;
  /** @default targetScaling(env).vm.minInstances (dev 1, staging 1, prod 2) */
  minInstances?: number;
  /** Caps cost. @default targetScaling(env).vm.maxInstances (dev 3, staging 4, prod 10) */
  maxInstances?: number;
  /** Autoscaler target average CPU, percent. @default targetScaling(env).vm.targetCpuPercent (60) */
  targetCpuPercent?: number;
  /**
   * Public hostname such as `agent.example.com`: a Google-managed certificate, HTTPS on 443 and
   * HTTP redirected to HTTPS. Point the name's A record at `ipAddress`; the certificate is issued
   * once it resolves.
   * @default undefined: HTTP on port 80 only, for dev
   */
  domain?: string;
  /**
   * Cloud DNS managed zone (in `project`) that holds `domain`: the A record to the load balancer
   * is created there, and the managed certificate becomes ACTIVE once it resolves.
   * @default none: create the A record yourself (the stack exports it as `dnsRecords`)
   */
  dnsZone?: string;
  /**
   * The boot image.
   * @default COS_IMAGE (the cos-stable family, resolved once when a template is created)
   */
  sourceImage?: string;
  /**
   * Zones of the region to spread VMs over. The rolling update surges by this many VMs (a
   * regional group needs a fixed surge of at least its zone count).
   * @default undefined: all of the region's zones, with a surge of 4 (the most zones a region has)
   */
  zones?: string[];
  /** Boot disk size in GB (pd-balanced). @default 20 */
  diskGb?: number;
  /** Seconds after boot before auto-healing may recreate a VM (boot, pull, start). @default 300 */
  initialDelaySeconds?: number;
  /**
   * The load balancer's backend timeout: the longest a reply, streamed or not, may take.
   * @default 3600
   */
  requestTimeoutSeconds?: number;
  /** Fraction of requests the load balancer logs. @default 1 */
  logSampleRate?: number;
  /** Labels on the instance template and the address (stack labels come from the tagging transformation). @default {} */
  labels?: Record<string, string>;
  /** @default { errorRatio: 0.05, latencyP99Ms: 30000 } */
  alertThresholds?: ServiceAlertThresholds;
  /**
   * Progressive delivery: the group keeps running its template and the rollout driver grows the
   * new one as a canary version through `steps` against the gates (components/release/rollout-gcp.ts).
   * No steps (or no `rollout`): a new template replaces every VM at once (proactive update).
   */
  rollout?: GcpRollout;
}

/** Everything the constructor needs, resolved from args and defaults. Pure. */
export interface GcpVmGroupSettings {
  scaling: VmScaling;
  machineType: string;
  domain?: string;
  zones?: string[];
  /** Fixed surge of the rolling update: the zone count, or 4 when GCP picks the zones. */
  maxSurge: number;
  diskGb: number;
  initialDelaySeconds: number;
  requestTimeoutSeconds: number;
  logSampleRate: number;
  labels: Record<string, string>;
}

/** The Container-Optimized OS image family: the latest stable COS when a template is created. */
export const COS_IMAGE = "projects/cos-cloud/global/images/family/cos-stable";
/** Where Google's health checkers and load balancer proxies connect from. */
export const GOOGLE_LB_RANGES = ["35.191.0.0/16", "130.211.0.0/22"] as const;
export const HEALTH_CHECK_PATH = SERVICE_CONTRACT.probes.readiness;
/** Longer than the app's 25 s drain: in-flight streams finish before a VM leaves the backend. */
export const CONNECTION_DRAINING_SECONDS = 30;
/** The most zones any region has today (us-central1): a safe surge when zones are not given. */
const DEFAULT_SURGE = 4;
const MACHINE_TYPE = /^[a-z][a-z0-9]*-[a-z0-9-]+$/;
/** Instance names are `<base>-<4 chars>`: the base may have at most 58 characters. */
const BASE_INSTANCE_NAME = /^[a-z][-a-z0-9]{0,57}$/;

/**
 * Resolves settings and lists every problem with the args, each saying what to change. Returns
 * `settings` only when there are no problems.
 */
export function resolveGcpVmGroupSettings(
  name: string,
  args: GcpVmGroupTargetArgs,
): { settings?: GcpVmGroupSettings; problems: string[] } {
  const dp = args.dataPlane;
  const machineType = args.machineType ?? "e2-small";
  const problems = problemsOf(
    checkProjectId(args.project),
    secretsProblem(dp.secrets, "the service account must be granted the secrets it reads"),
    // The longest logical names this component creates (GCP names: at most 63 characters).
    ...["autoheal-hc", "https-proxy", "autoscaler"].map((suffix) =>
      checkAutonamedName(`${name}-${suffix}`, 63),
    ),
    BASE_INSTANCE_NAME.test(name)
      ? undefined
      : `name "${name}" cannot prefix instance names: use at most 58 lowercase letters, digits and hyphens, starting with a letter.`,
    hostNameProblem(args.domain),
    args.rollout?.steps.length &&
      !(GCP_NAME_PATTERN.test(args.rollout.name) && args.rollout.name.length <= 63)
      ? `rollout.name "${args.rollout.name}" is not a GCP resource name: use at most 63 lowercase letters, digits and hyphens, starting with a letter.`
      : undefined,
    args.dnsZone !== undefined && args.domain === undefined
      ? "dnsZone needs domain: set the name to create in the zone."
      : undefined,
    args.dnsZone !== undefined && !/^[a-z][-a-z0-9]{0,62}$/.test(args.dnsZone)
      ? `dnsZone "${args.dnsZone}" is not a Cloud DNS managed zone name (lowercase letters, digits, hyphens).`
      : undefined,
    MACHINE_TYPE.test(machineType)
      ? undefined
      : `machineType "${machineType}" is not a Compute Engine machine type such as "e2-small".`,
  );
  const region = dp.network.cloud === "gcp" ? dp.network.region : dp.region;
  if (args.zones !== undefined) {
    if (args.zones.length === 0)
      problems.push("zones is empty: list the region's zones to use, or leave it out.");
    for (const z of args.zones) {
      if (!new RegExp(`^${region}-[a-z]$`).test(z))
        problems.push(`zone "${z}" is not a zone of ${region} (such as ${region}-a).`);
    }
    if (new Set(args.zones).size !== args.zones.length)
      problems.push("zones lists a zone twice: list each once.");
  }
  const diskGb = args.diskGb ?? 20;
  const initialDelaySeconds = args.initialDelaySeconds ?? 300;
  const requestTimeoutSeconds = args.requestTimeoutSeconds ?? 3600;
  const logSampleRate = args.logSampleRate ?? 1;
  const t = args.alertThresholds ?? {};
  problems.push(
    ...problemsOf(
      // COS images need 10 GB; Docker's layers need room beyond it.
      wholeNumberProblem("diskGb", diskGb, 10, 65536),
      wholeNumberProblem("initialDelaySeconds", initialDelaySeconds, 0, 3600),
      wholeNumberProblem("requestTimeoutSeconds", requestTimeoutSeconds, 1, 86400),
      logSampleRate >= 0 && logSampleRate <= 1
        ? undefined
        : `logSampleRate ${logSampleRate} must be between 0 and 1.`,
    ),
  );
  for (const p of checkThresholds({ errorRatio: t.errorRatio, latencyP99Ms: t.latencyP99Ms }, [
    "errorRatio",
  ])) {
    if (p) problems.push(`alertThresholds.${p}`);
  }

  const scaling: VmScaling | undefined = resolveVmScaling(
    problems,
    environmentProfile(args.dataPlane.environment).environment,
    args,
  );
  if (problems.length > 0 || !scaling) return { problems };
  return {
    problems,
    settings: {
      scaling,
      machineType,
      domain: args.domain,
      zones: args.zones ? [...args.zones] : undefined,
      maxSurge: args.zones?.length ?? DEFAULT_SURGE,
      diskGb,
      initialDelaySeconds,
      requestTimeoutSeconds,
      logSampleRate,
      labels: {
        ...args.labels,
        target: "vmgroup",
        environment: environmentProfile(args.dataPlane.environment).environment,
      },
    },
  };
}
