/**
 * The service's container image in an ECR repository this stack owns (scan on push, immutable
 * tags, encrypted, bounded by a lifecycle policy), published as an `Artifact` pinned by digest.
 * The image gets there one of three ways:
 *
 * - `build`: a Docker build pushed to it (the stack that builds, dev);
 * - `copy`: a promotion: the source stack's image copied in by digest (`ImageCopy`), so what
 *   runs here never depends on the source's repository, its lifecycle or its destruction;
 * - `release`: a rollback: a digest the repository already holds (checked; nothing is copied,
 *   the source stack is not read).
 *
 * `artifact` passes an image someone else stores straight through (no repository here).
 * `readers` lets other accounts' deployers pull from the repository (promotion across accounts).
 */
import * as aws from "@pulumi/aws";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { ImageArtifact } from "../contracts";
import { ImageCopy, RELEASE_TAG_PREFIX } from "../release/image-copy";
import { missingRelease } from "../release/history";
import { awsPrincipals, readerProblems } from "../release/readers";

export interface ImageBuild {
  /**
   * The tag to push, e.g. the git commit SHA. Tags are immutable in the repository, so each
   * build needs a new one; `latest` is refused for the same reason.
   */
  tag: string;
  /** Build context, relative to the Pulumi project directory. @default "." (the repo root) */
  context?: string;
  /** @default "app/Dockerfile" */
  dockerfile?: string;
  /**
   * Must match the compute's architecture (Lambda `arm64`, Graviton nodes, ...).
   * @default "linux/arm64"
   */
  platform?: "linux/amd64" | "linux/arm64";
  /** Docker build arguments. @default {} */
  args?: Record<string, string>;
  /** Multi-stage target. @default the last stage */
  target?: string;
}

export type ImageSource =
  | { build: ImageBuild }
  /** Promotion: copy this image (another stack's, pinned by digest) into the repository. */
  | { copy: ImageArtifact }
  /** Rollback: deploy this digest (`sha256:<hex>`), which the repository must already hold. */
  | { release: string }
  /** Run an image stored elsewhere, pinned by digest; no repository is created. */
  | { artifact: ImageArtifact };

export interface ContainerImageArgs {
  source: ImageSource;
  /**
   * Images the lifecycle policy keeps (newest first); older ones expire. Keep enough to roll
   * back, and remember that a promoted digest still running elsewhere must not expire here.
   * @default 30
   */
  keepImages?: number;
  /**
   * Customer-managed KMS key for the repository.
   * @default AES256 (ECR-managed)
   */
  kmsKeyArn?: pulumi.Input<string>;
  /**
   * Delete the repository even when it holds images (dev stacks that come and go).
   * @default false
   */
  forceDelete?: boolean;
  /**
   * AWS account ids or IAM role ARNs that may pull from the repository: the deployers of the
   * stacks that promote from this one, when they run in other accounts.
   * @default [] (this account only)
   */
  readers?: string[];
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;

/** Problems with a build tag, saying what to change. */
export function checkImageTag(tag: string): string | undefined {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) {
    return `image tag "${tag}" is not a valid tag: use up to 128 letters, digits, _ . - (e.g. the git commit SHA).`;
  }
  if (tag === "latest")
    return 'image tag "latest" cannot be reused in an immutable repository: tag with the commit SHA.';
  return undefined;
}

/** Splits `<repo>@sha256:<hex>`; throws when the reference is not pinned by digest. */
export function parsePinnedImageRef(ref: string): { repository: string; digest: string } {
  const at = ref.lastIndexOf("@");
  const digest = at > 0 ? ref.slice(at + 1) : "";
  if (!DIGEST.test(digest)) {
    throw new Error(`image "${ref}" is not pinned by digest: use "<repository>@sha256:<64 hex>".`);
  }
  return { repository: ref.slice(0, at), digest };
}

/**
 * ECR lifecycle policy of a repository that holds releases (copy and release modes): release
 * copies are tagged `release-...` and never expire, so every release the stack deployed or lists
 * stays deployable; anything untagged (a manual push, an interrupted copy) expires after
 * `untaggedDays`. ECR lifecycle rules only expire images, so keeping is the absence of a rule
 * that matches (https://docs.aws.amazon.com/AmazonECR/latest/userguide/LifecyclePolicies.html).
 */
export function releaseLifecyclePolicy(untaggedDays = 7): string {
  return JSON.stringify({
    rules: [
      {
        rulePriority: 1,
        description: `Expire untagged images after ${untaggedDays} days; ${RELEASE_TAG_PREFIX}* tags are kept`,
        selection: {
          tagStatus: "untagged",
          countType: "sinceImagePushed",
          countUnit: "days",
          countNumber: untaggedDays,
        },
        action: { type: "expire" },
      },
    ],
  });
}

/**
 * Repository policy letting `readers` pull: the actions a registry client needs to read a
 * manifest and its layers (https://docs.aws.amazon.com/AmazonECR/latest/userguide/repository-policy-examples.html).
 */
export function repositoryReadPolicy(readers: readonly string[]): string {
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "PromotingStacksPull",
        Effect: "Allow",
        Principal: { AWS: awsPrincipals(readers) },
        Action: [
          "ecr:BatchGetImage",
          "ecr:GetDownloadUrlForLayer",
          "ecr:BatchCheckLayerAvailability",
          "ecr:DescribeImages",
        ],
      },
    ],
  });
}

/** ECR lifecycle policy: expire everything beyond the newest `keep` images. */
export function lifecyclePolicy(keep: number): string {
  return JSON.stringify({
    rules: [
      {
        rulePriority: 1,
        description: `Keep the newest ${keep} images`,
        selection: { tagStatus: "any", countType: "imageCountMoreThan", countNumber: keep },
        action: { type: "expire" },
      },
    ],
  });
}

/**
 * An ECR repository and the image built into it. ECR storage is $0.10/GB-month (30 images of
 * ~150 MB: about $0.45/month); scanning on push is free (basic scanning).
 */
export class ContainerImage extends pulumi.ComponentResource {
  /** Absent when an existing artifact was passed. */
  readonly repository?: aws.ecr.Repository;
  /** Build mode only. */
  readonly image?: docker.Image;
  /** Copy mode only. */
  readonly copy?: ImageCopy;
  readonly artifact: ImageArtifact;

  constructor(name: string, args: ContainerImageArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:aws:ContainerImage", name, {}, opts);
    this.validate(name, args);

    const source = args.source;
    if ("artifact" in source) {
      this.artifact = this.promote(source.artifact);
    } else if ("build" in source) {
      this.repository = this.createRepository(name, args, lifecyclePolicy(args.keepImages ?? 30));
      this.image = this.build(name, source.build, this.repository);
      this.artifact = this.publish(this.image);
    } else {
      const repository = this.createRepository(name, args, releaseLifecyclePolicy());
      this.repository = repository;
      if ("copy" in source) {
        this.copy = new ImageCopy(
          `${name}-copy`,
          { source: source.copy.imageRef, destination: repository.repositoryUrl },
          { parent: this, dependsOn: [repository] },
        );
        this.artifact = this.copy.artifact;
      } else {
        this.artifact = this.held(repository, source.release);
      }
    }
    this.registerOutputs({ imageRef: this.artifact.imageRef, digest: this.artifact.digest });
  }

  /**
   * A digest the repository already holds (a rollback). Fails the deployment, naming the
   * releases it does hold, when it is not there.
   */
  private held(repository: aws.ecr.Repository, digest: string): ImageArtifact {
    const images = aws.ecr.getImagesOutput(
      { repositoryName: repository.name, registryId: repository.registryId },
      { parent: this },
    );
    const imageRef = pulumi
      .all([images.imageIds, repository.repositoryUrl, repository.name])
      .apply(([ids, url, repositoryName]) => {
        const held = [...new Set(ids.map((i) => i.imageDigest))];
        const problem = missingRelease(digest, held, `ECR repository ${repositoryName}`);
        if (problem) throw new pulumi.ResourceError(problem, this);
        return `${url}@${digest}`;
      });
    return { kind: "image", imageRef, digest: imageRef.apply(() => digest) };
  }

  private validate(name: string, args: ContainerImageArgs): void {
    const fail = (msg: string): never => {
      throw new pulumi.ResourceError(`ContainerImage "${name}": ${msg}`, this);
    };
    const keep = args.keepImages ?? 30;
    if (!Number.isInteger(keep) || keep < 1 || keep > 1000)
      fail(`keepImages is ${keep}: use 1 to 1000.`);
    const readerIssues = readerProblems("aws", args.readers ?? [], "readers");
    if (readerIssues.length) fail(readerIssues.join("; "));
    if ("artifact" in args.source && args.readers?.length)
      fail("readers: an artifact passed through has no repository here to grant reads on.");
    if ("release" in args.source && !DIGEST.test(args.source.release))
      fail(`release "${args.source.release}" is not an image digest (sha256:<64 hex>).`);
    if (!("build" in args.source)) return;
    const tagProblem = checkImageTag(args.source.build.tag);
    if (tagProblem) fail(tagProblem);
    const platform = args.source.build.platform ?? "linux/arm64";
    if (platform !== "linux/arm64" && platform !== "linux/amd64")
      fail(`platform "${String(platform)}": use linux/arm64 or linux/amd64.`);
  }

  /** Re-exposes an artifact built elsewhere, refusing (at deploy time) references not pinned by digest. */
  private promote(artifact: ImageArtifact): ImageArtifact {
    const imageRef = pulumi.output(artifact.imageRef).apply((ref) => {
      parsePinnedImageRef(ref);
      return ref;
    });
    return {
      kind: "image",
      imageRef,
      digest: imageRef.apply((ref) => parsePinnedImageRef(ref).digest),
    };
  }

  private createRepository(
    name: string,
    args: ContainerImageArgs,
    policy: string,
  ): aws.ecr.Repository {
    const repository = new aws.ecr.Repository(
      `${name}-repo`,
      {
        imageTagMutability: "IMMUTABLE",
        imageScanningConfiguration: { scanOnPush: true },
        encryptionConfigurations: [
          args.kmsKeyArn
            ? { encryptionType: "KMS", kmsKey: args.kmsKeyArn }
            : { encryptionType: "AES256" },
        ],
        forceDelete: args.forceDelete ?? false,
      },
      { parent: this },
    );
    new aws.ecr.LifecyclePolicy(
      `${name}-lifecycle`,
      { repository: repository.name, policy },
      { parent: this },
    );
    if (args.readers?.length) {
      new aws.ecr.RepositoryPolicy(
        `${name}-readers`,
        { repository: repository.name, policy: repositoryReadPolicy(args.readers) },
        { parent: this },
      );
    }
    return repository;
  }

  private build(name: string, build: ImageBuild, repository: aws.ecr.Repository): docker.Image {
    // Short-lived (12 h) ECR credentials, fetched at deploy time; never stored in config.
    const token = aws.ecr.getAuthorizationTokenOutput(
      { registryId: repository.registryId },
      { parent: this },
    );
    return new docker.Image(
      `${name}-image`,
      {
        imageName: pulumi.interpolate`${repository.repositoryUrl}:${build.tag}`,
        build: {
          context: build.context ?? ".",
          dockerfile: build.dockerfile ?? "app/Dockerfile",
          platform: build.platform ?? "linux/arm64",
          args: build.args ?? {},
          target: build.target,
        },
        registry: {
          server: repository.repositoryUrl.apply((url) => url.split("/")[0]!),
          username: token.userName,
          password: pulumi.secret(token.password),
        },
      },
      { parent: this },
    );
  }

  /** `repoDigest` is `<repository>@sha256:<hex>`: exactly the pinned reference targets need. */
  private publish(image: docker.Image): ImageArtifact {
    const imageRef = image.repoDigest.apply((ref) => {
      parsePinnedImageRef(ref);
      return ref;
    });
    return {
      kind: "image",
      imageRef,
      digest: imageRef.apply((ref) => parsePinnedImageRef(ref).digest),
    };
  }
}
