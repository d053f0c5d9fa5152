/**
 * A promoted Lambda stack's bundle, in a bucket the stack owns, under the same content-addressed
 * key (`lambda/<sha256 hex>.zip`) as where it was built:
 *
 * - `copy` (a promotion): S3 copies the source stack's object, computing the copy's SHA-256,
 *   and the copy is used only once that equals the SHA-256 verified upstream. Dev's bucket (its
 *   lifecycle, its destruction) no longer matters. Across accounts, the source bucket's policy
 *   lets the deployer read the object (`ArtifactBucket` readers).
 * - `release` (a rollback): a bundle the bucket already holds, found by its key; the source
 *   stack is not read.
 *
 * Copies are retained when a newer release replaces them in the stack (`retainOnDelete`), so
 * every release stays in the bucket to roll back to.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { ZipArtifact } from "../contracts";
import { bundleKey } from "../aws/lambda-bundle";
import { bundleSha256Base64, missingRelease } from "./history";

/** `s3://bucket/key` -> its parts; throws for anything else. */
export function parseS3Location(location: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\/(.+)$/.exec(location);
  if (!m) throw new Error(`"${location}" is not an S3 location (s3://<bucket>/<key>).`);
  return { bucket: m[1]!, key: m[2]! };
}

/** Throws unless the copy's SHA-256 is the one the source stack verified. */
export function checkCopiedSha256(copied: string, expected: string, where: string): void {
  if (copied !== expected) {
    throw new Error(
      `the copy at ${where} has SHA-256 ${copied || "(none)"}, not ${expected}: the source object changed since it was verified; promote again from the source stack.`,
    );
  }
}

export { bundleSha256Base64 };

export type BundleReleaseSource =
  /** Promotion: copy this bundle (the source stack's) into the bucket. */
  | { copy: ZipArtifact }
  /** Rollback: the bundle with this SHA-256 (base64 or hex), which the bucket must hold. */
  | { release: string };

export interface BundleReleaseArgs {
  source: BundleReleaseSource;
  /** This stack's artifact bucket. */
  bucket: pulumi.Input<string>;
  /** @default "lambda/" (where `LambdaBundle` uploads) */
  keyPrefix?: string;
}

export class BundleRelease extends pulumi.ComponentResource {
  /** Copy mode only. */
  readonly object?: aws.s3.ObjectCopy;
  /** The bundle, verified, in this stack's bucket. */
  readonly artifact: ZipArtifact;

  constructor(name: string, args: BundleReleaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:release:BundleRelease", name, {}, opts);
    const keyPrefix = args.keyPrefix ?? "lambda/";
    if ("copy" in args.source) {
      const expected = args.source.copy.sha256;
      const from = pulumi.output(args.source.copy.location).apply(parseS3Location);
      this.object = new aws.s3.ObjectCopy(
        `${name}-object`,
        {
          bucket: args.bucket,
          key: pulumi.output(expected).apply((sha) => bundleKey(sha, keyPrefix)),
          source: pulumi.interpolate`${from.bucket}/${from.key}`,
          // S3 computes the copy's SHA-256 (base64, the form Lambda's sourceCodeHash takes).
          checksumAlgorithm: "SHA256",
          // SSE-S3, like the upload: a bundle encrypted with the AWS managed KMS key could not be
          // read from another account (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html).
          serverSideEncryption: "AES256",
          taggingDirective: "REPLACE",
        },
        // A newer release replaces this resource; the object stays, to roll back to.
        { parent: this, retainOnDelete: true },
      );
      const verified = pulumi
        .all([this.object.checksumSha256, expected, this.object.bucket, this.object.key])
        .apply(([copied, sha, bucket, key]) => {
          checkCopiedSha256(copied, sha, `s3://${bucket}/${key}`);
          return { location: `s3://${bucket}/${key}`, sha256: sha };
        });
      this.artifact = {
        kind: "lambda-zip",
        location: verified.location,
        sha256: verified.sha256,
      };
    } else {
      const release = args.source.release;
      const sha256 = bundleSha256Base64(release);
      if (!sha256) {
        throw new pulumi.ResourceError(
          `BundleRelease "${name}": release "${release}" is not a bundle SHA-256 (44 base64 characters, or 64 hex).`,
          this,
        );
      }
      const objects = aws.s3.getObjectsOutput(
        { bucket: args.bucket, prefix: keyPrefix },
        { parent: this },
      );
      const location = pulumi
        .all([objects.keys, pulumi.output(args.bucket)])
        .apply(([keys, bucket]) => {
          const held = keys
            .filter((k) => /^[a-f0-9]{64}\.zip$/.test(k.slice(keyPrefix.length)))
            .map((k) => Buffer.from(k.slice(keyPrefix.length, -4), "hex").toString("base64"));
          const problem = missingRelease(sha256, held, `bucket ${bucket} (${keyPrefix})`);
          if (problem) throw new pulumi.ResourceError(problem, this);
          return `s3://${bucket}/${bundleKey(sha256, keyPrefix)}`;
        });
      this.artifact = { kind: "lambda-zip", location, sha256: location.apply(() => sha256) };
    }
    this.registerOutputs({ location: this.artifact.location });
  }
}
