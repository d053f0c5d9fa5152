/** Monitoring pieces targets use (uptime check, service alerts) and the pure condition builders. */
import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { outputOf, setupPulumiMocks, within, type ResourceQuery } from "../../support/pulumi";
import "../../support/pulumi-gcp-outputs";
import {
  GcpMonitoring,
  ServiceAlerts,
  ServiceUptimeCheck,
  dashboardJson,
  dashboardUrl,
  serviceAlertSpecs,
  serviceMetrics,
  storeAlertSpecs,
  uptimeFailureCondition,
  uptimeTarget,
  validateMonitoringArgs,
  type GcpMonitoringArgs,
} from "../../../components/gcp/monitoring";

setupPulumiMocks({ stack: "test", region: "us-central1" });

const CHANNELS = [
  "projects/agent-dev-1/notificationChannels/1",
  "projects/agent-dev-1/notificationChannels/2",
];
const IDS = {
  redisInstanceId: "projects/agent-dev-1/locations/us-central1/instances/cache-abc",
  cloudSqlDatabaseId: "agent-dev-1:db-instance-abc",
};

let uptime: ServiceUptimeCheck;
let runAlerts: ServiceAlerts;
let lbAlerts: ServiceAlerts;
let noLogs: GcpMonitoring;
let uptimeQ: ResourceQuery;

beforeAll(async () => {
  uptime = new ServiceUptimeCheck("svc-uptime", {
    project: "agent-dev-1",
    // Cloud Run's URL is only known after deploy: an Output.
    url: pulumi.output("https://agent-abc123-uc.a.run.app"),
    notificationChannelIds: CHANNELS,
  });
  runAlerts = new ServiceAlerts("svc-alerts", {
    project: "agent-dev-1",
    kind: "cloud-run",
    serviceName: pulumi.output("agent-svc"),
    notificationChannelIds: CHANNELS,
    thresholds: { errorRatio: 0.02 },
  });
  lbAlerts = new ServiceAlerts("lb-alerts", {
    project: "agent-dev-1",
    kind: "https-lb",
    serviceName: "agent-urlmap",
    notificationChannelIds: CHANNELS,
  });
  noLogs = new GcpMonitoring("shared", {
    project: "agent-dev-1",
    alertEmails: ["ops@example.com"],
    stores: IDS,
    logRetentionDays: 30,
    manageLogRetention: false,
  });
  uptimeQ = await within(uptime);
  await within(lbAlerts);
});

describe("ServiceUptimeCheck", () => {
  test("probes /health over TLS on the service host, from static checker IPs", () => {
    const check = uptimeQ.findOne(gcp.monitoring.UptimeCheckConfig).inputs;
    expect(check.monitoredResource).toEqual({
      type: "uptime_url",
      labels: { project_id: "agent-dev-1", host: "agent-abc123-uc.a.run.app" },
    });
    expect(check.httpCheck).toMatchObject({
      path: "/health",
      port: 443,
      useSsl: true,
      validateSsl: true,
    });
    expect(check).toMatchObject({
      period: "60s",
      timeout: "10s",
      checkerType: "STATIC_IP_CHECKERS",
    });
  });

  test("alerts on failures of this check, to the given channels", async () => {
    const alert = uptimeQ.findOne(gcp.monitoring.AlertPolicy).inputs;
    const checkId = await outputOf(uptime.check.uptimeCheckId);
    expect(alert.conditions[0]!.conditionThreshold!.filter).toContain(
      `metric.labels.check_id = "${checkId}"`,
    );
    expect(alert.notificationChannels).toEqual(CHANNELS);
    expect(alert.severity).toBe("CRITICAL");
  });

  test("a malformed plain URL or path is refused with a ResourceError", () => {
    expect(
      () =>
        new ServiceUptimeCheck("bad-url", {
          project: "agent-dev-1",
          url: "agent.example.com",
          notificationChannelIds: [],
        }),
    ).toThrow(/is not an absolute URL: pass the service URL/);
    expect(
      () =>
        new ServiceUptimeCheck("bad-path", {
          project: "agent-dev-1",
          url: "https://x.example.com",
          path: "health",
          notificationChannelIds: [],
        }),
    ).toThrow(pulumi.ResourceError);
  });
});

describe("ServiceAlerts", () => {
  test("Cloud Run: error ratio (5xx over all requests) and p99 latency for the named service", async () => {
    const q = await within(runAlerts);
    const policies = q.findByType(gcp.monitoring.AlertPolicy);
    expect(policies.map((p) => p.name).sort()).toEqual([
      "svc-alerts-error-ratio",
      "svc-alerts-latency",
    ]);
    const ratio = policies.find((p) => p.name.endsWith("error-ratio"))!.inputs.conditions[0]!
      .conditionThreshold!;
    expect(ratio.filter).toContain('resource.labels.service_name = "agent-svc"');
    expect(ratio.filter).toContain('metric.labels.response_code_class = "5xx"');
    expect(ratio.denominatorFilter).not.toContain("response_code_class");
    expect(ratio.thresholdValue).toBe(0.02);
    for (const p of policies) expect(p.inputs.notificationChannels).toEqual(CHANNELS);
  });

  test("load balancer: the URL map's metrics, with the LB's integer response class", () => {
    const m = serviceMetrics("https-lb", "agent-urlmap");
    expect(m.errors).toContain('resource.type = "https_lb_rule"');
    expect(m.errors).toContain("response_code_class = 500");
    expect(m.latency).toContain("loadbalancing.googleapis.com/https/total_latencies");
    expect(lbAlerts.policies).toHaveLength(2);
  });

  test("thresholds out of range are refused", () => {
    expect(
      () =>
        new ServiceAlerts("bad-alerts", {
          project: "agent-dev-1",
          kind: "cloud-run",
          serviceName: "s",
          notificationChannelIds: [],
          thresholds: { errorRatio: 5 },
        }),
    ).toThrow(/errorRatio 5 must be a ratio in \(0, 1\]/);
  });
});

describe("GcpMonitoring", () => {
  test("with manageLogRetention off it leaves the project's log bucket alone", async () => {
    const q = await within(noLogs);
    expect(q.count(gcp.logging.ProjectBucketConfig)).toBe(0);
    expect(noLogs.hooks.logGroupName).toBeUndefined();
    expect(q.count(gcp.monitoring.AlertPolicy)).toBe(4);
  });

  test.each([
    [{ alertEmails: ["not-an-email"] }, /alert email "not-an-email" is not an email address/],
    [{ alertEmails: ["a@x.io", "A@x.io"] }, /lists an address twice/],
    [
      { logRetentionDays: 0 },
      /logRetentionDays 0 must be a whole number of days between 1 and 3650/,
    ],
    [{ thresholds: { sqlCpuRatio: 80 } }, /sqlCpuRatio 80 must be a ratio in \(0, 1\], e.g. 0.8/],
  ])("validation: %j", (over, message) => {
    const base: GcpMonitoringArgs = {
      project: "agent-dev-1",
      alertEmails: ["a@x.io"],
      stores: IDS,
      logRetentionDays: 7,
    };
    expect(validateMonitoringArgs("mon", { ...base, ...over })).toMatch(message);
  });
});

describe("pure builders", () => {
  test("store alerts: Redis memory, Cloud SQL CPU, disk and up, each filtered to its resource", () => {
    const specs = storeAlertSpecs();
    expect(specs.map((s) => s.key)).toEqual(["redis-memory", "sql-cpu", "sql-disk", "sql-up"]);
    const [mem, cpu, disk, up] = specs.map((s) => s.condition(IDS).conditionThreshold!);
    expect(mem!.filter).toBe(
      `resource.type = "redis_instance" AND resource.labels.instance_id = "${IDS.redisInstanceId}" AND metric.type = "redis.googleapis.com/stats/memory/usage_ratio"`,
    );
    expect(mem!.thresholdValue).toBe(0.8);
    expect(cpu!.filter).toContain(`resource.labels.database_id = "${IDS.cloudSqlDatabaseId}"`);
    expect(cpu!.filter).toContain("cloudsql.googleapis.com/database/cpu/utilization");
    expect(disk!.thresholdValue).toBe(0.85);
    expect(up).toMatchObject({ comparison: "COMPARISON_LT", thresholdValue: 1 });
  });

  test("store alert thresholds are configurable", () => {
    const specs = storeAlertSpecs({ redisMemoryRatio: 0.9, sqlDiskRatio: 0.7 });
    expect(specs[0]!.condition(IDS).conditionThreshold!.thresholdValue).toBe(0.9);
    expect(specs[2]!.condition(IDS).conditionThreshold!.thresholdValue).toBe(0.7);
  });

  test("service alert defaults: 5 % errors, 30 s p99", () => {
    const [errors, latency] = serviceAlertSpecs("cloud-run").map(
      (s) => s.condition("svc").conditionThreshold!,
    );
    expect(errors!.thresholdValue).toBe(0.05);
    expect(latency!.thresholdValue).toBe(30000);
    expect(latency!.aggregations).toEqual([
      {
        alignmentPeriod: "300s",
        perSeriesAligner: "ALIGN_PERCENTILE_99",
        crossSeriesReducer: "REDUCE_MAX",
      },
    ]);
  });

  test("uptimeTarget parses URLs and explains bad ones", () => {
    expect(uptimeTarget("https://a.example.com", "/health")).toEqual({
      host: "a.example.com",
      path: "/health",
      port: 443,
      useSsl: true,
    });
    expect(uptimeTarget("http://1.2.3.4:8080/x", "/ready")).toEqual({
      host: "1.2.3.4",
      path: "/ready",
      port: 8080,
      useSsl: false,
    });
    expect(() => uptimeTarget("ftp://a.example.com", "/")).toThrow(/must be an http\(s\) URL/);
  });

  test("uptime failure condition counts failing checker regions for this check only", () => {
    const c = uptimeFailureCondition("chk-1").conditionThreshold!;
    expect(c.filter).toContain('metric.labels.check_id = "chk-1"');
    expect(c.aggregations).toEqual([
      expect.objectContaining({ crossSeriesReducer: "REDUCE_COUNT_FALSE" }),
    ]);
    expect(c.thresholdValue).toBe(1);
  });

  test("dashboard JSON lays out two columns of charts over the stores", () => {
    const d = dashboardJson("agent-dev-monitoring", IDS) as {
      displayName: string;
      mosaicLayout: { columns: number; tiles: { xPos: number; yPos: number; width: number }[] };
    };
    expect(d.displayName).toBe("agent-dev-monitoring");
    expect(d.mosaicLayout.columns).toBe(12);
    for (const t of d.mosaicLayout.tiles) expect(t.xPos + t.width).toBeLessThanOrEqual(12);
    const positions = d.mosaicLayout.tiles.map((t) => `${t.xPos},${t.yPos}`);
    expect(new Set(positions).size).toBe(positions.length);
    expect(JSON.stringify(d)).toContain(IDS.cloudSqlDatabaseId);
  });

  test("dashboardUrl", () => {
    expect(dashboardUrl("agent-dev-1", "projects/123/dashboards/abc-def")).toBe(
      "https://console.cloud.google.com/monitoring/dashboards/custom/abc-def?project=agent-dev-1",
    );
  });
});
