/**
 * The Cloud Run canary against a local fake of the Admin API v2 and Cloud Monitoring: the
 * traffic splits it PATCHes (updateMask=traffic), the Monitoring queries it makes for the
 * candidate revision, and what it does when the gates pass, fail, or see too little traffic.
 */
import { defaultGates, type CloudRunPlan } from "../../components/release/rollout-plan";
import { runCloudRun, resolveRevisions } from "../../infra/rollout/cloud-run";
import { GcpClient } from "../../infra/rollout/gcp-http";
import { RolloutFailed } from "../../infra/rollout/runtime";
import {
  FakeGcp,
  fakeClock,
  LATEST,
  rejection,
  REVISION,
  TOKEN,
  tokens,
  type FakeService,
  type MinuteTraffic,
} from "./fake-gcp";

const OLD = "svc-00001-old";
const NEW = "svc-00002-new";

const plan: CloudRunPlan = {
  kind: "cloud-run",
  project: "proj",
  region: "europe-west1",
  service: "svc",
  steps: [
    { percent: 10, minutes: 3 },
    { percent: 50, minutes: 3 },
  ],
  gates: defaultGates(1000),
};

let fake: FakeGcp;
let service: FakeService;
let lines: string[];

beforeEach(async () => {
  fake = new FakeGcp();
  await fake.start();
  lines = [];
  service = {
    latestReadyRevision: NEW,
    reconciling: true, // the new revision is still starting when the driver begins
    terminalCondition: { state: "CONDITION_SUCCEEDED" },
    traffic: [{ type: REVISION, revision: OLD, percent: 100 }],
    trafficStatuses: [{ type: REVISION, revision: OLD, percent: 100 }],
  };
  fake.service = service;
});

afterEach(() => fake.stop());

function run(p: CloudRunPlan = plan) {
  const clock = fakeClock();
  const client = new GcpClient({ tokens, clock, baseUrls: fake.baseUrls });
  return runCloudRun(p, { client, clock, log: (l) => lines.push(l), pollMs: 1000 });
}

const steady =
  (m: MinuteTraffic) =>
  (_t: number, filter: string): MinuteTraffic | undefined =>
    filter.includes(`resource.labels.revision_name = "${NEW}"`) ? m : undefined;

describe("Cloud Run canary (rollout driver)", () => {
  it("moves a healthy canary through every step and ends on LATEST 100 %", async () => {
    fake.traffic = steady({ classes: { "2xx": 100, "4xx": 3 }, p99Ms: 200 });

    await expect(run()).resolves.toEqual({
      status: "rolled-out",
      detail: expect.stringContaining(NEW),
    });

    expect(fake.patches()).toEqual([
      {
        traffic: [
          { type: REVISION, revision: NEW, percent: 10 },
          { type: REVISION, revision: OLD, percent: 90 },
        ],
      },
      {
        traffic: [
          { type: REVISION, revision: NEW, percent: 50 },
          { type: REVISION, revision: OLD, percent: 50 },
        ],
      },
      { traffic: [{ type: LATEST, percent: 100 }] },
    ]);
    const patches = fake.requests.filter((r) => r.method === "PATCH");
    expect(patches.every((r) => r.query.get("updateMask") === "traffic")).toBe(true);
    expect(
      patches.every((r) => r.path === "/v2/projects/proj/locations/europe-west1/services/svc"),
    ).toBe(true);
    // Each PATCH's operation is polled until done.
    expect(fake.requests.filter((r) => r.path.includes("/operations/")).length).toBe(3);
    expect(fake.requests.every((r) => r.authorization === `Bearer ${TOKEN}`)).toBe(true);
    expect(service.trafficStatuses).toEqual([{ type: LATEST, percent: 100 }]);
  });

  it("reads the candidate revision's request count by class and p99 once a minute per step", async () => {
    fake.traffic = steady({ classes: { "2xx": 100 }, p99Ms: 200 });
    await run();

    const monitoring = fake.monitoringRequests();
    // 3 + 3 minutes, two queries (count, latency) each.
    expect(monitoring).toHaveLength(12);
    const count = monitoring.find((r) => r.query.get("filter")!.includes("request_count"))!;
    expect(count.path).toBe("/v3/projects/proj/timeSeries");
    expect(count.query.get("filter")).toBe(
      `metric.type = "run.googleapis.com/request_count" AND resource.type = "cloud_run_revision" AND resource.labels.service_name = "svc" AND resource.labels.revision_name = "${NEW}"`,
    );
    expect(count.query.get("aggregation.alignmentPeriod")).toBe("60s");
    expect(count.query.get("aggregation.perSeriesAligner")).toBe("ALIGN_DELTA");
    expect(count.query.get("aggregation.crossSeriesReducer")).toBe("REDUCE_SUM");
    expect(count.query.getAll("aggregation.groupByFields")).toEqual([
      "metric.labels.response_code_class",
    ]);
    const latency = monitoring.find((r) => r.query.get("filter")!.includes("request_latencies"))!;
    expect(latency.query.get("aggregation.crossSeriesReducer")).toBe("REDUCE_PERCENTILE_99");
    const start = Date.parse(count.query.get("interval.startTime")!);
    const end = Date.parse(count.query.get("interval.endTime")!);
    expect(end - start).toBeLessThanOrEqual(plan.gates.windowMinutes * 60_000);
    expect(
      lines.some((l) =>
        /step 2\/2 \(50 % for 3 min\): minute 3\/3: 0 of the last 3 min bad/.test(l),
      ),
    ).toBe(true);
  });

  it("rolls an unhealthy canary back to the stable revision and fails naming the gate", async () => {
    fake.traffic = steady({ classes: { "2xx": 80, "5xx": 20 }, p99Ms: 200 });

    const err = await rejection(run());
    expect(err).toBeInstanceOf(RolloutFailed);
    const message = err.message;
    expect(message).toContain(`rolled back to revision ${OLD} (100 %)`);
    expect(message).toContain("step 1/2 (10 % for 3 min)");
    expect(message).toMatch(/5xx 20 % of 100 requests > 5 % \(errorRatePercent\)/);

    expect(fake.patches()).toEqual([
      {
        traffic: [
          { type: REVISION, revision: NEW, percent: 10 },
          { type: REVISION, revision: OLD, percent: 90 },
        ],
      },
      { traffic: [{ type: REVISION, revision: OLD, percent: 100 }] },
    ]);
    // Two bad minutes fail the default gate (2 of 3): no third minute is read.
    expect(fake.monitoringRequests()).toHaveLength(4);
  });

  it("rolls back on p99 latency above the gate", async () => {
    fake.traffic = steady({ classes: { "2xx": 100 }, p99Ms: 2500 });
    await expect(run()).rejects.toThrow(/p99 2500 ms > 1000 ms \(p99LatencyMs\)/);
    expect(fake.patches().at(-1)).toEqual({
      traffic: [{ type: REVISION, revision: OLD, percent: 100 }],
    });
  });

  it("does not fail the gate on too few requests, however bad they are", async () => {
    // 3 requests a minute, below minRequestsPerMinute (4): all 5xx and slow.
    fake.traffic = steady({ classes: { "5xx": 3 }, p99Ms: 9000 });
    await expect(run()).resolves.toMatchObject({ status: "rolled-out" });
    expect(fake.patches().at(-1)).toEqual({ traffic: [{ type: LATEST, percent: 100 }] });
  });

  it("does nothing when the latest ready revision already serves everything", async () => {
    service.traffic = [{ type: LATEST, percent: 100 }];
    service.trafficStatuses = [{ type: LATEST, percent: 100 }];
    await expect(run()).resolves.toEqual({
      status: "nothing-to-do",
      detail: expect.stringContaining(NEW),
    });
    expect(fake.patches()).toEqual([]);
    expect(fake.monitoringRequests()).toEqual([]);
  });

  it("fails without moving traffic when the newest revision is not ready", async () => {
    service.latestCreatedRevision = "svc-00003-broken";
    await expect(run()).rejects.toThrow(/svc-00003-broken was created but is not ready/);
    expect(fake.patches()).toEqual([]);
  });

  it("sends the bearer token from the injected provider, and fails without one", async () => {
    const clock = fakeClock();
    const client = new GcpClient({
      tokens: { getAccessToken: async () => null },
      clock,
      baseUrls: fake.baseUrls,
    });
    await expect(runCloudRun(plan, { client, clock, log: () => {} })).rejects.toThrow(
      /no Google access token/,
    );
    expect(fake.requests).toEqual([]);
  });
});

describe("resolveRevisions", () => {
  it("takes the revision serving 100 % as stable and the latest ready one as candidate", () => {
    expect(
      resolveRevisions({
        latestReadyRevision: `projects/p/locations/r/revisions/${NEW}`,
        trafficStatuses: [{ type: REVISION, revision: OLD, percent: 100 }],
      }),
    ).toEqual({ candidate: NEW, stable: OLD });
  });

  it("resumes a split an earlier run left: the other revision with the most traffic is stable", () => {
    expect(
      resolveRevisions({
        latestReadyRevision: NEW,
        trafficStatuses: [
          { type: REVISION, revision: NEW, percent: 10 },
          { type: REVISION, revision: OLD, percent: 90 },
        ],
      }),
    ).toEqual({ candidate: NEW, stable: OLD });
  });

  it("has no stable revision when LATEST serves 100 %", () => {
    expect(
      resolveRevisions({
        latestReadyRevision: NEW,
        trafficStatuses: [{ type: LATEST, percent: 100 }],
      }),
    ).toEqual({ candidate: NEW });
  });
});
