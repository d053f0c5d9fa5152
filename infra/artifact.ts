/**
 * Which artifact a stack runs: the one it builds, or, with `promoteFrom`, exactly the one the
 * source stack exported (read through a StackReference; nothing is built).
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import dockerignore from "@balena/dockerignore";
import * as pulumi from "@pulumi/pulumi";
import type { Artifact, ImageArtifact, ZipArtifact } from "../components/contracts";

export const REPO_ROOT = join(__dirname, "..");

/** What a stack exports as `artifact`, and what a promoted stack expects to find. */
export type ExportedArtifact =
  | { kind: "image"; imageRef: string; digest: string }
  | { kind: "lambda-zip"; location: string; sha256: string };

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** Pure: check what a source stack exported before deploying it anywhere. */
export function checkExportedArtifact(
  value: unknown,
  expected: "image",
  source: string,
): ExportedOf<"image">;
export function checkExportedArtifact(
  value: unknown,
  expected: "lambda-zip",
  source: string,
): ExportedOf<"lambda-zip">;
export function checkExportedArtifact(
  value: unknown,
  expected: Artifact["kind"],
  source: string,
): ExportedArtifact {
  const a = value as Partial<ExportedArtifact> | undefined;
  if (!a || typeof a !== "object") {
    throw new Error(
      `stack ${source} exports no "artifact" output: deploy it (pulumi up) before promoting from it`,
    );
  }
  if (a.kind !== expected) {
    throw new Error(
      `stack ${source} exported a ${String(a.kind)} artifact, but this target runs a ${expected}: promote from a stack of the same target`,
    );
  }
  if (a.kind === "image") {
    if (!a.digest || !DIGEST.test(a.digest) || !a.imageRef?.endsWith(`@${a.digest}`)) {
      throw new Error(
        `stack ${source} exported an image not pinned by digest (${a.imageRef}): only digests are promoted`,
      );
    }
    return { kind: "image", imageRef: a.imageRef, digest: a.digest };
  }
  if (a.kind === "lambda-zip") {
    if (!a.location?.startsWith("s3://") || !a.sha256) {
      throw new Error(
        `stack ${source} exported a Lambda bundle at ${a.location}: only bundles uploaded to S3 can be promoted`,
      );
    }
    return { kind: "lambda-zip", location: a.location, sha256: a.sha256 };
  }
  throw new Error(`stack ${source} exported an artifact of unknown kind`);
}

/** What each kind of artifact exports, and what a promoted stack of that kind deploys. */
type ExportedOf<K extends Artifact["kind"]> = Extract<ExportedArtifact, { kind: K }>;

function reference(source: string): pulumi.StackReference {
  return new pulumi.StackReference(source);
}

/** The image a source stack exported, exactly (read through a StackReference). */
export function promotedImage(source: string): {
  artifact: ImageArtifact;
  reference: pulumi.StackReference;
} {
  const ref = reference(source);
  const exported = ref
    .requireOutput("artifact")
    .apply((v) => checkExportedArtifact(v, "image", source));
  return {
    artifact: {
      kind: "image",
      imageRef: exported.apply((a) => a.imageRef),
      digest: exported.apply((a) => a.digest),
    },
    reference: ref,
  };
}

/** The Lambda bundle a source stack exported, exactly. */
export function promotedZip(source: string): {
  artifact: ZipArtifact;
  reference: pulumi.StackReference;
} {
  const ref = reference(source);
  const exported = ref
    .requireOutput("artifact")
    .apply((v) => checkExportedArtifact(v, "lambda-zip", source));
  return {
    artifact: {
      kind: "lambda-zip",
      location: exported.apply((a) => a.location),
      sha256: exported.apply((a) => a.sha256),
    },
    reference: ref,
  };
}

/** The artifact as a plain output to export (what promoted stacks read). */
export function exportArtifact(a: Artifact): pulumi.Output<ExportedArtifact> {
  return a.kind === "image"
    ? pulumi
        .all([a.imageRef, a.digest])
        .apply(([imageRef, digest]) => ({ kind: "image" as const, imageRef, digest }))
    : pulumi
        .all([a.location, a.sha256])
        .apply(([location, sha256]) => ({ kind: "lambda-zip" as const, location, sha256 }));
}

export interface BuildContextTagOptions {
  /** The build context. @default the repository root (what `docker build -f app/Dockerfile .` sends) */
  root?: string;
  /** Relative to `root`; Docker sends it even when `.dockerignore` excludes it. @default "app/Dockerfile" */
  dockerfile?: string;
  /** The target platform: one source tree builds a different image per platform. */
  platform: string;
}

/**
 * The files Docker sends as the build context: every file under `root` that `.dockerignore` does
 * not exclude, matched with Docker's own rules (`@balena/dockerignore`, the matcher the Docker
 * JavaScript tooling uses; https://docs.docker.com/build/concepts/context/#dockerignore-files).
 * Relative paths, sorted.
 */
export function buildContextFiles(root: string = REPO_ROOT): string[] {
  const ignoreFile = join(root, ".dockerignore");
  const rules = existsSync(ignoreFile) ? readFileSync(ignoreFile, "utf8") : "";
  const ignored = dockerignore().add(rules);
  // With an exception (`!pattern`) a file under an excluded directory can come back, so a
  // directory may only be skipped whole when there is none.
  const prune = !/^\s*!/m.test(rules);
  const files: string[] = [];
  const visit = (dir: string) => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      const rel = dir ? `${dir}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        if (!(prune && ignored.ignores(rel))) visit(rel);
      } else if (entry.isFile() && !ignored.ignores(rel)) {
        files.push(rel);
      }
    }
  };
  visit("");
  return files.sort();
}

/**
 * A content tag for the image: a hash of exactly what the build reads (the build context after
 * `.dockerignore`, the Dockerfile, the platform). The same inputs give the same tag (nothing to
 * rebuild); any change to them gives a new one. ECR tags are immutable, so a tag that stayed
 * the same while the context changed would be refused at push; `latest` is never used.
 */
export function sourceTag(options: BuildContextTagOptions): string {
  const root = options.root ?? REPO_ROOT;
  const dockerfile = options.dockerfile ?? "app/Dockerfile";
  const hash = createHash("sha256");
  hash.update(`platform\0${options.platform}\0dockerfile\0`);
  hash.update(readFileSync(join(root, dockerfile))).update("\0");
  for (const file of buildContextFiles(root)) {
    hash
      .update(file)
      .update("\0")
      .update(readFileSync(join(root, file)))
      .update("\0");
  }
  return `src-${hash.digest("hex").slice(0, 16)}`;
}
