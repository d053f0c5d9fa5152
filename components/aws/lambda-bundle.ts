/**
 * The service's Lambda bundle as an `Artifact`: the built zip (or bundle directory) with its
 * SHA-256, optionally uploaded to S3 under a content-addressed key. For promotion, pass an
 * existing artifact instead: nothing is read or uploaded, the verified bundle is what runs.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { Artifact } from "../contracts";

export type LambdaZipArtifact = Extract<Artifact, { kind: "lambda-zip" }>;

export type LambdaBundleSource =
  /** A `.zip` file, or a directory of bundled files (e.g. `dist/lambda`) that Pulumi zips. */
  { path: string } | { artifact: Artifact };

export interface LambdaBundleArgs {
  source: LambdaBundleSource;
  /**
   * Upload to this bucket under `<keyPrefix><sha256-hex>.zip`. Content-addressed keys never
   * overwrite a bundle another stage still runs.
   * @default not uploaded: the artifact's location is the local path
   */
  upload?: { bucket: pulumi.Input<string>; keyPrefix?: string };
}

/** Files under `dir`, relative and sorted, so the hash does not depend on readdir order. */
function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const child = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(child);
      else if (entry.isFile()) out.push(child);
    }
  };
  walk("");
  return out.sort();
}

/**
 * Base64 SHA-256 of a zip file, as Lambda's `sourceCodeHash` expects. For a directory, a hash
 * over each file's relative path and content: stable across machines (no zip timestamps), and it
 * changes exactly when the bundle does, which is what `sourceCodeHash` is for.
 */
export function bundleSha256(bundlePath: string): string {
  const hash = createHash("sha256");
  if (fs.statSync(bundlePath).isDirectory()) {
    for (const rel of listFiles(bundlePath)) {
      hash
        .update(rel)
        .update("\0")
        .update(fs.readFileSync(path.join(bundlePath, rel)))
        .update("\0");
    }
  } else {
    hash.update(fs.readFileSync(bundlePath));
  }
  return hash.digest("base64");
}

/** Problems with a bundle path, saying what to change. */
export function checkBundlePath(bundlePath: string): string | undefined {
  if (!fs.existsSync(bundlePath))
    return `Lambda bundle "${bundlePath}" does not exist: run \`npm run build\` first.`;
  const stat = fs.statSync(bundlePath);
  if (stat.isFile() && !bundlePath.endsWith(".zip"))
    return `Lambda bundle "${bundlePath}" is a file but not a .zip.`;
  if (stat.isDirectory() && listFiles(bundlePath).length === 0)
    return `Lambda bundle directory "${bundlePath}" is empty: run \`npm run build\` first.`;
  return undefined;
}

/** Object key for a bundle: content-addressed by the hex form of its hash. */
export function bundleKey(sha256Base64: string, keyPrefix = "lambda/"): string {
  return `${keyPrefix}${Buffer.from(sha256Base64, "base64").toString("hex")}.zip`;
}

/**
 * The Lambda bundle. Free when used locally; in S3, $0.023/GB-month (a 5 MB bundle per deploy
 * is negligible).
 */
export class LambdaBundle extends pulumi.ComponentResource {
  readonly artifact: LambdaZipArtifact;
  /** Present when uploaded. */
  readonly object?: aws.s3.BucketObjectv2;

  constructor(name: string, args: LambdaBundleArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:aws:LambdaBundle", name, {}, opts);
    if ("artifact" in args.source) {
      if (args.source.artifact.kind !== "lambda-zip") {
        throw new pulumi.ResourceError(
          `LambdaBundle "${name}": the artifact is of kind "${args.source.artifact.kind}", not a lambda-zip: pass the bundle artifact of the previous stage.`,
          this,
        );
      }
      this.artifact = args.source.artifact;
    } else {
      const problem = checkBundlePath(args.source.path);
      if (problem) throw new pulumi.ResourceError(`LambdaBundle "${name}": ${problem}`, this);
      const sha256 = bundleSha256(args.source.path);
      if (args.upload) {
        this.object = this.upload(name, args.source.path, sha256, args.upload);
        this.artifact = {
          kind: "lambda-zip",
          location: pulumi.interpolate`s3://${this.object.bucket}/${this.object.key}`,
          sha256: pulumi.output(sha256),
        };
      } else {
        this.artifact = {
          kind: "lambda-zip",
          location: pulumi.output(path.resolve(args.source.path)),
          sha256: pulumi.output(sha256),
        };
      }
    }
    this.registerOutputs({ location: this.artifact.location, sha256: this.artifact.sha256 });
  }

  private upload(
    name: string,
    bundlePath: string,
    sha256: string,
    upload: NonNullable<LambdaBundleArgs["upload"]>,
  ): aws.s3.BucketObjectv2 {
    const isDir = fs.statSync(bundlePath).isDirectory();
    return new aws.s3.BucketObjectv2(
      `${name}-object`,
      {
        bucket: upload.bucket,
        key: bundleKey(sha256, upload.keyPrefix),
        source: isDir
          ? new pulumi.asset.FileArchive(bundlePath)
          : new pulumi.asset.FileAsset(bundlePath),
        contentType: "application/zip",
        serverSideEncryption: "AES256",
      },
      { parent: this },
    );
  }
}
