/**
 * What several target modules need from the stack config: the artifact they run, the
 * certificate for an AWS domain, and the service's plain settings. Functions of the config only;
 * no module state.
 *
 * The artifact is always in storage the stack owns: built into it (a stack without
 * `promoteFrom`), copied into it by digest from the source stack (a promotion), or already
 * there (a rollback, `agent:release`: the source stack is not read).
 */
import * as path from "node:path";
import type * as pulumi from "@pulumi/pulumi";
import type { ImageArtifact, ZipArtifact } from "../../components/contracts";
import { ContainerImage } from "../../components/aws/image";
import { LambdaBundle } from "../../components/aws/lambda-bundle";
import { ArtifactBucket } from "../../components/aws/artifact-bucket";
import { DnsValidatedCertificate } from "../../components/aws/certificate";
import { GcpImage } from "../../components/gcp/image";
import { BundleRelease } from "../../components/release/zip-copy";
import type { StackConfig, StackConfigOf } from "../config";
import { promotedImage, promotedZip, REPO_ROOT, sourceTag } from "../artifact";
import { gcpResourceId } from "../naming";
import type { DataPlaneOf } from "./types";

/** The one name every stack's resources hang from; short, because Memorystore ids are capped. */
import { budgetEnvironment } from "../../app/src/budget/kinds";
import type * as aws from "@pulumi/aws";
import type * as gcp from "@pulumi/gcp";
import { grantBedrockInvoke, grantVertexInvoke } from "../../components/upstream-grants";

export const NAME = "agent";

/** App-level budgets travel as plain environment variables (they are limits, not secrets). */
export function budgetEnv(config: Pick<StackConfig, "appBudgets">): Record<string, string> {
  return budgetEnvironment(config.appBudgets);
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

/**
 * The Lambda bundle in this stack's bucket: uploaded under a content-addressed key, copied from
 * the source stack's bucket, or (a rollback) one the bucket holds.
 */
export function lambdaZip(config: StackConfigOf<"lambda">): ZipArtifact {
  const bucket = new ArtifactBucket(`${NAME}-artifacts`, {
    forceDestroy: config.environment === "dev",
    readers: config.promotionReaders,
  });
  if (config.promoteFrom) {
    return new BundleRelease(`${NAME}-bundle`, {
      bucket: bucket.bucketName,
      source: config.release
        ? { release: config.release }
        : { copy: promotedZip(config.promoteFrom).artifact },
    }).artifact;
  }
  return new LambdaBundle(`${NAME}-bundle`, {
    source: { path: path.resolve(REPO_ROOT, config.lambdaBundlePath ?? "dist/lambda.zip") },
    upload: { bucket: bucket.bucketName, keyPrefix: "lambda/" },
  }).artifact;
}

/** An image in this stack's ECR repository: built, copied from the source stack, or held. */
export function awsImage(
  config: StackConfig,
  platform: "linux/arm64" | "linux/amd64",
): ImageArtifact {
  const source = config.promoteFrom
    ? config.release
      ? { release: config.release }
      : { copy: promotedImage(config.promoteFrom).artifact }
    : { build: { tag: config.imageTag ?? sourceTag({ platform }), platform } };
  return new ContainerImage(`${NAME}-image`, {
    source,
    readers: config.promotionReaders,
    // Dev stacks come and go; a repository with images in it refuses deletion otherwise.
    forceDelete: config.environment === "dev",
  }).artifact;
}

/** An image in this stack's Artifact Registry repository: built, copied, or held. */
export function gcpImage(config: StackConfig, dp: DataPlaneOf["gcp"]): ImageArtifact {
  return new GcpImage(
    `${NAME}-image`,
    {
      project: dp.project,
      region: config.region,
      // Repository ids are unique per project and location, and stacks share projects.
      repositoryId: gcpResourceId(`${NAME}-${config.stack}`),
      source: config.promoteFrom
        ? config.release
          ? { kind: "release", digest: config.release }
          : { kind: "copy", from: promotedImage(config.promoteFrom).artifact }
        : {
            kind: "build",
            tag: config.imageTag ?? sourceTag({ platform: "linux/amd64" }),
            platform: "linux/amd64",
          },
      readers: config.promotionReaders,
    },
    dp.opts,
  ).artifact;
}

/**
 * The ACM certificate for an AWS stack's domain: the configured one, or one this stack issues
 * and validates in its Route 53 zone (the config requires one of the two with a domain).
 */
export function awsCertificateArn(
  config: StackConfigOf<"eks" | "vmgroup-aws">,
): pulumi.Input<string> | undefined {
  if (!config.domain) return undefined;
  if (config.certificateArn) return config.certificateArn;
  if (!config.dnsZone) return undefined;
  return new DnsValidatedCertificate(`${NAME}-cert`, {
    domain: config.domain,
    hostedZoneId: config.dnsZone,
  }).certificateArn;
}

/** With the bedrock upstream, the target's role may invoke exactly the configured models. */
export function grantAwsUpstream(
  name: string,
  config: Pick<StackConfig, "upstream" | "region">,
  target: pulumi.Resource & { role: aws.iam.Role },
): void {
  if (config.upstream.kind === "bedrock")
    grantBedrockInvoke(name, target.role, config.upstream, config.region, target);
}

/** With the vertex upstream, the target's service account may call Vertex AI in its project. */
export function grantGcpUpstream(
  name: string,
  config: Pick<StackConfig, "upstream">,
  dataPlane: DataPlaneOf["gcp"],
  target: pulumi.Resource & { serviceAccount: gcp.serviceaccount.Account },
): void {
  if (config.upstream.kind === "vertex")
    grantVertexInvoke(name, dataPlane.project, target.serviceAccount, target, dataPlane.opts);
}
