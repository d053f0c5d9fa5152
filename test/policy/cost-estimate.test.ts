/** The built-in conservative estimate the monthly-cost rule falls back on. */
import {
  cloudSqlMonthly,
  ec2Hourly,
  fallbackEstimate,
  gceMonthly,
  parseCpu,
  parseMemGb,
  resourceMonthlyUsd,
} from "../../infra/policy/cost-estimate";
import { getCostEstimator, setCostEstimator } from "../../infra/policy/cost-hook";
import { aws, gcp, k8s, res } from "./fixtures";

test("EC2, RDS and ElastiCache hourly prices, at or above us-east-1 on-demand list prices", () => {
  expect(ec2Hourly("t3.small")).toBeCloseTo(0.0208, 4);
  expect(ec2Hourly("t3.medium")).toBeCloseTo(0.0416, 4);
  expect(ec2Hourly("m6i.large")).toBeCloseTo(0.096, 3);
  expect(ec2Hourly("m7g.large")).toBeGreaterThanOrEqual(0.0816);
  expect(ec2Hourly("db.m7g.large", "rds")).toBeGreaterThanOrEqual(0.168);
  expect(ec2Hourly("db.t4g.micro", "rds")).toBeGreaterThanOrEqual(0.016);
  expect(ec2Hourly("cache.m7g.large", "cache")).toBeGreaterThanOrEqual(0.158);
  expect(ec2Hourly("m6i.2xlarge")).toBeCloseTo(4 * ec2Hourly("m6i.large"), 6);
  // Anything it cannot read is priced high, so it shows.
  expect(ec2Hourly("x9z.weird")).toBe(0.4);
  expect(ec2Hourly("t3.gigantic")).toBe(0.4);
});

test("GCE and Cloud SQL monthly prices", () => {
  expect(gceMonthly("e2-small")).toBeCloseTo(12.3, 1);
  expect(gceMonthly("zones/us-central1-a/machineTypes/e2-standard-2")).toBe(49);
  expect(gceMonthly("c3-standard-22")).toBe(22 * 31);
  expect(cloudSqlMonthly("db-g1-small")).toBeCloseTo(25.6, 1);
  expect(cloudSqlMonthly("db-custom-2-7680")).toBeCloseTo(2 * 30.2 + 7.5 * 5.2, 1);
  expect(cloudSqlMonthly("db-mystery")).toBe(0.4 * 730);
});

test("quantities", () => {
  expect([parseCpu("250m"), parseCpu("2"), parseCpu("x")]).toEqual([0.25, 2, 1]);
  expect(parseMemGb("512Mi")).toBe(0.5);
  expect(parseMemGb("2Gi")).toBe(2);
});

test("always-on items are priced; per-use and free ones are not", () => {
  expect(resourceMonthlyUsd(res("aws:eks/cluster:Cluster", {}))).toBeCloseTo(73, 0);
  expect(resourceMonthlyUsd(res("aws:ec2/natGateway:NatGateway", {}))).toBeCloseTo(32.85, 2);
  expect(resourceMonthlyUsd(aws.rds())).toBeGreaterThan(
    2 * resourceMonthlyUsd(aws.rds({ multiAz: false })) - 1,
  );
  expect(resourceMonthlyUsd(gcp.redis())).toBeCloseTo(5 * 0.064 * 730, 1);
  expect(resourceMonthlyUsd(gcp.cloudRun())).toBeCloseTo(
    2 * (2 * 0.000018 + 2 * 0.000002) * 3600 * 730,
    1,
  );
  expect(
    resourceMonthlyUsd(res("kubernetes:core/v1:Service", { spec: { type: "LoadBalancer" } })),
  ).toBeGreaterThan(16);
  expect(
    resourceMonthlyUsd(res("kubernetes:core/v1:Service", { spec: { type: "ClusterIP" } })),
  ).toBe(0);
  expect(resourceMonthlyUsd(aws.lambda())).toBe(0);
  expect(resourceMonthlyUsd(k8s.deployment())).toBe(0);
  expect(resourceMonthlyUsd(aws.provisioned(10), [aws.lambda({ memorySize: 1024 })])).toBe(110);
});

test("groups are priced at their minimum size times their template's type, largest lines first", () => {
  const est = fallbackEstimate([
    aws.asg({ minSize: 2, desiredCapacity: 2 }),
    aws.launchTemplate({ instanceType: "m6i.large" }),
    res("aws:ec2/natGateway:NatGateway", {}),
  ]);
  expect(est.lines[0]).toEqual({
    resource: expect.stringMatching(/^aws:autoscaling\/group:Group/),
    monthlyUsd: expect.closeTo(2 * (0.096 * 730 + 30 * 0.08), 2),
  });
  expect(est.monthlyUsd).toBeCloseTo(2 * (0.096 * 730 + 2.4) + 32.85, 1);
  const gce = fallbackEstimate([
    gcp.autoscaler({ autoscalingPolicy: { minReplicas: 3 } }),
    gcp.template({ machineType: "e2-medium" }),
  ]);
  expect(gce.monthlyUsd).toBeCloseTo(3 * (24.5 + 10 * 0.1), 1);
});

test("the hook registers and removes an estimator", () => {
  const fn = () => 1;
  setCostEstimator(fn, "test model");
  expect(getCostEstimator()).toEqual({ estimate: fn, source: "test model" });
  setCostEstimator(undefined);
  expect(getCostEstimator()).toBeUndefined();
});
