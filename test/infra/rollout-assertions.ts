/**
 * Progressive delivery as each stack renders it (issue 15): staging and prod roll out through the
 * platform's own mechanism, gated on the service's one-minute alarms; dev deploys at once.
 */
import type { RecordedResource } from "../support/pulumi";
import type { RenderedStack } from "../support/render-stack";
import {
  argoCanarySteps,
  codeDeployTrafficRouting,
  instanceRefreshCheckpoints,
  ROLLOUT_PLAN_ENV,
  type RolloutPlan,
} from "../../components/release/rollout-plan";
import { previousRevision, previousTemplate } from "../../infra/plan/mock-outputs-release";

/** The rollout drivers' plans, as the command would read them. */
function driverPlans(s: RenderedStack): RolloutPlan[] {
  return s.q
    .findByType("command:local:Command")
    .map((r) => (r.inputs as { environment?: Record<string, string> }).environment)
    .filter((env): env is Record<string, string> => Boolean(env?.[ROLLOUT_PLAN_ENV]))
    .map((env) => JSON.parse(env[ROLLOUT_PLAN_ENV]!) as RolloutPlan);
}

/** The names of the one-minute gate alarms (their autonamed physical names). */
function gateAlarmNames(s: RenderedStack): string[] {
  return s.q
    .findByType("aws:cloudwatch/metricAlarm:MetricAlarm")
    .filter((a) => a.name.includes("-rollout-gate-"))
    .map((a) => String(a.state.name))
    .sort();
}

function only(s: RenderedStack, type: string): RecordedResource {
  const found = s.q.findByType(type);
  expect(found).toHaveLength(1);
  return found[0]!;
}

export function describeRollout(stack: string, get: () => RenderedStack): void {
  describe(`stack ${stack}: progressive delivery (issue 15)`, () => {
    test("dev deploys at once: no driver, no canary resources", () => {
      const s = get();
      if (s.config.rolloutSteps.length > 0) {
        expect(s.config.environment).not.toBe("dev");
        return;
      }
      expect(driverPlans(s)).toEqual([]);
      for (const type of [
        "aws:codedeploy/deploymentGroup:DeploymentGroup",
        "kubernetes:argoproj.io/v1alpha1:Rollout",
        "kubernetes:helm.sh/v3:Release",
      ]) {
        expect(s.q.findByType(type)).toEqual([]);
      }
      expect(gateAlarmNames(s)).toEqual([]);
    });

    test("staging and prod roll out through the platform's mechanism, gated on the service's alarms", () => {
      const s = get();
      const steps = s.config.rolloutSteps;
      if (steps.length === 0) return;
      const plans = driverPlans(s);
      switch (s.config.target) {
        case "lambda": {
          const gates = gateAlarmNames(s);
          expect(gates).toHaveLength(2);
          const group = only(s, "aws:codedeploy/deploymentGroup:DeploymentGroup");
          expect(group.inputs).toMatchObject({
            deploymentStyle: {
              deploymentOption: "WITH_TRAFFIC_CONTROL",
              deploymentType: "BLUE_GREEN",
            },
            autoRollbackConfiguration: {
              enabled: true,
              events: ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"],
            },
            alarmConfiguration: { enabled: true },
          });
          const watched = (group.inputs as { alarmConfiguration: { alarms: string[] } })
            .alarmConfiguration.alarms;
          expect([...watched].sort()).toEqual(gates);
          const config = only(s, "aws:codedeploy/deploymentConfig:DeploymentConfig");
          expect(config.inputs).toMatchObject({
            computePlatform: "Lambda",
            trafficRoutingConfig: codeDeployTrafficRouting(steps),
          });
          // CodeDeploy moves the alias; Pulumi must not move it back.
          const alias = only(s, "aws:lambda/alias:Alias");
          expect(alias.options.ignoreChanges).toEqual(
            expect.arrayContaining(["functionVersion", "routingConfig"]),
          );
          expect(plans).toEqual([
            expect.objectContaining({
              kind: "lambda-codedeploy",
              alias: "live",
              deploymentGroup: group.state.deploymentGroupName,
            }),
          ]);
          break;
        }
        case "vmgroup": {
          if (s.config.cloud === "aws") {
            const gates = gateAlarmNames(s);
            expect(gates).toHaveLength(2);
            const asg = only(s, "aws:autoscaling/group:Group");
            const refresh = (
              asg.inputs as {
                instanceRefresh: {
                  preferences: {
                    checkpointPercentages: number[];
                    checkpointDelay: string;
                    alarmSpecification: { alarms: string[] };
                    autoRollback: boolean;
                  };
                };
              }
            ).instanceRefresh.preferences;
            const c = instanceRefreshCheckpoints(steps);
            expect(refresh.checkpointPercentages).toEqual(c.checkpointPercentages);
            expect(refresh.checkpointDelay).toBe(String(c.checkpointDelaySeconds));
            expect(refresh.autoRollback).toBe(true);
            expect([...refresh.alarmSpecification.alarms].sort()).toEqual(gates);
            expect(plans).toEqual([
              {
                kind: "aws-instance-refresh",
                region: expect.any(String),
                autoScalingGroupName: asg.state.name,
              },
            ]);
          } else {
            const mig = only(
              s,
              "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager",
            );
            const name = String(mig.inputs.name);
            // The group keeps the template it runs; the new one is the driver's canary.
            expect(mig.inputs.versions).toEqual([
              {
                name: "stable",
                instanceTemplate: previousTemplate(String(mig.inputs.project), name),
              },
            ]);
            const template = only(s, "gcp:compute/instanceTemplate:InstanceTemplate");
            expect(template.options.retainOnDelete).toBe(true);
            const urlMap = s.q
              .findByType("gcp:compute/uRLMap:URLMap")
              .find((u) => u.inputs.defaultService !== undefined);
            expect(plans).toEqual([
              expect.objectContaining({
                kind: "gce-mig",
                instanceGroupManager: name,
                instanceTemplate: template.state.selfLinkUnique,
                urlMap: urlMap?.state.name,
                steps,
                gates: expect.objectContaining({ errorRatePercent: 5, p99LatencyMs: 30_000 }),
              }),
            ]);
          }
          break;
        }
        case "cloudrun": {
          const service = only(s, "gcp:cloudrunv2/service:Service");
          const name = String(service.inputs.name);
          expect(name).toContain(s.config.stack);
          // The new revision starts with no traffic: everything stays on the serving one.
          expect(service.inputs.traffics).toEqual([
            {
              type: "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION",
              revision: previousRevision(name),
              percent: 100,
            },
          ]);
          expect(plans).toEqual([
            expect.objectContaining({
              kind: "cloud-run",
              service: name,
              steps,
              gates: expect.objectContaining({ errorRatePercent: 5, p99LatencyMs: 30_000 }),
            }),
          ]);
          break;
        }
        case "eks": {
          const rollout = only(s, "kubernetes:argoproj.io/v1alpha1:Rollout");
          const spec = (rollout.inputs as { spec: Record<string, unknown> }).spec as {
            workloadRef: { kind: string; name: string };
            strategy: {
              canary: { steps: unknown[]; analysis: { templates: { templateName: string }[] } };
            };
          };
          expect(spec.workloadRef.kind).toBe("Deployment");
          expect(spec.strategy.canary.steps).toEqual(argoCanarySteps(steps));
          const template = only(s, "kubernetes:argoproj.io/v1alpha1:AnalysisTemplate");
          expect(spec.strategy.canary.analysis.templates).toEqual([
            { templateName: (template.inputs as { metadata: { name: string } }).metadata.name },
          ]);
          // The Deployment is the Rollout's template: Argo scales it down once the Rollout's pods
          // serve, and Pulumi never sets its replicas back.
          expect(spec.workloadRef).toMatchObject({
            apiVersion: "apps/v1",
            scaleDown: "progressively",
          });
          const deployment = only(s, "kubernetes:apps/v1:Deployment");
          expect(spec.workloadRef.name).toBe(
            (deployment.inputs as { metadata: { name: string } }).metadata.name,
          );
          expect(
            (deployment.inputs as { spec: { replicas?: number } }).spec.replicas,
          ).toBeUndefined();
          const hpa = only(s, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler");
          expect((hpa.inputs as { spec: { scaleTargetRef: unknown } }).spec.scaleTargetRef).toEqual(
            {
              apiVersion: "argoproj.io/v1alpha1",
              kind: "Rollout",
              name: (rollout.inputs as { metadata: { name: string } }).metadata.name,
            },
          );
          const chart = only(s, "kubernetes:helm.sh/v3:Release");
          expect(chart.inputs).toMatchObject({
            chart: "argo-rollouts",
            version: expect.stringMatching(/^\d+\.\d+\.\d+$/),
          });
          break;
        }
        default:
          throw new Error(
            `no rollout assertions for target ${(s.config as { target: string }).target}`,
          );
      }
    });
  });
}
