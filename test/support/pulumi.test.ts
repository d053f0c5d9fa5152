/**
 * The harness is what every infrastructure test trusts, so it gets tests of its own: options
 * reach the records, secrets behave as under the engine, unmocked invokes fail loudly.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import {
  findByType,
  findOne,
  invocationsOf,
  isSecretOutput,
  outputOf,
  parentOf,
  recordOf,
  registerComputedOutputs,
  renderInStack,
  resetHarness,
  resourceCount,
  resources,
  setupPulumiMocks,
  within,
} from "./pulumi";

setupPulumiMocks({ stack: "dev", config: { target: "lambda" } });

class Holder extends pulumi.ComponentResource {
  readonly bucket: aws.s3.Bucket;
  readonly password: random.RandomPassword;
  constructor(name: string, opts?: pulumi.ComponentResourceOptions) {
    super("agent:test:Holder", name, {}, opts);
    this.bucket = new aws.s3.Bucket(
      `${name}-bucket`,
      { bucketPrefix: pulumi.secret("p") },
      { parent: this, protect: true, retainOnDelete: true },
    );
    this.password = new random.RandomPassword(
      `${name}-pw`,
      { length: 20, special: false },
      { parent: this },
    );
    this.registerOutputs({});
  }
}

let holder: Holder;
let other: Holder;
let zones: string[];
let caught: unknown;

beforeAll(async () => {
  registerComputedOutputs("agent:test:Unused", () => ({}));
  await renderInStack(async () => {
    holder = new Holder("h");
    other = new Holder("o");
    zones = await outputOf(aws.getAvailabilityZonesOutput({ state: "available" }).names);
    try {
      await aws.ec2.getAmi({ owners: ["amazon"], mostRecent: true });
    } catch (e) {
      caught = e;
    }
  });
});

test("records options the mocks API does not expose", async () => {
  const bucket = await recordOf(holder.bucket);
  expect(bucket.options.protect).toBe(true);
  expect(bucket.options.retainOnDelete).toBe(true);
  const pw = await recordOf(holder.password);
  expect(pw.options.protect).toBe(false);
});

test("parents, urns and scoping by component", async () => {
  const h = await within(holder);
  expect(h.count()).toBe(2);
  const bucket = h.findOne(aws.s3.Bucket, "h-bucket");
  expect(resources.parentOf(bucket)?.type).toBe("agent:test:Holder");
  expect(resources.parentOf(resources.parentOf(bucket)!)?.type).toBe("pulumi:pulumi:Stack");
  // Same shape as the mock monitor (and the engine): only the parent's own type is prefixed.
  expect(bucket.urn).toBe(
    "urn:pulumi:dev::agent::agent:test:Holder$aws:s3/bucket:Bucket::h-bucket",
  );
  expect(resources.findByType(aws.s3.Bucket)).toHaveLength(2);
  expect(() => resources.findOne(aws.s3.Bucket, "bucket")).toThrow(
    /expected exactly 1 match, found 2/,
  );
  expect((await within(other)).findOne(aws.s3.Bucket).name).toBe("o-bucket");
});

test("secret inputs are unwrapped but flagged", async () => {
  const bucket = await recordOf(holder.bucket);
  expect(bucket.inputs.bucketPrefix).toBe("p");
  expect(bucket.secretInputs.has("bucketPrefix")).toBe(true);
  expect(await isSecretOutput(holder.bucket.bucketPrefix)).toBe(true);
  expect(await isSecretOutput(holder.bucket.arn)).toBe(false);
});

test("additionalSecretOutputs make computed outputs secret, as the engine does", async () => {
  expect(await isSecretOutput(holder.password.result)).toBe(true);
  const value = await outputOf(holder.password.result);
  expect(value).toMatch(/^[A-Za-z0-9]{20}$/);
});

test("computed outputs are realistic", async () => {
  expect(await outputOf(holder.bucket.arn)).toMatch(/^arn:aws:s3:::p-[0-9a-f]{8}$/);
});

test("mocked invokes answer and are recorded; unmocked ones throw naming the token", () => {
  expect(zones).toEqual(["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"]);
  expect(
    invocationsOf("aws:index/getAvailabilityZones:getAvailabilityZones")[0]?.inputs.state,
  ).toBe("available");
  expect(String(caught)).toContain('Unmocked invoke "aws:ec2/getAmi:getAmi"');
});

test("config is set under the project namespace", () => {
  expect(new pulumi.Config("agent").require("target")).toBe("lambda");
  expect(new pulumi.Config("aws").require("region")).toBe("us-east-1");
});

test("top-level helpers query the whole program", () => {
  expect(
    findByType(aws.s3.Bucket)
      .map((b) => b.name)
      .sort(),
  ).toEqual(["h-bucket", "o-bucket"]);
  expect(parentOf(findOne(aws.s3.Bucket, "o-"))?.name).toBe("o");
  expect(resourceCount(random.RandomPassword)).toBe(2);
  expect(resourceCount("agent:test:Holder")).toBe(2);
});

// Last: it forgets everything recorded so far.
test("resetHarness forgets recorded resources and invocations", () => {
  expect(resourceCount()).toBeGreaterThan(0);
  resetHarness();
  expect(resourceCount()).toBe(0);
  expect(invocationsOf()).toEqual([]);
});
