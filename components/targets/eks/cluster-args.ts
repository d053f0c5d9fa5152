/**
 * What an EKS cluster is made from: an existing cluster's kubeconfig and OIDC issuer, or the
 * arguments of a new one, and the check of every argument. Pure.
 */
import * as aws from "@pulumi/aws";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { checkLogRetention } from "../../aws/checks";
import type { Environment, NetworkAttachment } from "../../contracts";
import {
  amiTypeFor,
  CLUSTER_LOG_TYPES,
  type EksAddonName,
  type EksClusterSizing,
} from "./cluster-config";

import { DEFAULT_EKS_VERSION } from "../../versions";

export interface ExistingEksCluster {
  /** A kubeconfig with access to the cluster (a Pulumi secret). */
  kubeconfig: pulumi.Input<string>;
  /** `arn:aws:iam::<account>:oidc-provider/oidc.eks.<region>.amazonaws.com/id/<id>` */
  oidcProviderArn: pulumi.Input<string>;
  /** The issuer URL, with or without `https://`. */
  oidcProviderUrl: pulumi.Input<string>;
  /**
   * The cluster's name, for Container Insights alarm dimensions.
   * @default none (no Container Insights alarms)
   */
  clusterName?: pulumi.Input<string>;
  /**
   * Whether the `amazon-cloudwatch-observability` add-on runs on the cluster.
   * @default false
   */
  containerInsights?: boolean;
}

export interface EksClusterArgs {
  /** Picks the sizing (nodes, logs, Container Insights, deletion protection). */
  environment: Environment;
  /** The data plane's network: private subnets for nodes and control-plane ENIs, the compute security group. Required unless `existing`. */
  network?: NetworkAttachment<"aws">;
  /** Adopt a cluster instead of creating one. @default none: a cluster is created */
  existing?: ExistingEksCluster;
  /**
   * Kubernetes minor version; 1.30+ (the pods' preStop uses the `sleep` action). The stack config
   * checks it against the dated support table in components/versions.ts.
   * @default DEFAULT_EKS_VERSION (the newest in components/versions.ts)
   */
  version?: string;
  /**
   * Stay on a version past its standard support and pay extended support ($0.60 instead of $0.10
   * per cluster-hour). Off: AWS upgrades the cluster when standard support ends.
   * @default false
   */
  extendedSupport?: boolean;
  /** @default `${name}-${stack}` */
  clusterName?: string;
  /** The API endpoint is always reachable from the VPC; this adds the internet (Pulumi from a laptop or CI). @default true */
  endpointPublicAccess?: boolean;
  /** Who may reach the public endpoint. @default ["0.0.0.0/0"] */
  publicAccessCidrs?: string[];
  /** KMS key for envelope encryption of Kubernetes secrets. @default a new key with rotation (~$1/month) */
  secretsKmsKeyArn?: pulumi.Input<string>;
  /** IAM principals (CI roles, admins) given cluster-admin through access entries; the creator always is. @default [] */
  adminPrincipalArns?: pulumi.Input<string>[];
  /**
   * IAM principals given read access (AmazonEKSViewPolicy: no Secrets) through access entries:
   * the preview and drift role, so `pulumi preview` can read the cluster. The Kubernetes
   * provider falls back to a client-side preview when a server-side dry run is forbidden
   * (pulumi-kubernetes #2419).
   * @default []
   */
  viewerPrincipalArns?: pulumi.Input<string>[];
  /** Role the kubeconfig's `aws eks get-token` assumes. @default the caller's identity */
  kubeconfigRoleArn?: pulumi.Input<string>;
  /** For the kubeconfig. @default the AWS provider's region */
  region?: pulumi.Input<string>;
  /** Pin add-on versions. @default EKS's default version for the cluster's Kubernetes version */
  addonVersions?: Partial<Record<EksAddonName, string>>;
  /** @default eksClusterSizing(environment) */
  sizing?: EksClusterSizing;
}

/** What the EKS target needs from a cluster, created or existing. */
export interface EksClusterInfo {
  provider: k8s.Provider;
  /** Undefined for an existing cluster whose name was not given. */
  clusterName?: pulumi.Output<string>;
  oidcProviderArn: pulumi.Output<string>;
  oidcProviderUrl: pulumi.Output<string>;
  containerInsights: boolean;
}

/** What `create` or `adopt` produce; resources are undefined for an existing cluster. */
export interface ClusterParts {
  provider: k8s.Provider;
  kubeconfig: pulumi.Output<string>;
  clusterName?: pulumi.Output<string>;
  oidcProviderArn: pulumi.Output<string>;
  oidcProviderUrl: pulumi.Output<string>;
  containerInsights: boolean;
  cluster?: aws.eks.Cluster;
  nodeGroup?: aws.eks.NodeGroup;
  oidcProvider?: aws.iam.OpenIdConnectProvider;
  clusterRole?: aws.iam.Role;
  nodeRole?: aws.iam.Role;
  kmsKey?: aws.kms.Key;
  launchTemplate?: aws.ec2.LaunchTemplate;
}

export interface RoleWithPolicies {
  role: aws.iam.Role;
  /** Attachments to wait for before using the role. */
  ready: pulumi.Resource[];
}

const CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

/** Every problem with the arguments, each saying what to change. Pure. */
export function checkEksClusterArgs(
  name: string,
  args: EksClusterArgs,
  sizing: EksClusterSizing,
): string[] {
  const problems: string[] = [];
  if (args.existing && args.network) {
    problems.push("pass either `existing` (adopt a cluster) or `network` (create one), not both.");
  }
  if (sizing.environment !== args.environment) {
    problems.push(
      `sizing is for "${sizing.environment}" but environment is "${args.environment}": pass eksClusterSizing("${args.environment}") or a copy of it.`,
    );
  }
  if (args.existing) return problems;
  if (!args.network) {
    problems.push(
      "`network` is required to create a cluster: pass the data plane's `outputs.network` (or `existing`).",
    );
  }
  const version = args.version ?? DEFAULT_EKS_VERSION;
  const minor = /^1\.(\d+)$/.exec(version);
  if (!minor) {
    problems.push(`version "${version}" is not a Kubernetes minor version such as "1.33".`);
  } else if (Number(minor[1]) < 30) {
    problems.push(
      `version ${version} is too old: use 1.30 or later (the preStop sleep action and EKS standard support need it).`,
    );
  }
  const clusterName = args.clusterName ?? `${name}-${pulumi.getStack()}`;
  if (!/^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$/.test(clusterName)) {
    problems.push(
      `cluster name "${clusterName}" must be 1-100 letters, digits, - and _, starting with a letter or digit: set clusterName.`,
    );
  }
  const cidrs = args.publicAccessCidrs ?? ["0.0.0.0/0"];
  if ((args.endpointPublicAccess ?? true) && cidrs.length === 0) {
    problems.push(
      "publicAccessCidrs is empty while the public endpoint is on: list the CIDRs, or set endpointPublicAccess to false.",
    );
  }
  for (const cidr of cidrs) {
    const m = CIDR.exec(cidr);
    if (!m || m.slice(1, 5).some((o) => Number(o) > 255) || Number(m[5]) > 32) {
      problems.push(
        `publicAccessCidrs entry "${cidr}" is not an IPv4 CIDR such as "203.0.113.0/24".`,
      );
    }
  }
  const ng = sizing.nodeGroup;
  if (ng.instanceTypes.length === 0) {
    problems.push("nodeGroup.instanceTypes is empty: list at least one instance type.");
  }
  try {
    amiTypeFor(ng.instanceTypes);
  } catch (e) {
    problems.push((e as Error).message);
  }
  if (!Number.isInteger(ng.minSize) || ng.minSize < 1) {
    problems.push(`nodeGroup.minSize is ${ng.minSize}: use 1 or more (coredns needs a node).`);
  }
  if (ng.minSize > ng.maxSize) {
    problems.push(
      `nodeGroup.minSize (${ng.minSize}) is greater than nodeGroup.maxSize (${ng.maxSize}): lower the minimum or raise the maximum.`,
    );
  }
  if (ng.desiredSize < ng.minSize || ng.desiredSize > ng.maxSize) {
    problems.push(
      `nodeGroup.desiredSize (${ng.desiredSize}) must be between minSize (${ng.minSize}) and maxSize (${ng.maxSize}).`,
    );
  }
  if (!Number.isInteger(ng.diskSizeGb) || ng.diskSizeGb < 20) {
    problems.push(`nodeGroup.diskSizeGb is ${ng.diskSizeGb}: use 20 or more (images and logs).`);
  }
  for (const t of sizing.logTypes) {
    if (!CLUSTER_LOG_TYPES.includes(t)) {
      problems.push(`log type "${t}" is unknown: use ${CLUSTER_LOG_TYPES.join(", ")}.`);
    }
  }
  const retention = checkLogRetention(sizing.logRetentionDays);
  if (retention) problems.push(retention);
  return problems;
}
