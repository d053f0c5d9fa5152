/**
 * Progressive delivery on EKS with Argo Rollouts (https://argoproj.github.io/argo-rollouts/):
 * the program installs the controller (a pinned chart, components/versions.ts), and a `Rollout`
 * takes over the agent's Deployment through `workloadRef`: the Deployment stays the pod template
 * (scaled to zero), the Rollout runs the pods, moves them through the canary steps and analyses
 * each release against the service's signals, aborting (back to the stable pods) when a gate
 * fails.
 *
 * The signals (an AnalysisTemplate run in the background from the first step):
 * - always: the canary pods answer `/ready` through the canary Service (Argo points it at them);
 * - with an ALB: its 5xx ratio and p99 target response time, per minute (CloudWatch);
 * - with an NLB: at least one healthy target. An NLB is TCP: it has no HTTP status or latency
 *   metrics, so behind an NLB the canary is judged on readiness and health only.
 *
 * The ALB and NLB metrics are the whole load balancer's (stable and canary), like the GCP group's.
 */
import * as aws from "@pulumi/aws";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { CLUSTER_ADDONS } from "../../versions";
import { argoCanarySteps, type RolloutGates } from "../../release/rollout-plan";
import { irsaTrustPolicy } from "./iam";

type Input<T> = pulumi.Input<T>;
const ARGO = CLUSTER_ADDONS.argoRollouts;
/** The controller's service account (the chart's `serviceAccount.name`), trusted by its IRSA role. */
export const ARGO_SERVICE_ACCOUNT = "argo-rollouts";
export const ROLLOUT_API_VERSION = "argoproj.io/v1alpha1";

/**
 * The controller reads CloudWatch with `cloudwatch:GetMetricData`, which has no resource-level
 * permissions (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatch.html),
 * so `*` is its only resource; it may do nothing else.
 */
export function argoMetricsPolicy(): string {
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [{ Effect: "Allow", Action: ["cloudwatch:GetMetricData"], Resource: "*" }],
  });
}

/** The chart's values: our service account (IRSA), the region the CloudWatch provider needs, no dashboard. */
export function argoChartValues(roleArn: Input<string>, region: Input<string>) {
  return {
    installCRDs: true,
    serviceAccount: {
      create: true,
      name: ARGO_SERVICE_ACCOUNT,
      annotations: { "eks.amazonaws.com/role-arn": roleArn },
    },
    // "you need to define AWS_REGION in Deployment for argo-rollouts"
    // (https://argoproj.github.io/argo-rollouts/analysis/cloudwatch/).
    controller: { extraEnv: [{ name: "AWS_REGION", value: region }] },
    dashboard: { enabled: false },
  };
}

export interface ArgoRolloutsArgs {
  provider: k8s.Provider;
  oidcProviderArn: Input<string>;
  oidcProviderUrl: Input<string>;
  region: Input<string>;
}

/** The Argo Rollouts controller: its IRSA role (CloudWatch reads) and the pinned chart. */
export class ArgoRolloutsController extends pulumi.ComponentResource {
  readonly role: aws.iam.Role;
  readonly release: k8s.helm.v3.Release;

  constructor(name: string, args: ArgoRolloutsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:eks:ArgoRollouts", name, {}, opts);
    this.role = new aws.iam.Role(
      `${name}-role`,
      {
        description: `IRSA role of ${ARGO.namespace}/${ARGO_SERVICE_ACCOUNT}: reads CloudWatch metrics for canary analysis`,
        assumeRolePolicy: pulumi
          .all([args.oidcProviderArn, args.oidcProviderUrl])
          .apply(([arn, url]) =>
            JSON.stringify(irsaTrustPolicy(arn, url, ARGO.namespace, ARGO_SERVICE_ACCOUNT)),
          ),
      },
      { parent: this },
    );
    new aws.iam.RolePolicy(
      `${name}-metrics`,
      { role: this.role.name, policy: argoMetricsPolicy() },
      { parent: this },
    );
    this.release = new k8s.helm.v3.Release(
      `${name}-chart`,
      {
        name: "argo-rollouts",
        chart: ARGO.chart,
        version: ARGO.version,
        repositoryOpts: { repo: ARGO.repo },
        namespace: ARGO.namespace,
        createNamespace: true,
        // The CRDs must exist before a Rollout is created.
        atomic: true,
        values: argoChartValues(this.role.arn, args.region),
      },
      { parent: this, provider: args.provider },
    );
    this.registerOutputs({ roleArn: this.role.arn });
  }
}

/** The canary's signals: which load balancer's metrics exist. */
export type CanarySignals =
  | { kind: "alb"; loadBalancerArnSuffix: Input<string> }
  | { kind: "nlb"; loadBalancerArnSuffix: Input<string> };

export interface AnalysisInput {
  gates: RolloutGates;
  signals: CanarySignals;
  /** `http://<canary service>.<namespace>.svc.cluster.local:<port>` */
  canaryUrl: Input<string>;
  readyPath: string;
}

const minute = (
  id: string,
  namespace: string,
  metricName: string,
  stat: string,
  lb: Input<string>,
) => ({
  id,
  metricStat: {
    metric: { namespace, metricName, dimensions: [{ name: "LoadBalancer", value: lb }] },
    period: 60,
    stat,
  },
  returnData: false,
});

/**
 * The AnalysisTemplate's metrics, one measurement a minute. A metric fails the rollout after
 * `badMinutes` failed measurements (`failureLimit` counts the ones allowed).
 */
export function analysisMetrics(input: AnalysisInput) {
  const g = input.gates;
  const failureLimit = g.badMinutes - 1;
  const window = `${g.windowMinutes}m`;
  const metrics: Record<string, unknown>[] = [
    {
      name: "canary-ready",
      interval: "1m",
      failureLimit,
      successCondition: 'result == "ready"',
      provider: {
        web: {
          url: pulumi.interpolate`${input.canaryUrl}${input.readyPath}`,
          jsonPath: "{$.status}",
          timeoutSeconds: 5,
        },
      },
    },
  ];
  const lb = input.signals.loadBalancerArnSuffix;
  if (input.signals.kind === "alb") {
    metrics.push(
      {
        name: "error-rate",
        interval: "1m",
        failureLimit,
        // Minutes with fewer requests than the gate's minimum count as good (the ratio is noise).
        successCondition: `all(result[0].Values, {# <= ${g.errorRatePercent}})`,
        provider: {
          cloudWatch: {
            interval: window,
            metricDataQueries: [
              minute("errors", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "Sum", lb),
              minute("requests", "AWS/ApplicationELB", "RequestCount", "Sum", lb),
              {
                id: "rate",
                expression: `IF(requests >= ${g.minRequestsPerMinute}, 100 * FILL(errors, 0) / requests, 0)`,
                returnData: true,
              },
            ],
          },
        },
      },
      {
        name: "p99-latency",
        interval: "1m",
        failureLimit,
        // TargetResponseTime is in seconds.
        successCondition: `all(result[0].Values, {# <= ${g.p99LatencyMs / 1000}})`,
        provider: {
          cloudWatch: {
            interval: window,
            metricDataQueries: [
              {
                ...minute("p99", "AWS/ApplicationELB", "TargetResponseTime", "p99", lb),
                returnData: true,
              },
            ],
          },
        },
      },
    );
  } else {
    metrics.push({
      name: "healthy-targets",
      interval: "1m",
      failureLimit,
      successCondition: "all(result[0].Values, {# >= 1})",
      provider: {
        cloudWatch: {
          interval: window,
          metricDataQueries: [
            {
              ...minute("healthy", "AWS/NetworkELB", "HealthyHostCount", "Minimum", lb),
              returnData: true,
            },
          ],
        },
      },
    });
  }
  return metrics;
}

export interface RolloutSpecInput {
  deploymentName: Input<string>;
  selectorLabels: Record<string, string>;
  steps: { percent: number; minutes: number }[];
  canaryService: Input<string>;
  analysisTemplate: Input<string>;
}

/**
 * The Rollout: the Deployment's pod template (`workloadRef`), canary steps, background analysis
 * from the first step on. No `replicas`: the HorizontalPodAutoscaler scales the Rollout.
 */
export function rolloutSpec(input: RolloutSpecInput) {
  return {
    selector: { matchLabels: input.selectorLabels },
    workloadRef: {
      apiVersion: "apps/v1",
      kind: "Deployment",
      name: input.deploymentName,
      // The Deployment keeps running until the Rollout's pods are up, then scales to zero
      // (https://argoproj.github.io/argo-rollouts/migrating/#reference-deployment-from-rollout).
      scaleDown: "progressively",
    },
    revisionHistoryLimit: 5,
    progressDeadlineSeconds: 600,
    // A failed analysis aborts: the stable pods take all traffic again and the Rollout is Degraded.
    progressDeadlineAbort: true,
    strategy: {
      canary: {
        canaryService: input.canaryService,
        maxUnavailable: 0,
        maxSurge: "25%",
        steps: argoCanarySteps(input.steps),
        analysis: { templates: [{ templateName: input.analysisTemplate }], startingStep: 1 },
      },
    },
  };
}

export interface ArgoCanaryInput {
  name: string;
  namespace: Input<string>;
  appName: string;
  labels: Record<string, string>;
  deploymentName: Input<string>;
  steps: { percent: number; minutes: number }[];
  gates: RolloutGates;
  signals: CanarySignals;
  readyPath: string;
  /** Installs the controller; false when the cluster has Argo Rollouts already. */
  controller?: ArgoRolloutsArgs;
  /** The in-cluster Service spec for the canary (the stable one's, Argo narrows its selector). */
  canaryServiceSpec: k8s.types.input.core.v1.ServiceSpec;
  k8sOpts: pulumi.CustomResourceOptions;
}

export interface ArgoCanary {
  controller?: ArgoRolloutsController;
  canaryService: k8s.core.v1.Service;
  analysisTemplate: k8s.apiextensions.CustomResource;
  rollout: k8s.apiextensions.CustomResource;
}

/** The canary of the agent's Deployment: controller (optional), canary Service, analysis, Rollout. */
export function createArgoCanary(parent: pulumi.Resource, input: ArgoCanaryInput): ArgoCanary {
  const { name, k8sOpts } = input;
  const controller =
    input.controller && new ArgoRolloutsController(`${name}-argo`, input.controller, { parent });
  const canaryService = new k8s.core.v1.Service(
    `${name}-canary-svc`,
    {
      metadata: {
        name: `${input.appName}-canary`,
        namespace: input.namespace,
        labels: input.labels,
      },
      spec: input.canaryServiceSpec,
    },
    k8sOpts,
  );
  const crdReady = controller ? { dependsOn: [controller.release] } : {};
  const analysisTemplate = new k8s.apiextensions.CustomResource(
    `${name}-analysis`,
    {
      apiVersion: ROLLOUT_API_VERSION,
      kind: "AnalysisTemplate",
      metadata: { name: `${input.appName}-canary`, namespace: input.namespace },
      spec: {
        metrics: analysisMetrics({
          gates: input.gates,
          signals: input.signals,
          canaryUrl: pulumi.interpolate`http://${canaryService.metadata.name}.${input.namespace}.svc.cluster.local:80`,
          readyPath: input.readyPath,
        }),
      },
    },
    { ...k8sOpts, ...crdReady },
  );
  const rollout = new k8s.apiextensions.CustomResource(
    `${name}-rollout`,
    {
      apiVersion: ROLLOUT_API_VERSION,
      kind: "Rollout",
      metadata: { name: input.appName, namespace: input.namespace, labels: input.labels },
      spec: rolloutSpec({
        deploymentName: input.deploymentName,
        selectorLabels: input.labels,
        steps: input.steps,
        canaryService: canaryService.metadata.name,
        analysisTemplate: analysisTemplate.metadata.name,
      }),
    },
    { ...k8sOpts, ...crdReady },
  );
  return { controller, canaryService, analysisTemplate, rollout };
}
