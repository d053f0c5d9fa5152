/**
 * The Kubernetes objects of the EKS target as plain specs: pure functions that tests validate
 * against the Kubernetes OpenAPI schemas (kubernetes-models) and the component hands to
 * `@pulumi/kubernetes`. Leaves may be `pulumi.Input`s (image, role ARN, endpoints); with plain
 * arguments the result is a plain object.
 */
import type * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";
import type { AlarmSpec } from "../../aws/alarms";
import type { ContainerResources } from "../scaling";
import { IRSA_AUDIENCE } from "./iam";
import { SERVICE_CONTRACT, stopSeconds } from "../../../app/src/contract";

type Input<T> = pulumi.Input<T>;
type Labels = Record<string, string>;

/** The port the service listens on (`PORT`). */
export const APP_PORT = SERVICE_CONTRACT.port;
/** Where the IRSA web-identity token is projected; the AWS SDK reads `AWS_WEB_IDENTITY_TOKEN_FILE`. */
export const IRSA_TOKEN_DIR = "/var/run/secrets/eks.amazonaws.com/serviceaccount";
export const IRSA_TOKEN_FILE = `${IRSA_TOKEN_DIR}/token`;
/** TLS 1.3 and 1.2 only, forward-secret ciphers. */
export const TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06";

/** Labels that select the pods: stable for the Deployment's life (its selector is immutable). */
export function selectorLabels(appName: string, instance: string): Labels {
  return { "app.kubernetes.io/name": appName, "app.kubernetes.io/instance": instance };
}

/**
 * The namespace enforces the `restricted` Pod Security Standard: the API server rejects any pod
 * that could run as root, escalate privileges, keep capabilities or skip seccomp.
 */
export function namespaceMetadata(name: string): k8s.types.input.meta.v1.ObjectMeta {
  return {
    name,
    labels: {
      "pod-security.kubernetes.io/enforce": "restricted",
      "pod-security.kubernetes.io/enforce-version": "latest",
      "pod-security.kubernetes.io/warn": "restricted",
      "pod-security.kubernetes.io/audit": "restricted",
    },
  };
}

/**
 * Kubernetes sends SIGTERM after preStop; the app then drains for up to SHUTDOWN_GRACE_MS. The
 * kubelet's grace period covers both, plus a margin for the process to exit, or in-flight
 * streams are cut by SIGKILL.
 */
export function terminationGracePeriodSeconds(
  shutdownGraceMs: number,
  preStopSeconds: number,
): number {
  return preStopSeconds + stopSeconds(shutdownGraceMs) + 5;
}

export interface DeploymentSpecInput {
  selectorLabels: Labels;
  /** `<repo>@sha256:<digest>`. */
  image: Input<string>;
  serviceAccountName: Input<string>;
  /** The service environment (references only, never secret values), including the IRSA variables. */
  env: Record<string, Input<string>>;
  requests: ContainerResources;
  limits: ContainerResources;
  /** Numeric, so the kubelet can verify non-root without inspecting the image. */
  runAsUser: number;
  runAsGroup: number;
  shutdownGraceMs: number;
  /** Seconds the pod keeps serving after removal from endpoints, before SIGTERM. */
  preStopSeconds: number;
  /** @default "256Mi" */
  tmpSizeLimit?: string;
}

const httpProbe = (
  path: string,
  timing: Omit<k8s.types.input.core.v1.Probe, "httpGet">,
): k8s.types.input.core.v1.Probe => ({
  httpGet: { path, port: "http", scheme: "HTTP" },
  ...timing,
});

/** The Deployment spec: hardened pod, probes, graceful shutdown, zone and node spreading. */
export function deploymentSpec(input: DeploymentSpecInput): k8s.types.input.apps.v1.DeploymentSpec {
  const labelSelector = { matchLabels: input.selectorLabels };
  const securityContext: k8s.types.input.core.v1.SecurityContext = {
    runAsNonRoot: true,
    runAsUser: input.runAsUser,
    runAsGroup: input.runAsGroup,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ["ALL"] },
    seccompProfile: { type: "RuntimeDefault" },
  };
  return {
    // No `replicas`: the HorizontalPodAutoscaler owns the count. Setting it here would reset the
    // scaled-out Deployment to this number on every `pulumi up`.
    selector: labelSelector,
    revisionHistoryLimit: 5,
    progressDeadlineSeconds: 600,
    strategy: {
      type: "RollingUpdate",
      // Never below the current capacity during a rollout; a quarter more pods at a time.
      rollingUpdate: { maxUnavailable: 0, maxSurge: "25%" },
    },
    template: {
      metadata: { labels: { ...input.selectorLabels, "app.kubernetes.io/component": "api" } },
      spec: {
        serviceAccountName: input.serviceAccountName,
        // The brief for this target assumed IRSA needs the API token automounted. It does not:
        // IRSA uses its own projected token (audience sts.amazonaws.com, the `aws-iam-token`
        // volume below); `automountServiceAccountToken` only controls the Kubernetes API token,
        // which this service never uses, so it stays out of the pod.
        automountServiceAccountToken: false,
        // Kubernetes would otherwise inject <SERVICE>_PORT variables for every Service in the namespace.
        enableServiceLinks: false,
        terminationGracePeriodSeconds: terminationGracePeriodSeconds(
          input.shutdownGraceMs,
          input.preStopSeconds,
        ),
        securityContext: {
          runAsNonRoot: true,
          runAsUser: input.runAsUser,
          runAsGroup: input.runAsGroup,
          // Makes the projected token readable by the non-root user.
          fsGroup: input.runAsGroup,
          seccompProfile: { type: "RuntimeDefault" },
        },
        // ScheduleAnyway: with DoNotSchedule, a zone without room would leave pods Pending, and no
        // node autoscaler is there to add any. `pod-template-hash` spreads each revision on its own.
        topologySpreadConstraints: [
          {
            maxSkew: 1,
            topologyKey: "topology.kubernetes.io/zone",
            whenUnsatisfiable: "ScheduleAnyway",
            labelSelector,
            matchLabelKeys: ["pod-template-hash"],
          },
          {
            maxSkew: 1,
            topologyKey: "kubernetes.io/hostname",
            whenUnsatisfiable: "ScheduleAnyway",
            labelSelector,
            matchLabelKeys: ["pod-template-hash"],
          },
        ],
        containers: [
          {
            name: "agent",
            image: input.image,
            // Pinned by digest: the content cannot change under the same reference.
            imagePullPolicy: "IfNotPresent",
            ports: [{ name: "http", containerPort: APP_PORT, protocol: "TCP" }],
            env: Object.keys(input.env)
              .sort()
              .map((name) => ({ name, value: input.env[name] })),
            resources: {
              requests: { cpu: input.requests.cpu, memory: input.requests.memory },
              limits: { cpu: input.limits.cpu, memory: input.limits.memory },
            },
            // Start-up reads secrets and runs migrations: up to two minutes before liveness applies.
            startupProbe: httpProbe(SERVICE_CONTRACT.probes.liveness, {
              periodSeconds: 2,
              timeoutSeconds: 2,
              failureThreshold: 60,
            }),
            livenessProbe: httpProbe(SERVICE_CONTRACT.probes.liveness, {
              periodSeconds: 10,
              timeoutSeconds: 3,
              failureThreshold: 3,
            }),
            // /ready checks Postgres and Redis: a pod that cannot reach them leaves the endpoints.
            readinessProbe: httpProbe(SERVICE_CONTRACT.probes.readiness, {
              periodSeconds: 5,
              timeoutSeconds: 3,
              failureThreshold: 2,
              successThreshold: 1,
            }),
            lifecycle: {
              // Endpoint removal reaches kube-proxy and the load balancer asynchronously; keep
              // serving meanwhile, then SIGTERM starts the app's drain. The `sleep` action needs no
              // shell in the (distroless) image.
              preStop: { sleep: { seconds: input.preStopSeconds } },
            },
            securityContext,
            volumeMounts: [
              { name: "tmp", mountPath: "/tmp" },
              { name: "aws-iam-token", mountPath: IRSA_TOKEN_DIR, readOnly: true },
            ],
          },
        ],
        volumes: [
          // The root filesystem is read-only; Node and the SDKs still want a writable /tmp.
          { name: "tmp", emptyDir: { sizeLimit: input.tmpSizeLimit ?? "256Mi" } },
          // Declared here rather than left to the pod identity webhook, so the pod works and
          // reads the same whether or not the webhook mutates it (it skips pods that have it).
          {
            name: "aws-iam-token",
            projected: {
              sources: [
                {
                  serviceAccountToken: {
                    audience: IRSA_AUDIENCE,
                    expirationSeconds: 86400,
                    path: "token",
                  },
                },
              ],
            },
          },
        ],
      },
    },
  };
}

export interface HpaSpecInput {
  deploymentName: Input<string>;
  /** What the autoscaler scales. @default the Deployment named `deploymentName` */
  target?: { apiVersion: string; kind: string; name: Input<string> };
  minReplicas: number;
  maxReplicas: number;
  targetCpuPercent: number;
  targetMemoryPercent: number;
}

/**
 * autoscaling/v2: CPU and memory utilisation of requests (metrics-server). Up fast (double, or
 * +4 pods, every 15 s, no stabilisation): LLM traffic arrives in bursts. Down slowly (10 % a
 * minute after 5 minutes of lower load): streams last long and flapping costs cold starts.
 */
export function hpaSpec(
  input: HpaSpecInput,
): k8s.types.input.autoscaling.v2.HorizontalPodAutoscalerSpec {
  const utilisation = (name: "cpu" | "memory", averageUtilization: number) => ({
    type: "Resource",
    resource: { name, target: { type: "Utilization", averageUtilization } },
  });
  return {
    scaleTargetRef: input.target ?? {
      apiVersion: "apps/v1",
      kind: "Deployment",
      name: input.deploymentName,
    },
    minReplicas: input.minReplicas,
    maxReplicas: input.maxReplicas,
    metrics: [
      utilisation("cpu", input.targetCpuPercent),
      utilisation("memory", input.targetMemoryPercent),
    ],
    behavior: {
      scaleUp: {
        stabilizationWindowSeconds: 0,
        selectPolicy: "Max",
        policies: [
          { type: "Percent", value: 100, periodSeconds: 15 },
          { type: "Pods", value: 4, periodSeconds: 15 },
        ],
      },
      scaleDown: {
        stabilizationWindowSeconds: 300,
        selectPolicy: "Min",
        policies: [{ type: "Percent", value: 10, periodSeconds: 60 }],
      },
    },
  };
}

/**
 * One pod at a time may be evicted (node drains, upgrades). Only meaningful with 2+ replicas: with
 * one, any budget either blocks drains forever or allows downtime. Unhealthy pods may always be
 * evicted, so a crash-looping pod cannot block a drain.
 */
export function pdbSpec(labels: Labels): k8s.types.input.policy.v1.PodDisruptionBudgetSpec {
  return {
    maxUnavailable: 1,
    selector: { matchLabels: labels },
    unhealthyPodEvictionPolicy: "AlwaysAllow",
  };
}

export interface NetworkPolicyInput {
  selectorLabels: Labels;
  /** The VPC CIDR: Postgres and Redis live in its private subnets. */
  vpcCidr: Input<string>;
  /** Postgres and Redis ports. */
  storePorts: Input<number>[];
}

/**
 * Default deny both ways, then: in on the service port from anywhere (the load balancer reaches pods through
 * node IPs or directly, and probes come from the node); out to cluster DNS, to the stores inside
 * the VPC, and to 443 anywhere (the LLM API, Secrets Manager, STS for IRSA). Enforced by the VPC
 * CNI's network policy agent (`enableNetworkPolicy` on the vpc-cni add-on).
 */
export function networkPolicySpec(
  input: NetworkPolicyInput,
): k8s.types.input.networking.v1.NetworkPolicySpec {
  return {
    podSelector: { matchLabels: input.selectorLabels },
    policyTypes: ["Ingress", "Egress"],
    ingress: [{ ports: [{ protocol: "TCP", port: APP_PORT }] }],
    egress: [
      {
        to: [
          {
            namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } },
            podSelector: { matchLabels: { "k8s-app": "kube-dns" } },
          },
        ],
        ports: [
          { protocol: "UDP", port: 53 },
          { protocol: "TCP", port: 53 },
        ],
      },
      {
        to: [{ ipBlock: { cidr: input.vpcCidr } }],
        ports: input.storePorts.map((port) => ({ protocol: "TCP", port })),
      },
      { to: [{ ipBlock: { cidr: "0.0.0.0/0" } }], ports: [{ protocol: "TCP", port: 443 }] },
    ],
  };
}

/** The in-cluster Service (and the ALB Ingress's backend). */
export function clusterServiceSpec(labels: Labels): k8s.types.input.core.v1.ServiceSpec {
  return {
    type: "ClusterIP",
    selector: labels,
    ports: [{ name: "http", port: 80, targetPort: "http", protocol: "TCP" }],
  };
}

export type LoadBalancerScheme = "internet-facing" | "internal";
/**
 * Who turns the `LoadBalancer` Service into an NLB: the AWS cloud controller that every EKS cluster
 * runs (instance targets through NodePorts), or the AWS Load Balancer Controller, if installed
 * (IP targets straight to pods).
 */
export type NlbController = "cloud-provider" | "aws-load-balancer-controller";

export interface ExposureInput {
  scheme: LoadBalancerScheme;
  /** Comma-separated subnet ids: public for internet-facing, private for internal. Named explicitly so no subnet tags are needed. */
  subnets: Input<string>;
  /** TLS at the load balancer with this ACM certificate. */
  certificateArn?: Input<string>;
}

const SVC = "service.beta.kubernetes.io";

/**
 * NLB annotations. With a certificate the only listener is TLS on 443 (`ssl-ports: https`): an NLB
 * cannot answer plain HTTP with a redirect, so port 80 is simply not exposed.
 */
export function loadBalancerAnnotations(
  controller: NlbController,
  e: ExposureInput,
): Record<string, Input<string>> {
  const annotations: Record<string, Input<string>> = controller === "cloud-provider"
    ? {
        [`${SVC}/aws-load-balancer-type`]: "nlb",
        ...(e.scheme === "internal" ? { [`${SVC}/aws-load-balancer-internal`]: "true" } : {}),
      }
    : {
        [`${SVC}/aws-load-balancer-type`]: "external",
        [`${SVC}/aws-load-balancer-nlb-target-type`]: "ip",
        [`${SVC}/aws-load-balancer-scheme`]: e.scheme,
      };
  annotations[`${SVC}/aws-load-balancer-subnets`] = e.subnets;
  annotations[`${SVC}/aws-load-balancer-healthcheck-protocol`] = "http";
  annotations[`${SVC}/aws-load-balancer-healthcheck-path`] = SERVICE_CONTRACT.probes.readiness;
  if (e.certificateArn !== undefined) {
    annotations[`${SVC}/aws-load-balancer-ssl-cert`] = e.certificateArn;
    annotations[`${SVC}/aws-load-balancer-ssl-ports`] = "https";
    annotations[`${SVC}/aws-load-balancer-ssl-negotiation-policy`] = TLS_POLICY;
    // TLS ends at the NLB; pods speak plain HTTP inside the VPC.
    annotations[`${SVC}/aws-load-balancer-backend-protocol`] = "tcp";
  }
  return annotations;
}

/** The `LoadBalancer` Service: 443 when TLS terminates at the NLB, else 80. */
export function loadBalancerServiceSpec(
  labels: Labels,
  tls: boolean,
): k8s.types.input.core.v1.ServiceSpec {
  return {
    type: "LoadBalancer",
    selector: labels,
    ports: [
      { name: tls ? "https" : "http", port: tls ? 443 : 80, targetPort: "http", protocol: "TCP" },
    ],
  };
}

const ALB = "alb.ingress.kubernetes.io";

/** AWS Load Balancer Controller Ingress annotations: an ALB to pod IPs, HTTP redirected to HTTPS when TLS is on. */
export function albIngressAnnotations(e: ExposureInput): Record<string, Input<string>> {
  const annotations: Record<string, Input<string>> = {
    [`${ALB}/scheme`]: e.scheme,
    [`${ALB}/target-type`]: "ip",
    [`${ALB}/subnets`]: e.subnets,
    [`${ALB}/healthcheck-path`]: SERVICE_CONTRACT.probes.readiness,
    [`${ALB}/listen-ports`]:
      e.certificateArn !== undefined ? '[{"HTTP":80},{"HTTPS":443}]' : '[{"HTTP":80}]',
  };
  if (e.certificateArn !== undefined) {
    annotations[`${ALB}/certificate-arn`] = e.certificateArn;
    annotations[`${ALB}/ssl-redirect`] = "443";
    annotations[`${ALB}/ssl-policy`] = TLS_POLICY;
  }
  return annotations;
}

/** The Ingress spec: everything to the in-cluster Service; only `host` when a domain is set. */
export function albIngressSpec(
  serviceName: Input<string>,
  host?: string,
): k8s.types.input.networking.v1.IngressSpec {
  return {
    ingressClassName: "alb",
    rules: [
      {
        ...(host ? { host } : {}),
        http: {
          paths: [
            {
              path: "/",
              pathType: "Prefix",
              backend: { service: { name: serviceName, port: { name: "http" } } },
            },
          ],
        },
      },
    ],
  };
}

/**
 * Container Insights reports `pod_number_of_container_restarts` per workload (its `PodName`
 * dimension is the Deployment's name). The value is a pod's restarts over its life, so Maximum
 * >= 3 means some pod is crash-looping or being OOM-killed; the alarm clears once that pod is
 * replaced. Chosen over a load-balancer 5xx alarm because the controller-made NLB has no HTTP
 * metrics and its name is not known to Pulumi.
 */
export function podRestartAlarmSpec(
  clusterName: Input<string>,
  namespace: Input<string>,
  deploymentName: Input<string>,
): AlarmSpec {
  return {
    key: "pod-restarts",
    description:
      "EKS: a pod of the agent Deployment restarted 3+ times (crash loop, failing liveness probe or OOM kill)",
    namespace: "ContainerInsights",
    metricName: "pod_number_of_container_restarts",
    dimensions: { ClusterName: clusterName, Namespace: namespace, PodName: deploymentName },
    statistic: "Maximum",
    threshold: 3,
    comparison: "GreaterThanOrEqualToThreshold",
    period: 300,
    evaluationPeriods: 3,
    datapointsToAlarm: 2,
    treatMissingData: "notBreaching",
  };
}

/**
 * The NLB's name from the hostname Kubernetes put in the Service's status: AWS names NLB DNS
 * entries `<name>-<hex id>.elb.<region>.amazonaws.com`
 * (https://docs.aws.amazon.com/elasticloadbalancing/latest/network/network-load-balancers.html).
 */
export function loadBalancerNameOf(hostname: string): string {
  const m = /^([a-zA-Z0-9-]+?)-[0-9a-f]+\.elb\.[a-z0-9-]+\.amazonaws\.com$/.exec(hostname);
  if (!m) {
    throw new Error(
      `load balancer hostname "${hostname}" is not an NLB's <name>-<id>.elb.<region>.amazonaws.com: check the Service's status`,
    );
  }
  return m[1]!;
}

/**
 * The entry point's alarm: no healthy pod behind the NLB for three minutes. A Metrics Insights
 * query, because the NLB's dimension value exists only once Kubernetes created it. Missing data
 * (no load balancer reporting at all) is breaching: that is an outage too.
 */
export function nlbEntryAlarmSpec(query: Input<string>): AlarmSpec {
  return {
    key: "no-healthy-targets",
    description: "EKS entry point: the NLB has had no healthy agent pod for 3 minutes",
    query,
    threshold: 1,
    comparison: "LessThanThreshold",
    period: 60,
    evaluationPeriods: 3,
    datapointsToAlarm: 3,
    treatMissingData: "breaching",
  };
}

/** `query` of `nlbEntryAlarmSpec` for the NLB whose ARN suffix is `net/<name>/<id>`. */
export function healthyHostsQuery(loadBalancerArnSuffix: string): string {
  return `SELECT MIN(HealthyHostCount) FROM SCHEMA("AWS/NetworkELB", LoadBalancer, TargetGroup) WHERE LoadBalancer = '${loadBalancerArnSuffix}'`;
}
