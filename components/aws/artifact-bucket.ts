/**
 * A private, versioned, encrypted S3 bucket for release artifacts (the Lambda bundle): the stack
 * that builds uploads to its own, and each promoted stack copies the release into its own
 * (`BundleRelease`), so every environment deploys from storage it owns.
 * Cost: storage only, cents per month for a few bundles.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { awsPrincipals, readerProblems } from "../release/readers";

export interface ArtifactBucketArgs {
  /** Delete non-current object versions after this many days. @default 90 */
  noncurrentVersionDays?: number;
  /** Allow `pulumi destroy` to delete a bucket that still holds artifacts. @default false */
  forceDestroy?: boolean;
  /**
   * AWS account ids or IAM role ARNs that may read the bundles: the deployers of stacks in other
   * accounts that promote from this one (they copy the object into their own bucket).
   * @default [] (this account only)
   */
  readers?: string[];
}

/**
 * Bucket policy letting `readers` copy bundles out: CopyObject reads the source object (and its
 * tags unless the copy replaces them) (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html).
 */
export function bundleReadPolicy(bucketArn: string, readers: readonly string[]): string {
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "PromotingStacksRead",
        Effect: "Allow",
        Principal: { AWS: awsPrincipals(readers) },
        Action: ["s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging"],
        Resource: `${bucketArn}/*`,
      },
    ],
  });
}

export class ArtifactBucket extends pulumi.ComponentResource {
  readonly bucketName: pulumi.Output<string>;
  readonly bucket: aws.s3.BucketV2;

  constructor(name: string, args: ArtifactBucketArgs = {}, opts?: pulumi.ComponentResourceOptions) {
    super("agent:aws:ArtifactBucket", name, {}, opts);
    const days = args.noncurrentVersionDays ?? 90;
    const readerIssues = readerProblems("aws", args.readers ?? [], "readers");
    if (readerIssues.length) {
      throw new pulumi.ResourceError(`ArtifactBucket "${name}": ${readerIssues.join("; ")}`, this);
    }
    if (!Number.isInteger(days) || days < 1) {
      throw new pulumi.ResourceError(
        `noncurrentVersionDays must be a whole number of days >= 1 (got ${days})`,
        this,
      );
    }
    const child = { parent: this };
    this.bucket = new aws.s3.BucketV2(
      `${name}-bucket`,
      { forceDestroy: args.forceDestroy ?? false },
      child,
    );
    const publicAccess = new aws.s3.BucketPublicAccessBlock(
      `${name}-public-access`,
      {
        bucket: this.bucket.id,
        blockPublicAcls: true,
        blockPublicPolicy: true,
        ignorePublicAcls: true,
        restrictPublicBuckets: true,
      },
      child,
    );
    new aws.s3.BucketOwnershipControls(
      `${name}-ownership`,
      { bucket: this.bucket.id, rule: { objectOwnership: "BucketOwnerEnforced" } },
      child,
    );
    new aws.s3.BucketServerSideEncryptionConfigurationV2(
      `${name}-sse`,
      {
        bucket: this.bucket.id,
        rules: [
          {
            applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms" },
            bucketKeyEnabled: true,
          },
        ],
      },
      child,
    );
    // Versioning keeps an overwritten or deleted bundle recoverable for rollbacks.
    new aws.s3.BucketVersioningV2(
      `${name}-versioning`,
      { bucket: this.bucket.id, versioningConfiguration: { status: "Enabled" } },
      child,
    );
    new aws.s3.BucketLifecycleConfigurationV2(
      `${name}-lifecycle`,
      {
        bucket: this.bucket.id,
        rules: [
          {
            id: "expire-noncurrent",
            status: "Enabled",
            filter: {},
            noncurrentVersionExpiration: { noncurrentDays: days },
          },
        ],
      },
      child,
    );
    if (args.readers?.length) {
      const readers = args.readers;
      new aws.s3.BucketPolicy(
        `${name}-readers`,
        {
          bucket: this.bucket.id,
          policy: this.bucket.arn.apply((arn) => bundleReadPolicy(arn, readers)),
        },
        { parent: this, dependsOn: [publicAccess] },
      );
    }
    this.bucketName = this.bucket.bucket;
    this.registerOutputs({ bucketName: this.bucketName });
  }
}
