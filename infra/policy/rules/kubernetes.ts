/**
 * Kubernetes: containers declare requests and limits, run as non-root on a read-only root
 * filesystem; HPAs are bounded and keep two replicas in prod, with a PodDisruptionBudget; the EKS
 * control plane encrypts Secrets and does not expose its API to the whole internet in prod.
 */
import { LEVELS, resourceRule, stackRule, type PolicyResource } from "../types";
import { UNKNOWN, bool, get, list, num, record, str } from "../values";
import { isInternetCidr } from "./data";

export const K8S = {
  deployment: "kubernetes:apps/v1:Deployment",
  statefulSet: "kubernetes:apps/v1:StatefulSet",
  daemonSet: "kubernetes:apps/v1:DaemonSet",
  replicaSet: "kubernetes:apps/v1:ReplicaSet",
  pod: "kubernetes:core/v1:Pod",
  job: "kubernetes:batch/v1:Job",
  cronJob: "kubernetes:batch/v1:CronJob",
  hpa: "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
  hpaV1: "kubernetes:autoscaling/v1:HorizontalPodAutoscaler",
  pdb: "kubernetes:policy/v1:PodDisruptionBudget",
  secret: "kubernetes:core/v1:Secret",
  eksCluster: "aws:eks/cluster:Cluster",
} as const;

export const WORKLOAD_TYPES = [
  K8S.deployment,
  K8S.statefulSet,
  K8S.daemonSet,
  K8S.replicaSet,
  K8S.pod,
  K8S.job,
  K8S.cronJob,
];

/** Where a workload keeps its pod spec. */
export function podSpecOf(r: Pick<PolicyResource, "type" | "props">): unknown {
  switch (r.type) {
    case K8S.pod:
      return get(r.props, "spec");
    case K8S.cronJob:
      return get(r.props, "spec.jobTemplate.spec.template.spec");
    default:
      return get(r.props, "spec.template.spec");
  }
}

export interface ContainerRef {
  /** `containers[0] "agent"` */
  label: string;
  container: Record<string, unknown>;
}

/** Every container and init container of a pod spec; `UNKNOWN` when the lists are not known. */
export function containersOf(spec: unknown): ContainerRef[] | typeof UNKNOWN {
  if (spec === UNKNOWN) return UNKNOWN;
  const out: ContainerRef[] = [];
  for (const field of ["initContainers", "containers"]) {
    const items = list(get(spec, field));
    if (items === UNKNOWN) return UNKNOWN;
    items.forEach((c, i) => {
      const rec = record(c);
      if (rec === UNKNOWN || rec === undefined) return;
      const name = str(rec.name);
      out.push({
        label: `${field}[${i}]${typeof name === "string" ? ` "${name}"` : ""}`,
        container: rec,
      });
    });
  }
  return out;
}

export const k8sContainerResources = resourceRule({
  name: "k8s-container-resources",
  description:
    "Every container requests CPU and memory (for scheduling and the HPA) and is limited (so one pod cannot starve a node).",
  domain: "kubernetes",
  enforcement: LEVELS.security,
  types: WORKLOAD_TYPES,
  validateResource(r, _ctx, report) {
    const containers = containersOf(podSpecOf(r));
    if (containers === UNKNOWN) return;
    for (const { label, container } of containers) {
      const missing: string[] = [];
      for (const path of ["requests.cpu", "requests.memory", "limits.cpu", "limits.memory"]) {
        const v = get(container, `resources.${path}`);
        if (v === UNKNOWN) continue;
        if (v === undefined || v === null || v === "" || v === 0 || v === "0") missing.push(path);
      }
      if (missing.length > 0) {
        report(
          `${label} has no resources.${missing.join(", resources.")}: set requests (what it needs, e.g. cpu "250m", memory "512Mi") and limits (e.g. cpu "500m", memory "1Gi").`,
        );
      }
    }
  },
});

export const k8sNonRoot = resourceRule({
  name: "k8s-non-root",
  description: "Containers run as a non-root user, unprivileged, without privilege escalation.",
  domain: "kubernetes",
  enforcement: LEVELS.security,
  types: WORKLOAD_TYPES,
  validateResource(r, _ctx, report) {
    const spec = podSpecOf(r);
    const containers = containersOf(spec);
    if (containers === UNKNOWN) return;
    const podNonRoot = bool(get(spec, "securityContext.runAsNonRoot"));
    const podUser = num(get(spec, "securityContext.runAsUser"));
    for (const { label, container } of containers) {
      const nonRoot = bool(get(container, "securityContext.runAsNonRoot")) ?? podNonRoot;
      const user = num(get(container, "securityContext.runAsUser")) ?? podUser;
      const privileged = bool(get(container, "securityContext.privileged"));
      const escalation = bool(get(container, "securityContext.allowPrivilegeEscalation"));
      const problems: string[] = [];
      if (nonRoot !== UNKNOWN && nonRoot !== true)
        problems.push("set securityContext.runAsNonRoot: true (pod or container)");
      if (user === 0)
        problems.push("runAsUser is 0 (root): use the image's unprivileged UID, e.g. 10001");
      if (privileged === true) problems.push("remove securityContext.privileged: true");
      if (escalation !== UNKNOWN && escalation !== false)
        problems.push("set securityContext.allowPrivilegeEscalation: false");
      if (problems.length > 0) report(`${label}: ${problems.join("; ")}.`);
    }
  },
});

export const k8sReadOnlyRootFs = resourceRule({
  name: "k8s-read-only-root-filesystem",
  description:
    "Containers mount their root filesystem read-only; writable paths are explicit emptyDir volumes.",
  domain: "kubernetes",
  enforcement: LEVELS.security,
  types: WORKLOAD_TYPES,
  validateResource(r, _ctx, report) {
    const containers = containersOf(podSpecOf(r));
    if (containers === UNKNOWN) return;
    for (const { label, container } of containers) {
      const ro = bool(get(container, "securityContext.readOnlyRootFilesystem"));
      if (ro === UNKNOWN) continue;
      if (ro !== true)
        report(
          `${label}: set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where the process must write (e.g. /tmp).`,
        );
    }
  },
});

interface HpaMinConfig {
  minReplicas: number;
}

export const k8sHpaMinReplicas = resourceRule<HpaMinConfig>({
  name: "k8s-hpa-min-replicas",
  description:
    "In prod, HorizontalPodAutoscalers keep at least two replicas, so a node failure or a rollout is not an outage.",
  domain: "kubernetes",
  enforcement: LEVELS.prodOnly,
  types: [K8S.hpa, K8S.hpaV1],
  config: {
    schema: {
      minReplicas: {
        type: "integer",
        minimum: 1,
        description: "Fewest replicas an HPA may scale to.",
      },
    },
    defaults: { dev: { minReplicas: 1 }, staging: { minReplicas: 1 }, prod: { minReplicas: 2 } },
  },
  validateResource(r, { config }, report) {
    const min = num(get(r.props, "spec.minReplicas"));
    if (min === UNKNOWN) return;
    // Kubernetes defaults minReplicas to 1.
    const effective = min ?? 1;
    if (effective < config.minReplicas)
      report(
        `spec.minReplicas is ${min ?? "unset (1)"}: set it to at least ${config.minReplicas}.`,
      );
  },
});

interface HpaMaxConfig {
  maxReplicas: number;
}

export const k8sHpaBounded = resourceRule<HpaMaxConfig>({
  name: "k8s-hpa-bounded",
  description:
    "HorizontalPodAutoscalers have a maximum within the environment's limit, at or above their minimum.",
  domain: "kubernetes",
  enforcement: LEVELS.security,
  types: [K8S.hpa, K8S.hpaV1],
  config: {
    schema: {
      maxReplicas: { type: "integer", minimum: 1, description: "Largest maxReplicas allowed." },
    },
    defaults: {
      dev: { maxReplicas: 10 },
      staging: { maxReplicas: 20 },
      prod: { maxReplicas: 100 },
    },
  },
  validateResource(r, { config }, report) {
    const max = num(get(r.props, "spec.maxReplicas"));
    const min = num(get(r.props, "spec.minReplicas"));
    if (max === UNKNOWN) return;
    if (max === undefined)
      report(`spec.maxReplicas is unset: set it to at most ${config.maxReplicas}.`);
    else if (max > config.maxReplicas)
      report(
        `spec.maxReplicas is ${max}: lower it to at most ${config.maxReplicas} for this environment, or raise maxReplicas in the policy config.`,
      );
    else if (min !== UNKNOWN && min !== undefined && min > max)
      report(
        `spec.minReplicas (${min}) is above spec.maxReplicas (${max}): make the minimum at most the maximum.`,
      );
  },
});

function labelsMatch(selector: Record<string, unknown>, labels: Record<string, unknown>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function namespaceOf(r: PolicyResource): string | typeof UNKNOWN {
  const ns = str(get(r.props, "metadata.namespace"));
  return ns === UNKNOWN ? UNKNOWN : (ns ?? "default");
}

export const k8sPdbInProd = stackRule({
  name: "k8s-pdb-in-prod",
  description:
    "In prod, every Deployment and StatefulSet has a PodDisruptionBudget that keeps at least one pod through node drains and upgrades.",
  domain: "kubernetes",
  enforcement: LEVELS.prodOnly,
  validateStack(resources, _ctx, report) {
    const pdbs = resources.filter((r) => r.type === K8S.pdb);
    for (const w of resources.filter(
      (r) => r.type === K8S.deployment || r.type === K8S.statefulSet,
    )) {
      const ns = namespaceOf(w);
      const labels = record(get(w.props, "spec.template.metadata.labels"));
      if (ns === UNKNOWN || labels === UNKNOWN) continue;
      const matching = pdbs.filter((p) => {
        const pns = namespaceOf(p);
        const sel = record(get(p.props, "spec.selector.matchLabels"));
        if (pns === UNKNOWN || sel === UNKNOWN) return true; // cannot tell: give it the benefit
        return (
          pns === ns &&
          sel !== undefined &&
          Object.keys(sel).length > 0 &&
          labelsMatch(sel, labels ?? {})
        );
      });
      const name = str(get(w.props, "metadata.name"));
      const label = `${w.type.split(":").pop()} "${typeof name === "string" ? name : w.name}" in namespace "${ns}"`;
      if (matching.length === 0) {
        report(
          `${label} has no PodDisruptionBudget: add a policy/v1 PodDisruptionBudget whose spec.selector.matchLabels selects its pods, with maxUnavailable: 1 (or minAvailable: 1).`,
          w.urn,
        );
        continue;
      }
      for (const p of matching) {
        const maxUnavailable = get(p.props, "spec.maxUnavailable");
        const minAvailable = get(p.props, "spec.minAvailable");
        if (maxUnavailable === "100%" || minAvailable === 0 || minAvailable === "0%") {
          report(
            `PodDisruptionBudget "${p.name}" lets every pod of ${label} go at once: use maxUnavailable: 1 or minAvailable: 1.`,
            p.urn,
          );
        }
      }
    }
  },
});

export const eksSecretsEncrypted = resourceRule({
  name: "eks-secrets-encrypted",
  description: "EKS clusters envelope-encrypt Kubernetes Secrets with a KMS key.",
  domain: "kubernetes",
  enforcement: LEVELS.security,
  types: [K8S.eksCluster],
  validateResource(r, _ctx, report) {
    const cfg = get(r.props, "encryptionConfig");
    if (cfg === UNKNOWN) return;
    const resources = list(get(cfg, "resources"));
    const key = str(get(cfg, "provider.keyArn"));
    if (resources === UNKNOWN || key === UNKNOWN) return;
    if (!resources.includes("secrets") || !key) {
      report(
        'encryptionConfig is missing: set encryptionConfig: { provider: { keyArn: <KMS key ARN> }, resources: ["secrets"] }.',
      );
    }
  },
});

export const eksApiEndpointRestricted = resourceRule({
  name: "eks-api-endpoint-restricted",
  description:
    "The EKS API endpoint is private, or public only to listed CIDRs (CI, offices), never to 0.0.0.0/0.",
  domain: "kubernetes",
  enforcement: { dev: "advisory", staging: "advisory", prod: "mandatory" },
  types: [K8S.eksCluster],
  validateResource(r, _ctx, report) {
    const pub = bool(get(r.props, "vpcConfig.endpointPublicAccess"));
    if (pub === UNKNOWN || pub === false) return;
    const cidrs = list(get(r.props, "vpcConfig.publicAccessCidrs"));
    if (cidrs === UNKNOWN) return;
    // AWS defaults the list to 0.0.0.0/0.
    if (cidrs.length === 0 || cidrs.some(isInternetCidr)) {
      report(
        "The public API endpoint admits 0.0.0.0/0: set vpcConfig.publicAccessCidrs to your CI and office ranges (stack config agent:eks.publicEndpointCidrs), or endpointPublicAccess: false with endpointPrivateAccess: true.",
      );
    }
  },
});

export const kubernetesRules = [
  k8sContainerResources,
  k8sNonRoot,
  k8sReadOnlyRootFs,
  k8sHpaMinReplicas,
  k8sHpaBounded,
  k8sPdbInProd,
  eksSecretsEncrypted,
  eksApiEndpointRestricted,
];
