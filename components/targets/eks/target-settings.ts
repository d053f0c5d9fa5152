/**
 * The EKS target's arguments, their defaults and every check of them (pure): what the component
 * (./target.ts) is given and resolves before it creates anything.
 */
import type * as pulumi from "@pulumi/pulumi";
import type { DataPlaneOutputs, ImageArtifact } from "../../contracts";
import { DOMAIN, type ServiceEnvArgs, isPinnedByDigest } from "../service";
import type { EksClusterInfo } from "./cluster";
import { checkKubernetesName } from "./iam";
import type { LoadBalancerScheme, NlbController } from "./specs";
import { type EksScaling, eksScalingProblems, targetScaling } from "../scaling";
import { SERVICE_CONTRACT } from "../../../app/src/contract";
import type { RolloutGates, RolloutStep } from "../../release/rollout-plan";

export interface EksTargetArgs extends ServiceEnvArgs {
  /** The AWS data plane's contract: endpoints, secret references, network, alarm topic. */
  dataPlane: DataPlaneOutputs<"aws">;
  /** The container image, pinned by digest. */
  artifact: ImageArtifact;
  /** `EksCluster.info`: the Kubernetes provider and the OIDC issuer for IRSA. */
  cluster: EksClusterInfo;
  /** @default "agent" */
  namespace?: string;
  /** Name of the Deployment, Services, ServiceAccount and friends. @default "agent" */
  appName?: string;
  /** Replicas, HPA CPU target, requests and limits. @default targetScaling(dataPlane.environment).eks */
  scaling?: EksScaling;
  /** HPA average memory target, percent of the memory request. @default 80 */
  targetMemoryPercent?: number;
  /**
   * `nlb`: a `LoadBalancer` Service (TCP/TLS). `alb`: an Ingress for the AWS Load Balancer
   * Controller, which must be installed in the cluster (HTTP to HTTPS redirect, HTTP metrics).
   * @default "nlb"
   */
  ingress?: "nlb" | "alb";
  /** Which controller realises the NLB. @default "cloud-provider" (built into EKS) */
  nlbController?: NlbController;
  /** @default "internet-facing" */
  scheme?: LoadBalancerScheme;
  /** Public hostname such as `agent.example.com`; requires `certificateArn`. @default none: the load balancer's hostname over HTTP */
  domain?: string;
  /** ACM certificate covering `domain`, in the cluster's region. TLS terminates at the load balancer. */
  certificateArn?: pulumi.Input<string>;
  /** Route 53 zone for a CNAME from `domain` to the load balancer. @default none: point the name yourself */
  hostedZoneId?: pulumi.Input<string>;
  /** Customer-managed KMS keys of the data plane's secrets, decrypted via Secrets Manager only. @default [] */
  secretKmsKeyArns?: pulumi.Input<string>[];
  /** UID (and GID) the container runs as. @default 10001 */
  runAsUser?: number;
  /** How long the app drains after SIGTERM (`SHUTDOWN_GRACE_MS`). @default 25000 */
  shutdownGraceMs?: number;
  /** Seconds a terminating pod keeps serving while endpoints update. @default 10 */
  preStopSeconds?: number;
  /** The CIDR the NetworkPolicy lets pods reach Postgres and Redis in. @default the data plane VPC's CIDR (looked up) */
  vpcCidrBlock?: pulumi.Input<string>;
  /**
   * Progressive delivery with Argo Rollouts (./rollouts.ts): a Rollout runs the Deployment's pods
   * through `steps`, analysed against the gates, and aborts to the stable pods when one fails.
   * No steps (or no `rollout`): the Deployment rolls by itself.
   */
  rollout?: EksRollout;
}

export interface EksRollout {
  steps: RolloutStep[];
  /** @default defaultGates(60 s) */
  gates?: RolloutGates;
  /** Install the Argo Rollouts controller (pinned chart). False when the cluster has it. @default true */
  installController?: boolean;
}

export interface Settings {
  namespace: string;
  appName: string;
  scaling: EksScaling;
  targetMemoryPercent: number;
  ingress: "nlb" | "alb";
  nlbController: NlbController;
  scheme: LoadBalancerScheme;
  runAsUser: number;
  shutdownGraceMs: number;
  preStopSeconds: number;
  podDisruptionBudget: boolean;
}

/** Defaults applied. Pure. */
export function resolveEksTargetSettings(args: EksTargetArgs): Settings {
  const scaling = args.scaling ?? targetScaling(args.dataPlane.environment).eks;
  return {
    namespace: args.namespace ?? "agent",
    appName: args.appName ?? "agent",
    scaling,
    targetMemoryPercent: args.targetMemoryPercent ?? 80,
    ingress: args.ingress ?? "nlb",
    nlbController: args.nlbController ?? "cloud-provider",
    scheme: args.scheme ?? "internet-facing",
    runAsUser: args.runAsUser ?? 10001,
    shutdownGraceMs: args.shutdownGraceMs ?? SERVICE_CONTRACT.drain.graceMs,
    preStopSeconds: args.preStopSeconds ?? 10,
    podDisruptionBudget: scaling.minReplicas >= 2,
  };
}

/** `<repo>@sha256:<64 hex>`: a tag could move under the Deployment. */
export function checkImageRef(ref: string): string | undefined {
  return isPinnedByDigest(ref)
    ? undefined
    : `image "${ref}" is not pinned by digest: pass the artifact's imageRef (<repository>@sha256:<digest>).`;
}

/** Every problem with the arguments, each saying what to change. Pure. */
export function checkEksTargetArgs(args: EksTargetArgs, s: Settings): string[] {
  const problems: string[] = [];
  if (!args.dataPlane.network.hasNat) {
    problems.push(
      "the data plane's private subnets have no NAT: pods could not reach the LLM API; use a network with NAT gateways.",
    );
  }
  if (args.dataPlane.secrets.some((ref) => ref.store !== "aws-secretsmanager")) {
    problems.push(
      "every data plane secret must live in AWS Secrets Manager: the pods' IAM role can read nothing else.",
    );
  }
  for (const p of [
    checkKubernetesName("namespace", s.namespace),
    checkKubernetesName("appName", s.appName),
  ]) {
    if (p) problems.push(p);
  }
  problems.push(...eksScalingProblems(s.scaling));
  if (args.dataPlane.environment === "prod" && s.scaling.minReplicas < 2) {
    problems.push(
      `prod needs eks.minReplicas of 2 or more (it is ${s.scaling.minReplicas}): with one replica the PodDisruptionBudget cannot let a node drain without downtime.`,
    );
  }
  if (
    !Number.isInteger(s.targetMemoryPercent) ||
    s.targetMemoryPercent < 1 ||
    s.targetMemoryPercent > 100
  ) {
    problems.push(
      `targetMemoryPercent is ${s.targetMemoryPercent}: use a whole percentage from 1 to 100.`,
    );
  }
  if (args.domain !== undefined && !DOMAIN.test(args.domain)) {
    problems.push(
      `domain "${args.domain}" is not a lowercase DNS name such as "agent.example.com".`,
    );
  }
  if (args.domain !== undefined && args.certificateArn === undefined) {
    problems.push(
      `domain "${args.domain}" needs certificateArn: TLS terminates at the load balancer; issue an ACM certificate for it.`,
    );
  }
  if (args.certificateArn !== undefined && args.domain === undefined) {
    problems.push(
      "certificateArn needs domain: the certificate cannot match the load balancer's generated hostname.",
    );
  }
  if (args.hostedZoneId !== undefined && args.domain === undefined)
    problems.push("hostedZoneId needs domain: set the name to create.");
  if (args.nlbController !== undefined && s.ingress === "alb") {
    problems.push('nlbController applies to ingress "nlb" only: drop it, or choose ingress "nlb".');
  }
  if (!Number.isInteger(s.runAsUser) || s.runAsUser < 1)
    problems.push(`runAsUser is ${s.runAsUser}: use a non-root UID such as 10001.`);
  if (
    !Number.isInteger(s.shutdownGraceMs) ||
    s.shutdownGraceMs < 0 ||
    s.shutdownGraceMs > 600_000
  ) {
    problems.push(
      `shutdownGraceMs is ${s.shutdownGraceMs}: use 0 to 600000 (what the app accepts).`,
    );
  }
  if (!Number.isInteger(s.preStopSeconds) || s.preStopSeconds < 1 || s.preStopSeconds > 120) {
    problems.push(`preStopSeconds is ${s.preStopSeconds}: use 1 to 120.`);
  }
  return problems;
}
