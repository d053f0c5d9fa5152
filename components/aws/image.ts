/**
 * The service's container image: an ECR repository (scan on push, immutable tags, encrypted,
 * bounded by a lifecycle policy) and a Docker build pushed to it, published as an `Artifact`
 * pinned by digest. For promotion, pass an existing artifact instead: nothing is built, and the
 * exact digest verified in the previous environment is what runs.
 */
import * as aws from "@pulumi/aws";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { ImageArtifact } from "../contracts";

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

export type ImageSource = { build: ImageBuild } | { artifact: ImageArtifact };

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
  readonly image?: docker.Image;
  readonly artifact: ImageArtifact;

  constructor(name: string, args: ContainerImageArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:aws:ContainerImage", name, {}, opts);
    this.validate(name, args);

    if ("artifact" in args.source) {
      this.artifact = this.promote(args.source.artifact);
    } else {
      this.repository = this.createRepository(name, args);
      this.image = this.build(name, args.source.build, this.repository);
      this.artifact = this.publish(this.image);
    }
    this.registerOutputs({ imageRef: this.artifact.imageRef, digest: this.artifact.digest });
  }

  private validate(name: string, args: ContainerImageArgs): void {
    const fail = (msg: string): never => {
      throw new pulumi.ResourceError(`ContainerImage "${name}": ${msg}`, this);
    };
    const keep = args.keepImages ?? 30;
    if (!Number.isInteger(keep) || keep < 1 || keep > 1000)
      fail(`keepImages is ${keep}: use 1 to 1000.`);
    if ("artifact" in args.source) return;
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

  private createRepository(name: string, args: ContainerImageArgs): aws.ecr.Repository {
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
      { repository: repository.name, policy: lifecyclePolicy(args.keepImages ?? 30) },
      { parent: this },
    );
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
