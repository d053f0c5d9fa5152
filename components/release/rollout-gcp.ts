/**
 * Progressive delivery on GCP. Neither Cloud Run nor a managed instance group advances a canary
 * by itself, so the program holds traffic on the release that serves now and the rollout driver
 * (`infra/rollout/`) moves it step by step against the gates:
 *
 * - Cloud Run: the service's traffic stays on the revision serving 100 % (read from the live
 *   service when the program runs), so `pulumi up` creates the new revision with no traffic;
 *   the driver gives it each step's percent, watches its 5xx ratio and p99 latency in Cloud
 *   Monitoring, and either sends it everything (`LATEST`) or puts the old revision back.
 * - GCP VM group: the group's single version stays on the instance template it runs now; the
 *   driver adds the new template as a canary version with a percent target size, watches the
 *   load balancer's signals, and either makes it the only version or removes it.
 *
 * Why read live state: Cloud Run v2 and the instance group manager are updated from the
 * program's inputs (the provider sends `traffic` and `versions` as given), and what the driver
 * left there is not in Pulumi's state. Reading it keeps `pulumi up` from undoing a rollout or a
 * rollback, and the resource's name is fixed so the program can find it before it has state.
 */
import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import {
  defaultGates,
  STABLE_VERSION,
  stableTemplate,
  type RolloutGates,
  type RolloutStep,
} from "./rollout-plan";

export { STABLE_VERSION, stableTemplate };
import { DEFAULT_SERVICE_P99_MS } from "../gcp/service-monitoring";

/** Progressive delivery settings of a GCP target: no steps deploys at once. */
export interface GcpRollout {
  steps: RolloutStep[];
  /** @default defaultGates(the alert policies' p99) */
  gates?: RolloutGates;
  /**
   * The service's or group's fixed physical name: the program reads the live resource by it.
   * Derive it from the stack (names are unique per project and region).
   */
  name: string;
  /** Runs the rollout driver. @default the repository's (`DRIVER_COMMAND`) */
  driverCommand?: string;
}

/** The rollout's gates: its own, else the defaults at the alert policies' p99 threshold. */
export function gcpRolloutGates(
  rollout: GcpRollout,
  thresholds?: { latencyP99Ms?: number },
): RolloutGates {
  return rollout.gates ?? defaultGates(thresholds?.latencyP99Ms ?? DEFAULT_SERVICE_P99_MS);
}

/**
 * The provider's data sources fail with "<id> not found" for a resource that does not exist
 * (terraform-provider-google `data_source_google_cloud_run_v2_service.go`,
 * `data_source_google_compute_region_instance_group_manager.go`). Only that means "first deploy";
 * any other failure (permissions, an API not enabled) must stop the program, or it would deploy
 * everything at once without saying so.
 */
export function isNotFound(err: unknown): boolean {
  const message = err instanceof Error ? err.message : String(err);
  return /not found|notFound|\b404\b/i.test(message);
}

async function orAbsent<T>(read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** The revision serving all of a live Cloud Run service's traffic; undefined before the first deploy. */
export function liveServingRevision(
  q: { project: string; location: pulumi.Input<string>; name: string },
  parent: pulumi.Resource,
): pulumi.Output<string | undefined> {
  return pulumi.output(q.location).apply(async (location) => {
    const live = await orAbsent(() =>
      gcp.cloudrunv2.getService({ project: q.project, location, name: q.name }, { parent }),
    );
    return live && servingRevision(live.trafficStatuses);
  });
}

/** The revision with 100 % of the traffic, or undefined while traffic is split or unknown. */
export function servingRevision(
  statuses: readonly { percent: number; revision: string }[],
): string | undefined {
  const all = statuses.find((s) => s.percent === 100 && s.revision);
  return all?.revision;
}

export interface CloudRunTraffic {
  type: "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST" | "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION";
  revision?: string;
  percent: number;
}

/**
 * The service's traffic: everything on the serving revision, so a new revision starts with none;
 * on the first deploy (nothing serves yet) everything on the latest.
 */
export function heldTraffic(serving: string | undefined): CloudRunTraffic[] {
  return serving
    ? [{ type: "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", revision: serving, percent: 100 }]
    : [{ type: "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", percent: 100 }];
}

/** The instance template a live regional group runs (its only version); undefined before the first deploy. */
export function liveGroupTemplate(
  q: { project: string; region: pulumi.Input<string>; name: string },
  parent: pulumi.Resource,
): pulumi.Output<string | undefined> {
  return pulumi.output(q.region).apply(async (region) => {
    const live = await orAbsent(() =>
      gcp.compute.getRegionInstanceGroupManager(
        { project: q.project, region, name: q.name },
        { parent },
      ),
    );
    return live && stableTemplate(live.versions);
  });
}

/**
 * The group's versions: the template it runs now (the new one joins as the driver's canary);
 * on the first deploy, the new template.
 */
export function heldVersions(
  live: string | undefined,
  next: string,
): { name: string; instanceTemplate: string }[] {
  return [{ name: STABLE_VERSION, instanceTemplate: live ?? next }];
}
