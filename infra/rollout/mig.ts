/**
 * GCP VM group: a canary version of a regional managed instance group, grown step by step, through
 * Compute Engine v1:
 *
 * - regionInstanceGroupManagers.get / .patch
 *   (https://cloud.google.com/compute/docs/reference/rest/v1/regionInstanceGroupManagers/patch):
 *   PATCH is a JSON merge patch, so `versions` is replaced whole; it answers a regional Operation,
 *   polled with regionOperations.get until DONE
 *   (https://cloud.google.com/compute/docs/reference/rest/v1/regionOperations/get); the patch is
 *   DONE before the VMs are replaced, so the group is then polled until `status.isStable` and
 *   `status.versionTarget.isReached`;
 * - a canary is a second version with `targetSize.percent`
 *   (https://cloud.google.com/compute/docs/instance-groups/rolling-out-updates-to-managed-instance-groups#starting_a_canary_update);
 *   a percent of the group's size is rounded, so on a small group a low percent would give no
 *   canary VM at all: below one VM the step asks for one (`fixed: 1`);
 * - the update policy is PROACTIVE with minimalAction REPLACE. On a regional MIG a fixed maxSurge
 *   or maxUnavailable must be 0 or at least the number of zones the group spans, and a percent
 *   is allowed only from 10 VMs on (same page, "Max surge" and "Max unavailable"): so maxSurge is
 *   the zone count and maxUnavailable 0, which adds new VMs before removing old ones and keeps
 *   the serving capacity.
 *
 * The gates read the load balancer's metrics for the URL map (monitoring.ts): the whole LB's,
 * the canary's VMs among the stable ones, since the LB has no per-version label.
 */
import * as z from "zod";
import {
  STABLE_VERSION,
  stableTemplate as stableOf,
  type MigPlan,
} from "../../components/release/rollout-plan";
import { runCanary } from "./canary";
import { sameResource, shortName, type GcpClient } from "./gcp-http";
import { loadBalancerSignals, readMinuteSamples } from "./monitoring";
import { pollUntil, type Clock, type Log, type RolloutOutcome } from "./runtime";

const fixedOrPercent = z.object({
  fixed: z.number().optional(),
  percent: z.number().optional(),
  calculated: z.number().optional(),
});

const migSchema = z.object({
  instanceTemplate: z.string().optional(),
  versions: z
    .array(
      z.object({
        name: z.string().optional(),
        instanceTemplate: z.string(),
        targetSize: fixedOrPercent.optional(),
      }),
    )
    .optional(),
  targetSize: z.number().optional(),
  status: z
    .object({
      isStable: z.boolean().optional(),
      versionTarget: z.object({ isReached: z.boolean().optional() }).optional(),
    })
    .optional(),
  currentActions: z.record(z.string(), z.number()).optional(),
  distributionPolicy: z
    .object({ zones: z.array(z.object({ zone: z.string() })).optional() })
    .optional(),
});

export type ManagedInstanceGroup = z.output<typeof migSchema>;

const operationSchema = z.object({
  name: z.string(),
  status: z.string().optional(),
  error: z
    .object({
      errors: z
        .array(z.object({ code: z.string().optional(), message: z.string().optional() }))
        .optional(),
    })
    .optional(),
});

export type FixedOrPercent = { fixed: number } | { percent: number };

export interface MigVersion {
  name: string;
  instanceTemplate: string;
  targetSize?: FixedOrPercent;
}

export interface MigUpdatePolicy {
  type: "PROACTIVE";
  minimalAction: "REPLACE";
  maxSurge: { fixed: number };
  maxUnavailable: { fixed: number };
}

/** When the group does not list its zones: the number a regional MIG uses by default. */
const DEFAULT_ZONES = 3;

/** The canary version's size: `percent` of the group, but at least one VM. */
export function canaryTargetSize(percent: number, groupSize: number | undefined): FixedOrPercent {
  if (groupSize !== undefined && groupSize > 0 && (percent / 100) * groupSize < 1) {
    return { fixed: 1 };
  }
  return { percent };
}

/** The update policy for a regional MIG spanning `zones` zones (see the module comment). */
export function migUpdatePolicy(zones: number): MigUpdatePolicy {
  return {
    type: "PROACTIVE",
    minimalAction: "REPLACE",
    maxSurge: { fixed: zones },
    maxUnavailable: { fixed: 0 },
  };
}

/**
 * The template every VM runs before the rollout: the group's single version's, or, when an
 * earlier run left a canary behind, the version named "stable" (else any other than the new
 * one). Undefined when everything already runs `newTemplate`.
 */
export function stableTemplate(mig: ManagedInstanceGroup, newTemplate: string): string | undefined {
  const versions =
    mig.versions ?? (mig.instanceTemplate ? [{ instanceTemplate: mig.instanceTemplate }] : []);
  const others = versions.filter((v) => !sameResource(v.instanceTemplate, newTemplate));
  return stableOf(others) ?? others[0]?.instanceTemplate;
}

export interface MigDeps {
  client: GcpClient;
  clock: Clock;
  log: Log;
  /** Between polls of the group and its operations. @default 15 s */
  pollMs?: number;
  /** How long one step's VMs may take to be replaced and healthy. @default 30 min */
  settleTimeoutMs?: number;
}

export async function runMig(plan: MigPlan, deps: MigDeps): Promise<RolloutOutcome> {
  const { client, clock, log } = deps;
  const pollMs = deps.pollMs ?? 15_000;
  const settleTimeoutMs = deps.settleTimeoutMs ?? 30 * 60_000;
  const regionPath = `${client.base.compute}/compute/v1/projects/${plan.project}/regions/${plan.region}`;
  const migUrl = `${regionPath}/instanceGroupManagers/${plan.instanceGroupManager}`;
  const what = `instance group ${plan.instanceGroupManager}`;
  const newTemplate = plan.instanceTemplate;

  const mig = await client.get(migUrl, migSchema);
  const stable = stableTemplate(mig, newTemplate);
  if (!stable) {
    log(`${what}: every version already runs ${shortName(newTemplate)}: nothing to do`);
    return {
      status: "nothing-to-do",
      detail: `${what}: instance template ${shortName(newTemplate)} serves 100 %`,
    };
  }
  if ((mig.versions?.length ?? 1) > 1) {
    log(
      `${what}: an earlier rollout left versions ${JSON.stringify(mig.versions)}: starting over from ${shortName(stable)}`,
    );
  }
  let zones = mig.distributionPolicy?.zones?.length ?? 0;
  if (zones === 0) {
    zones = DEFAULT_ZONES;
    log(`${what}: the group lists no zones; assuming ${zones} for maxSurge`);
  }
  const updatePolicy = migUpdatePolicy(zones);

  const setVersions = async (versions: MigVersion[]) => {
    const op = await client.patch(migUrl, { versions, updatePolicy }, operationSchema);
    const done = await pollUntil(
      async () => {
        const current =
          op.status === "DONE"
            ? op
            : await client.get(`${regionPath}/operations/${op.name}`, operationSchema);
        return current.status === "DONE" ? current : undefined;
      },
      { clock, intervalMs: pollMs, timeoutMs: settleTimeoutMs, what: `operation ${op.name}` },
    );
    const errors = done.error?.errors ?? [];
    if (errors.length) {
      throw new Error(
        `patching the versions failed: ${errors.map((e) => `${e.code ?? "?"}: ${e.message ?? ""}`).join("; ")}`,
      );
    }
    await pollUntil(
      async () => {
        const current = await client.get(migUrl, migSchema);
        const stableNow = current.status?.isStable === true;
        const reached = current.status?.versionTarget?.isReached === true;
        if (stableNow && reached) return current;
        const actions = Object.entries(current.currentActions ?? {})
          .filter(([action, n]) => action !== "none" && n > 0)
          .map(([action, n]) => `${action} ${n}`);
        log(
          `${what}: updating (isStable ${stableNow}, versionTarget reached ${reached}${actions.length ? `, ${actions.join(", ")}` : ""})`,
        );
        return undefined;
      },
      { clock, intervalMs: pollMs, timeoutMs: settleTimeoutMs, what: `${what} to be stable` },
    );
  };

  // The program keeps the old template (retainOnDelete: Compute Engine refuses to delete a
  // template a group uses); once no VM runs it, it goes. A failure here is only logged: the
  // rollout succeeded, and a stray template costs nothing.
  const deleteTemplate = async (template: string) => {
    const url = `${client.base.compute}/compute/v1/projects/${plan.project}/global/instanceTemplates/${shortName(template)}`;
    try {
      await client.delete(url, operationSchema);
      log(`${what}: deleted the old instance template ${shortName(template)}`);
    } catch (err) {
      log(
        `${what}: could not delete the old instance template ${shortName(template)} (${(err as Error).message}); delete it by hand`,
      );
    }
  };

  log(
    `${what}: canary ${shortName(newTemplate)}, stable ${shortName(stable)}, ${zones} zones, ${mig.targetSize ?? "?"} VMs`,
  );
  return runCanary(
    {
      name: `${what} (template ${shortName(newTemplate)})`,
      shift: (percent) =>
        setVersions([
          { name: STABLE_VERSION, instanceTemplate: stable },
          {
            name: "canary",
            instanceTemplate: newTemplate,
            targetSize: canaryTargetSize(percent, mig.targetSize),
          },
        ]),
      rollback: async () => {
        await setVersions([{ name: STABLE_VERSION, instanceTemplate: stable }]);
        return `instance template ${shortName(stable)} (every VM)`;
      },
      promote: async () => {
        await setVersions([{ name: STABLE_VERSION, instanceTemplate: newTemplate }]);
        await deleteTemplate(stable);
        return `instance template ${shortName(newTemplate)}`;
      },
      readMinutes: (startMs, endMs) =>
        readMinuteSamples(
          client,
          loadBalancerSignals(plan.project, shortName(plan.urlMap)),
          startMs,
          endMs,
        ),
    },
    plan.steps,
    plan.gates,
    { clock, log },
  );
}
