/** GcpImage: build-and-push to Artifact Registry pinned by digest, or promote an existing digest. */
import * as gcp from "@pulumi/gcp";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import {
  invocationsOf,
  isSecretOutput,
  outputOf,
  setupPulumiMocks,
  within,
  type ResourceQuery,
} from "../../support/pulumi";
import { MOCK_GCP_ACCESS_TOKEN } from "../../support/pulumi-gcp-outputs";
import {
  GcpImage,
  cleanupPolicies,
  digestOf,
  imageRepositoryPath,
  validateImageArgs,
} from "../../../components/gcp/image";

setupPulumiMocks({ stack: "test", region: "us-central1" });

const DIGEST = `sha256:${"ab".repeat(32)}`;
const PROMOTED = `us-central1-docker.pkg.dev/agent-dev-1/agent-images/agent@${DIGEST}`;

let built: GcpImage;
let promoted: GcpImage;
let builtQ: ResourceQuery;
let promotedQ: ResourceQuery;

beforeAll(async () => {
  built = new GcpImage("agent-images", {
    project: "agent-dev-1",
    region: "us-central1",
    source: { kind: "build", tag: "abc1234" },
  });
  promoted = new GcpImage("agent-prod-image", {
    project: "agent-prod-1",
    region: "us-central1",
    source: { kind: "existing", imageRef: PROMOTED },
  });
  builtQ = await within(built);
  promotedQ = await within(promoted);
});

test("build: a DOCKER repository with cleanup policies and inherited vulnerability scanning", () => {
  const repo = builtQ.findOne(gcp.artifactregistry.Repository).inputs;
  expect(repo).toMatchObject({
    format: "DOCKER",
    location: "us-central1",
    repositoryId: "agent-images",
    cleanupPolicyDryRun: false,
    vulnerabilityScanningConfig: { enablementConfig: "INHERITED" },
  });
  expect(repo.cleanupPolicies).toEqual(cleanupPolicies(10, 7));
});

test("build: app/Dockerfile pushed to <region>-docker.pkg.dev/<project>/<repo>/agent with a short-lived token", async () => {
  const image = builtQ.findOne(docker.Image);
  expect(image.inputs.imageName).toBe(
    "us-central1-docker.pkg.dev/agent-dev-1/agent-images/agent:abc1234",
  );
  expect(image.inputs.build).toEqual({
    context: ".",
    dockerfile: "app/Dockerfile",
    platform: "linux/amd64",
  });
  expect(image.inputs.registry).toEqual({
    server: "us-central1-docker.pkg.dev",
    username: "oauth2accesstoken",
    password: MOCK_GCP_ACCESS_TOKEN,
  });
  expect(image.secretInputs.has("registry")).toBe(true);
  expect(invocationsOf("gcp:organizations/getClientConfig:getClientConfig")).toHaveLength(1);
});

test("build: the artifact is the pushed image pinned by digest", async () => {
  const ref = await outputOf(built.artifact.imageRef);
  expect(built.artifact.kind).toBe("image");
  expect(ref).toMatch(
    /^us-central1-docker\.pkg\.dev\/agent-dev-1\/agent-images\/agent@sha256:[0-9a-f]{64}$/,
  );
  expect(await outputOf(built.artifact.digest)).toBe(ref.split("@")[1]);
  expect(await isSecretOutput(built.artifact.imageRef)).toBe(false);
});

test("promotion: builds and creates nothing, and passes the digest through", async () => {
  expect(promotedQ.count()).toBe(0);
  expect(promoted.repository).toBeUndefined();
  expect(promoted.image).toBeUndefined();
  expect(await outputOf(promoted.artifact.imageRef)).toBe(PROMOTED);
  expect(await outputOf(promoted.artifact.digest)).toBe(DIGEST);
});

test("pure helpers", () => {
  expect(imageRepositoryPath("europe-west4", "p-1", "r")).toBe(
    "europe-west4-docker.pkg.dev/p-1/r/agent",
  );
  expect(digestOf(PROMOTED)).toBe(DIGEST);
  expect(() => digestOf("us-docker.pkg.dev/p/r/agent:latest")).toThrow(/not pinned by digest/);
  expect(cleanupPolicies(5, 2)).toEqual([
    { id: "keep-recent", action: "KEEP", mostRecentVersions: { keepCount: 5 } },
    {
      id: "delete-old-untagged",
      action: "DELETE",
      condition: { tagState: "UNTAGGED", olderThan: "172800s" },
    },
  ]);
});

describe("validation says what to change", () => {
  const base = { project: "agent-dev-1", region: "us-central1" };
  test.each([
    [
      {
        source: { kind: "existing" as const, imageRef: "us-central1-docker.pkg.dev/p/r/agent:v1" },
      },
      /must be pinned by digest.*promote the digest, not a tag/,
    ],
    [
      { source: { kind: "build" as const }, repositoryId: "Agent_Images" },
      /repositoryId "Agent_Images" must be 1-63 lowercase/,
    ],
    [{ source: { kind: "build" as const, tag: "-bad" } }, /tag "-bad" is not a valid Docker tag/],
    [
      { source: { kind: "build" as const }, keepCount: 0 },
      /keepCount 0 must be a positive integer/,
    ],
  ])("%j", (over, message) => {
    expect(validateImageArgs("img", { ...base, ...over })).toMatch(message);
  });

  test("the component throws a ResourceError", () => {
    expect(
      () =>
        new GcpImage("bad-img", {
          ...base,
          source: { kind: "existing", imageRef: "agent:latest" },
        }),
    ).toThrow(pulumi.ResourceError);
  });
});
