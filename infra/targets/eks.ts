/** The `eks` target: a Deployment with an HPA on an EKS cluster created here or adopted. */
import { z } from "zod";
import { EksCluster, eksClusterSizing } from "../../components/targets/eks/cluster";
import { EksTarget } from "../../components/targets/eks/target";
import { targetScaling } from "../../components/targets/scaling";
import type { StackConfigOf } from "../config";
import { awsCertificateArn, awsImage, awsPlatformFor, grantAwsUpstream } from "./shared";
import { awsDataPlane } from "../clouds";
import type { DataPlaneOf, TargetModule } from "./types";

/** An IAM role or user that EKS access entries can name. */
const iamPrincipalArn = z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:(role|user)\/[\w+=,.@/-]+$/, {
  message: "must be an IAM role or user ARN (arn:aws:iam::<account>:role/<name>)",
});

/** `agent:eks` */
export const eksSection = z.strictObject({
  /** Create a cluster, or deploy onto an existing one (then `agent:kubeconfig` is required). */
  cluster: z.enum(["create", "existing"]).optional(),
  kubernetesVersion: z
    .string()
    .regex(/^1\.\d{2}$/, { message: 'must look like "1.35"' })
    .optional(),
  /**
   * Pay for extended support ($0.60 instead of $0.10 per cluster-hour) to stay on a version past
   * its standard support; without it such versions are refused and AWS upgrades the cluster when
   * standard support ends.
   */
  extendedSupport: z.boolean().optional(),
  nodeInstanceTypes: z.array(z.string().min(1)).min(1).optional(),
  nodeMin: z.number().int().min(1).max(100).optional(),
  nodeMax: z.number().int().min(1).max(100).optional(),
  exposure: z.enum(["nlb", "alb"]).optional(),
  internal: z.boolean().optional(),
  /**
   * With agent:rollout.steps, the program installs Argo Rollouts (a pinned chart); false when the
   * cluster already runs it.
   */
  installArgoRollouts: z.boolean().optional(),
  /** Whether the Kubernetes API answers outside the VPC at all (false: deploy from inside it). */
  publicEndpoint: z.boolean().optional(),
  publicEndpointCidrs: z.array(z.cidrv4({ message: "must be an IPv4 CIDR" })).optional(),
  /** IAM roles or users given cluster-admin through EKS access entries (the deploy role). */
  adminPrincipalArns: z.array(iamPrincipalArn).optional(),
  /** IAM roles or users given read access (the preview and drift role of the workflows). */
  viewerPrincipalArns: z.array(iamPrincipalArn).optional(),
  oidcProviderArn: z.string().startsWith("arn:").optional(),
  oidcProviderUrl: z.string().min(1).optional(),
  namespace: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/)
    .max(63)
    .optional(),
});
export type EksSection = z.infer<typeof eksSection>;

/** The cluster to deploy onto: created with the environment's sizing and the stack's overrides, or adopted. */
function cluster(
  config: StackConfigOf<"eks">,
  name: string,
  dataPlane: DataPlaneOf["aws"],
): EksCluster {
  const e = config.eks;
  if (config.existingCluster) {
    return new EksCluster(`${name}-eks`, {
      environment: config.environment,
      existing: config.existingCluster,
    });
  }
  const sizing = eksClusterSizing(config.environment);
  const nodeGroup = {
    ...sizing.nodeGroup,
    ...(e.nodeInstanceTypes ? { instanceTypes: e.nodeInstanceTypes } : {}),
    ...(e.nodeMin !== undefined ? { minSize: e.nodeMin } : {}),
    ...(e.nodeMax !== undefined ? { maxSize: e.nodeMax } : {}),
  };
  nodeGroup.desiredSize = Math.min(
    Math.max(nodeGroup.desiredSize, nodeGroup.minSize),
    nodeGroup.maxSize,
  );
  return new EksCluster(`${name}-eks`, {
    environment: config.environment,
    network: dataPlane.outputs.network,
    version: e.kubernetesVersion,
    extendedSupport: e.extendedSupport,
    region: config.region,
    endpointPublicAccess: e.publicEndpoint,
    publicAccessCidrs: e.publicEndpointCidrs,
    adminPrincipalArns: e.adminPrincipalArns,
    viewerPrincipalArns: e.viewerPrincipalArns,
    sizing: { ...sizing, nodeGroup },
  });
}

export const eksTarget: TargetModule<"eks"> = {
  key: "eks",
  kind: "eks",
  cloud: "aws",
  section: eksSection,
  deploy(config, ctx) {
    const s = config.scaling;
    const nodeTypes =
      config.eks.nodeInstanceTypes ?? eksClusterSizing(config.environment).nodeGroup.instanceTypes;
    const dataPlane = awsDataPlane(ctx.name, config, ctx.tags);
    const artifact = awsImage(config, awsPlatformFor(nodeTypes));
    const onto = cluster(config, ctx.name, dataPlane);
    const target = new EksTarget(ctx.name, {
      dataPlane: dataPlane.outputs,
      artifact,
      cluster: onto.info,
      namespace: config.eks.namespace,
      scaling: targetScaling(config.environment, {
        eks: { minReplicas: s.min, maxReplicas: s.max, targetCpuPercent: s.cpuTargetPercent },
      }).eks,
      ingress: config.eks.exposure,
      scheme: config.eks.internal ? "internal" : "internet-facing",
      domain: config.domain,
      certificateArn: awsCertificateArn(config),
      hostedZoneId: config.dnsZone,
      logLevel: config.logLevel,
      extraEnv: ctx.extraEnv,
      vpcCidrBlock: dataPlane.component.network.vpc.cidrBlock,
      rollout: {
        steps: config.rolloutSteps,
        installController: config.eks.installArgoRollouts,
      },
    });
    grantAwsUpstream(ctx.name, config, target);
    return {
      url: target.url,
      artifact,
      dashboardUrl: dataPlane.outputs.monitoring.dashboardUrl,
      entry: { value: target.loadBalancerHostname, recordType: "CNAME" },
    };
  },
};
