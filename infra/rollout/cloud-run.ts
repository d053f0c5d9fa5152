/**
 * Cloud Run: a canary by traffic split between the service's newest ready revision and the one
 * serving 100 % before it, through the Admin API v2:
 *
 * - services.get (https://cloud.google.com/run/docs/reference/rest/v2/projects.locations.services/get):
 *   `latestReadyRevision` is the candidate once `reconciling` is false and `terminalCondition`
 *   succeeded; `trafficStatuses` says what serves now (a LATEST entry serves the latest ready
 *   revision);
 * - services.patch with `updateMask=traffic`
 *   (https://cloud.google.com/run/docs/reference/rest/v2/projects.locations.services/patch): the
 *   body is a Service of which only `traffic` counts (the API honours update_mask since July 2024,
 *   Google.Cloud.Run.V2 2.9.0 "Support update_mask in Cloud Run UpdateService"; it is what
 *   `gcloud run services update-traffic` sends); it answers a long-running Operation, polled
 *   with projects.locations.operations.get until `done`
 *   (https://cloud.google.com/run/docs/reference/rest/v2/projects.locations.operations/get);
 * - traffic targets (https://cloud.google.com/run/docs/reference/rest/v2/projects.locations.services#TrafficTarget): type
 *   TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION with a revision name, or
 *   TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST (the latest ready revision); percents sum to 100.
 *
 * The split replaces the whole traffic list, tagged targets included. For the canary to have
 * anything to do, the service's new revision must not take traffic by itself: a service whose
 * traffic is LATEST 100 % serves a new revision as soon as it is ready, and the driver then
 * finds it already rolled out.
 */
import * as z from "zod";
import type { CloudRunPlan } from "../../components/release/rollout-plan";
import { runCanary } from "./canary";
import { shortName, type GcpClient } from "./gcp-http";
import { cloudRunSignals, readMinuteSamples } from "./monitoring";
import { pollUntil, RolloutFailed, type Clock, type Log, type RolloutOutcome } from "./runtime";

const conditionSchema = z.object({
  type: z.string().optional(),
  state: z.string().optional(),
  message: z.string().optional(),
  reason: z.string().optional(),
});

const serviceSchema = z.object({
  reconciling: z.boolean().optional(),
  terminalCondition: conditionSchema.optional(),
  latestReadyRevision: z.string().optional(),
  latestCreatedRevision: z.string().optional(),
  trafficStatuses: z
    .array(
      z.object({
        type: z.string().optional(),
        revision: z.string().optional(),
        // proto3 JSON leaves out zeroes
        percent: z.number().optional(),
        tag: z.string().optional(),
      }),
    )
    .optional(),
});

export type CloudRunService = z.output<typeof serviceSchema>;

const operationSchema = z.object({
  name: z.string(),
  done: z.boolean().optional(),
  error: z.object({ code: z.number().optional(), message: z.string().optional() }).optional(),
});

export const REVISION = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION";
export const LATEST = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST";

export type TrafficTarget =
  | { type: typeof REVISION; revision: string; percent: number }
  | { type: typeof LATEST; percent: 100 };

export interface CloudRunDeps {
  client: GcpClient;
  clock: Clock;
  log: Log;
  /** Between polls of the service and its operations. @default 10 s */
  pollMs?: number;
  /** How long a revision or a traffic change may take to be ready. @default 20 min */
  settleTimeoutMs?: number;
}

/**
 * The candidate (the latest ready revision) and the stable revision (the other one serving the
 * most, normally 100 %); no stable one when the candidate already serves everything.
 */
export function resolveRevisions(service: CloudRunService): { candidate: string; stable?: string } {
  if (!service.latestReadyRevision) {
    throw new RolloutFailed("the service has no ready revision (latestReadyRevision is empty)");
  }
  const candidate = shortName(service.latestReadyRevision);
  const served = new Map<string, number>();
  for (const status of service.trafficStatuses ?? []) {
    const revision = status.revision
      ? shortName(status.revision)
      : status.type === LATEST
        ? candidate
        : undefined;
    if (revision) served.set(revision, (served.get(revision) ?? 0) + (status.percent ?? 0));
  }
  if ((served.get(candidate) ?? 0) >= 100) return { candidate };
  const others = [...served].filter(([rev, pct]) => rev !== candidate && pct > 0);
  others.sort((a, b) => b[1] - a[1]);
  const stable = others[0]?.[0];
  if (!stable) {
    throw new RolloutFailed(
      `no revision other than ${candidate} serves traffic (trafficStatuses: ${JSON.stringify(service.trafficStatuses ?? [])}): nothing to roll back to`,
    );
  }
  return { candidate, stable };
}

/** The traffic split of one step: `percent` to the candidate, the rest to the stable revision. */
export function splitTraffic(candidate: string, stable: string, percent: number): TrafficTarget[] {
  return [
    { type: REVISION, revision: candidate, percent },
    { type: REVISION, revision: stable, percent: 100 - percent },
  ];
}

export async function runCloudRun(plan: CloudRunPlan, deps: CloudRunDeps): Promise<RolloutOutcome> {
  const { client, clock, log } = deps;
  const pollMs = deps.pollMs ?? 10_000;
  const settleTimeoutMs = deps.settleTimeoutMs ?? 20 * 60_000;
  const name = `projects/${plan.project}/locations/${plan.region}/services/${plan.service}`;
  const serviceUrl = `${client.base.run}/v2/${name}`;
  const what = `Cloud Run service ${plan.service}`;

  const waitReady = () =>
    pollUntil(
      async () => {
        const service = await client.get(serviceUrl, serviceSchema);
        const state = service.terminalCondition?.state;
        if (service.reconciling || state === "CONDITION_RECONCILING") {
          log(`${what}: reconciling`);
          return undefined;
        }
        if (state && state !== "CONDITION_SUCCEEDED") {
          throw new RolloutFailed(
            `${what} is not ready (${state}): ${service.terminalCondition?.message ?? "no message"}`,
          );
        }
        return service;
      },
      { clock, intervalMs: pollMs, timeoutMs: settleTimeoutMs, what: `${what} to be ready` },
    );

  const setTraffic = async (traffic: TrafficTarget[]) => {
    const op = await client.patch(`${serviceUrl}?updateMask=traffic`, { traffic }, operationSchema);
    const done = op.done
      ? op
      : await pollUntil(
          async () => {
            const current = await client.get(`${client.base.run}/v2/${op.name}`, operationSchema);
            return current.done ? current : undefined;
          },
          { clock, intervalMs: pollMs, timeoutMs: settleTimeoutMs, what: `operation ${op.name}` },
        );
    if (done.error) {
      throw new Error(`traffic update ${op.name} failed: ${done.error.message ?? "no message"}`);
    }
    await waitReady();
  };

  log(`${what}: waiting for the new revision to be ready`);
  const service = await waitReady();
  if (
    service.latestCreatedRevision &&
    service.latestReadyRevision &&
    shortName(service.latestCreatedRevision) !== shortName(service.latestReadyRevision)
  ) {
    throw new RolloutFailed(
      `${what}: revision ${shortName(service.latestCreatedRevision)} was created but is not ready; traffic was not moved (latest ready: ${shortName(service.latestReadyRevision)})`,
    );
  }
  const { candidate, stable } = resolveRevisions(service);
  if (!stable) {
    log(`${what}: revision ${candidate} already serves 100 %: nothing to do`);
    return { status: "nothing-to-do", detail: `${what}: revision ${candidate} serves 100 %` };
  }
  log(`${what}: canary ${candidate}, stable ${stable}`);
  return runCanary(
    {
      name: `${what} (revision ${candidate})`,
      shift: (percent) => setTraffic(splitTraffic(candidate, stable, percent)),
      rollback: async () => {
        await setTraffic([{ type: REVISION, revision: stable, percent: 100 }]);
        return `revision ${stable} (100 %)`;
      },
      promote: async () => {
        await setTraffic([{ type: LATEST, percent: 100 }]);
        return `revision ${candidate} (LATEST)`;
      },
      readMinutes: (startMs, endMs) =>
        readMinuteSamples(
          client,
          cloudRunSignals(plan.project, plan.service, candidate),
          startMs,
          endMs,
        ),
    },
    plan.steps,
    plan.gates,
    { clock, log },
  );
}
