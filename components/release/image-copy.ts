/**
 * A container image copied, by digest, from the registry a source stack pushed it to into one this
 * stack owns: the manifest and layers byte for byte, so the digest stays the one that was
 * verified, and the source's lifecycle or destruction no longer matters.
 *
 * The copy runs `crane copy` (go-containerregistry, https://github.com/google/go-containerregistry)
 * where `pulumi up` runs, logging in to both registries with the deployer's own cloud identity,
 * then reads the copy's digest back and fails unless it is the source's. What the deploy runner
 * needs: `crane`, and the `aws` or `gcloud` CLI (the deploy workflow installs crane; GitHub's
 * runners have both CLIs). Cross-account or cross-project copies need read access on the source
 * repository for the deployer (see the README's promotion section; the preflight checks it).
 */
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import type { ImageArtifact } from "../contracts";

/** Where a registry is and how the deployer logs in to it. */
export type RegistryLogin =
  | { kind: "ecr"; registry: string; region: string }
  | { kind: "artifact-registry"; registry: string };

const DIGEST = /^sha256:[a-f0-9]{64}$/;

/** `<registry>/<path>@sha256:<hex>` -> its parts. Throws for a reference not pinned by digest. */
export function splitImageRef(ref: string): {
  repository: string;
  registry: string;
  digest: string;
} {
  const at = ref.lastIndexOf("@");
  const digest = at > 0 ? ref.slice(at + 1) : "";
  if (!DIGEST.test(digest)) {
    throw new Error(`image "${ref}" is not pinned by digest: only digests are copied.`);
  }
  const repository = ref.slice(0, at);
  return { repository, registry: repository.split("/")[0]!, digest };
}

/** The registry login for a repository, from its host name (ECR or Artifact Registry). */
export function registryLogin(repository: string): RegistryLogin {
  const registry = repository.split("/")[0]!;
  const ecr = /^\d{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com$/.exec(registry);
  if (ecr) return { kind: "ecr", registry, region: ecr[1]! };
  if (/^[a-z0-9-]+-docker\.pkg\.dev$/.test(registry))
    return { kind: "artifact-registry", registry };
  throw new Error(
    `registry "${registry}" is neither ECR (<account>.dkr.ecr.<region>.amazonaws.com) nor Artifact Registry (<location>-docker.pkg.dev): the copy cannot log in to it.`,
  );
}

function loginLine(login: RegistryLogin): string {
  return login.kind === "ecr"
    ? `aws ecr get-login-password --region ${login.region} | crane auth login ${login.registry} -u AWS --password-stdin`
    : `gcloud auth print-access-token | crane auth login ${login.registry} -u oauth2accesstoken --password-stdin`;
}

/**
 * The shell script of the copy: log in to both registries, copy the digest to `<destination>:<tag>`,
 * and fail unless the copy's digest is the source's. Pure: the values are arguments, not
 * interpolated from the environment, so the script a test sees is the one that runs.
 */
export function copyScript(source: string, destination: string, tag: string): string {
  const src = splitImageRef(source);
  const logins = [
    ...new Set([loginLine(registryLogin(src.repository)), loginLine(registryLogin(destination))]),
  ];
  return [
    "set -eu",
    ...logins,
    `crane copy '${src.repository}@${src.digest}' '${destination}:${tag}'`,
    `copied="$(crane digest '${destination}:${tag}')"`,
    `if [ "$copied" != '${src.digest}' ]; then echo "copied ${destination}:${tag} has digest $copied, not ${src.digest}" >&2; exit 1; fi`,
  ].join("\n");
}

/** The tag a release copy carries: lifecycle rules keep every `release-` tag. */
export function releaseTag(digest: string): string {
  return `release-${digest.replace(/^sha256:/, "").slice(0, 16)}`;
}

export const RELEASE_TAG_PREFIX = "release-";

export interface ImageCopyArgs {
  /** The source stack's image, `<repository>@sha256:<digest>`. */
  source: pulumi.Input<string>;
  /** This stack's repository, `<registry>/<path>`. */
  destination: pulumi.Input<string>;
}

/** Copies an image into a repository this stack owns, keeping its digest (verified). */
export class ImageCopy extends pulumi.ComponentResource {
  readonly command: command.local.Command;
  /** The copy, pinned by the same digest, once verified. */
  readonly artifact: ImageArtifact;

  constructor(name: string, args: ImageCopyArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:release:ImageCopy", name, {}, opts);
    const plan = pulumi.all([args.source, args.destination]).apply(([source, destination]) => {
      const { digest } = splitImageRef(source);
      return { digest, destination, script: copyScript(source, destination, releaseTag(digest)) };
    });
    this.command = new command.local.Command(
      `${name}-copy`,
      {
        create: plan.script,
        interpreter: ["/bin/sh", "-c"],
        // A new source digest is a new copy; the same one is already there.
        triggers: [plan.digest, plan.destination],
        logging: "stderr",
      },
      { parent: this },
    );
    // The reference resolves only after the copy succeeded (it depends on the command).
    const imageRef = pulumi
      .all([plan, this.command.id])
      .apply(([p]) => `${p.destination}@${p.digest}`);
    this.artifact = { kind: "image", imageRef, digest: plan.digest };
    this.registerOutputs({ imageRef });
  }
}
