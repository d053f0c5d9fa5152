/**
 * The composition: validated stack config -> the cloud's data plane -> the artifact (built, or
 * promoted from another stack) -> the target. `infra/index.ts` calls it with the running stack's
 * config; the tests and the offline plan call it under the mock runtime.
 */
import * as pulumi from "@pulumi/pulumi";
import type { Artifact, DataPlaneOutputs } from "../components/contracts";
import { environmentProfile } from "../components/environment";
import {
  AWS_TAG_KEYS,
  registerStackTagging,
  costAllocationTag,
  gcpLabelKey,
  gcpLabels,
  type StackTags,
} from "../components/tagging";
import { AwsDataPlane } from "../components/aws/data-plane";
import { ContainerImage } from "../components/aws/image";
import { LambdaBundle } from "../components/aws/lambda-bundle";
import { ArtifactBucket } from "../components/aws/artifact-bucket";
import { GcpDataPlane } from "../components/gcp/data-plane";
import { GcpImage } from "../components/gcp/image";
import { DATA_PLANE_APIS, ProjectApis } from "../components/gcp/apis";
import { DnsValidatedCertificate } from "../components/aws/certificate";
import { targetScaling, type ScalingOverrides } from "../components/targets/scaling";
import { LambdaTarget } from "../components/targets/lambda";
import { CloudRunTarget } from "../components/targets/cloud-run";
import { EksCluster } from "../components/targets/eks-cluster";
import { eksClusterSizing } from "../components/targets/eks/cluster-config";
import { EksTarget } from "../components/targets/eks";
import { AwsVmGroupTarget } from "../components/targets/vm-group-aws";
import { GcpVmGroupTarget } from "../components/targets/vm-group-gcp";
import type { StackConfig } from "./config";
import {
  exportArtifact,
  promotedArtifact,
  REPO_ROOT,
  sourceTag,
  type ExportedArtifact,
} from "./artifact";
import * as path from "node:path";
import { gcpResourceId } from "./naming";

export interface ProgramOutputs {
  url: pulumi.Output<string>;
  target: StackConfig["target"];
  cloud: StackConfig["cloud"];
  environment: StackConfig["environment"];
  /** What later stages promote: exported as the stack output `artifact`. */
  artifact: pulumi.Output<ExportedArtifact>;
  /** Image digest, or the Lambda bundle's SHA-256. */
  artifactDigest: pulumi.Output<string>;
  promotedFrom?: string;
  dashboardUrl: pulumi.Output<string>;
  /**
   * The DNS records `domain` needs, and whether the stack manages them (`agent:dnsZone`) or you
   * create them (`managed: false`): the certificate is issued only once they resolve.
   */
  dnsRecords: pulumi.Output<DnsRecord[]>;
}

export interface DnsRecord {
  name: string;
  type: "A" | "CNAME";
  value: string;
  managed: boolean;
}

/** The one name every stack's resources hang from; short, because Memorystore ids are capped. */
const NAME = "agent";

export function stackTags(config: StackConfig): StackTags {
  return {
    app: NAME,
    environment: config.environment,
    owner: config.owner,
    costCenter: config.costCenter,
    stack: `${pulumi.getProject()}-${config.stack}`,
  };
}

/** App-level budgets travel as plain environment variables (they are limits, not secrets). */
export function budgetEnv(config: StackConfig): Record<string, string> {
  const b = config.appBudgets;
  const env: Record<string, string> = {};
  if (b.requestUsd !== undefined) env.BUDGET_REQUEST_USD = String(b.requestUsd);
  if (b.sessionUsd !== undefined) env.BUDGET_SESSION_USD = String(b.sessionUsd);
  if (b.userDailyUsd !== undefined) env.BUDGET_USER_DAILY_USD = String(b.userDailyUsd);
  if (b.dailyUsd !== undefined) env.BUDGET_DAILY_USD = String(b.dailyUsd);
  return env;
}

/** Graviton families (t4g, m7g, c7g, ...) run arm64 images; everything else amd64. */
export function awsPlatformFor(instanceTypes: string[]): "linux/arm64" | "linux/amd64" {
  const arm = instanceTypes.map((t) => /^[a-z]+\d+[a-z]*g[a-z]*\./.test(t));
  if (arm.every(Boolean)) return "linux/arm64";
  if (arm.some(Boolean))
    throw new Error(
      `instance types ${instanceTypes.join(", ")} mix arm64 and x86: use one architecture`,
    );
  return "linux/amd64";
}

export function scalingOverrides(config: StackConfig): ScalingOverrides {
  const s = config.scaling;
  switch (config.target) {
    case "lambda":
      return {
        lambda: {
          memoryMb: config.lambda.memoryMb,
          timeoutSeconds: config.lambda.timeoutSeconds,
          reservedConcurrency: config.lambda.reservedConcurrency,
          provisionedConcurrency: config.lambda.provisionedConcurrency,
        },
      };
    case "cloudrun":
      return {
        cloudRun: {
          minInstances: s.min,
          maxInstances: s.max,
          concurrency: config.cloudrun.concurrency,
          cpu: config.cloudrun.cpu,
          memory: config.cloudrun.memory,
        },
      };
    case "eks":
      return {
        eks: { minReplicas: s.min, maxReplicas: s.max, targetCpuPercent: s.cpuTargetPercent },
      };
    case "vmgroup":
      return {
        vm: { minInstances: s.min, maxInstances: s.max, targetCpuPercent: s.cpuTargetPercent },
      };
  }
}

export function program(config: StackConfig): ProgramOutputs {
  const tags = stackTags(config);
  registerStackTagging(tags);
  const profile = environmentProfile(config.environment);
  const scaling = targetScaling(config.environment, scalingOverrides(config));
  const extraEnv = budgetEnv(config);

  if (config.cloud === "aws") {
    const dataPlane = new AwsDataPlane(NAME, {
      environment: config.environment,
      region: config.region,
      costAllocationTag: costAllocationTag(tags),
      anthropicApiKey: config.anthropicApiKey,
      alertEmails: config.alertEmails,
      monthlyBudgetUsd: config.monthlyBudgetUsd,
      profile,
    });
    const dp = dataPlane.outputs;
    switch (config.target) {
      case "lambda": {
        const artifact = lambdaArtifact(config);
        const target = new LambdaTarget(NAME, {
          dataPlane: dp,
          artifact,
          profile,
          exposure: config.lambda.exposure,
          memoryMb: scaling.lambda.memoryMb,
          timeoutSeconds: scaling.lambda.timeoutSeconds,
          reservedConcurrency: scaling.lambda.reservedConcurrency,
          provisionedConcurrency: scaling.lambda.provisionedConcurrency,
          scaling:
            config.lambda.throttleBurst || config.lambda.throttleRatePerSecond
              ? {
                  httpApiBurstLimit: config.lambda.throttleBurst,
                  httpApiRateLimit: config.lambda.throttleRatePerSecond,
                }
              : undefined,
          logLevel: config.logLevel,
          extraEnv,
        });
        return outputs(config, target.url, artifact, dp);
      }
      case "eks": {
        const clusterSizing = eksClusterSizing(config.environment);
        const nodeGroup = {
          ...clusterSizing.nodeGroup,
          ...(config.eks.nodeInstanceTypes ? { instanceTypes: config.eks.nodeInstanceTypes } : {}),
          ...(config.eks.nodeMin !== undefined ? { minSize: config.eks.nodeMin } : {}),
          ...(config.eks.nodeMax !== undefined ? { maxSize: config.eks.nodeMax } : {}),
        };
        nodeGroup.desiredSize = Math.min(
          Math.max(nodeGroup.desiredSize, nodeGroup.minSize),
          nodeGroup.maxSize,
        );
        const artifact = imageArtifactAws(config, awsPlatformFor(nodeGroup.instanceTypes));
        const cluster =
          config.eks.cluster === "existing"
            ? new EksCluster(`${NAME}-eks`, {
                environment: config.environment,
                existing: {
                  kubeconfig: config.kubeconfig!,
                  oidcProviderArn: config.eks.oidcProviderArn!,
                  oidcProviderUrl: config.eks.oidcProviderUrl!,
                },
              })
            : new EksCluster(`${NAME}-eks`, {
                environment: config.environment,
                network: dp.network,
                version: config.eks.kubernetesVersion,
                extendedSupport: config.eks.extendedSupport,
                region: config.region,
                endpointPublicAccess: config.eks.publicEndpoint,
                publicAccessCidrs: config.eks.publicEndpointCidrs,
                adminPrincipalArns: config.eks.adminPrincipalArns,
                viewerPrincipalArns: config.eks.viewerPrincipalArns,
                sizing: { ...clusterSizing, nodeGroup },
              });
        const certificateArn = awsCertificateArn(config);
        const target = new EksTarget(NAME, {
          dataPlane: dp,
          artifact,
          cluster: cluster.info,
          namespace: config.eks.namespace,
          scaling: scaling.eks,
          ingress: config.eks.exposure,
          scheme: config.eks.internal ? "internal" : "internet-facing",
          domain: config.domain,
          certificateArn,
          hostedZoneId: config.dnsZone,
          logLevel: config.logLevel,
          extraEnv,
          vpcCidrBlock: dataPlane.network.vpc.cidrBlock,
        });
        return outputs(config, target.url, artifact, dp, target.loadBalancerHostname, "CNAME");
      }
      case "vmgroup": {
        const instanceType = config.vmgroup.instanceType;
        const artifact = imageArtifactAws(config, awsPlatformFor([instanceType ?? "t4g.small"]));
        const target = new AwsVmGroupTarget(NAME, {
          dataPlane: dp,
          artifact,
          profile,
          instanceType,
          minInstances: scaling.vm.minInstances,
          maxInstances: scaling.vm.maxInstances,
          targetCpuPercent: scaling.vm.targetCpuPercent,
          rootVolumeGiB: config.vmgroup.diskGb,
          imageId: config.vmgroup.imageId,
          domain: config.domain,
          certificateArn: awsCertificateArn(config),
          hostedZoneId: config.dnsZone,
          logLevel: config.logLevel,
          extraEnv,
        });
        return outputs(config, target.url, artifact, dp, target.albDnsName, "CNAME");
      }
    }
  }

  const project = config.gcpProject!;
  const apis = new ProjectApis(`${NAME}-apis`, {
    project,
    region: config.region,
    apis: gcpApisFor(config),
  });
  // Everything below goes through the provider that waits for the APIs.
  const gated = { provider: apis.provider };
  const labels = gcpLabels(tags);
  const dataPlane = new GcpDataPlane(
    NAME,
    {
      project,
      region: config.region,
      profile,
      anthropicApiKey: config.anthropicApiKey,
      alertEmails: config.alertEmails,
      billingAccount: config.billingAccount!,
      monthlyBudgetUsd: config.monthlyBudgetUsd,
      // Stacks may share a project: each budget counts its own stack's labelled spend.
      budgetLabelFilter: {
        [gcpLabelKey(AWS_TAG_KEYS.stack)]: labels[gcpLabelKey(AWS_TAG_KEYS.stack)]!,
      },
      budgetDisplayName: `${NAME}-${config.stack}`,
      billingProvider: apis.billingProvider,
      labels,
    },
    gated,
  );
  const dp = dataPlane.outputs;
  const artifact = imageArtifactGcp(config, project, gated);
  switch (config.target) {
    case "cloudrun": {
      const target = new CloudRunTarget(
        NAME,
        {
          project,
          dataPlane: dp,
          artifact,
          profile,
          minInstances: scaling.cloudRun.minInstances,
          maxInstances: scaling.cloudRun.maxInstances,
          concurrency: scaling.cloudRun.concurrency,
          cpu: scaling.cloudRun.cpu,
          memory: scaling.cloudRun.memory,
          ingress: config.cloudrun.ingress,
          invoker: invokerOf(config.cloudrun.invokers),
          logLevel: config.logLevel,
          extraEnv,
          labels,
        },
        gated,
      );
      return outputs(config, target.url, artifact, dp);
    }
    case "vmgroup": {
      const target = new GcpVmGroupTarget(
        NAME,
        {
          project,
          dataPlane: dp,
          artifact,
          profile,
          machineType: config.vmgroup.instanceType,
          minInstances: scaling.vm.minInstances,
          maxInstances: scaling.vm.maxInstances,
          targetCpuPercent: scaling.vm.targetCpuPercent,
          bootDiskGb: config.vmgroup.diskGb,
          sourceImage: config.vmgroup.imageId,
          domain: config.domain,
          dnsZone: config.dnsZone,
          logLevel: config.logLevel,
          extraEnv,
          labels,
        },
        gated,
      );
      return outputs(config, target.url, artifact, dp, target.ipAddress, "A");
    }
    default:
      throw new Error("only the cloudrun and vmgroup targets run on GCP");
  }
}

function invokerOf(invokers: string[] | undefined): "public" | string[] | undefined {
  if (!invokers) return undefined;
  return invokers.length === 1 && invokers[0] === "allUsers" ? "public" : invokers;
}

function lambdaArtifact(config: StackConfig): Artifact {
  if (config.promoteFrom) return promotedArtifact(config.promoteFrom, "lambda-zip").artifact;
  // Uploaded under a content-addressed key, so later stages can deploy the very same object.
  const bucket = new ArtifactBucket(`${NAME}-artifacts`, {
    forceDestroy: config.environment === "dev",
  });
  const bundle = new LambdaBundle(`${NAME}-bundle`, {
    source: { path: path.resolve(REPO_ROOT, config.lambdaBundlePath ?? "dist/lambda.zip") },
    upload: { bucket: bucket.bucketName, keyPrefix: "lambda/" },
  });
  return bundle.artifact;
}

function imageArtifactAws(config: StackConfig, platform: "linux/arm64" | "linux/amd64"): Artifact {
  if (config.promoteFrom) return promotedArtifact(config.promoteFrom, "image").artifact;
  return new ContainerImage(`${NAME}-image`, {
    source: { build: { tag: config.imageTag ?? sourceTag({ platform }), platform } },
    // Dev stacks come and go; a repository with images in it refuses deletion otherwise.
    forceDelete: config.environment === "dev",
  }).artifact;
}

function imageArtifactGcp(
  config: StackConfig,
  project: string,
  opts: pulumi.ComponentResourceOptions,
): Artifact {
  if (config.promoteFrom) return promotedArtifact(config.promoteFrom, "image").artifact;
  return new GcpImage(
    `${NAME}-image`,
    {
      project,
      region: config.region,
      // Repository ids are unique per project and location, and stacks share projects.
      repositoryId: gcpResourceId(`${NAME}-${config.stack}`),
      source: {
        kind: "build",
        tag: config.imageTag ?? sourceTag({ platform: "linux/amd64" }),
        platform: "linux/amd64",
      },
    },
    opts,
  ).artifact;
}

/** The APIs a GCP stack calls (the preflight checks every rendered resource against them). */
export function gcpApisFor(config: StackConfig): string[] {
  const apis: string[] = [...DATA_PLANE_APIS];
  if (config.target === "cloudrun") apis.push("run.googleapis.com");
  // Builds push to this project's registry; promoted stacks grant pulls on the source's.
  apis.push("artifactregistry.googleapis.com");
  if (config.dnsZone) apis.push("dns.googleapis.com");
  return [...new Set(apis)];
}

/**
 * The ACM certificate for an AWS stack's domain: the configured one, or one this stack issues
 * and validates in its Route 53 zone.
 */
function awsCertificateArn(config: StackConfig): pulumi.Input<string> | undefined {
  if (!config.domain) return undefined;
  if (config.certificateArn) return config.certificateArn;
  return new DnsValidatedCertificate(`${NAME}-cert`, {
    domain: config.domain,
    hostedZoneId: config.dnsZone!,
  }).certificateArn;
}

function outputs(
  config: StackConfig,
  url: pulumi.Output<string>,
  artifact: Artifact,
  dp: DataPlaneOutputs,
  entry?: pulumi.Output<string>,
  recordType?: DnsRecord["type"],
): ProgramOutputs {
  const dnsRecords: pulumi.Output<DnsRecord[]> =
    config.domain && entry && recordType
      ? entry.apply((value) => [
          { name: config.domain!, type: recordType, value, managed: Boolean(config.dnsZone) },
        ])
      : pulumi.output([]);
  return {
    url,
    target: config.target,
    cloud: config.cloud,
    environment: config.environment,
    artifact: exportArtifact(artifact),
    artifactDigest: artifact.kind === "image" ? artifact.digest : artifact.sha256,
    promotedFrom: config.promoteFrom,
    dashboardUrl: dp.monitoring.dashboardUrl,
    dnsRecords,
  };
}
