/**
 * A private, versioned, encrypted S3 bucket for release artifacts (the Lambda bundle), so a
 * later stage can deploy the exact object an earlier stage verified (`promoteFrom`).
 * Cost: storage only, cents per month for a few bundles.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

export interface ArtifactBucketArgs {
  /** Delete non-current object versions after this many days. @default 90 */
  noncurrentVersionDays?: number;
  /** Allow `pulumi destroy` to delete a bucket that still holds artifacts. @default false */
  forceDestroy?: boolean;
}

export class ArtifactBucket extends pulumi.ComponentResource {
  readonly bucketName: pulumi.Output<string>;
  readonly bucket: aws.s3.BucketV2;

  constructor(name: string, args: ArtifactBucketArgs = {}, opts?: pulumi.ComponentResourceOptions) {
    super("agent:aws:ArtifactBucket", name, {}, opts);
    const days = args.noncurrentVersionDays ?? 90;
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
    new aws.s3.BucketPublicAccessBlock(
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
    this.bucketName = this.bucket.bucket;
    this.registerOutputs({ bucketName: this.bucketName });
  }
}
