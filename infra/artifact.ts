/**
 * Which artifact a stack runs: the one it builds, or, with `promoteFrom`, exactly the one the
 * source stack exported (read through a StackReference; nothing is built).
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import type { Artifact } from "../components/contracts";

export const REPO_ROOT = join(__dirname, "..");

/** What a stack exports as `artifact`, and what a promoted stack expects to find. */
export type ExportedArtifact =
  | { kind: "image"; imageRef: string; digest: string }
  | { kind: "lambda-zip"; location: string; sha256: string };

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** Pure: check what a source stack exported before deploying it anywhere. */
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

export function promotedArtifact(
  source: string,
  expected: Artifact["kind"],
): { artifact: Artifact; reference: pulumi.StackReference } {
  const reference = new pulumi.StackReference(source);
  const exported = reference
    .requireOutput("artifact")
    .apply((v) => checkExportedArtifact(v, expected, source));
  const artifact: Artifact =
    expected === "image"
      ? {
          kind: "image",
          imageRef: exported.apply(
            (a) => (a as Extract<ExportedArtifact, { kind: "image" }>).imageRef,
          ),
          digest: exported.apply((a) => (a as Extract<ExportedArtifact, { kind: "image" }>).digest),
        }
      : {
          kind: "lambda-zip",
          location: exported.apply(
            (a) => (a as Extract<ExportedArtifact, { kind: "lambda-zip" }>).location,
          ),
          sha256: exported.apply(
            (a) => (a as Extract<ExportedArtifact, { kind: "lambda-zip" }>).sha256,
          ),
        };
  return { artifact, reference };
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

const SOURCE_PATHS = [
  "app",
  "package.json",
  "package-lock.json",
  "scripts/build.mjs",
  "tsconfig.json",
];

/**
 * A content tag for the image: the same sources give the same tag (nothing to rebuild), any
 * change gives a new one (ECR tags are immutable, so `latest` is never used).
 */
export function sourceTag(root: string = REPO_ROOT): string {
  const hash = createHash("sha256");
  const visit = (path: string) => {
    const st = statSync(path, { throwIfNoEntry: false });
    if (!st) return;
    if (st.isDirectory()) {
      for (const entry of readdirSync(path).sort()) visit(join(path, entry));
    } else if (st.isFile()) {
      hash.update(relative(root, path)).update("\0").update(readFileSync(path)).update("\0");
    }
  };
  for (const p of SOURCE_PATHS) visit(join(root, p));
  return `src-${hash.digest("hex").slice(0, 16)}`;
}
