/** Argo Rollouts on EKS (issue 15): the canary's steps, its analysis and the controller's rights. */
import {
  analysisMetrics,
  argoChartValues,
  argoMetricsPolicy,
  rolloutSpec,
} from "../../../components/targets/eks/rollouts";
import { CLUSTER_ADDONS } from "../../../components/versions";
import { defaultGates } from "../../../components/release/rollout-plan";
import { outputOf } from "../../support/pulumi";

const gates = defaultGates(60_000);
type Metric = {
  name: string;
  failureLimit: number;
  successCondition: string;
  provider: Record<string, any>;
};

describe("analysis", () => {
  test("behind an ALB: canary readiness, the 5xx ratio and p99 per minute, failing after the gates' bad minutes", () => {
    const metrics = analysisMetrics({
      gates,
      signals: { kind: "alb", loadBalancerArnSuffix: "app/k8s-agent/abc" },
      canaryUrl: "http://agent-canary.agent.svc.cluster.local:80",
      readyPath: "/ready",
    }) as Metric[];
    expect(metrics.map((m) => m.name)).toEqual(["canary-ready", "error-rate", "p99-latency"]);
    for (const m of metrics) expect(m.failureLimit).toBe(gates.badMinutes - 1);
    const rate = metrics[1]!;
    expect(rate.successCondition).toBe(`all(result[0].Values, {# <= ${gates.errorRatePercent}})`);
    const queries = rate.provider.cloudWatch.metricDataQueries as {
      id: string;
      expression?: string;
      returnData: boolean;
    }[];
    // One series returned (result[0]): the ratio, zero in minutes below the request minimum.
    expect(queries.filter((q) => q.returnData).map((q) => q.id)).toEqual(["rate"]);
    expect(queries.find((q) => q.id === "rate")!.expression).toContain(
      `requests >= ${gates.minRequestsPerMinute}`,
    );
    // TargetResponseTime is in seconds.
    expect(metrics[2]!.successCondition).toBe(
      `all(result[0].Values, {# <= ${gates.p99LatencyMs / 1000}})`,
    );
    expect(metrics[2]!.provider.cloudWatch.metricDataQueries[0].metricStat.stat).toBe("p99");
  });

  test("behind an NLB (TCP: no HTTP metrics): canary readiness and healthy targets", async () => {
    const metrics = analysisMetrics({
      gates,
      signals: { kind: "nlb", loadBalancerArnSuffix: "net/agent/abc" },
      canaryUrl: "http://agent-canary.agent.svc.cluster.local:80",
      readyPath: "/ready",
    }) as Metric[];
    expect(metrics.map((m) => m.name)).toEqual(["canary-ready", "healthy-targets"]);
    expect(await outputOf(metrics[0]!.provider.web.url)).toBe(
      "http://agent-canary.agent.svc.cluster.local:80/ready",
    );
    expect(metrics[0]!.successCondition).toBe('result == "ready"');
    expect(metrics[1]!.provider.cloudWatch.metricDataQueries[0].metricStat.metric.namespace).toBe(
      "AWS/NetworkELB",
    );
  });
});

test("the Rollout takes the Deployment's pods step by step, analysed from the first step", () => {
  const spec = rolloutSpec({
    deploymentName: "agent",
    selectorLabels: { app: "agent" },
    steps: [
      { percent: 20, minutes: 5 },
      { percent: 50, minutes: 10 },
    ],
    canaryService: "agent-canary",
    analysisTemplate: "agent-canary",
  });
  expect(spec.workloadRef).toEqual({
    apiVersion: "apps/v1",
    kind: "Deployment",
    name: "agent",
    scaleDown: "progressively",
  });
  expect(spec.strategy.canary.steps).toEqual([
    { setWeight: 20 },
    { pause: { duration: "5m" } },
    { setWeight: 50 },
    { pause: { duration: "10m" } },
  ]);
  expect(spec.strategy.canary.maxUnavailable).toBe(0);
  expect(spec.strategy.canary.analysis).toEqual({
    templates: [{ templateName: "agent-canary" }],
    startingStep: 1,
  });
  expect("replicas" in spec).toBe(false);
});

test("the controller: pinned chart, IRSA service account, the region CloudWatch needs, read-only metrics", () => {
  expect(CLUSTER_ADDONS.argoRollouts.version).toMatch(/^\d+\.\d+\.\d+$/);
  const values = argoChartValues("arn:aws:iam::1:role/argo", "us-east-1");
  expect(values.serviceAccount.annotations["eks.amazonaws.com/role-arn"]).toBe(
    "arn:aws:iam::1:role/argo",
  );
  expect(values.controller.extraEnv).toEqual([{ name: "AWS_REGION", value: "us-east-1" }]);
  expect(JSON.parse(argoMetricsPolicy()).Statement).toEqual([
    { Effect: "Allow", Action: ["cloudwatch:GetMetricData"], Resource: "*" },
  ]);
});
