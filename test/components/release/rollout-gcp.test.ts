/**
 * Progressive delivery on GCP (issue 15): the program holds traffic on what serves now and hands
 * the new revision or template to the rollout driver; a first deploy serves the new one at once.
 */
import * as gcp from "@pulumi/gcp";
import {
  heldTraffic,
  heldVersions,
  isNotFound,
  servingRevision,
  stableTemplate,
} from "../../../components/release/rollout-gcp";
import { CloudRunTarget, type CloudRunTargetArgs } from "../../../components/targets/cloud-run";
import { GcpVmGroupTarget } from "../../../components/targets/vm-group-gcp";
import type { GcpVmGroupTargetArgs } from "../../../components/targets/vm-group-gcp-settings";
import { ROLLOUT_PLAN_ENV, type RolloutPlan } from "../../../components/release/rollout-plan";
import { FAKE_GCP, fakeImageArtifact } from "../../support/fake-data-plane";
import { setupPulumiMocks } from "../../support/pulumi";
import "../../support/pulumi-gcp-outputs";
import "../../support/pulumi-target-outputs";
import {
  previousRevision,
  previousTemplate,
  setLiveState,
} from "../../../infra/plan/mock-outputs-release";
import { renderAll, targetArgs, type Rendered } from "../targets/helpers";

setupPulumiMocks({ stack: "prod" });

const STEPS = [{ percent: 10, minutes: 5 }];

describe("reading what serves", () => {
  test("the revision with all traffic serves; a split (a rollout cut short) has none", () => {
    expect(servingRevision([{ revision: "a", percent: 100 }])).toBe("a");
    expect(
      servingRevision([
        { revision: "a", percent: 90 },
        { revision: "b", percent: 10 },
      ]),
    ).toBeUndefined();
  });

  test("a group's stable template: its only version, or the one named stable", () => {
    expect(stableTemplate([{ name: "primary", instanceTemplate: "t1" }])).toBe("t1");
    expect(
      stableTemplate([
        { name: "canary", instanceTemplate: "t2" },
        { name: "stable", instanceTemplate: "t1" },
      ]),
    ).toBe("t1");
  });

  test("only 'not found' is a first deploy: a permission error stops the program", () => {
    expect(isNotFound(new Error("projects/p/locations/r/services/s not found"))).toBe(true);
    expect(isNotFound(new Error("googleapi: Error 403: Permission denied"))).toBe(false);
  });

  test("traffic and versions held on what serves; the new one on a first deploy", () => {
    expect(heldTraffic("svc-00001-abc")).toEqual([
      { type: "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", revision: "svc-00001-abc", percent: 100 },
    ]);
    expect(heldTraffic(undefined)).toEqual([
      { type: "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", percent: 100 },
    ]);
    expect(heldVersions("old", "new")).toEqual([{ name: "stable", instanceTemplate: "old" }]);
    expect(heldVersions(undefined, "new")).toEqual([{ name: "stable", instanceTemplate: "new" }]);
  });
});

function planOf(q: Rendered<unknown>["q"]): RolloutPlan | undefined {
  const driver = q
    .findByType("command:local:Command")
    .find((c) => (c.inputs as { environment?: Record<string, string> }).environment);
  const env = driver && (driver.inputs as { environment: Record<string, string> }).environment;
  return env && (JSON.parse(env[ROLLOUT_PLAN_ENV]!) as RolloutPlan);
}

const cloudRun = (name: string, rollout?: CloudRunTargetArgs["rollout"]) =>
  new CloudRunTarget(
    name,
    targetArgs<CloudRunTargetArgs>(
      "gcp",
      { project: FAKE_GCP.project, artifact: fakeImageArtifact(), rollout },
      { env: "prod" },
    ),
  );

describe("Cloud Run", () => {
  test("deployed before: the new revision starts with no traffic and the driver gets the steps", async () => {
    setLiveState("serving");
    const { r } = await renderAll({ r: cloudRun("agent", { steps: STEPS, name: "agent-prod" }) });
    const service = r.q.findOne(gcp.cloudrunv2.Service);
    expect(service.inputs.name).toBe("agent-prod");
    expect(service.inputs.traffics).toEqual([
      {
        type: "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION",
        revision: previousRevision("agent-prod"),
        percent: 100,
      },
    ]);
    expect(planOf(r.q)).toMatchObject({
      kind: "cloud-run",
      project: FAKE_GCP.project,
      service: "agent-prod",
      steps: STEPS,
    });
  });

  test("first deploy: the service does not exist yet, its first revision takes everything", async () => {
    setLiveState("absent");
    try {
      const { r } = await renderAll({ r: cloudRun("first", { steps: STEPS, name: "agent-prod" }) });
      expect(r.q.findOne(gcp.cloudrunv2.Service).inputs.traffics).toEqual([
        { type: "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", percent: 100 },
      ]);
    } finally {
      setLiveState("serving");
    }
  });

  test("no steps: no fixed name, no driver, Cloud Run's default traffic", async () => {
    const { r } = await renderAll({ r: cloudRun("nosteps", { steps: [], name: "agent-prod" }) });
    const service = r.q.findOne(gcp.cloudrunv2.Service);
    expect(service.inputs.name).toBeUndefined();
    expect(service.inputs.traffics).toBeUndefined();
    expect(planOf(r.q)).toBeUndefined();
  });

  test("a fixed name Cloud Run refuses is an error naming rollout.name", () => {
    expect(() => cloudRun("badname", { steps: STEPS, name: "Agent_Prod" })).toThrow(
      /rollout\.name "Agent_Prod" is not a Cloud Run service name/,
    );
  });
});

const vmGroup = (name: string, rollout?: GcpVmGroupTargetArgs["rollout"]) =>
  new GcpVmGroupTarget(
    name,
    targetArgs<GcpVmGroupTargetArgs>(
      "gcp",
      { project: FAKE_GCP.project, artifact: fakeImageArtifact(), rollout },
      { env: "prod" },
    ),
  );

describe("GCP VM group", () => {
  test("deployed before: the group keeps its template, the new one goes to the driver, the old one outlives Pulumi's delete", async () => {
    setLiveState("serving");
    const { r } = await renderAll({ r: vmGroup("agent", { steps: STEPS, name: "agent-prod" }) });
    const mig = r.q.findOne(gcp.compute.RegionInstanceGroupManager);
    expect(mig.inputs.name).toBe("agent-prod");
    expect(mig.inputs.versions).toEqual([
      { name: "stable", instanceTemplate: previousTemplate(FAKE_GCP.project, "agent-prod") },
    ]);
    const template = r.q.findOne(gcp.compute.InstanceTemplate);
    expect(template.options.retainOnDelete).toBe(true);
    expect(planOf(r.q)).toMatchObject({
      kind: "gce-mig",
      instanceGroupManager: "agent-prod",
      instanceTemplate: template.state.selfLinkUnique,
      steps: STEPS,
    });
  });

  test("no steps: the template rolls the group itself and is deleted with it", async () => {
    const { r } = await renderAll({ r: vmGroup("plain") });
    const mig = r.q.findOne(gcp.compute.RegionInstanceGroupManager);
    expect((mig.inputs.versions as { name: string }[])[0]!.name).toBe("primary");
    expect(r.q.findOne(gcp.compute.InstanceTemplate).options.retainOnDelete).toBeFalsy();
    expect(planOf(r.q)).toBeUndefined();
  });
});
