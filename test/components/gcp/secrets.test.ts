/** Secret Manager components: secretness whatever the caller passes, replication, and least-privilege IAM. */
import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { isSecretOutput, outputOf, setupPulumiMocks, within } from "../../support/pulumi";
import "../../support/pulumi-gcp-outputs";
import {
  GcpSecret,
  GcpSecrets,
  SecretAccessGrant,
  SECRET_ACCESSOR_ROLE,
  checkReplication,
  checkServiceAccountEmail,
  defaultReplication,
  grantKeys,
  secretReplication,
} from "../../../components/gcp/secrets";

setupPulumiMocks({ stack: "test", region: "us-central1" });

const SA = "run-agent@agent-dev-1.iam.gserviceaccount.com";

let plainKey: GcpSecrets;
let automatic: GcpSecret;
let multi: GcpSecret;
let byRecord: SecretAccessGrant;
let byArray: SecretAccessGrant;

beforeAll(async () => {
  // A plain string (e.g. from a test or a careless caller) must still end up secret.
  plainKey = new GcpSecrets("s", {
    project: "agent-dev-1",
    region: "us-east4",
    anthropicApiKey: "sk-ant-plain",
  });
  automatic = new GcpSecret("auto", {
    project: "agent-dev-1",
    value: "v",
    replication: { kind: "automatic" },
  });
  multi = new GcpSecret("multi", {
    project: "agent-dev-1",
    value: "v",
    replication: { kind: "user-managed", locations: ["europe-west1", "europe-west4"] },
  });
  byRecord = new SecretAccessGrant("grant", {
    serviceAccountEmail: SA,
    secrets: { "anthropic-key": plainKey.anthropicKey!.ref, other: automatic.ref },
  });
  byArray = new SecretAccessGrant("grant-list", {
    serviceAccountEmail: pulumi.output(SA),
    secrets: [multi.ref],
  });
  await within(byArray);
});

test("a plain Anthropic key becomes a secret input and a secret output", async () => {
  const q = await within(plainKey);
  const version = q.findOne(gcp.secretmanager.SecretVersion);
  expect(version.secretInputs.has("secretData")).toBe(true);
  expect(version.inputs.secretData).toBe("sk-ant-plain");
  expect(await isSecretOutput(plainKey.anthropicKey!.version.secretData)).toBe(true);
});

test("replication defaults to the stack's region only", async () => {
  const q = await within(plainKey);
  expect(q.findOne(gcp.secretmanager.Secret).inputs.replication).toEqual({
    userManaged: { replicas: [{ location: "us-east4" }] },
  });
  expect(plainKey.replication).toEqual({ kind: "user-managed", locations: ["us-east4"] });
});

test("automatic and multi-region replication", async () => {
  expect((await within(automatic)).findOne(gcp.secretmanager.Secret).inputs.replication).toEqual({
    auto: {},
  });
  expect((await within(multi)).findOne(gcp.secretmanager.Secret).inputs.replication).toEqual({
    userManaged: { replicas: [{ location: "europe-west1" }, { location: "europe-west4" }] },
  });
});

test("the SecretRef names the secret and reads the latest version", async () => {
  const ref = plainKey.anthropicKey!.ref;
  expect(ref.store).toBe("gcp-secretmanager");
  expect(ref.version).toBe("latest");
  const id = await outputOf(ref.id);
  expect(id).toBe(`projects/agent-dev-1/secrets/${await outputOf(ref.name)}`);
});

test("grants: one secretAccessor binding per given secret, keyed by name, for the given account only", async () => {
  const q = await within(byRecord);
  const members = q.findByType(gcp.secretmanager.SecretIamMember);
  expect(members.map((m) => m.name).sort()).toEqual(["grant-anthropic-key", "grant-other"]);
  for (const m of members) {
    expect(m.inputs).toMatchObject({ role: SECRET_ACCESSOR_ROLE, member: `serviceAccount:${SA}` });
  }
  expect(members.map((m) => m.inputs.secretId).sort()).toEqual(
    [await outputOf(plainKey.anthropicKey!.ref.id), await outputOf(automatic.ref.id)].sort(),
  );
});

test("grants accept an Output email and a list (keyed by position)", async () => {
  const q = await within(byArray);
  const m = q.findOne(gcp.secretmanager.SecretIamMember);
  expect(m.name).toBe("grant-list-0");
  expect(m.inputs.member).toBe(`serviceAccount:${SA}`);
  expect(m.inputs.secretId).toBe(await outputOf(multi.ref.id));
});

describe("pure helpers", () => {
  test("secretReplication / defaultReplication", () => {
    expect(secretReplication({ kind: "automatic" })).toEqual({ auto: {} });
    expect(defaultReplication("asia-east1")).toEqual({
      kind: "user-managed",
      locations: ["asia-east1"],
    });
    expect(defaultReplication("asia-east1", { kind: "automatic" })).toEqual({ kind: "automatic" });
  });

  test("grantKeys keeps record keys and numbers list entries", () => {
    const ref = automatic.ref;
    expect(grantKeys({ a: ref }).map(([k]) => k)).toEqual(["a"]);
    expect(grantKeys([ref, ref]).map(([k]) => k)).toEqual(["0", "1"]);
  });

  test("checkServiceAccountEmail", () => {
    expect(checkServiceAccountEmail(SA)).toBeUndefined();
    expect(checkServiceAccountEmail("123-compute@developer.gserviceaccount.com")).toBeUndefined();
    expect(checkServiceAccountEmail(pulumi.output("whatever"))).toBeUndefined();
    expect(checkServiceAccountEmail("alice@example.com")).toMatch(/is not a service account/);
    expect(checkServiceAccountEmail("allUsers")).toMatch(/is not a service account/);
  });

  test("checkReplication", () => {
    expect(checkReplication({ kind: "user-managed", locations: [] })).toMatch(
      /needs at least one location/,
    );
    expect(
      checkReplication({ kind: "user-managed", locations: ["us-central1", "us-central1"] }),
    ).toMatch(/lists a location twice/);
    expect(checkReplication({ kind: "user-managed", locations: ["global"] })).toMatch(
      /not a GCP region name/,
    );
  });
});

describe("bad arguments throw ResourceErrors that say what to change", () => {
  const thrown = (fn: () => unknown): Error => {
    try {
      fn();
    } catch (e) {
      expect(e).toBeInstanceOf(pulumi.ResourceError);
      return e as Error;
    }
    throw new Error("expected a ResourceError");
  };

  test("a grant to a user (or allUsers) is refused", () => {
    expect(
      thrown(
        () =>
          new SecretAccessGrant("g1", {
            serviceAccountEmail: "allUsers",
            secrets: [automatic.ref],
          }),
      ).message,
    ).toMatch(/serviceAccountEmail "allUsers" is not a service account/);
  });

  test("a grant with no secrets is refused", () => {
    expect(
      thrown(() => new SecretAccessGrant("g2", { serviceAccountEmail: SA, secrets: [] })).message,
    ).toMatch(/no secrets given/);
  });

  test("an AWS secret cannot be granted through Secret Manager IAM: a compile error", () => {
    const awsRef = { ...automatic.ref, store: "aws-secretsmanager" as const };
    // Never called: `npm run typecheck` proves it is refused (an unused expect-error directive
    // fails it), so no run-time check is needed.
    const refused = () =>
      // @ts-expect-error: SecretAccessGrant takes the GCP data plane's secrets only
      new SecretAccessGrant("g3", { serviceAccountEmail: SA, secrets: [awsRef] });
    expect(refused).toBeInstanceOf(Function);
  });

  test("a binding key that cannot name a resource is refused", () => {
    expect(
      thrown(
        () =>
          new SecretAccessGrant("g4", {
            serviceAccountEmail: SA,
            secrets: { "Bad Key": automatic.ref },
          }),
      ).message,
    ).toMatch(/secret key "Bad Key" must be lowercase/);
  });

  test("empty user-managed replication and an empty key", () => {
    expect(
      thrown(
        () =>
          new GcpSecrets("s2", {
            project: "agent-dev-1",
            region: "us-central1",
            anthropicApiKey: " ",
            replication: { kind: "user-managed", locations: [] },
          }),
      ).message,
    ).toMatch(
      /^GcpSecrets "s2": user-managed secret replication needs at least one location.*anthropicApiKey is empty/,
    );
  });
});
