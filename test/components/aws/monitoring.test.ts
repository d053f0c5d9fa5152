import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { type AlarmSpec, checkAlarmSpec, metricAlarmArgs } from "../../../components/aws/alarms";
import {
  dashboardBody,
  estimatedMaxConnections,
  instanceMemoryGib,
  memberClusterIds,
  Monitoring,
  postgresAlarmSpecs,
  redisAlarmSpecs,
  resolveThresholds,
} from "../../../components/aws/monitoring";
import { ServiceAlarms, serviceAlarmSpecs } from "../../../components/aws/service-alarms";
import {
  outputOf,
  resources,
  type ResourceQuery,
  setupPulumiMocks,
  within,
} from "../../support/pulumi";

setupPulumiMocks({ stack: "test" });

const T = resolveThresholds();

describe("pure functions", () => {
  test("ElastiCache member ids", () => {
    expect(memberClusterIds("agent-rg", 2)).toEqual(["agent-rg-001", "agent-rg-002"]);
  });

  test("RDS memory and max_connections estimates", () => {
    expect(
      ["db.t4g.micro", "db.t4g.small", "db.m7g.large", "db.r7g.2xlarge", "db.m6i.12xlarge"].map(
        instanceMemoryGib,
      ),
    ).toEqual([1, 2, 8, 64, 192]);
    expect(instanceMemoryGib("cache.t4g.micro")).toBeUndefined();
    expect(estimatedMaxConnections("db.t4g.micro")).toBe(112);
    expect(estimatedMaxConnections("db.m7g.large")).toBe(901);
    expect(estimatedMaxConnections("db.r7g.16xlarge")).toBe(5000);
  });

  test("Redis alarms: CPU and memory per node", () => {
    const specs = redisAlarmSpecs(["rg-001", "rg-002"], T);
    expect(specs.map((s) => s.key)).toEqual([
      "redis-1-cpu",
      "redis-1-memory",
      "redis-2-cpu",
      "redis-2-memory",
    ]);
    expect(specs[2]).toMatchObject({
      metricName: "EngineCPUUtilization",
      dimensions: { CacheClusterId: "rg-002" },
      threshold: 80,
    });
    for (const s of specs) expect(checkAlarmSpec(s)).toEqual([]);
  });

  test("RDS alarms: CPU, free storage in bytes, connections scaled to the class", () => {
    const specs = postgresAlarmSpecs("db-1", "db.t4g.micro", 20, T);
    const byKey = Object.fromEntries(specs.map((s) => [s.key, s]));
    expect(byKey["db-cpu"]).toMatchObject({
      metricName: "CPUUtilization",
      threshold: 80,
      comparison: "GreaterThanThreshold",
    });
    expect(byKey["db-free-storage"]).toMatchObject({
      metricName: "FreeStorageSpace",
      threshold: 2147483648,
      comparison: "LessThanThreshold",
      treatMissingData: "breaching",
    });
    expect(byKey["db-connections"]).toMatchObject({
      metricName: "DatabaseConnections",
      threshold: 89,
    });
    for (const s of specs) expect(checkAlarmSpec(s)).toEqual([]);
  });

  test("percentiles become extendedStatistic; math alarms become metricQueries; both notify alarm and OK", () => {
    const [ratio, p99] = serviceAlarmSpecs({ kind: "lambda", functionName: "fn" });
    const p99Args = metricAlarmArgs(p99!, "topic");
    expect([p99Args.statistic, p99Args.extendedStatistic]).toEqual([undefined, "p99"]);
    expect([p99Args.alarmActions, p99Args.okActions]).toEqual([["topic"], ["topic"]]);
    const ratioArgs = metricAlarmArgs(ratio!, "topic");
    expect(ratioArgs.metricName).toBeUndefined();
    expect(ratioArgs.metricQueries).toEqual([
      {
        id: "e1",
        expression: "IF(m2 >= 20, 100 * m1 / m2, 0)",
        label: "error-rate",
        returnData: true,
      },
      expect.objectContaining({
        id: "m1",
        returnData: false,
        metric: expect.objectContaining({ metricName: "Url5xxCount" }),
      }),
      expect.objectContaining({
        id: "m2",
        returnData: false,
        metric: expect.objectContaining({ metricName: "UrlRequestCount" }),
      }),
    ]);
  });

  test("checkAlarmSpec catches broken windows and statistics", () => {
    const bad = {
      ...redisAlarmSpecs(["x"], T)[0]!,
      datapointsToAlarm: 5,
      period: 90,
      statistic: "Median",
    } as AlarmSpec;
    expect(checkAlarmSpec(bad).join(" ")).toMatch(
      /datapointsToAlarm must be 1..evaluationPeriods.*multiple of 60.*unknown statistic "Median"/,
    );
  });

  test("dashboard body is valid CloudWatch JSON naming the resources", () => {
    const body = JSON.parse(
      dashboardBody({
        region: "eu-west-1",
        logGroupName: "lg",
        redisNodeIds: ["rg-001"],
        dbInstanceIdentifier: "db-1",
      }),
    );
    const metrics = body.widgets.filter((w: { type: string }) => w.type === "metric");
    expect(metrics).toHaveLength(5);
    for (const w of body.widgets) expect(w.properties.region).toBe("eu-west-1");
    expect(JSON.stringify(metrics)).toContain('"CacheClusterId","rg-001"');
    expect(JSON.stringify(metrics)).toContain('"DBInstanceIdentifier","db-1"');
    expect(body.widgets.at(-1).properties.query).toMatch(/^SOURCE 'lg'/);
  });
});

describe("service alarm specs", () => {
  test("lambda via invoke uses Errors/Invocations; throttles alarm on the first datapoint", () => {
    const specs = serviceAlarmSpecs(
      { kind: "lambda", functionName: "fn", via: "invoke" },
      { errorRatePercent: 2 },
    );
    expect(specs.map((s) => s.key)).toEqual(["error-rate", "p99-latency", "throttles"]);
    expect(JSON.stringify(specs[0])).toContain('"metricName":"Errors"');
    expect(specs[0]!.threshold).toBe(2);
    expect(specs[2]).toMatchObject({ metricName: "Throttles", datapointsToAlarm: 1, threshold: 1 });
  });

  test("ALB: target + ELB 5xx over requests; latency in seconds", () => {
    const specs = serviceAlarmSpecs(
      { kind: "alb", loadBalancerArnSuffix: "app/lb/1", targetGroupArnSuffix: "targetgroup/tg/2" },
      { p99LatencyMs: 30000 },
    );
    expect(specs[0]).toMatchObject({ expression: "IF(m3 >= 20, 100 * (m1 + m2) / m3, 0)" });
    expect(specs[1]).toMatchObject({
      metricName: "TargetResponseTime",
      threshold: 30,
      statistic: "p99",
    });
    expect(specs[2]).toMatchObject({ metricName: "RejectedConnectionCount" });
  });

  test("HTTP API: 5xx and 4xx ratios, latency p99", () => {
    const specs = serviceAlarmSpecs({ kind: "http-api", apiId: "abc" });
    expect(
      specs.map((s) =>
        "metricName" in s
          ? s.metricName
          : "metrics" in s
            ? s.metrics.map((m) => m.metricName).join("/")
            : s.key,
      ),
    ).toEqual(["5xx/Count", "Latency", "4xx/Count"]);
    for (const s of specs) expect(checkAlarmSpec(s)).toEqual([]);
  });
});

let mon: Monitoring;
let monQ: ResourceQuery;
let svc: ServiceAlarms;

beforeAll(async () => {
  mon = new Monitoring("mon", {
    region: "us-east-1",
    logRetentionDays: 30,
    alertEmails: ["a@example.com", "b@example.com"],
    redis: { replicationGroupId: "agent-rg", nodeCount: 2 },
    postgres: {
      instanceIdentifier: "agent-db",
      instanceClass: "db.m7g.large",
      allocatedStorageGb: 100,
    },
  });
  svc = new ServiceAlarms("svc", {
    source: { kind: "lambda", functionName: "agent-fn" },
    alarmTopicArn: mon.alarmTopicArn,
  });
  monQ = await within(mon);
});

describe("Monitoring", () => {
  test("log group with the requested retention", () => {
    expect(monQ.findOne(aws.cloudwatch.LogGroup).inputs.retentionInDays).toBe(30);
  });

  test("the topic is encrypted with a rotated CMK that CloudWatch and Budgets of this account may use", async () => {
    const key = monQ.findOne(aws.kms.Key);
    expect(key.inputs.enableKeyRotation).toBe(true);
    const policy = JSON.parse(key.inputs.policy as string);
    const publishers = policy.Statement.find(
      (s: { Sid: string }) => s.Sid === "AlarmAndBudgetPublishers",
    );
    expect(publishers.Principal.Service).toEqual([
      "cloudwatch.amazonaws.com",
      "budgets.amazonaws.com",
    ]);
    expect(publishers.Condition).toEqual({ StringEquals: { "aws:SourceAccount": "123456789012" } });
    expect(monQ.findOne(aws.sns.Topic).inputs.kmsMasterKeyId).toBe(key.state.arn);
  });

  test("the topic policy admits the two publishers and denies non-TLS publishing", async () => {
    const policy = JSON.parse(monQ.findOne(aws.sns.TopicPolicy).inputs.policy as string);
    const topicArn = await outputOf(mon.alarmTopicArn);
    for (const s of policy.Statement) expect(s.Resource).toBe(topicArn);
    expect(
      policy.Statement.map((s: { Sid: string; Effect: string }) => `${s.Sid}:${s.Effect}`),
    ).toEqual(["AccountManages:Allow", "AlarmAndBudgetPublishers:Allow", "TlsOnly:Deny"]);
    expect(JSON.stringify(policy)).not.toContain('"AWS":"*"');
  });

  test("one e-mail subscription per address", async () => {
    const subs = monQ.findByType(aws.sns.TopicSubscription).map((s) => s.inputs);
    expect(subs.map((s) => [s.protocol, s.endpoint])).toEqual([
      ["email", "a@example.com"],
      ["email", "b@example.com"],
    ]);
  });

  test("alarms for each Redis node and the database, all notifying the topic", async () => {
    // Registration order follows input resolution, not creation order: compare sorted.
    const alarms = monQ.findByType(aws.cloudwatch.MetricAlarm);
    expect(alarms.map((a) => a.name).sort()).toEqual([
      "mon-db-connections",
      "mon-db-cpu",
      "mon-db-free-storage",
      "mon-redis-1-cpu",
      "mon-redis-1-memory",
      "mon-redis-2-cpu",
      "mon-redis-2-memory",
    ]);
    const topic = await outputOf(mon.alarmTopicArn);
    for (const a of alarms) {
      expect(a.inputs.alarmActions).toEqual([topic]);
      expect(a.inputs.okActions).toEqual([topic]);
    }
    expect(monQ.findOne(aws.cloudwatch.MetricAlarm, "redis-2-cpu").inputs.dimensions).toEqual({
      CacheClusterId: "agent-rg-002",
    });
    expect(monQ.findOne(aws.cloudwatch.MetricAlarm, "db-cpu").inputs.dimensions).toEqual({
      DBInstanceIdentifier: "agent-db",
    });
  });

  test("dashboard named per stack, body built from the resolved ids; hooks point at it", async () => {
    const dash = monQ.findOne(aws.cloudwatch.Dashboard).inputs;
    expect(dash.dashboardName).toBe("agent-test-mon");
    expect(dash.dashboardBody).toContain("agent-rg-002");
    expect(await outputOf(mon.hooks.dashboardUrl)).toBe(
      "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards/dashboard/agent-test-mon",
    );
    expect(await outputOf(mon.hooks.logGroupName!)).toBe(await outputOf(mon.logGroup.name));
  });

  test("children are prefixed and parented", () => {
    for (const r of monQ.all()) {
      expect(r.name.startsWith("mon-")).toBe(true);
      expect(resources.parentOf(r)!.name).toBe("mon");
    }
  });

  test.each([
    [{ alertEmails: ["not-an-email"] }, /"not-an-email" is not an e-mail address/],
    [{ logRetentionDays: 10 }, /logRetentionDays is 10/],
    [{ region: "useast1" }, /region "useast1"/],
    [{ thresholds: { cpuPercent: 150 } }, /thresholds.cpuPercent is 150/],
    [{ redis: { replicationGroupId: "x", nodeCount: 0 } }, /redis.nodeCount is 0/],
  ])("%j is refused", (override, message) => {
    const args = { region: "us-east-1", logRetentionDays: 30, ...override };
    expect(() => new Monitoring("bad", args)).toThrow(message);
    expect(() => new Monitoring("bad", args)).toThrow(pulumi.ResourceError);
  });
});

describe("ServiceAlarms", () => {
  test("targets add three alarms on their compute, to the data plane's topic, under their own component", async () => {
    const q = await within(svc);
    const alarms = q.findByType(aws.cloudwatch.MetricAlarm);
    expect(alarms.map((a) => a.name).sort()).toEqual([
      "svc-error-rate",
      "svc-p99-latency",
      "svc-throttles",
    ]);
    const topic = await outputOf(mon.alarmTopicArn);
    for (const a of alarms) expect(a.inputs.alarmActions).toEqual([topic]);
    expect(q.findOne(aws.cloudwatch.MetricAlarm, "p99").inputs).toMatchObject({
      extendedStatistic: "p99",
      threshold: 60000,
      dimensions: { FunctionName: "agent-fn" },
    });
  });

  test("bad thresholds are refused", () => {
    expect(
      () =>
        new ServiceAlarms("bad", {
          source: { kind: "lambda", functionName: "f" },
          alarmTopicArn: "t",
          thresholds: { errorRatePercent: 0 },
        }),
    ).toThrow(/errorRatePercent is 0/);
  });
});
