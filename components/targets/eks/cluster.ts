/**
 * An EKS cluster built from plain `@pulumi/aws` resources, or an existing cluster adopted through
 * its kubeconfig, exposed to the EKS target as a Kubernetes provider plus the OIDC issuer that
 * IAM Roles for Service Accounts (IRSA) trust.
 *
 * Why not `@pulumi/eks`: its v3 `Cluster` is a multi-language component; under the unit-test mocks
 * it is one opaque resource, so nothing about encryption, endpoint access, node groups or add-ons
 * could be asserted. Building from `aws.eks.*` keeps every piece visible and testable.
 */
import * as aws from "@pulumi/aws";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";

import type { NetworkAttachment } from "../../contracts";
import {
  amiTypeFor,
  EKS_OIDC_THUMBPRINT,
  type AddonPlan,
  type EksAddonName,
  eksAddonPlan,
  type EksClusterSizing,
  eksClusterSizing,
  kubeconfigFor,
  NODE_ROLE_POLICIES,
} from "./cluster-config";
import { irsaTrustPolicy, serviceTrustPolicy } from "./iam";
import { DEFAULT_EKS_VERSION } from "../../versions";
import {
  ClusterParts,
  EksClusterArgs,
  EksClusterInfo,
  ExistingEksCluster,
  RoleWithPolicies,
  checkEksClusterArgs,
} from "./cluster-args";
export * from "./cluster-args";

export * from "./cluster-config";

/** An existing cluster: only the Kubernetes provider is created. */
/**
 * An EKS cluster with a managed node group, or an adopted one. Created: control plane about
 * $73/month, plus nodes (dev 2 x t3.medium ~$60, prod 3 x m7i.large ~$220), the KMS key ~$1,
 * control-plane logs per GB, and Container Insights per metric observation in prod. Standard
 * support unless `extendedSupport` is set: extended support adds $365/month per cluster
 * ($0.60 instead of $0.10 per cluster-hour) once the version ages out.
 */
export class EksCluster extends pulumi.ComponentResource {
  readonly provider: k8s.Provider;
  /** Secret. No credential inside: `aws eks get-token` exec auth. */
  readonly kubeconfig: pulumi.Output<string>;
  readonly clusterName?: pulumi.Output<string>;
  readonly oidcProviderArn: pulumi.Output<string>;
  /** The issuer URL (`https://oidc.eks...`). */
  readonly oidcProviderUrl: pulumi.Output<string>;
  /** What the EKS target consumes. */
  readonly info: EksClusterInfo;

  // Escape hatches; undefined for an existing cluster.
  readonly cluster?: aws.eks.Cluster;
  readonly nodeGroup?: aws.eks.NodeGroup;
  readonly oidcProvider?: aws.iam.OpenIdConnectProvider;
  readonly clusterRole?: aws.iam.Role;
  readonly nodeRole?: aws.iam.Role;
  readonly kmsKey?: aws.kms.Key;
  readonly launchTemplate?: aws.ec2.LaunchTemplate;
  readonly addons: Partial<Record<EksAddonName, aws.eks.Addon>> = {};

  private readonly name: string;

  constructor(name: string, args: EksClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:targets:EksCluster", name, {}, opts);
    this.name = name;
    const sizing = args.sizing ?? eksClusterSizing(args.environment);
    this.validate(args, sizing);

    const parts = args.existing ? this.adopt(args.existing) : this.create(args, sizing);
    this.provider = parts.provider;
    this.kubeconfig = parts.kubeconfig;
    this.clusterName = parts.clusterName;
    this.oidcProviderArn = parts.oidcProviderArn;
    this.oidcProviderUrl = parts.oidcProviderUrl;
    this.cluster = parts.cluster;
    this.nodeGroup = parts.nodeGroup;
    this.oidcProvider = parts.oidcProvider;
    this.clusterRole = parts.clusterRole;
    this.nodeRole = parts.nodeRole;
    this.kmsKey = parts.kmsKey;
    this.launchTemplate = parts.launchTemplate;
    this.info = {
      provider: this.provider,
      clusterName: this.clusterName,
      oidcProviderArn: this.oidcProviderArn,
      oidcProviderUrl: this.oidcProviderUrl,
      containerInsights: parts.containerInsights,
    };

    this.registerOutputs({
      kubeconfig: this.kubeconfig,
      clusterName: this.clusterName,
      oidcProviderArn: this.oidcProviderArn,
      oidcProviderUrl: this.oidcProviderUrl,
    });
  }

  /** An existing cluster: only the provider. */
  private adopt(existing: ExistingEksCluster): ClusterParts {
    const kubeconfig = pulumi.secret(existing.kubeconfig);
    return {
      kubeconfig,
      provider: new k8s.Provider(`${this.name}-k8s`, { kubeconfig }, { parent: this }),
      clusterName:
        existing.clusterName === undefined ? undefined : pulumi.output(existing.clusterName),
      oidcProviderArn: pulumi.output(existing.oidcProviderArn),
      oidcProviderUrl: pulumi.output(existing.oidcProviderUrl),
      containerInsights: existing.containerInsights ?? false,
    };
  }

  /** The table of contents of a new cluster, in dependency order. */
  private create(args: EksClusterArgs, sizing: EksClusterSizing): ClusterParts {
    // checkEksClusterArgs refused a creation without a network.
    const network = args.network!;
    const clusterName = args.clusterName ?? `${this.name}-${pulumi.getStack()}`;
    const partition = aws.getPartitionOutput({}, { parent: this }).partition;
    const plan = eksAddonPlan(sizing);

    const logGroup = this.createLogGroup(clusterName, sizing);
    const kmsKey = args.secretsKmsKeyArn === undefined ? this.createKmsKey(sizing) : undefined;
    const keyArn = args.secretsKmsKeyArn ?? kmsKey!.arn;
    const clusterRole = this.createClusterRole(partition, keyArn);
    const cluster = this.createCluster(
      clusterRole,
      clusterName,
      args,
      sizing,
      network,
      keyArn,
      logGroup,
    );
    const oidcProvider = this.createOidcProvider(cluster);
    this.createAccess(cluster, "admin", args.adminPrincipalArns ?? []);
    this.createAccess(cluster, "viewer", args.viewerPrincipalArns ?? []);
    const nodeRole = this.createNodeRole(partition);
    const before = plan.filter((a) => a.phase === "before-nodes");
    const networking = this.createAddons(before, cluster, oidcProvider, partition, args, []);
    const launchTemplate = this.createLaunchTemplate(cluster, network, sizing);
    const nodeGroup = this.createNodeGroup(
      cluster,
      network,
      sizing,
      nodeRole,
      launchTemplate,
      networking,
    );
    const after = plan.filter((a) => a.phase === "after-nodes");
    const onNodes = this.createAddons(after, cluster, oidcProvider, partition, args, [nodeGroup]);
    const kubeconfig = this.buildKubeconfig(cluster, args);
    // Workloads use this provider, so they wait for nodes and add-ons instead of timing out
    // on Pending pods while the node group is still being created.
    const provider = new k8s.Provider(
      `${this.name}-k8s`,
      { kubeconfig },
      { parent: this, dependsOn: [nodeGroup, ...networking, ...onNodes] },
    );
    return {
      provider,
      kubeconfig,
      clusterName: cluster.name,
      oidcProviderArn: oidcProvider.arn,
      oidcProviderUrl: oidcProvider.url.apply((u) =>
        u.startsWith("https://") ? u : `https://${u}`,
      ),
      containerInsights: sizing.containerInsights,
      cluster,
      nodeGroup,
      oidcProvider,
      clusterRole: clusterRole.role,
      nodeRole: nodeRole.role,
      kmsKey,
      launchTemplate,
    };
  }

  private validate(args: EksClusterArgs, sizing: EksClusterSizing): void {
    const problems = checkEksClusterArgs(this.name, args, sizing);
    if (problems.length > 0) {
      throw new pulumi.ResourceError(`EksCluster "${this.name}": ${problems.join(" ")}`, this);
    }
    const cidrs = args.publicAccessCidrs ?? ["0.0.0.0/0"];
    if (
      !args.existing &&
      sizing.environment === "prod" &&
      (args.endpointPublicAccess ?? true) &&
      cidrs.includes("0.0.0.0/0")
    ) {
      pulumi.log.warn(
        `EksCluster "${this.name}": the prod API endpoint is public to 0.0.0.0/0 (authentication still required); ` +
          "restrict publicAccessCidrs to CI and office ranges.",
        this,
      );
    }
  }

  /** EKS creates this group itself, with no retention, unless it already exists. */
  private createLogGroup(clusterName: string, sizing: EksClusterSizing): aws.cloudwatch.LogGroup {
    return new aws.cloudwatch.LogGroup(
      `${this.name}-control-plane-logs`,
      { name: `/aws/eks/${clusterName}/cluster`, retentionInDays: sizing.logRetentionDays },
      { parent: this },
    );
  }

  private createKmsKey(sizing: EksClusterSizing): aws.kms.Key {
    return new aws.kms.Key(
      `${this.name}-secrets-key`,
      {
        description: "Envelope encryption of Kubernetes secrets (EKS)",
        enableKeyRotation: true,
        deletionWindowInDays: sizing.deletionProtection ? 30 : 7,
      },
      { parent: this },
    );
  }

  /** The role and the attachments the cluster must wait for (creation races a missing policy). */
  private createClusterRole(
    partition: pulumi.Output<string>,
    keyArn: pulumi.Input<string>,
  ): RoleWithPolicies {
    const role = new aws.iam.Role(
      `${this.name}-cluster-role`,
      {
        assumeRolePolicy: JSON.stringify(serviceTrustPolicy("eks.amazonaws.com")),
        description: "EKS control plane",
      },
      { parent: this },
    );
    const managed = new aws.iam.RolePolicyAttachment(
      `${this.name}-cluster-policy`,
      {
        role: role.name,
        policyArn: pulumi.interpolate`arn:${partition}:iam::aws:policy/AmazonEKSClusterPolicy`,
      },
      { parent: this },
    );
    // AmazonEKSClusterPolicy carries no KMS rights; envelope encryption needs these on the key.
    const kms = new aws.iam.RolePolicy(
      `${this.name}-cluster-kms`,
      {
        role: role.name,
        policy: pulumi.output(keyArn).apply((arn) =>
          JSON.stringify({
            Version: "2012-10-17",
            Statement: [
              {
                Sid: "EnvelopeEncryption",
                Effect: "Allow",
                Action: ["kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"],
                Resource: [arn],
              },
            ],
          }),
        ),
      },
      { parent: this },
    );
    return { role, ready: [managed, kms] };
  }

  private createCluster(
    role: RoleWithPolicies,
    clusterName: string,
    args: EksClusterArgs,
    sizing: EksClusterSizing,
    network: NetworkAttachment<"aws">,
    keyArn: pulumi.Input<string>,
    logGroup: aws.cloudwatch.LogGroup,
  ): aws.eks.Cluster {
    const publicAccess = args.endpointPublicAccess ?? true;
    return new aws.eks.Cluster(
      `${this.name}-cluster`,
      {
        name: clusterName,
        version: args.version ?? DEFAULT_EKS_VERSION,
        roleArn: role.role.arn,
        vpcConfig: {
          subnetIds: network.privateSubnetIds,
          endpointPrivateAccess: true,
          endpointPublicAccess: publicAccess,
          publicAccessCidrs: publicAccess ? (args.publicAccessCidrs ?? ["0.0.0.0/0"]) : undefined,
        },
        encryptionConfig: { resources: ["secrets"], provider: { keyArn } },
        enabledClusterLogTypes: sizing.logTypes,
        // Access entries (not the aws-auth ConfigMap); the creator gets cluster-admin so the
        // kubeconfig below works for whoever ran `pulumi up`.
        accessConfig: { authenticationMode: "API", bootstrapClusterCreatorAdminPermissions: true },
        // The managed add-ons below own vpc-cni, kube-proxy and coredns; no unmanaged copies.
        bootstrapSelfManagedAddons: false,
        // EXTENDED (the API default) silently bills $0.50/hour more once a version ages out; only
        // an explicit opt-in pays for it.
        upgradePolicy: { supportType: args.extendedSupport ? "EXTENDED" : "STANDARD" },
        deletionProtection: sizing.deletionProtection,
      },
      // The role's policies are separate resources: without waiting, creation races them.
      { parent: this, dependsOn: [logGroup, ...role.ready] },
    );
  }

  private createOidcProvider(cluster: aws.eks.Cluster): aws.iam.OpenIdConnectProvider {
    const issuer = cluster.identities.apply((ids) => ids[0]?.oidcs[0]?.issuer ?? "");
    return new aws.iam.OpenIdConnectProvider(
      `${this.name}-oidc`,
      { url: issuer, clientIdLists: ["sts.amazonaws.com"], thumbprintLists: [EKS_OIDC_THUMBPRINT] },
      { parent: this },
    );
  }

  /** Access entries (https://docs.aws.amazon.com/eks/latest/userguide/access-policies.html). */
  private createAccess(
    cluster: aws.eks.Cluster,
    kind: "admin" | "viewer",
    principals: pulumi.Input<string>[],
  ): void {
    const policy = kind === "admin" ? "AmazonEKSClusterAdminPolicy" : "AmazonEKSViewPolicy";
    principals.forEach((principalArn, i) => {
      const entry = new aws.eks.AccessEntry(
        `${this.name}-${kind}-${i}`,
        { clusterName: cluster.name, principalArn, type: "STANDARD" },
        { parent: this },
      );
      new aws.eks.AccessPolicyAssociation(
        `${this.name}-${kind}-${i}`,
        {
          clusterName: cluster.name,
          principalArn,
          policyArn: `arn:aws:eks::aws:cluster-access-policy/${policy}`,
          accessScope: { type: "cluster" },
        },
        { parent: this, dependsOn: [entry] },
      );
    });
  }

  private createNodeRole(partition: pulumi.Output<string>): RoleWithPolicies {
    const role = new aws.iam.Role(
      `${this.name}-node-role`,
      {
        assumeRolePolicy: JSON.stringify(serviceTrustPolicy("ec2.amazonaws.com")),
        description: "EKS managed nodes",
      },
      { parent: this },
    );
    const ready = NODE_ROLE_POLICIES.map(
      (policy) =>
        new aws.iam.RolePolicyAttachment(
          `${this.name}-node-${policy
            .replace(/^Amazon/, "")
            .replace(/_/g, "-")
            .toLowerCase()}`,
          {
            role: role.name,
            policyArn: pulumi.interpolate`arn:${partition}:iam::aws:policy/${policy}`,
          },
          { parent: this },
        ),
    );
    return { role, ready };
  }

  private createAddons(
    plan: AddonPlan[],
    cluster: aws.eks.Cluster,
    oidc: aws.iam.OpenIdConnectProvider,
    partition: pulumi.Output<string>,
    args: EksClusterArgs,
    dependsOn: pulumi.Resource[],
  ): aws.eks.Addon[] {
    return plan.map((addon) => {
      const role = addon.irsa ? this.createAddonRole(addon, oidc, partition) : undefined;
      const created = new aws.eks.Addon(
        `${this.name}-${addon.name}`,
        {
          clusterName: cluster.name,
          addonName: addon.name,
          addonVersion: args.addonVersions?.[addon.name],
          configurationValues: addon.configurationValues,
          serviceAccountRoleArn: role?.arn,
          // Pulumi owns these settings: take over fields from a previous manual install.
          resolveConflictsOnCreate: "OVERWRITE",
          resolveConflictsOnUpdate: "OVERWRITE",
        },
        { parent: this, dependsOn },
      );
      this.addons[addon.name] = created;
      return created;
    });
  }

  private createAddonRole(
    addon: AddonPlan,
    oidc: aws.iam.OpenIdConnectProvider,
    partition: pulumi.Output<string>,
  ): aws.iam.Role {
    const irsa = addon.irsa!;
    const role = new aws.iam.Role(
      `${this.name}-${addon.name}-role`,
      {
        description: `IRSA role of the ${addon.name} add-on`,
        assumeRolePolicy: pulumi
          .all([oidc.arn, oidc.url])
          .apply(([arn, url]) =>
            JSON.stringify(irsaTrustPolicy(arn, url, irsa.namespace, irsa.serviceAccount)),
          ),
      },
      { parent: this },
    );
    for (const policy of irsa.managedPolicies) {
      new aws.iam.RolePolicyAttachment(
        `${this.name}-${addon.name}-${policy.toLowerCase()}`,
        {
          role: role.name,
          policyArn: pulumi.interpolate`arn:${partition}:iam::aws:policy/${policy}`,
        },
        { parent: this },
      );
    }
    return role;
  }

  /**
   * A launch template only to add the data plane's compute security group (Redis and Postgres
   * admit nothing else) next to the cluster security group, require IMDSv2 and encrypt the root
   * volume. Naming security groups here means EKS no longer adds the cluster group itself.
   */
  private createLaunchTemplate(
    cluster: aws.eks.Cluster,
    network: NetworkAttachment<"aws">,
    sizing: EksClusterSizing,
  ): aws.ec2.LaunchTemplate {
    return new aws.ec2.LaunchTemplate(
      `${this.name}-nodes`,
      {
        description: "EKS managed nodes: cluster + compute security groups, IMDSv2, encrypted gp3",
        vpcSecurityGroupIds: [
          cluster.vpcConfig.clusterSecurityGroupId,
          network.computeSecurityGroupId,
        ],
        metadataOptions: {
          httpEndpoint: "enabled",
          httpTokens: "required",
          // Hop limit 1 keeps pods (one hop further) away from the node role's credentials: they
          // use IRSA. The CloudWatch agent needs instance metadata from its pod, hence 2 with it.
          httpPutResponseHopLimit: sizing.containerInsights ? 2 : 1,
        },
        blockDeviceMappings: [
          {
            deviceName: "/dev/xvda",
            ebs: {
              volumeSize: sizing.nodeGroup.diskSizeGb,
              volumeType: "gp3",
              encrypted: "true",
              deleteOnTermination: "true",
            },
          },
        ],
        updateDefaultVersion: true,
      },
      { parent: this },
    );
  }

  private createNodeGroup(
    cluster: aws.eks.Cluster,
    network: NetworkAttachment<"aws">,
    sizing: EksClusterSizing,
    nodeRole: RoleWithPolicies,
    lt: aws.ec2.LaunchTemplate,
    networking: aws.eks.Addon[],
  ): aws.eks.NodeGroup {
    const ng = sizing.nodeGroup;
    return new aws.eks.NodeGroup(
      `${this.name}-nodes`,
      {
        clusterName: cluster.name,
        nodeRoleArn: nodeRole.role.arn,
        subnetIds: network.privateSubnetIds,
        amiType: amiTypeFor(ng.instanceTypes),
        instanceTypes: ng.instanceTypes,
        capacityType: ng.capacityType,
        scalingConfig: { minSize: ng.minSize, maxSize: ng.maxSize, desiredSize: ng.desiredSize },
        updateConfig: { maxUnavailable: 1 },
        launchTemplate: { id: lt.id, version: lt.latestVersion.apply((v) => String(v)) },
        // Replace nodes that report NotReady or failing health instead of paging someone.
        nodeRepairConfig: { enabled: true },
      },
      { parent: this, dependsOn: [...nodeRole.ready, ...networking] },
    );
  }

  private buildKubeconfig(cluster: aws.eks.Cluster, args: EksClusterArgs): pulumi.Output<string> {
    const region = args.region ?? aws.getRegionOutput({}, { parent: this }).region;
    return pulumi.secret(
      pulumi
        .all([
          cluster.name,
          cluster.endpoint,
          cluster.certificateAuthority,
          region,
          args.kubeconfigRoleArn,
        ])
        .apply(([clusterName, endpoint, ca, r, roleArn]) =>
          JSON.stringify(
            kubeconfigFor({
              clusterName,
              endpoint,
              certificateAuthorityData: ca.data ?? "",
              region: r,
              roleArn: roleArn ?? undefined,
            }),
          ),
        ),
    );
  }
}
