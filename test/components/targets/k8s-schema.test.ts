/**
 * What only a real cluster would otherwise catch, caught offline:
 *
 * 1. Schema: every Kubernetes object the EKS target produces, both the plain specs of the pure
 *    functions and the inputs the mocks recorded, validates against the Kubernetes OpenAPI schemas
 *    (kubernetes-models, ajv-compiled). Negative tests prove the validator rejects malformed
 *    objects, so a pass means something.
 * 2. Admission: the pod passes the `restricted` Pod Security Standard its namespace enforces.
 * 3. Wiring: selectors match pod labels, named ports exist, the HPA points at the Deployment, the
 *    grace period covers preStop plus the app's drain. The schema cannot see any of that.
 *
 * Note: the OpenAPI schemas do not forbid unknown fields; misspelt field names are caught by the
 * compiler instead (the pure functions return `@pulumi/kubernetes` input types, and object
 * literals may not carry excess properties).
 */
import { Deployment, type IDeployment } from "kubernetes-models/apps/v1/Deployment";
import {
  HorizontalPodAutoscaler,
  type IHorizontalPodAutoscaler,
} from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { Ingress, type IIngress } from "kubernetes-models/networking.k8s.io/v1/Ingress";
import {
  NetworkPolicy,
  type INetworkPolicy,
} from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import {
  PodDisruptionBudget,
  type IPodDisruptionBudget,
} from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { Namespace, type INamespace } from "kubernetes-models/v1/Namespace";
import { Service, type IService } from "kubernetes-models/v1/Service";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { EksTarget } from "../../../components/targets/eks/target";
import { EksCluster } from "../../../components/targets/eks/cluster";
import {
  albIngressAnnotations,
  albIngressSpec,
  clusterServiceSpec,
  deploymentSpec,
  hpaSpec,
  loadBalancerAnnotations,
  loadBalancerServiceSpec,
  namespaceMetadata,
  networkPolicySpec,
  pdbSpec,
  selectorLabels,
} from "../../../components/targets/eks/specs";
import { memoryMiB, millicores } from "../../../components/targets/scaling";
import {
  FAKE_IMAGE_DIGEST,
  fakeAwsDataPlane,
  fakeImageArtifact,
} from "../../support/fake-data-plane";
import {
  type RecordedResource,
  type ResourceQuery,
  setupPulumiMocks,
  within,
} from "../../support/pulumi";
// The VPC lookup and the load balancers' `status`.
import "../../support/pulumi-target-outputs";

setupPulumiMocks({ stack: "dev" });

const IMAGE = `123456789012.dkr.ecr.us-east-1.amazonaws.com/agent@${FAKE_IMAGE_DIGEST}`;
const CERT = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555";

/** A Kubernetes object as plain JSON. */
type Obj = {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string; labels?: Record<string, string> };
  spec?: any;
};

/** The schema model of each kind the target creates. */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "v1/Namespace": Namespace,
  "v1/ServiceAccount": ServiceAccount,
  "v1/Service": Service,
  "apps/v1/Deployment": Deployment,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "networking.k8s.io/v1/Ingress": Ingress,
};

/** Validates against the OpenAPI schema of the object's apiVersion/kind; throws with ajv's message. */
function validate(obj: Obj): void {
  const Model = MODELS[`${obj.apiVersion}/${obj.kind}`];
  if (!Model) throw new Error(`no schema model for ${obj.apiVersion} ${obj.kind}`);
  new Model(obj as never).validate();
}

/** The pure functions' results are `@pulumi/kubernetes` input types; with plain arguments they are plain JSON. */
const plain = <T>(v: unknown): T => v as T;

// ---------------------------------------------------------------------------------------------
// Admission and wiring checks (plain functions over objects)

const RESTRICTED_VOLUMES = [
  "configMap",
  "csi",
  "downwardAPI",
  "emptyDir",
  "ephemeral",
  "persistentVolumeClaim",
  "projected",
  "secret",
];

/** Violations of the `restricted` Pod Security Standard (latest), as the admission controller checks them. */
function restrictedViolations(pod: any): string[] {
  const v: string[] = [];
  const psc = pod.securityContext ?? {};
  if (pod.hostNetwork || pod.hostPID || pod.hostIPC) v.push("host namespaces");
  for (const vol of pod.volumes ?? []) {
    const type = Object.keys(vol).find((k) => k !== "name");
    if (!type || !RESTRICTED_VOLUMES.includes(type)) v.push(`volume ${vol.name} of type ${type}`);
  }
  for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
    const sc = c.securityContext ?? {};
    if (sc.privileged) v.push(`${c.name}: privileged`);
    if (sc.allowPrivilegeEscalation !== false)
      v.push(`${c.name}: allowPrivilegeEscalation must be false`);
    if ((sc.runAsNonRoot ?? psc.runAsNonRoot) !== true)
      v.push(`${c.name}: runAsNonRoot must be true`);
    if ((sc.runAsUser ?? psc.runAsUser) === 0) v.push(`${c.name}: runAsUser 0`);
    const seccomp = (sc.seccompProfile ?? psc.seccompProfile)?.type;
    if (seccomp !== "RuntimeDefault" && seccomp !== "Localhost")
      v.push(`${c.name}: seccompProfile must be RuntimeDefault or Localhost`);
    if (!(sc.capabilities?.drop ?? []).includes("ALL"))
      v.push(`${c.name}: capabilities must drop ALL`);
    for (const cap of sc.capabilities?.add ?? [])
      if (cap !== "NET_BIND_SERVICE") v.push(`${c.name}: adds capability ${cap}`);
    for (const p of c.ports ?? []) if (p.hostPort) v.push(`${c.name}: hostPort ${p.hostPort}`);
  }
  return v;
}

const subset = (sel: Record<string, string> = {}, labels: Record<string, string> = {}) =>
  Object.keys(sel).length > 0 && Object.entries(sel).every(([k, val]) => labels[k] === val);

/** Wiring mistakes the API server accepts (or rejects only at apply time) and the schema cannot see. */
function wiringProblems(objects: Obj[]): string[] {
  const p: string[] = [];
  const deployments = objects.filter((o) => o.kind === "Deployment");
  if (deployments.length !== 1) return [`expected one Deployment, found ${deployments.length}`];
  const d = deployments[0]!;
  const podLabels: Record<string, string> = d.spec.template.metadata?.labels ?? {};
  const pod = d.spec.template.spec;
  const portNames = new Set<string>(
    pod.containers.flatMap((c: any) => (c.ports ?? []).map((x: any) => x.name)),
  );
  if (!subset(d.spec.selector.matchLabels, podLabels))
    p.push("Deployment selector does not match its template labels");
  const volumes = new Set<string>(pod.volumes.map((v: { name: string }) => v.name));
  for (const c of pod.containers) {
    for (const m of c.volumeMounts ?? [])
      if (!volumes.has(m.name)) p.push(`${c.name}: mounts undefined volume ${m.name}`);
    for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) {
      const port = c[probe]?.httpGet?.port;
      if (typeof port === "string" && !portNames.has(port))
        p.push(`${c.name}: ${probe} uses unknown port ${port}`);
    }
    for (const r of ["cpu", "memory"] as const) {
      const [req, lim] = [c.resources?.requests?.[r], c.resources?.limits?.[r]];
      if (req === undefined) p.push(`${c.name}: no ${r} request (the HPA's utilisation needs one)`);
      const parse = r === "cpu" ? millicores : memoryMiB;
      if (req !== undefined && lim !== undefined && parse(req)! > parse(lim)!)
        p.push(`${c.name}: ${r} request above limit`);
    }
    const preStop = c.lifecycle?.preStop?.sleep?.seconds ?? 0;
    const drainMs = Number(
      c.env?.find((e: { name: string }) => e.name === "SHUTDOWN_GRACE_MS")?.value ?? 0,
    );
    if (!(pod.terminationGracePeriodSeconds * 1000 > preStop * 1000 + drainMs)) {
      p.push(
        `${c.name}: terminationGracePeriodSeconds does not cover preStop (${preStop}s) plus the drain (${drainMs}ms)`,
      );
    }
  }
  const services = objects.filter((o) => o.kind === "Service");
  for (const s of services) {
    if (!subset(s.spec.selector, podLabels))
      p.push(`Service ${s.metadata?.name} selects no pod of the Deployment`);
    for (const port of s.spec.ports) {
      if (typeof port.targetPort === "string" && !portNames.has(port.targetPort))
        p.push(`Service ${s.metadata?.name}: unknown targetPort ${port.targetPort}`);
    }
  }
  for (const o of objects.filter((x) => x.kind === "PodDisruptionBudget")) {
    if (!subset(o.spec.selector.matchLabels, podLabels))
      p.push("PodDisruptionBudget selects no pod of the Deployment");
  }
  for (const o of objects.filter((x) => x.kind === "NetworkPolicy")) {
    if (!subset(o.spec.podSelector.matchLabels, podLabels))
      p.push("NetworkPolicy selects no pod of the Deployment");
  }
  for (const o of objects.filter((x) => x.kind === "HorizontalPodAutoscaler")) {
    const ref = o.spec.scaleTargetRef;
    if (ref.kind !== "Deployment" || ref.apiVersion !== "apps/v1" || ref.name !== d.metadata?.name)
      p.push("HPA does not target the Deployment");
  }
  for (const o of objects.filter((x) => x.kind === "Ingress")) {
    for (const rule of o.spec.rules) {
      for (const path of rule.http.paths) {
        const backend = path.backend.service;
        const svc = services.find((s) => s.metadata?.name === backend.name);
        if (!svc) p.push(`Ingress backend ${backend.name} is no Service`);
        else if (!svc.spec.ports.some((x: { name: string }) => x.name === backend.port.name))
          p.push(`Ingress backend port ${backend.port.name} missing`);
      }
    }
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// Rendering

let queries: Record<string, ResourceQuery>;

beforeAll(async () => {
  const cluster = new EksCluster("c", {
    environment: "dev",
    existing: {
      kubeconfig: "{}",
      oidcProviderArn:
        "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/X",
      oidcProviderUrl: "https://oidc.eks.us-east-1.amazonaws.com/id/X",
      clusterName: "c",
      containerInsights: true,
    },
  });
  const base = { artifact: fakeImageArtifact(IMAGE), cluster: cluster.info };
  const targets = {
    dev: new EksTarget("dev", { ...base, dataPlane: fakeAwsDataPlane() }),
    prod: new EksTarget("prod", {
      ...base,
      dataPlane: fakeAwsDataPlane({ environment: "prod" }),
      domain: "agent.example.com",
      certificateArn: CERT,
    }),
    alb: new EksTarget("alb", {
      ...base,
      dataPlane: fakeAwsDataPlane({ environment: "staging" }),
      namespace: "agent-alb",
      ingress: "alb",
      domain: "alb.example.com",
      certificateArn: CERT,
    }),
  };
  queries = {};
  for (const [k, t] of Object.entries(targets)) queries[k] = await within(t);
});

/** The recorded Kubernetes objects of a render: the inputs the Kubernetes provider would receive. */
const objectsOf = (k: string): Obj[] =>
  queries[k]!.all()
    .filter((r: RecordedResource) => r.type.startsWith("kubernetes:"))
    .map((r) => r.inputs as unknown as Obj);

describe("recorded objects validate against the Kubernetes OpenAPI schemas", () => {
  test.each(["dev", "prod", "alb"])("%s", (k) => {
    const objects = objectsOf(k);
    const kinds = objects.map((o) => o.kind).sort();
    expect(kinds).toEqual(
      expect.arrayContaining([
        "Deployment",
        "HorizontalPodAutoscaler",
        "Namespace",
        "NetworkPolicy",
        "Service",
        "ServiceAccount",
      ]),
    );
    if (k !== "dev") expect(kinds).toContain("PodDisruptionBudget");
    if (k === "alb") expect(kinds).toContain("Ingress");
    for (const o of objects) {
      expect(o.apiVersion).toBeTruthy();
      expect(() => validate(o)).not.toThrow();
    }
  });
});

describe("recorded pods pass the restricted Pod Security Standard", () => {
  test.each(["dev", "prod", "alb"])("%s", (k) => {
    const d = objectsOf(k).find((o) => o.kind === "Deployment")!;
    expect(restrictedViolations(d.spec.template.spec)).toEqual([]);
  });
});

describe("recorded objects are wired to each other", () => {
  test.each(["dev", "prod", "alb"])("%s", (k) => {
    expect(wiringProblems(objectsOf(k))).toEqual([]);
  });
});

describe("pure specs validate with plain arguments", () => {
  const labels = selectorLabels("agent", "t");
  const dep = (): IDeployment => ({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "agent", namespace: "agent" },
    spec: plain(
      deploymentSpec({
        selectorLabels: labels,
        image: IMAGE,
        serviceAccountName: "agent",
        env: { PORT: "8080", SHUTDOWN_GRACE_MS: "25000" },
        requests: { cpu: "250m", memory: "512Mi" },
        limits: { cpu: "500m", memory: "1Gi" },
        runAsUser: 10001,
        runAsGroup: 10001,
        shutdownGraceMs: 25_000,
        preStopSeconds: 10,
      }),
    ),
  });
  const exposure = {
    scheme: "internet-facing" as const,
    subnets: "subnet-a,subnet-b",
    certificateArn: CERT,
  };
  const svc = (name: string, spec: unknown, annotations?: Record<string, unknown>): IService => ({
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, annotations: plain(annotations) },
    spec: plain(spec),
  });
  const objects = (): Obj[] => [
    plain<INamespace>({
      apiVersion: "v1",
      kind: "Namespace",
      metadata: namespaceMetadata("agent"),
    }),
    dep(),
    svc("agent", clusterServiceSpec(labels)),
    svc(
      "agent-public",
      loadBalancerServiceSpec(labels, true),
      loadBalancerAnnotations("cloud-provider", exposure),
    ),
    svc(
      "agent-lbc",
      loadBalancerServiceSpec(labels, false),
      loadBalancerAnnotations("aws-load-balancer-controller", {
        ...exposure,
        certificateArn: undefined,
      }),
    ),
    plain<IHorizontalPodAutoscaler>({
      apiVersion: "autoscaling/v2",
      kind: "HorizontalPodAutoscaler",
      metadata: { name: "agent" },
      spec: hpaSpec({
        deploymentName: "agent",
        minReplicas: 2,
        maxReplicas: 20,
        targetCpuPercent: 70,
        targetMemoryPercent: 80,
      }),
    }),
    plain<IPodDisruptionBudget>({
      apiVersion: "policy/v1",
      kind: "PodDisruptionBudget",
      metadata: { name: "agent" },
      spec: pdbSpec(labels),
    }),
    plain<INetworkPolicy>({
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "agent" },
      spec: networkPolicySpec({
        selectorLabels: labels,
        vpcCidr: "10.0.0.0/16",
        storePorts: [5432, 6379],
      }),
    }),
    plain<IIngress>({
      apiVersion: "networking.k8s.io/v1",
      kind: "Ingress",
      metadata: { name: "agent", annotations: plain(albIngressAnnotations(exposure)) },
      spec: albIngressSpec("agent", "agent.example.com"),
    }),
  ];

  test("every builder's object is schema-valid", () => {
    for (const o of objects()) expect(() => validate(o)).not.toThrow();
  });

  test("the pod is restricted-compliant and the objects are wired", () => {
    expect(restrictedViolations(dep().spec!.template.spec)).toEqual([]);
    expect(wiringProblems(objects())).toEqual([]);
  });
});

describe("the checks can fail", () => {
  test("the schema rejects a malformed Deployment (string port, missing selector)", () => {
    const bad = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "x" },
      spec: {
        template: {
          spec: { containers: [{ name: "c", image: "i", ports: [{ containerPort: "8080" }] }] },
        },
      },
    };
    expect(() => validate(bad)).toThrow(
      /must have required property 'selector'|containerPort must be integer/,
    );
  });

  test("the schema rejects our own spec once a field has the wrong type", () => {
    const good = objectsOf("prod").find((o) => o.kind === "Deployment")!;
    const bad = JSON.parse(JSON.stringify(good)) as Obj;
    bad.spec.template.spec.securityContext.runAsUser = "10001";
    expect(() => validate(bad)).toThrow(/runAsUser must be integer/);
    const noMax = JSON.parse(
      JSON.stringify(objectsOf("prod").find((o) => o.kind === "HorizontalPodAutoscaler")!),
    ) as Obj;
    delete noMax.spec.maxReplicas;
    expect(() => validate(noMax)).toThrow(/maxReplicas/);
  });

  test("the restricted check flags a root, privileged, escalating pod", () => {
    const pod = JSON.parse(
      JSON.stringify(objectsOf("dev").find((o) => o.kind === "Deployment")!.spec.template.spec),
    );
    pod.securityContext.runAsUser = 0;
    pod.containers[0].securityContext = { privileged: true, capabilities: { add: ["SYS_ADMIN"] } };
    pod.volumes.push({ name: "host", hostPath: { path: "/" } });
    expect(restrictedViolations(pod)).toEqual(
      expect.arrayContaining([
        "volume host of type hostPath",
        "agent: privileged",
        "agent: allowPrivilegeEscalation must be false",
        "agent: runAsUser 0",
        "agent: capabilities must drop ALL",
        "agent: adds capability SYS_ADMIN",
      ]),
    );
  });

  test("the wiring check flags a mismatched selector, an unknown port and a short grace period", () => {
    const objects = JSON.parse(JSON.stringify(objectsOf("prod"))) as Obj[];
    const d = objects.find((o) => o.kind === "Deployment")!;
    objects.find((o) => o.kind === "PodDisruptionBudget")!.spec.selector.matchLabels = {
      app: "other",
    };
    d.spec.template.spec.containers[0].readinessProbe.httpGet.port = "metrics";
    d.spec.template.spec.terminationGracePeriodSeconds = 30;
    expect(wiringProblems(objects)).toEqual([
      "agent: readinessProbe uses unknown port metrics",
      "agent: terminationGracePeriodSeconds does not cover preStop (10s) plus the drain (25000ms)",
      "PodDisruptionBudget selects no pod of the Deployment",
    ]);
  });
});
