import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import * as gcp from "@pulumi/gcp";
import * as docker from "@pulumi/docker";
import type { Artifact, ImageArtifact } from "../contracts";
import { ImageCopy, RELEASE_TAG_PREFIX } from "../release/image-copy";
import { missingRelease } from "../release/history";
import { readerProblems } from "../release/readers";
import { GCP_NAME_PATTERN, checkProjectId, checkRegion, joinProblems } from "./naming";

/** Build the image here, or run one that an earlier stage already built and verified. */
export type ImageSource =
  | {
      kind: "build";
      /**
       * Docker build context, relative to the Pulumi project directory.
       * @default "."
       */
      context?: string;
      /** @default "app/Dockerfile" */
      dockerfile?: string;
      /** @default "linux/amd64" */
      platform?: string;
      /**
       * Tag pushed with the image (a commit sha is a good choice). Targets use the digest either way.
       * @default "latest"
       */
      tag?: string;
    }
  /**
   * Promotion: copy another stack's image, by digest, into this stack's repository (`ImageCopy`):
   * what runs never depends on the source's repository, its cleanup or its project's rights.
   */
  | { kind: "copy"; from: ImageArtifact }
  /** Rollback: a digest (`sha256:<hex>`) this stack's repository already holds. */
  | { kind: "release"; digest: string }
  /** An image stored elsewhere, pinned by digest. Nothing is built, copied or created. */
  | { kind: "existing"; imageRef: string };

export interface GcpImageArgs {
  project: string;
  region: string;
  source: ImageSource;
  /**
   * Artifact Registry repository id (build mode only).
   * @default the component name
   */
  repositoryId?: string;
  /**
   * Versions to keep whatever their age.
   * @default 10
   */
  keepCount?: number;
  /**
   * Delete untagged versions older than this many days (beyond `keepCount`).
   * @default 7
   */
  untaggedRetentionDays?: number;
  /** @default {} */
  labels?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /**
   * IAM principals (`serviceAccount:...`, `group:...`) given roles/artifactregistry.reader on the
   * repository: the deployers of stacks in other projects that promote from this one.
   * @default []
   */
  readers?: string[];
}

const DIGEST_REF = /^[a-z0-9][a-z0-9.-]*(:[0-9]+)?\/[a-z0-9._\/-]+@sha256:[a-f0-9]{64}$/;

/** Where the image is pushed: `<region>-docker.pkg.dev/<project>/<repo>/agent`. */
export function imageRepositoryPath(region: string, project: string, repositoryId: string): string {
  return `${region}-docker.pkg.dev/${project}/${repositoryId}/agent`;
}

const AR_IMAGE =
  /^([a-z0-9-]+)-docker\.pkg\.dev\/([a-z][-a-z0-9:.]*[a-z0-9])\/([a-z0-9][-a-z0-9_.]*)\/[^@\s]+@sha256:[a-f0-9]{64}$/;
/** The Artifact Registry repository an image lives in: what the service account may read. */
export interface ArtifactRepository {
  location: string;
  project: string;
  repository: string;
}

export function artifactRepository(imageRef: string): ArtifactRepository | undefined {
  const m = AR_IMAGE.exec(imageRef);
  return m ? { location: m[1]!, project: m[2]!, repository: m[3]! } : undefined;
}

/** Like `artifactRepository`, but says what to change when the image is elsewhere. */
export function requireArtifactRepository(imageRef: string): ArtifactRepository {
  const repo = artifactRepository(imageRef);
  if (!repo) {
    throw new Error(
      `image "${imageRef}" is not in Artifact Registry by digest: compute is granted read access to the image's repository; pass <location>-docker.pkg.dev/<project>/<repository>/<image>@sha256:<digest>.`,
    );
  }
  return repo;
}

/** `sha256:<hex>` from a `<repo>@sha256:<hex>` reference; throws for a reference not pinned by digest. */
export function digestOf(imageRef: string): string {
  const at = imageRef.lastIndexOf("@");
  const digest = at >= 0 ? imageRef.slice(at + 1) : "";
  if (!/^sha256:[a-f0-9]{64}$/.test(digest)) {
    throw new Error(
      `image "${imageRef}" is not pinned by digest: use "<registry>/<path>@sha256:<64 hex>".`,
    );
  }
  return digest;
}

/**
 * Cleanup of a repository that holds releases (copy and release modes): every `release-` tag is
 * kept, untagged versions older than `untaggedDays` are deleted. A KEEP policy wins over a DELETE
 * one (https://cloud.google.com/artifact-registry/docs/repositories/cleanup-policy).
 */
export function releaseCleanupPolicies(untaggedDays: number) {
  return [
    {
      id: "keep-releases",
      action: "KEEP",
      condition: { tagState: "TAGGED", tagPrefixes: [RELEASE_TAG_PREFIX] },
    },
    {
      id: "delete-old-untagged",
      action: "DELETE",
      condition: { tagState: "UNTAGGED", olderThan: `${untaggedDays * 86400}s` },
    },
  ];
}

/** Keep the newest `keepCount` versions; delete untagged ones older than `untaggedDays`. */
export function cleanupPolicies(keepCount: number, untaggedDays: number) {
  return [
    { id: "keep-recent", action: "KEEP", mostRecentVersions: { keepCount } },
    {
      id: "delete-old-untagged",
      action: "DELETE",
      condition: { tagState: "UNTAGGED", olderThan: `${untaggedDays * 86400}s` },
    },
  ];
}

export function validateImageArgs(name: string, args: GcpImageArgs): string | undefined {
  const repositoryId = args.repositoryId ?? name;
  const keepCount = args.keepCount ?? 10;
  const untagged = args.untaggedRetentionDays ?? 7;
  const source = args.source;
  return joinProblems(`GcpImage "${name}"`, [
    checkProjectId(args.project),
    checkRegion(args.region),
    source.kind === "existing"
      ? DIGEST_REF.test(source.imageRef)
        ? undefined
        : `imageRef "${source.imageRef}" must be pinned by digest ("<registry>/<path>@sha256:<64 hex>"): promote the digest, not a tag.`
      : undefined,
    source.kind === "release" && !/^sha256:[a-f0-9]{64}$/.test(source.digest)
      ? `release "${source.digest}" is not an image digest (sha256:<64 hex>).`
      : undefined,
    source.kind === "existing" && (args.readers ?? []).length > 0
      ? "readers: an existing image has no repository here to grant reads on."
      : undefined,
    ...readerProblems("gcp", args.readers ?? [], "readers"),
    source.kind !== "existing" && (!GCP_NAME_PATTERN.test(repositoryId) || repositoryId.length > 63)
      ? `repositoryId "${repositoryId}" must be 1-63 lowercase letters, digits or hyphens, starting with a letter.`
      : undefined,
    source.kind === "build" &&
    source.tag !== undefined &&
    !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(source.tag)
      ? `tag "${source.tag}" is not a valid Docker tag.`
      : undefined,
    Number.isInteger(keepCount) && keepCount >= 1
      ? undefined
      : `keepCount ${keepCount} must be a positive integer.`,
    Number.isInteger(untagged) && untagged >= 1
      ? undefined
      : `untaggedRetentionDays ${untagged} must be a positive integer.`,
  ]);
}

/**
 * The agent's container image in Artifact Registry, pinned by digest. In build mode it creates a
 * DOCKER repository (cleanup policies, vulnerability scanning inherited from the project) and
 * builds and pushes `app/Dockerfile`; in promotion mode it only passes an existing digest on.
 *
 * Cost: Artifact Registry storage about $0.10/GB/month beyond 0.5 GB; scanning about $0.26 per image.
 */
export class GcpImage extends pulumi.ComponentResource {
  public readonly artifact: Artifact & { kind: "image" };
  public readonly repository?: gcp.artifactregistry.Repository;
  /** Build mode only. */
  public readonly image?: docker.Image;
  /** Copy mode only. */
  public readonly copy?: ImageCopy;

  constructor(name: string, args: GcpImageArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:gcp:Image", name, {}, opts);
    const problem = validateImageArgs(name, args);
    if (problem) throw new pulumi.ResourceError(problem, this);

    let imageRef: pulumi.Output<string>;
    const source = args.source;
    if (source.kind === "existing") {
      imageRef = pulumi.output(source.imageRef);
    } else if (source.kind === "build") {
      this.repository = this.createRepository(name, args);
      this.image = this.buildAndPush(name, args, source, this.repository);
      imageRef = this.image.repoDigest;
    } else {
      const repository = this.createRepository(name, args);
      this.repository = repository;
      const path = imageRepositoryPath(args.region, args.project, args.repositoryId ?? name);
      if (source.kind === "copy") {
        this.copy = new ImageCopy(
          `${name}-copy`,
          // The repository id is known before it exists; the copy waits for it.
          { source: source.from.imageRef, destination: repository.repositoryId.apply(() => path) },
          { parent: this, dependsOn: [repository] },
        );
        imageRef = pulumi.output(this.copy.artifact.imageRef);
      } else {
        imageRef = this.held(repository, path, source.digest);
      }
    }
    this.artifact = { kind: "image", imageRef, digest: imageRef.apply(digestOf) };
    this.registerOutputs({ imageRef: this.artifact.imageRef, digest: this.artifact.digest });
  }

  /** A digest the repository holds (a rollback); fails, naming what it holds, otherwise. */
  private held(
    repository: gcp.artifactregistry.Repository,
    path: string,
    digest: string,
  ): pulumi.Output<string> {
    const images = gcp.artifactregistry.getDockerImagesOutput(
      {
        project: repository.project,
        location: repository.location,
        repositoryId: repository.repositoryId,
      },
      { parent: this },
    );
    return images.dockerImages.apply((list) => {
      const held = [
        ...new Set((list ?? []).map((i) => i.selfLink.slice(i.selfLink.lastIndexOf("@") + 1))),
      ];
      const problem = missingRelease(digest, held, `Artifact Registry repository ${path}`);
      if (problem) throw new pulumi.ResourceError(problem, this);
      return `${path}@${digest}`;
    });
  }

  private createRepository(name: string, args: GcpImageArgs): gcp.artifactregistry.Repository {
    const releases = args.source.kind === "copy" || args.source.kind === "release";
    const repository = new gcp.artifactregistry.Repository(
      `${name}-repo`,
      {
        project: args.project,
        location: args.region,
        repositoryId: args.repositoryId ?? name,
        format: "DOCKER",
        description: "Container images of the agent service.",
        // Tags are labels for people; targets and promotion use digests, so tags may move.
        dockerConfig: { immutableTags: false },
        cleanupPolicyDryRun: false,
        cleanupPolicies: releases
          ? releaseCleanupPolicies(args.untaggedRetentionDays ?? 7)
          : cleanupPolicies(args.keepCount ?? 10, args.untaggedRetentionDays ?? 7),
        // Scans on push when the project has the Container Scanning API enabled.
        vulnerabilityScanningConfig: { enablementConfig: "INHERITED" },
        labels: args.labels,
      },
      { parent: this },
    );
    for (const member of args.readers ?? []) {
      // Named by the member, so adding or removing one reader leaves the others' grants alone.
      const id = createHash("sha256").update(member).digest("hex").slice(0, 8);
      new gcp.artifactregistry.RepositoryIamMember(
        `${name}-reader-${id}`,
        {
          project: repository.project,
          location: repository.location,
          repository: repository.repositoryId,
          role: "roles/artifactregistry.reader",
          member,
        },
        { parent: this },
      );
    }
    return repository;
  }

  private buildAndPush(
    name: string,
    args: GcpImageArgs,
    source: Extract<ImageSource, { kind: "build" }>,
    repository: gcp.artifactregistry.Repository,
  ): docker.Image {
    const registry = `${args.region}-docker.pkg.dev`;
    const token = gcp.organizations.getClientConfigOutput({ parent: this }).accessToken;
    return new docker.Image(
      `${name}-image`,
      {
        imageName: pulumi.interpolate`${registry}/${args.project}/${repository.repositoryId}/agent:${source.tag ?? "latest"}`,
        build: {
          context: source.context ?? ".",
          dockerfile: source.dockerfile ?? "app/Dockerfile",
          platform: source.platform ?? "linux/amd64",
        },
        // A short-lived token of the deploying identity: no key file, no docker credential helper.
        registry: {
          server: registry,
          username: "oauth2accesstoken",
          password: pulumi.secret(token),
        },
      },
      { parent: this },
    );
  }
}
