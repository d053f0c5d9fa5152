import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as aws from "@pulumi/aws";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { Artifact } from "../../../components/contracts";
import {
  checkImageTag,
  ContainerImage,
  lifecyclePolicy,
  parsePinnedImageRef,
} from "../../../components/aws/image";
import {
  bundleKey,
  bundleSha256,
  checkBundlePath,
  LambdaBundle,
} from "../../../components/aws/lambda-bundle";
import {
  invocationsOf,
  isSecretOutput,
  outputOf,
  resources,
  setupPulumiMocks,
  within,
} from "../../support/pulumi";

setupPulumiMocks({ stack: "test" });

const DIGEST = `sha256:${"a".repeat(64)}`;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bundle-"));
const zipPath = path.join(tmp, "lambda.zip");
fs.writeFileSync(zipPath, "PK\u0003\u0004 fake zip bytes");
const dirPath = path.join(tmp, "dist");
fs.mkdirSync(path.join(dirPath, "lib"), { recursive: true });
fs.writeFileSync(path.join(dirPath, "index.mjs"), "export const handler = 1;");
fs.writeFileSync(path.join(dirPath, "lib", "a.mjs"), "export const a = 1;");
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("pure functions", () => {
  test("image tags: valid charset, never `latest` (tags are immutable)", () => {
    expect(checkImageTag("3f2c1ab")).toBeUndefined();
    expect(checkImageTag("v1.2.3_rc-1")).toBeUndefined();
    expect(checkImageTag("latest")).toMatch(/cannot be reused in an immutable repository/);
    expect(checkImageTag("-x")).toMatch(/not a valid tag/);
    expect(checkImageTag("a/b")).toMatch(/not a valid tag/);
  });

  test("pinned references parse; tags alone do not", () => {
    expect(parsePinnedImageRef(`123.dkr.ecr.us-east-1.amazonaws.com/app@${DIGEST}`)).toEqual({
      repository: "123.dkr.ecr.us-east-1.amazonaws.com/app",
      digest: DIGEST,
    });
    expect(() => parsePinnedImageRef("repo/app:v1")).toThrow(/not pinned by digest/);
    expect(() => parsePinnedImageRef("repo/app@sha256:abc")).toThrow(/not pinned by digest/);
  });

  test("lifecycle policy keeps the newest N of any tag status", () => {
    expect(JSON.parse(lifecyclePolicy(15)).rules).toEqual([
      expect.objectContaining({
        selection: { tagStatus: "any", countType: "imageCountMoreThan", countNumber: 15 },
        action: { type: "expire" },
      }),
    ]);
  });

  test("bundle hashes: a zip's is the SHA-256 of its bytes, base64, as Lambda expects", () => {
    const expected = createHash("sha256").update(fs.readFileSync(zipPath)).digest("base64");
    expect(bundleSha256(zipPath)).toBe(expected);
  });

  test("a directory's hash changes with content and not with anything else", () => {
    const before = bundleSha256(dirPath);
    expect(bundleSha256(dirPath)).toBe(before);
    fs.writeFileSync(path.join(dirPath, "lib", "a.mjs"), "export const a = 2;");
    expect(bundleSha256(dirPath)).not.toBe(before);
    fs.writeFileSync(path.join(dirPath, "lib", "a.mjs"), "export const a = 1;");
    expect(bundleSha256(dirPath)).toBe(before);
  });

  test("bundle paths: missing, empty or not a zip are explained", () => {
    expect(checkBundlePath(path.join(tmp, "nope.zip"))).toMatch(
      /does not exist: run `npm run build` first/,
    );
    const empty = fs.mkdtempSync(path.join(tmp, "empty-"));
    expect(checkBundlePath(empty)).toMatch(/is empty/);
    fs.writeFileSync(path.join(tmp, "x.txt"), "x");
    expect(checkBundlePath(path.join(tmp, "x.txt"))).toMatch(/not a .zip/);
    expect(checkBundlePath(zipPath)).toBeUndefined();
  });

  test("content-addressed key", () => {
    expect(bundleKey(Buffer.from("ab", "hex").toString("base64"))).toBe("lambda/ab.zip");
  });
});

let built: ContainerImage;
let promoted: ContainerImage;
let bundle: LambdaBundle;
let uploaded: LambdaBundle;

beforeAll(async () => {
  built = new ContainerImage("svc", {
    source: {
      build: { tag: "3f2c1ab", platform: "linux/amd64", args: { NODE_ENV: "production" } },
    },
    keepImages: 10,
  });
  const devArtifact: Artifact = {
    kind: "image",
    imageRef: pulumi.output(`123.dkr.ecr.us-east-1.amazonaws.com/svc@${DIGEST}`),
    digest: pulumi.output(DIGEST),
  };
  promoted = new ContainerImage("promo", { source: { artifact: devArtifact } });
  bundle = new LambdaBundle("fn", { source: { path: zipPath } });
  uploaded = new LambdaBundle("fnup", {
    source: { path: dirPath },
    upload: { bucket: "artifacts-bucket" },
  });
});

describe("ContainerImage (build)", () => {
  test("repository: immutable tags, scan on push, encrypted, not force-deleted, lifecycle bound", async () => {
    const q = await within(built);
    expect(q.findOne(aws.ecr.Repository).inputs).toMatchObject({
      imageTagMutability: "IMMUTABLE",
      imageScanningConfiguration: { scanOnPush: true },
      encryptionConfigurations: [{ encryptionType: "AES256" }],
      forceDelete: false,
    });
    const lifecycle = q.findOne(aws.ecr.LifecyclePolicy).inputs;
    expect(JSON.parse(lifecycle.policy as string).rules[0].selection.countNumber).toBe(10);
    expect(lifecycle.repository).toBe(await outputOf(built.repository!.name));
  });

  test("builds app/Dockerfile from the repo root for the requested platform and pushes with ECR credentials", async () => {
    const q = await within(built);
    const image = q.findOne(docker.Image);
    const repoUrl = await outputOf(built.repository!.repositoryUrl);
    expect(image.inputs).toMatchObject({
      imageName: `${repoUrl}:3f2c1ab`,
      build: {
        context: ".",
        dockerfile: "app/Dockerfile",
        platform: "linux/amd64",
        args: { NODE_ENV: "production" },
      },
      registry: {
        server: "123456789012.dkr.ecr.us-east-1.amazonaws.com",
        username: "AWS",
        password: "mock-ecr-password",
      },
    });
    expect(image.secretInputs.has("registry")).toBe(true);
    expect(invocationsOf("aws:ecr/getAuthorizationToken:getAuthorizationToken")[0]?.inputs).toEqual(
      { registryId: "123456789012" },
    );
  });

  test("the artifact is pinned by the pushed digest", async () => {
    const ref = await outputOf(built.artifact.imageRef);
    const repoUrl = await outputOf(built.repository!.repositoryUrl);
    expect(ref).toMatch(new RegExp(`^${repoUrl.replace(/\./g, "\\.")}@sha256:[a-f0-9]{64}$`));
    expect(await outputOf(built.artifact.digest)).toBe(ref.split("@")[1]);
    expect(built.artifact.kind).toBe("image");
  });

  test("children are prefixed and parented", async () => {
    for (const r of (await within(built)).all()) {
      expect(r.name.startsWith("svc-")).toBe(true);
      expect(resources.parentOf(r)!.name).toBe("svc");
    }
  });
});

describe("ContainerImage (promotion)", () => {
  test("creates nothing and passes the verified digest through", async () => {
    expect((await within(promoted)).count()).toBe(0);
    expect(await outputOf(promoted.artifact.imageRef)).toBe(
      `123.dkr.ecr.us-east-1.amazonaws.com/svc@${DIGEST}`,
    );
    expect(await outputOf(promoted.artifact.digest)).toBe(DIGEST);
  });

  test("a bundle where an image is expected is a compile error", () => {
    const zip: Artifact = {
      kind: "lambda-zip",
      location: pulumi.output("x.zip"),
      sha256: pulumi.output("h"),
    };
    // Never called: `npm run typecheck` proves it is refused (an unused expect-error directive
    // fails it), so no run-time check is needed.
    const refused = () =>
      // @ts-expect-error: ContainerImage re-exposes an image artifact only
      new ContainerImage("bad", { source: { artifact: zip } });
    expect(refused).toBeInstanceOf(Function);
  });
});

describe("ContainerImage validation", () => {
  test.each([
    [{ source: { build: { tag: "latest" } } }, /"latest" cannot be reused/],
    [{ source: { build: { tag: "ok" } }, keepImages: 0 }, /keepImages is 0/],
    [{ source: { build: { tag: "ok", platform: "linux/386" } } }, /platform "linux\/386"/],
  ])("%j", (args, message) => {
    expect(() => new ContainerImage("bad", args as never)).toThrow(pulumi.ResourceError);
    expect(() => new ContainerImage("bad", args as never)).toThrow(message);
  });

  test("a CMK switches the repository to KMS encryption", async () => {
    const key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    const c = new ContainerImage("kms", {
      source: { build: { tag: "t1" } },
      kmsKeyArn: key,
      forceDelete: true,
    });
    const repo = (await within(c)).findOne(aws.ecr.Repository).inputs;
    expect(repo.encryptionConfigurations).toEqual([{ encryptionType: "KMS", kmsKey: key }]);
    expect(repo.forceDelete).toBe(true);
  });
});

describe("LambdaBundle", () => {
  test("local zip: absolute location and the zip's hash; no resources", async () => {
    expect((await within(bundle)).count()).toBe(0);
    expect(await outputOf(bundle.artifact.location)).toBe(path.resolve(zipPath));
    expect(await outputOf(bundle.artifact.sha256)).toBe(bundleSha256(zipPath));
  });

  test("uploaded: a content-addressed, encrypted object; the location is its s3:// URL", async () => {
    const q = await within(uploaded);
    const obj = q.findOne(aws.s3.BucketObjectv2).inputs;
    const sha = bundleSha256(dirPath);
    expect(obj).toMatchObject({
      bucket: "artifacts-bucket",
      key: bundleKey(sha),
      serverSideEncryption: "AES256",
      contentType: "application/zip",
    });
    expect(await outputOf(uploaded.artifact.location)).toBe(
      `s3://artifacts-bucket/${bundleKey(sha)}`,
    );
    expect(await outputOf(uploaded.artifact.sha256)).toBe(sha);
    expect(await isSecretOutput(uploaded.artifact.location)).toBe(false);
  });

  test("promotion passes an existing bundle through and refuses an image", async () => {
    const art: Artifact = {
      kind: "lambda-zip",
      location: pulumi.output("s3://b/lambda/ab.zip"),
      sha256: pulumi.output("q1w2"),
    };
    const p = new LambdaBundle("promo-fn", { source: { artifact: art } });
    expect(await outputOf(p.artifact.location)).toBe("s3://b/lambda/ab.zip");
    expect((await within(p)).count()).toBe(0);
    const img: Artifact = {
      kind: "image",
      imageRef: pulumi.output("r@x"),
      digest: pulumi.output("x"),
    };
    expect(() => new LambdaBundle("bad", { source: { artifact: img } })).toThrow(
      /is of kind "image", not a lambda-zip/,
    );
  });

  test("a missing build output is refused with the command to run", () => {
    expect(() => new LambdaBundle("bad", { source: { path: path.join(tmp, "missing") } })).toThrow(
      pulumi.ResourceError,
    );
    expect(() => new LambdaBundle("bad", { source: { path: path.join(tmp, "missing") } })).toThrow(
      /run `npm run build` first/,
    );
  });
});
