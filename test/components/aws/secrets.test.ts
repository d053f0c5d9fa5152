import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import {
  Secrets,
  secretReadPolicy,
  secretReadPolicyDocument,
} from "../../../components/aws/secrets";
import { checkRecoveryWindow, StoredSecret } from "../../../components/aws/stored-secret";
import {
  isSecretOutput,
  outputOf,
  resources,
  type ResourceQuery,
  setupPulumiMocks,
  within,
} from "../../support/pulumi";

setupPulumiMocks({ stack: "test" });

const ARN_A = "arn:aws:secretsmanager:us-east-1:123456789012:secret:agent-a-AbC123";
const ARN_B = "arn:aws:secretsmanager:us-east-1:123456789012:secret:agent-b-XyZ789";
const KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

describe("secretReadPolicyDocument", () => {
  test("GetSecretValue on exactly the given ARNs, nothing else", () => {
    expect(secretReadPolicyDocument([ARN_B, ARN_A, ARN_A])).toEqual({
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "ReadAppSecrets",
          Effect: "Allow",
          Action: ["secretsmanager:GetSecretValue"],
          Resource: [ARN_A, ARN_B],
        },
      ],
    });
  });

  test("with a CMK: kms:Decrypt on that key, only through Secrets Manager in the secrets' region", () => {
    const doc = secretReadPolicyDocument([ARN_A], [KEY]);
    expect(doc.Statement[1]).toEqual({
      Sid: "DecryptAppSecrets",
      Effect: "Allow",
      Action: ["kms:Decrypt"],
      Resource: [KEY],
      Condition: { StringEquals: { "kms:ViaService": ["secretsmanager.us-east-1.amazonaws.com"] } },
    });
  });

  test.each([
    [[], [], /no secret ARNs given/],
    [
      ["arn:aws:secretsmanager:us-east-1:123456789012:secret:*"],
      [],
      /not a Secrets Manager secret ARN \(no wildcards\)/,
    ],
    [["arn:aws:s3:::bucket"], [], /not a Secrets Manager secret ARN/],
    [[ARN_A], ["alias/aws/secretsmanager"], /is not a KMS key ARN/],
  ])("%j %j is refused", (arns, keys, message) => {
    expect(() => secretReadPolicyDocument(arns as string[], keys as string[])).toThrow(message);
  });
});

test("checkRecoveryWindow accepts 0 and 7-30 only", () => {
  expect([0, 7, 30].map(checkRecoveryWindow)).toEqual([undefined, undefined, undefined]);
  for (const d of [1, 6, 31, 7.5])
    expect(checkRecoveryWindow(d)).toMatch(
      /use 0 \(immediate deletion\) or a whole number from 7 to 30/,
    );
});

let withKey: Secrets;
let withoutKey: Secrets;
let plain: StoredSecret;
let withKeyQ: ResourceQuery;
let withoutKeyQ: ResourceQuery;

beforeAll(async () => {
  withKey = new Secrets("prod", {
    anthropicApiKey: pulumi.secret("sk-ant-api03-test"),
    protect: true,
    kmsKeyArn: KEY,
  });
  withoutKey = new Secrets("dev", { recoveryWindowDays: 0 });
  // A value that arrives as a plain string must still be stored as a secret.
  plain = new StoredSecret("plain", { description: "test", value: "not-yet-secret" });
  [withKeyQ, withoutKeyQ] = await Promise.all([within(withKey), within(withoutKey)]);
});

describe("Secrets", () => {
  test("the key is stored as a secret value in a secret encrypted with the given CMK", async () => {
    const secret = withKeyQ.findOne(aws.secretsmanager.Secret).inputs;
    expect(secret).toMatchObject({ kmsKeyId: KEY, recoveryWindowInDays: 30 });
    const version = withKeyQ.findOne(aws.secretsmanager.SecretVersion);
    expect(version.secretInputs.has("secretString")).toBe(true);
    expect(version.inputs.secretString).toBe("sk-ant-api03-test");
    expect(await isSecretOutput(withKey.anthropicKey.version!.secretString)).toBe(true);
  });

  test("without a key value only the secret exists (filled out of band), deleted at once on destroy", () => {
    expect(withoutKeyQ.count(aws.secretsmanager.SecretVersion)).toBe(0);
    expect(withoutKeyQ.findOne(aws.secretsmanager.Secret).inputs.recoveryWindowInDays).toBe(0);
  });

  test("a plain-string value is made secret", async () => {
    const version = (await within(plain)).findOne(aws.secretsmanager.SecretVersion);
    expect(version.secretInputs.has("secretString")).toBe(true);
    expect(await isSecretOutput(plain.version!.secretString)).toBe(true);
  });

  test("the ref names the secret by ARN and stage", async () => {
    const ref = withKey.anthropicKeyRef;
    expect([ref.store, ref.version]).toEqual(["aws-secretsmanager", "AWSCURRENT"]);
    expect(await outputOf(ref.id)).toMatch(
      /^arn:aws:secretsmanager:us-east-1:123456789012:secret:prod-anthropic-key-secret/,
    );
    expect(await outputOf(ref.name)).toMatch(/^prod-anthropic-key-secret/);
  });

  test("protect reaches the secret and its value", () => {
    expect(withKeyQ.findOne(aws.secretsmanager.Secret).options.protect).toBe(true);
    expect(withKeyQ.findOne(aws.secretsmanager.SecretVersion).options.protect).toBe(true);
    expect(withoutKeyQ.findOne(aws.secretsmanager.Secret).options.protect).toBe(false);
  });

  test("children are prefixed and parented", () => {
    for (const r of withKeyQ.all()) {
      expect(r.name.startsWith("prod-")).toBe(true);
      expect(["prod", "prod-anthropic-key"]).toContain(resources.parentOf(r)!.name);
    }
  });

  test("the read policy over outputs covers the real ARN and the CMK", async () => {
    const doc = JSON.parse(await outputOf(secretReadPolicy([withKey.anthropicKeyRef], [KEY])));
    expect(doc.Statement[0].Resource).toEqual([await outputOf(withKey.anthropicKeyRef.id)]);
    expect(doc.Statement[1].Resource).toEqual([KEY]);
  });

  test("an empty key is refused with what to do", () => {
    expect(() => new Secrets("bad", { anthropicApiKey: " " })).toThrow(pulumi.ResourceError);
    expect(() => new Secrets("bad", { anthropicApiKey: "" })).toThrow(/pulumi config set --secret/);
  });

  test("an invalid recovery window is refused", () => {
    expect(() => new Secrets("bad2", { recoveryWindowDays: 3 })).toThrow(/recoveryWindowDays is 3/);
  });
});
