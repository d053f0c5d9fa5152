/**
 * EksTarget under mocks, on an adopted cluster's provider: dev (NLB over HTTP), prod (NLB with
 * TLS, Route 53 name, restart alarm, PDB), an ALB Ingress and an internal NLB through the AWS Load
 * Balancer Controller. Asserts on the inputs the engine would receive.
 */
import * as aws from "@pulumi/aws";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { EksClusterInfo } from "../../../components/targets/eks/cluster";
import { EksCluster } from "../../../components/targets/eks/cluster";
import {
  checkEksTargetArgs,
  checkImageRef,
  EksTarget,
  type EksTargetArgs,
  resolveEksTargetSettings,
} from "../../../components/targets/eks/target";
import { targetScaling } from "../../../components/targets/scaling";
import { loadBalancerNameOf } from "../../../components/targets/eks/specs";
import {
  FAKE_AWS,
  FAKE_IMAGE_DIGEST,
  fakeAwsDataPlane,
  fakeGcpDataPlane,
  fakeImageArtifact,
  fakeLambdaZipArtifact,
} from "../../support/fake-data-plane";
import {
  invocationsOf,
  outputOf,
  type RecordedResource,
  resources,
  type ResourceQuery,
  setupPulumiMocks,
  within,
} from "../../support/pulumi";
// The VPC's CIDR, and the hostnames the load balancer controllers write back into `status`.
import { MOCK_VPC_CIDR as VPC_CIDR } from "../../support/pulumi-target-outputs";

setupPulumiMocks({ stack: "dev" });

/** The hostname the mocked controller reported for a load balancer Service or Ingress. */
const lbHostname = (r: RecordedResource) => {
  const status = r.state.status as { loadBalancer: { ingress: Array<{ hostname: string }> } };
  const hostname = status.loadBalancer.ingress[0]!.hostname;
  expect(hostname).toContain(r.name);
  expect(hostname).toMatch(/\.elb\.us-east-1\.amazonaws\.com$/);
  return hostname;
};

const ECR_IMAGE = `123456789012.dkr.ecr.us-east-1.amazonaws.com/agent@${FAKE_IMAGE_DIGEST}`;
const CERT = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555";
const SECRETS_KEY = "arn:aws:kms:us-east-1:123456789012:key/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const ISSUER = "https://oidc.eks.us-east-1.amazonaws.com/id/ABCDEF0123456789";
const ISSUER_HOST = ISSUER.replace("https://", "");
const OIDC_ARN = `arn:aws:iam::123456789012:oidc-provider/${ISSUER_HOST}`;
const PROVIDER_TYPE = "pulumi:providers:kubernetes";

let devCluster: EksCluster;
let prodCluster: EksCluster;
const targets: Record<"dev" | "prod" | "alb" | "internal", EksTarget> = {} as never;
const q: Record<keyof typeof targets, ResourceQuery> = {} as never;

function cluster(name: string, containerInsights: boolean): EksCluster {
  return new EksCluster(name, {
    environment: "dev",
    existing: {
      kubeconfig: '{"apiVersion":"v1","kind":"Config"}',
      oidcProviderArn: OIDC_ARN,
      oidcProviderUrl: ISSUER,
      clusterName: `${name}-cluster`,
      containerInsights,
    },
  });
}

function baseArgs(info: EksClusterInfo, environment: "dev" | "prod" = "dev"): EksTargetArgs {
  return {
    dataPlane: fakeAwsDataPlane({ environment }),
    artifact: fakeImageArtifact(ECR_IMAGE),
    cluster: info,
  };
}

beforeAll(async () => {
  devCluster = cluster("devc", false);
  prodCluster = cluster("prodc", true);
  targets.dev = new EksTarget("dev", baseArgs(devCluster.info));
  targets.prod = new EksTarget("prod", {
    ...baseArgs(prodCluster.info, "prod"),
    domain: "agent.example.com",
    certificateArn: CERT,
    hostedZoneId: "Z0123456789ABC",
    secretKmsKeyArns: [SECRETS_KEY],
  });
  targets.alb = new EksTarget("alb", {
    ...baseArgs(devCluster.info),
    namespace: "agent-alb",
    ingress: "alb",
    domain: "alb.example.com",
    certificateArn: CERT,
  });
  targets.internal = new EksTarget("internal", {
    ...baseArgs(devCluster.info),
    namespace: "agent-internal",
    scheme: "internal",
    nlbController: "aws-load-balancer-controller",
    vpcCidrBlock: "172.16.0.0/16",
  });
  for (const k of Object.keys(targets) as Array<keyof typeof targets>)
    q[k] = await within(targets[k]);
});

type Container = {
  name: string;
  image: string;
  env: Array<{ name: string; value: string }>;
  securityContext: Record<string, unknown>;
  resources: unknown;
  ports: unknown;
  startupProbe: unknown;
  livenessProbe: unknown;
  readinessProbe: unknown;
  lifecycle: unknown;
  volumeMounts: unknown;
};
type PodSpec = {
  containers: Container[];
  volumes: unknown[];
  securityContext: Record<string, unknown>;
  topologySpreadConstraints: unknown[];
  terminationGracePeriodSeconds: number;
  automountServiceAccountToken: boolean;
  serviceAccountName: string;
};
type DeploymentInputs = {
  metadata: { name: string; namespace: string };
  spec: {
    replicas?: number;
    strategy: unknown;
    selector: { matchLabels: Record<string, string> };
    template: { spec: PodSpec };
  };
};

const deploymentOf = (k: keyof typeof targets) =>
  q[k].findOne(k8s.apps.v1.Deployment).inputs as unknown as DeploymentInputs;
const containerOf = (k: keyof typeof targets) => deploymentOf(k).spec.template.spec.containers[0]!;
const envOf = (k: keyof typeof targets) =>
  Object.fromEntries(containerOf(k).env.map((e) => [e.name, e.value]));
const parse = (json: unknown) =>
  JSON.parse(json as string) as { Statement: Array<Record<string, unknown>> };
const lbService = (k: keyof typeof targets) =>
  q[k]
    .findByType(k8s.core.v1.Service)
    .find((s) => (s.inputs.spec as { type: string }).type === "LoadBalancer")!;
const annotationsOf = (r: RecordedResource) =>
  (r.inputs.metadata as { annotations: Record<string, string> }).annotations;

describe("resources", () => {
  const K8S = {
    "kubernetes:apps/v1:Deployment": 1,
    "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": 1,
    "kubernetes:core/v1:Namespace": 1,
    "kubernetes:core/v1:ServiceAccount": 1,
    "kubernetes:networking.k8s.io/v1:NetworkPolicy": 1,
  };
  test("dev: namespace, IRSA role and policy, service account, Deployment, two Services, HPA, NetworkPolicy", () => {
    expect(q.dev.countsByType()).toEqual({
      ...K8S,
      // The entry point's alarm (no healthy pod behind the NLB), in every environment.
      "aws:cloudwatch/metricAlarm:MetricAlarm": 1,
      "aws:iam/role:Role": 1,
      "aws:iam/rolePolicy:RolePolicy": 1,
      "kubernetes:core/v1:Service": 2,
    });
  });

  test("prod adds the PodDisruptionBudget, the DNS name and the restart alarm", () => {
    expect(q.prod.countsByType()).toEqual({
      ...K8S,
      "aws:cloudwatch/metricAlarm:MetricAlarm": 2,
      "aws:iam/role:Role": 1,
      "aws:iam/rolePolicy:RolePolicy": 1,
      "aws:route53/record:Record": 1,
      "kubernetes:core/v1:Service": 2,
      "kubernetes:policy/v1:PodDisruptionBudget": 1,
    });
  });

  test("the ALB variant has an Ingress instead of the LoadBalancer Service", () => {
    expect(q.alb.count(k8s.networking.v1.Ingress)).toBe(1);
    expect(q.alb.count(k8s.core.v1.Service)).toBe(1);
    expect(lbService("alb")).toBeUndefined();
  });

  test("Kubernetes objects use the cluster's provider; AWS resources the default one", async () => {
    const devProvider = devCluster.info.provider;
    const providerUrn = await outputOf(devProvider.urn);
    for (const r of q.dev.all()) {
      if (r.type.startsWith("kubernetes:"))
        expect(r.options.provider.startsWith(`${providerUrn}::`)).toBe(true);
      else expect(r.options.provider).not.toContain(PROVIDER_TYPE);
    }
  });

  test("no Kubernetes Secret anywhere: secret values never enter the cluster", () => {
    expect(resources.count("kubernetes:core/v1:Secret")).toBe(0);
    for (const r of resources
      .all()
      .filter((x) => x.type.startsWith("kubernetes:") && x.type !== PROVIDER_TYPE)) {
      expect(r.secretInputs.size).toBe(0);
    }
  });
});

describe("IRSA", () => {
  test("the role trusts only this namespace's service account, for the STS audience", () => {
    const role = q.dev.findOne(aws.iam.Role);
    expect(parse(role.inputs.assumeRolePolicy).Statement).toEqual([
      {
        Sid: "ServiceAccountWebIdentity",
        Effect: "Allow",
        Principal: { Federated: OIDC_ARN },
        Action: "sts:AssumeRoleWithWebIdentity",
        Condition: {
          StringEquals: {
            [`${ISSUER_HOST}:sub`]: "system:serviceaccount:agent:agent",
            [`${ISSUER_HOST}:aud`]: "sts.amazonaws.com",
          },
        },
      },
    ]);
    const alb = parse(q.alb.findOne(aws.iam.Role).inputs.assumeRolePolicy).Statement[0]!;
    expect(
      (alb.Condition as { StringEquals: Record<string, string> }).StringEquals[
        `${ISSUER_HOST}:sub`
      ],
    ).toBe("system:serviceaccount:agent-alb:agent");
  });

  test("it may read exactly the data plane's secrets, nothing else", () => {
    const policy = parse(q.dev.findOne(aws.iam.RolePolicy).inputs.policy);
    expect(policy.Statement).toEqual([
      {
        Sid: "ReadAppSecrets",
        Effect: "Allow",
        Action: ["secretsmanager:GetSecretValue"],
        Resource: Object.values(FAKE_AWS.secretArns).sort(),
      },
    ]);
    expect(q.dev.findOne(aws.iam.RolePolicy).inputs.role).toBe(
      q.dev.findOne(aws.iam.Role).state.name,
    );
  });

  test("with a customer-managed key, decrypt is allowed through Secrets Manager only", () => {
    const policy = parse(q.prod.findOne(aws.iam.RolePolicy).inputs.policy);
    expect(policy.Statement[1]).toEqual({
      Sid: "DecryptAppSecrets",
      Effect: "Allow",
      Action: ["kms:Decrypt"],
      Resource: [SECRETS_KEY],
      Condition: { StringEquals: { "kms:ViaService": ["secretsmanager.us-east-1.amazonaws.com"] } },
    });
  });

  test("the service account carries the role ARN and no API token", async () => {
    const sa = q.dev.findOne(k8s.core.v1.ServiceAccount).inputs as {
      metadata: { name: string; namespace: string; annotations: Record<string, string> };
      automountServiceAccountToken: boolean;
    };
    const roleArn = q.dev.findOne(aws.iam.Role).state.arn;
    expect(sa.metadata).toEqual({
      name: "agent",
      namespace: "agent",
      annotations: { "eks.amazonaws.com/role-arn": roleArn },
    });
    expect(sa.automountServiceAccountToken).toBe(false);
    expect(await outputOf(targets.dev.serviceAccountRoleArn)).toBe(roleArn);
  });

  test("the pod gets its own projected STS token and the SDK variables, not the Kubernetes API token", () => {
    const pod = deploymentOf("dev").spec.template.spec;
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.serviceAccountName).toBe("agent");
    expect(pod.volumes).toContainEqual({
      name: "aws-iam-token",
      projected: {
        sources: [
          {
            serviceAccountToken: {
              audience: "sts.amazonaws.com",
              expirationSeconds: 86400,
              path: "token",
            },
          },
        ],
      },
    });
    expect(containerOf("dev").volumeMounts).toContainEqual({
      name: "aws-iam-token",
      mountPath: "/var/run/secrets/eks.amazonaws.com/serviceaccount",
      readOnly: true,
    });
    const env = envOf("dev");
    expect(env.AWS_ROLE_ARN).toBe(q.dev.findOne(aws.iam.Role).state.arn);
    expect(env.AWS_WEB_IDENTITY_TOKEN_FILE).toBe(
      "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
    );
  });
});

describe("namespace", () => {
  test("enforces the restricted Pod Security Standard", async () => {
    const ns = q.dev.findOne(k8s.core.v1.Namespace).inputs as {
      metadata: { name: string; labels: Record<string, string> };
    };
    expect(ns.metadata.name).toBe("agent");
    expect(ns.metadata.labels["pod-security.kubernetes.io/enforce"]).toBe("restricted");
    expect(await outputOf(targets.dev.namespace)).toBe("agent");
  });
});

describe("Deployment", () => {
  test("runs the image by digest, under the HPA (no replica count)", async () => {
    const d = deploymentOf("dev");
    expect(containerOf("dev").image).toBe(ECR_IMAGE);
    expect(d.spec.replicas).toBeUndefined();
    expect(d.metadata).toMatchObject({ name: "agent", namespace: "agent" });
    expect(await outputOf(targets.dev.deploymentName)).toBe("agent");
  });

  test("environment: endpoints and secret references only, never a secret value", () => {
    const env = envOf("dev");
    expect(env.ANTHROPIC_API_KEY_SECRET).toBe(`aws-sm://${FAKE_AWS.secretArns.anthropic}`);
    expect(env.DATABASE_PASSWORD_SECRET).toBe(`aws-sm://${FAKE_AWS.secretArns.postgres}`);
    expect(env.REDIS_PASSWORD_SECRET).toBe(`aws-sm://${FAKE_AWS.secretArns.redis}`);
    for (const plain of ["ANTHROPIC_API_KEY", "DATABASE_PASSWORD", "REDIS_PASSWORD"])
      expect(env).not.toHaveProperty(plain);
    expect(env.DATABASE_URL).toBe(
      `postgres://agent@${FAKE_AWS.postgresHost}:5432/agent?sslmode=require&uselibpqcompat=true`,
    );
    expect(env.REDIS_URL).toBe(`rediss://${FAKE_AWS.redisHost}:6379`);
    expect(env).toMatchObject({
      PORT: "8080",
      SHUTDOWN_GRACE_MS: "25000",
      AWS_REGION: "us-east-1",
      NODE_ENV: "production",
    });
    // Sorted, so the rendered manifest is stable.
    const names = containerOf("dev").env.map((e) => e.name);
    expect(names).toEqual([...names].sort());
    for (const k of Object.keys(targets) as Array<keyof typeof targets>) {
      expect(q[k].findOne(k8s.apps.v1.Deployment).secretInputs.size).toBe(0);
    }
  });

  test("hardened security context", () => {
    const pod = deploymentOf("dev").spec.template.spec;
    expect(pod.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 10001,
      runAsGroup: 10001,
      fsGroup: 10001,
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(containerOf("dev").securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 10001,
      runAsGroup: 10001,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(pod.volumes).toContainEqual({ name: "tmp", emptyDir: { sizeLimit: "256Mi" } });
    expect(containerOf("dev").volumeMounts).toContainEqual({ name: "tmp", mountPath: "/tmp" });
  });

  test("probes: start-up and liveness on /health, readiness on /ready", () => {
    const c = containerOf("dev");
    expect(c.ports).toEqual([{ name: "http", containerPort: 8080, protocol: "TCP" }]);
    const get = (path: string) => ({ path, port: "http", scheme: "HTTP" });
    expect(c.startupProbe).toMatchObject({
      httpGet: get("/health"),
      periodSeconds: 2,
      failureThreshold: 60,
    });
    expect(c.livenessProbe).toMatchObject({ httpGet: get("/health") });
    expect(c.readinessProbe).toMatchObject({ httpGet: get("/ready") });
  });

  test("requests and limits per environment", () => {
    expect(containerOf("dev").resources).toEqual({
      requests: { cpu: "100m", memory: "256Mi" },
      limits: { cpu: "500m", memory: "512Mi" },
    });
    expect(containerOf("prod").resources).toEqual({
      requests: { cpu: "250m", memory: "512Mi" },
      limits: { cpu: "500m", memory: "1Gi" },
    });
  });

  test("rolling update never drops below capacity", () => {
    expect(deploymentOf("dev").spec.strategy).toEqual({
      type: "RollingUpdate",
      rollingUpdate: { maxUnavailable: 0, maxSurge: "25%" },
    });
  });

  test("graceful shutdown: preStop sleep, then SIGTERM, within a grace period longer than the app's drain", () => {
    const pod = deploymentOf("dev").spec.template.spec;
    expect(containerOf("dev").lifecycle).toEqual({ preStop: { sleep: { seconds: 10 } } });
    // 10 s preStop + 25 s drain + 5 s to settle what the drain cut + 5 s to exit.
    expect(pod.terminationGracePeriodSeconds).toBe(45);
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(
      10_000 + Number(envOf("dev").SHUTDOWN_GRACE_MS),
    );
  });

  test("spread across zones and nodes", () => {
    const d = deploymentOf("dev");
    const selector = { matchLabels: d.spec.selector.matchLabels };
    expect(d.spec.template.spec.topologySpreadConstraints).toEqual([
      expect.objectContaining({
        topologyKey: "topology.kubernetes.io/zone",
        maxSkew: 1,
        labelSelector: selector,
      }),
      expect.objectContaining({
        topologyKey: "kubernetes.io/hostname",
        maxSkew: 1,
        labelSelector: selector,
      }),
    ]);
  });
});

describe("autoscaling and disruption", () => {
  type Hpa = {
    spec: {
      scaleTargetRef: { kind: string; name: string };
      minReplicas: number;
      maxReplicas: number;
      metrics: Array<{ resource: { name: string; target: { averageUtilization: number } } }>;
      behavior: { scaleUp: Record<string, unknown>; scaleDown: Record<string, unknown> };
    };
  };
  const hpa = (k: keyof typeof targets) =>
    q[k].findOne(k8s.autoscaling.v2.HorizontalPodAutoscaler).inputs as unknown as Hpa;

  test("HPA bounds per environment, targeting the Deployment", () => {
    expect(hpa("dev").spec).toMatchObject({
      minReplicas: 1,
      maxReplicas: 3,
      scaleTargetRef: { kind: "Deployment", name: "agent" },
    });
    expect(hpa("prod").spec).toMatchObject({ minReplicas: 2, maxReplicas: 20 });
  });

  test("CPU and memory utilisation targets", () => {
    expect(
      hpa("prod").spec.metrics.map((m) => [m.resource.name, m.resource.target.averageUtilization]),
    ).toEqual([
      ["cpu", 70],
      ["memory", 80],
    ]);
  });

  test("scale up fast, scale down slowly", () => {
    expect(hpa("prod").spec.behavior).toEqual({
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
    });
  });

  test("a PodDisruptionBudget in prod (2+ replicas), none with a single dev replica", () => {
    expect(q.dev.count(k8s.policy.v1.PodDisruptionBudget)).toBe(0);
    const pdb = q.prod.findOne(k8s.policy.v1.PodDisruptionBudget).inputs as {
      spec: Record<string, unknown>;
    };
    expect(pdb.spec).toEqual({
      maxUnavailable: 1,
      selector: { matchLabels: deploymentOf("prod").spec.selector.matchLabels },
      unhealthyPodEvictionPolicy: "AlwaysAllow",
    });
  });
});

describe("NetworkPolicy", () => {
  type Np = {
    spec: {
      podSelector: unknown;
      policyTypes: string[];
      ingress: unknown[];
      egress: Array<{ to: unknown[]; ports: unknown[] }>;
    };
  };
  const np = (k: keyof typeof targets) =>
    q[k].findOne(k8s.networking.v1.NetworkPolicy).inputs as unknown as Np;

  test("ingress only on 8080; egress DNS, the stores in the VPC CIDR, 443 anywhere", () => {
    const spec = np("dev").spec;
    expect(spec.podSelector).toEqual({
      matchLabels: deploymentOf("dev").spec.selector.matchLabels,
    });
    expect(spec.policyTypes).toEqual(["Ingress", "Egress"]);
    expect(spec.ingress).toEqual([{ ports: [{ protocol: "TCP", port: 8080 }] }]);
    expect(spec.egress).toEqual([
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
        to: [{ ipBlock: { cidr: VPC_CIDR } }],
        ports: [
          { protocol: "TCP", port: 5432 },
          { protocol: "TCP", port: 6379 },
        ],
      },
      { to: [{ ipBlock: { cidr: "0.0.0.0/0" } }], ports: [{ protocol: "TCP", port: 443 }] },
    ]);
  });

  test("the VPC CIDR is looked up from the data plane's VPC unless given", () => {
    expect(invocationsOf("aws:ec2/getVpc:getVpc").map((i) => i.inputs.id)).toContain(
      FAKE_AWS.vpcId,
    );
    expect(np("internal").spec.egress[1]!.to).toEqual([{ ipBlock: { cidr: "172.16.0.0/16" } }]);
  });
});

describe("exposure", () => {
  const SVC = "service.beta.kubernetes.io";

  test("the in-cluster Service is ClusterIP on the pods' http port", () => {
    const svc = q.dev
      .findByType(k8s.core.v1.Service)
      .find((s) => (s.inputs.spec as { type: string }).type === "ClusterIP")!;
    expect(svc.inputs.spec).toEqual({
      type: "ClusterIP",
      selector: deploymentOf("dev").spec.selector.matchLabels,
      ports: [{ name: "http", port: 80, targetPort: "http", protocol: "TCP" }],
    });
  });

  test("dev: an internet-facing NLB in the public subnets, plain HTTP on 80", async () => {
    const lb = lbService("dev");
    expect(annotationsOf(lb)).toEqual({
      [`${SVC}/aws-load-balancer-type`]: "nlb",
      [`${SVC}/aws-load-balancer-subnets`]: FAKE_AWS.publicSubnetIds.join(","),
      [`${SVC}/aws-load-balancer-healthcheck-protocol`]: "http",
      [`${SVC}/aws-load-balancer-healthcheck-path`]: "/ready",
    });
    expect((lb.inputs.spec as { ports: unknown }).ports).toEqual([
      { name: "http", port: 80, targetPort: "http", protocol: "TCP" },
    ]);
    expect(await outputOf(targets.dev.url)).toBe(`http://${lbHostname(lb)}`);
    expect(await outputOf(targets.dev.loadBalancerHostname)).toBe(lbHostname(lb));
  });

  test("prod with a domain: TLS terminates at the NLB on 443 and port 80 is not exposed", async () => {
    const lb = lbService("prod");
    expect(annotationsOf(lb)).toMatchObject({
      [`${SVC}/aws-load-balancer-ssl-cert`]: CERT,
      [`${SVC}/aws-load-balancer-ssl-ports`]: "https",
      [`${SVC}/aws-load-balancer-ssl-negotiation-policy`]: "ELBSecurityPolicy-TLS13-1-2-2021-06",
      [`${SVC}/aws-load-balancer-backend-protocol`]: "tcp",
    });
    const ports = (lb.inputs.spec as { ports: Array<{ port: number }> }).ports;
    expect(ports).toEqual([{ name: "https", port: 443, targetPort: "http", protocol: "TCP" }]);
    expect(await outputOf(targets.prod.url)).toBe("https://agent.example.com");
    expect(q.prod.findOne(aws.route53.Record).inputs).toEqual({
      zoneId: "Z0123456789ABC",
      name: "agent.example.com",
      type: "CNAME",
      ttl: 60,
      records: [lbHostname(lb)],
    });
  });

  test("internal NLB through the AWS Load Balancer Controller, in the private subnets", () => {
    expect(annotationsOf(lbService("internal"))).toEqual({
      [`${SVC}/aws-load-balancer-type`]: "external",
      [`${SVC}/aws-load-balancer-nlb-target-type`]: "ip",
      [`${SVC}/aws-load-balancer-scheme`]: "internal",
      [`${SVC}/aws-load-balancer-subnets`]: FAKE_AWS.privateSubnetIds.join(","),
      [`${SVC}/aws-load-balancer-healthcheck-protocol`]: "http",
      [`${SVC}/aws-load-balancer-healthcheck-path`]: "/ready",
    });
  });

  test("ALB Ingress: HTTPS with the certificate, HTTP redirected, host rule to the ClusterIP Service", async () => {
    const ingress = q.alb.findOne(k8s.networking.v1.Ingress);
    const ALB = "alb.ingress.kubernetes.io";
    expect(annotationsOf(ingress)).toEqual({
      [`${ALB}/scheme`]: "internet-facing",
      [`${ALB}/target-type`]: "ip",
      [`${ALB}/subnets`]: FAKE_AWS.publicSubnetIds.join(","),
      [`${ALB}/healthcheck-path`]: "/ready",
      [`${ALB}/listen-ports`]: '[{"HTTP":80},{"HTTPS":443}]',
      [`${ALB}/certificate-arn`]: CERT,
      [`${ALB}/ssl-redirect`]: "443",
      [`${ALB}/ssl-policy`]: "ELBSecurityPolicy-TLS13-1-2-2021-06",
    });
    expect(ingress.inputs.spec).toEqual({
      ingressClassName: "alb",
      rules: [
        {
          host: "alb.example.com",
          http: {
            paths: [
              {
                path: "/",
                pathType: "Prefix",
                backend: { service: { name: "agent", port: { name: "http" } } },
              },
            ],
          },
        },
      ],
    });
    expect(await outputOf(targets.alb.loadBalancerHostname)).toBe(lbHostname(ingress));
    expect(await outputOf(targets.alb.url)).toBe("https://alb.example.com");
  });
});

describe("alarm", () => {
  test("prod (Container Insights on): pod restarts notify the data plane's topic", () => {
    const alarm = q.prod.findOne(aws.cloudwatch.MetricAlarm, "pod-restarts").inputs;
    expect(alarm).toMatchObject({
      namespace: "ContainerInsights",
      metricName: "pod_number_of_container_restarts",
      dimensions: { ClusterName: "prodc-cluster", Namespace: "agent", PodName: "agent" },
      statistic: "Maximum",
      threshold: 3,
      comparisonOperator: "GreaterThanOrEqualToThreshold",
      alarmActions: [FAKE_AWS.alarmTopicArn],
      okActions: [FAKE_AWS.alarmTopicArn],
    });
  });

  test("dev (no Container Insights): no restart alarm, but the entry point's alarm (issue 12: eks-dev had none)", () => {
    expect(q.dev.findByType(aws.cloudwatch.MetricAlarm).map((a) => a.name)).toEqual([
      "dev-no-healthy-targets",
    ]);
  });

  test("the entry point's alarm: a Metrics Insights query on the NLB Kubernetes named, missing data breaching", () => {
    for (const env of ["dev", "prod"] as const) {
      const alarm = q[env].findOne(aws.cloudwatch.MetricAlarm, "no-healthy-targets").inputs;
      const name = loadBalancerNameOf(lbHostname(lbService(env)!));
      expect(alarm).toMatchObject({
        comparisonOperator: "LessThanThreshold",
        threshold: 1,
        evaluationPeriods: 3,
        datapointsToAlarm: 3,
        treatMissingData: "breaching",
        alarmActions: [FAKE_AWS.alarmTopicArn],
        metricQueries: [
          {
            id: "q1",
            period: 60,
            returnData: true,
            expression: `SELECT MIN(HealthyHostCount) FROM SCHEMA("AWS/NetworkELB", LoadBalancer, TargetGroup) WHERE LoadBalancer = 'net/${name}/0123456789abcdef'`,
          },
        ],
      });
    }
    expect(invocationsOf("aws:lb/getLoadBalancer:getLoadBalancer").length).toBeGreaterThanOrEqual(
      2,
    );
  });

  test("the NLB's name comes from its hostname, and a hostname of another shape is refused", () => {
    expect(
      loadBalancerNameOf(
        "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6-0123456789abcdef.elb.us-east-2.amazonaws.com",
      ),
    ).toBe("a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6");
    expect(loadBalancerNameOf("k8s-agent-public-abc-0123456789.elb.eu-west-1.amazonaws.com")).toBe(
      "k8s-agent-public-abc",
    );
    expect(() => loadBalancerNameOf("agent.example.com")).toThrow(/not an NLB/);
  });
});

describe("contract", () => {
  test("implements TargetOutputs", async () => {
    expect(targets.prod.target).toBe("eks");
    expect(await outputOf(targets.prod.url)).toMatch(/^https:\/\//);
  });
});

describe("validation", () => {
  const args = (
    over: Partial<EksTargetArgs> = {},
    environment: "dev" | "prod" = "dev",
  ): EksTargetArgs => ({
    ...baseArgs(devCluster.info, environment),
    ...over,
  });
  const problems = (a: EksTargetArgs) => checkEksTargetArgs(a, resolveEksTargetSettings(a));

  test("the default arguments are valid in every environment", () => {
    expect(problems(args())).toEqual([]);
    expect(problems(args({}, "prod"))).toEqual([]);
  });

  test("the wrong cloud's data plane or the wrong kind of artifact is a compile error", () => {
    // Never called: `npm run typecheck` proves each line is refused (an unused expect-error
    // directive fails it), so no run-time check is needed.
    const refused = () => [
      // @ts-expect-error: EKS takes the AWS data plane's contract
      args({ dataPlane: fakeGcpDataPlane() }),
      // @ts-expect-error: EKS runs an image, not a Lambda zip
      args({ artifact: fakeLambdaZipArtifact() }),
    ];
    expect(refused).toBeInstanceOf(Function);
  });

  test("each mistake is reported with what to change", () => {
    expect(problems(args({ dataPlane: fakeAwsDataPlane({ hasNat: false }) }))).toEqual([
      expect.stringMatching(/no NAT/),
    ]);
    const inverted = { ...targetScaling("dev").eks, minReplicas: 5, maxReplicas: 2 };
    expect(problems(args({ scaling: inverted }))).toEqual([
      expect.stringMatching(/minReplicas \(5\) is greater than eks.maxReplicas \(2\)/),
    ]);
    const single = { ...targetScaling("prod").eks, minReplicas: 1 };
    expect(problems(args({ scaling: single }, "prod"))).toEqual([
      expect.stringMatching(/prod needs eks.minReplicas of 2 or more/),
    ]);
    expect(problems(args({ domain: "agent.example.com" }))).toEqual([
      expect.stringMatching(/needs certificateArn/),
    ]);
    expect(problems(args({ certificateArn: CERT }))).toEqual([
      expect.stringMatching(/certificateArn needs domain/),
    ]);
    expect(problems(args({ domain: "Not A Domain", certificateArn: CERT }))).toEqual([
      expect.stringMatching(/not a lowercase DNS name/),
    ]);
    expect(problems(args({ ingress: "alb", nlbController: "cloud-provider" }))).toEqual([
      expect.stringMatching(/nlbController applies to ingress "nlb" only/),
    ]);
    expect(problems(args({ namespace: "Agent_NS" }))).toEqual([
      expect.stringMatching(/namespace "Agent_NS" must be lowercase/),
    ]);
    expect(problems(args({ runAsUser: 0 }))).toEqual([
      expect.stringMatching(/runAsUser is 0: use a non-root UID/),
    ]);
    expect(problems(args({ targetMemoryPercent: 150 }))).toEqual([
      expect.stringMatching(/targetMemoryPercent is 150/),
    ]);
  });

  test("the component throws a ResourceError before creating anything", () => {
    expect(() => new EksTarget("bad", args({ runAsUser: 0 }))).toThrow(pulumi.ResourceError);
    expect(
      () =>
        new EksTarget(
          "bad2",
          args({ scaling: { ...targetScaling("prod").eks, minReplicas: 1 } }, "prod"),
        ),
    ).toThrow(/EksTarget "bad2": prod needs eks.minReplicas of 2 or more/);
    expect(resources.all().filter((r) => /^bad2?-/.test(r.name))).toEqual([]);
  });

  test("the image must be pinned by digest", () => {
    expect(checkImageRef(ECR_IMAGE)).toBeUndefined();
    expect(checkImageRef("123456789012.dkr.ecr.us-east-1.amazonaws.com/agent:latest")).toMatch(
      /not pinned by digest/,
    );
    expect(checkImageRef("agent@sha256:abc")).toMatch(/not pinned by digest/);
  });
});
