import { describeMisconfigured, one } from "./helper";

type Container = {
  env: Array<{ name: string; value?: string }>;
  securityContext: Record<string, unknown>;
  resources?: unknown;
};
const containerOf = (props: Record<string, unknown>) =>
  (props.spec as { template: { spec: { containers: Container[] } } }).template.spec.containers[0]!;

describeMisconfigured("eks-prod", {
  "unbounded scaling (an HPA up to 10000 pods) with one minimum replica": {
    apply: (rs) =>
      Object.assign(
        one(rs, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler").props.spec as Record<
          string,
          unknown
        >,
        { maxReplicas: 10000, minReplicas: 1 },
      ),
    expect: [
      {
        policy: "k8s-hpa-bounded",
        name: "agent-hpa",
        message: /spec.maxReplicas is 10000: lower it to at most 100/,
      },
      {
        policy: "k8s-hpa-min-replicas",
        name: "agent-hpa",
        message: /spec.minReplicas is 1: set it to at least 2/,
      },
    ],
  },
  "a database password in a container env value": {
    apply: (rs) =>
      containerOf(one(rs, "kubernetes:apps/v1:Deployment").props).env.push({
        name: "DATABASE_PASSWORD",
        value: "correct-horse-battery-staple",
      }),
    expect: [
      {
        policy: "k8s-env-no-plaintext-secrets",
        name: "agent-deploy",
        message:
          /DATABASE_PASSWORD looks like a secret and holds a literal value\. Remove it and use valueFrom.secretKeyRef/,
      },
    ],
  },
  "a root container with a writable filesystem and no limits": {
    apply: (rs) => {
      const c = containerOf(one(rs, "kubernetes:apps/v1:Deployment").props);
      c.securityContext = {
        runAsNonRoot: false,
        runAsUser: 0,
        readOnlyRootFilesystem: false,
        allowPrivilegeEscalation: true,
      };
      delete c.resources;
    },
    expect: [
      {
        policy: "k8s-non-root",
        name: "agent-deploy",
        message: /runAsNonRoot: true.*runAsUser is 0.*allowPrivilegeEscalation: false/,
      },
      {
        policy: "k8s-read-only-root-filesystem",
        name: "agent-deploy",
        message: /readOnlyRootFilesystem: true/,
      },
      {
        policy: "k8s-container-resources",
        name: "agent-deploy",
        message: /has no resources.requests.cpu/,
      },
    ],
  },
  "no PodDisruptionBudget in prod": {
    apply: (rs) => {
      rs.splice(rs.indexOf(one(rs, "kubernetes:policy/v1:PodDisruptionBudget")), 1);
    },
    expect: [
      {
        policy: "k8s-pdb-in-prod",
        name: "agent-deploy",
        message: /Deployment "agent" in namespace "agent" has no PodDisruptionBudget/,
      },
    ],
  },
});
