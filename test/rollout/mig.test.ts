/**
 * The managed instance group canary against a local fake of Compute Engine v1 and Cloud
 * Monitoring: the versions and update policy it PATCHes, the load balancer metrics it reads, and
 * what it does when the gates pass, fail, see too little traffic, or the canary never settles.
 */
import { defaultGates, type MigPlan } from "../../components/release/rollout-plan";
import { GcpClient } from "../../infra/rollout/gcp-http";
import { canaryTargetSize, migUpdatePolicy, runMig, stableTemplate } from "../../infra/rollout/mig";
import { RolloutFailed } from "../../infra/rollout/runtime";
import {
  FakeGcp,
  fakeClock,
  rejection,
  TOKEN,
  tokens,
  type FakeMig,
  type MinuteTraffic,
} from "./fake-gcp";

const OLD = "projects/proj/global/instanceTemplates/agent-old";
const NEW =
  "https://www.googleapis.com/compute/v1/projects/proj/global/instanceTemplates/agent-new";
const MIG_PATH = "/compute/v1/projects/proj/regions/europe-west1/instanceGroupManagers/agent-mig";

const plan: MigPlan = {
  kind: "gce-mig",
  project: "proj",
  region: "europe-west1",
  instanceGroupManager: "agent-mig",
  instanceTemplate: NEW,
  urlMap: "https://www.googleapis.com/compute/v1/projects/proj/global/urlMaps/agent-lb",
  steps: [
    { percent: 10, minutes: 3 },
    { percent: 50, minutes: 3 },
  ],
  gates: defaultGates(1500),
};

const policy = {
  type: "PROACTIVE",
  minimalAction: "REPLACE",
  maxSurge: { fixed: 3 },
  maxUnavailable: { fixed: 0 },
};

let fake: FakeGcp;
let mig: FakeMig;
let lines: string[];

beforeEach(async () => {
  fake = new FakeGcp();
  await fake.start();
  lines = [];
  mig = {
    versions: [{ name: "v1", instanceTemplate: OLD }],
    targetSize: 10,
    zones: ["europe-west1-b", "europe-west1-c", "europe-west1-d"],
    isStable: true,
  };
  fake.mig = mig;
});

afterEach(() => fake.stop());

function run(p: MigPlan = plan, settleTimeoutMs?: number) {
  const clock = fakeClock();
  const client = new GcpClient({ tokens, clock, baseUrls: fake.baseUrls });
  return runMig(p, { client, clock, log: (l) => lines.push(l), pollMs: 1000, settleTimeoutMs });
}

const steady =
  (m: MinuteTraffic) =>
  (_t: number, filter: string): MinuteTraffic | undefined =>
    filter.includes('resource.labels.url_map_name = "agent-lb"') ? m : undefined;

describe("managed instance group canary (rollout driver)", () => {
  it("grows a healthy canary version step by step and ends with the new template as stable", async () => {
    fake.traffic = steady({ classes: { "200": 500, "400": 4 }, p99Ms: 300 });

    await expect(run()).resolves.toEqual({
      status: "rolled-out",
      detail: expect.stringContaining("agent-new"),
    });

    expect(fake.patches()).toEqual([
      {
        versions: [
          { name: "stable", instanceTemplate: OLD },
          { name: "canary", instanceTemplate: NEW, targetSize: { percent: 10 } },
        ],
        updatePolicy: policy,
      },
      {
        versions: [
          { name: "stable", instanceTemplate: OLD },
          { name: "canary", instanceTemplate: NEW, targetSize: { percent: 50 } },
        ],
        updatePolicy: policy,
      },
      { versions: [{ name: "stable", instanceTemplate: NEW }], updatePolicy: policy },
    ]);
    expect(
      fake.requests.filter((r) => r.method === "PATCH").every((r) => r.path === MIG_PATH),
    ).toBe(true);
    // Each PATCH's regional operation is polled, then the group until stable.
    expect(
      fake.requests.filter((r) => r.path.includes("/regions/europe-west1/operations/")).length,
    ).toBe(3);
    expect(
      lines.some((l) =>
        /updating \(isStable false, versionTarget reached false, creating 1\)/.test(l),
      ),
    ).toBe(true);
    expect(fake.requests.every((r) => r.authorization === `Bearer ${TOKEN}`)).toBe(true);
    // The old template, kept by the program while the group used it, is deleted once unused.
    expect(fake.requests.filter((r) => r.method === "DELETE").map((r) => r.path)).toEqual([
      "/compute/v1/projects/proj/global/instanceTemplates/agent-old",
    ]);
  });

  it("compares templates by path: the program's selfLinkUnique (?uniqueId=) is the group's template", () => {
    const live = { versions: [{ name: "stable", instanceTemplate: NEW }] };
    expect(stableTemplate(live, `${NEW}?uniqueId=1234567`)).toBeUndefined();
  });

  it("gates on the load balancer's metrics for the URL map", async () => {
    fake.traffic = steady({ classes: { "200": 500 }, p99Ms: 300 });
    await run();
    const monitoring = fake.monitoringRequests();
    expect(monitoring).toHaveLength(12);
    expect(monitoring.map((r) => r.query.get("filter"))).toContain(
      'metric.type = "loadbalancing.googleapis.com/https/request_count" AND resource.type = "https_lb_rule" AND resource.labels.url_map_name = "agent-lb"',
    );
    expect(monitoring.map((r) => r.query.get("filter"))).toContain(
      'metric.type = "loadbalancing.googleapis.com/https/total_latencies" AND resource.type = "https_lb_rule" AND resource.labels.url_map_name = "agent-lb"',
    );
  });

  it("rolls an unhealthy canary back to the stable template and fails naming the gate", async () => {
    // The LB's 5xx class is the INT64 500.
    fake.traffic = steady({ classes: { "200": 400, "500": 100 }, p99Ms: 300 });

    const err = await rejection(run());
    expect(err).toBeInstanceOf(RolloutFailed);
    expect(err.message).toContain("rolled back to instance template agent-old (every VM)");
    expect(err.message).toMatch(/5xx 20 % of 500 requests > 5 % \(errorRatePercent\)/);
    expect(fake.patches().at(-1)).toEqual({
      versions: [{ name: "stable", instanceTemplate: OLD }],
      updatePolicy: policy,
    });
    expect(fake.patches()).toHaveLength(2);
    expect(mig.versions).toEqual([{ name: "stable", instanceTemplate: OLD }]);
    // Nothing is deleted: the old template serves, the new one stays in Pulumi's state.
    expect(fake.requests.filter((r) => r.method === "DELETE")).toEqual([]);
  });

  it("does not fail the gate on too few requests", async () => {
    fake.traffic = steady({ classes: { "500": 2 }, p99Ms: 10_000 });
    await expect(run()).resolves.toMatchObject({ status: "rolled-out" });
    expect(fake.patches().at(-1)).toMatchObject({
      versions: [{ name: "stable", instanceTemplate: NEW }],
    });
  });

  it("rolls back a canary whose VMs never become stable", async () => {
    fake.neverStableTemplate = NEW;
    const err = await rejection(run(plan, 5 * 60_000));
    expect(err).toBeInstanceOf(RolloutFailed);
    expect(err.message).toMatch(
      /timed out after 5 min waiting for instance group agent-mig to be stable/,
    );
    expect(fake.patches()).toMatchObject([
      { versions: [{ name: "stable" }, { name: "canary" }] },
      { versions: [{ name: "stable", instanceTemplate: OLD }] },
    ]);
    expect(fake.monitoringRequests()).toEqual([]);
  });

  it("does nothing when the group already runs the new template", async () => {
    mig.versions = [
      { name: "stable", instanceTemplate: "projects/proj/global/instanceTemplates/agent-new" },
    ];
    await expect(run()).resolves.toMatchObject({ status: "nothing-to-do" });
    expect(fake.patches()).toEqual([]);
  });
});

describe("MIG version and policy rules", () => {
  it("asks for one canary VM when the percent of a small group rounds to none", () => {
    expect(canaryTargetSize(10, 2)).toEqual({ fixed: 1 });
    expect(canaryTargetSize(10, 10)).toEqual({ percent: 10 });
    expect(canaryTargetSize(50, 2)).toEqual({ percent: 50 });
    expect(canaryTargetSize(10, undefined)).toEqual({ percent: 10 });
  });

  it("uses a fixed maxSurge of the zone count and no unavailable VM (regional MIG rule)", () => {
    expect(migUpdatePolicy(4)).toEqual({
      type: "PROACTIVE",
      minimalAction: "REPLACE",
      maxSurge: { fixed: 4 },
      maxUnavailable: { fixed: 0 },
    });
  });

  it("finds the stable template of a group an earlier run left with a canary", () => {
    expect(
      stableTemplate(
        {
          versions: [
            { name: "stable", instanceTemplate: OLD },
            { name: "canary", instanceTemplate: NEW, targetSize: { percent: 10 } },
          ],
        },
        NEW,
      ),
    ).toBe(OLD);
    expect(stableTemplate({ instanceTemplate: NEW }, NEW)).toBeUndefined();
  });
});
