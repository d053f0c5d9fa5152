import * as aws from "@pulumi/aws";
import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import {
  acceptsAwsTags,
  acceptsGcpLabels,
  awsAutoScalingGroupTags,
  awsTags,
  costAllocationTag,
  gcpLabelKey,
  gcpLabels,
  gcpLabelValue,
  registerStackTagging,
  type StackTags,
  validateStackTags,
  withLaunchedTags,
} from "../../components/tagging";
import { recordOf, renderInStack, setupPulumiMocks } from "../support/pulumi";

setupPulumiMocks({ stack: "prod" });

const TAGS: StackTags = {
  app: "agent",
  environment: "prod",
  owner: "Platform Team",
  costCenter: "CC/4711",
  stack: "agent-prod",
};

describe("pure functions", () => {
  test("AWS tags use stable keys", () => {
    expect(awsTags(TAGS)).toEqual({
      app: "agent",
      environment: "prod",
      owner: "Platform Team",
      "cost-center": "CC/4711",
      "pulumi-stack": "agent-prod",
    });
    expect(costAllocationTag(TAGS)).toEqual({ key: "pulumi-stack", value: "agent-prod" });
  });

  test("GCP labels are lowercased, restricted to [a-z0-9_-], at most 63", () => {
    expect(gcpLabels(TAGS)).toEqual({
      app: "agent",
      environment: "prod",
      owner: "platform_team",
      "cost-center": "cc_4711",
      "pulumi-stack": "agent-prod",
    });
    expect(gcpLabelValue("x".repeat(80))).toHaveLength(63);
    expect(gcpLabelValue("Ünïcode Team!")).toBe("n_code_team");
    expect(gcpLabelKey("9lives")).toBe("k_9lives");
    for (const v of Object.values(gcpLabels(TAGS))) expect(v).toMatch(/^[a-z0-9_-]{0,63}$/);
  });

  test("Auto Scaling Groups get the list shape, propagated to instances", () => {
    expect(awsAutoScalingGroupTags(TAGS)[0]).toEqual({
      key: "app",
      value: "agent",
      propagateAtLaunch: true,
    });
  });

  test("validation names the tag to fix", () => {
    expect(validateStackTags(TAGS)).toEqual([]);
    expect(validateStackTags({ ...TAGS, owner: " " })).toEqual([
      'tag "owner" is empty: set it in the stack config.',
    ]);
    expect(validateStackTags({ ...TAGS, costCenter: "a#b" }).join()).toMatch(
      /tag "costCenter" value "a#b" has characters AWS rejects/,
    );
    expect(validateStackTags({ ...TAGS, app: "---" }).join()).toMatch(
      /leaves nothing once made a GCP label/,
    );
  });

  test("the accepts-tags rule reads the SDK's input shape", () => {
    expect(acceptsAwsTags("aws:s3/bucket:Bucket", { tags: undefined, tagsAll: undefined })).toBe(
      true,
    );
    expect(acceptsAwsTags("aws:autoscaling/group:Group", { tags: undefined })).toBe(false);
    expect(acceptsAwsTags("aws:ec2/route:Route", { routeTableId: "x" })).toBe(false);
    expect(
      acceptsAwsTags("gcp:storage/bucket:Bucket", { tags: undefined, tagsAll: undefined }),
    ).toBe(false);
    expect(
      acceptsGcpLabels("gcp:storage/bucket:Bucket", {
        labels: undefined,
        effectiveLabels: undefined,
      }),
    ).toBe(true);
    expect(
      acceptsGcpLabels("gcp:monitoring/metricDescriptor:MetricDescriptor", { labels: [] }),
    ).toBe(false);
  });
});

describe("under mocks, only the stack transformation reaches resource inputs", () => {
  test("provider defaultTags are applied engine-side, so mocks never see them", async () => {
    const provider = new aws.Provider("tagged-provider", {
      region: "us-east-1",
      defaultTags: { tags: { app: "agent" } },
    });
    const bucket = new aws.s3.Bucket("plain-bucket", {}, { provider });
    expect((await recordOf(bucket)).inputs.tags).toBeUndefined();
  });

  test("the engine-side registerResourceTransform is refused by the mock runtime", () => {
    expect(() => pulumi.runtime.registerResourceTransform(() => undefined)).toThrow(
      /does not support transforms/,
    );
  });

  test("registerStackTagging needs the root stack (the CLI always has one)", () => {
    expect(() => registerStackTagging(TAGS)).toThrow(/root stack resource/);
  });
});

describe("the transformation", () => {
  const r: Record<string, pulumi.Resource> = {};

  beforeAll(async () => {
    await renderInStack(() => {
      expect(() => registerStackTagging({ ...TAGS, owner: "" })).toThrow(
        /Invalid stack tags:\n  tag "owner" is empty/,
      );
      registerStackTagging(TAGS);
      const vpc = new aws.ec2.Vpc("vpc", {
        cidrBlock: "10.0.0.0/16",
        tags: { Name: "main", app: "impostor" },
      });
      r.vpc = vpc;
      r.outputTags = new aws.s3.Bucket("bucket", { tags: pulumi.output({ Name: "logs" }) });
      r.route = new aws.ec2.Route("route", {
        routeTableId: "rtb-1",
        destinationCidrBlock: "0.0.0.0/0",
        gatewayId: "igw-1",
      });
      r.alias = new aws.kms.Alias("alias", { name: "alias/x", targetKeyId: "k" });
      r.asg = new aws.autoscaling.Group("asg", {
        maxSize: 1,
        minSize: 1,
        tags: [{ key: "Name", value: "web", propagateAtLaunch: true }],
      });
      r.explicitProvider = new aws.sqs.Queue(
        "queue",
        {},
        { provider: new aws.Provider("other", { region: "eu-west-1" }) },
      );
      r.read = aws.s3.Bucket.get("existing", "existing-bucket");
      r.gcsBucket = new gcp.storage.Bucket("gcs", { location: "EU", labels: { team: "x" } });
      r.metric = new gcp.monitoring.MetricDescriptor("metric", {
        type: "custom.googleapis.com/agent/requests",
        metricKind: "GAUGE",
        valueType: "INT64",
        displayName: "requests",
        description: "requests",
        labels: [{ key: "route", valueType: "STRING" }],
      });
      r.component = new (class extends pulumi.ComponentResource {
        constructor() {
          super("agent:test:Thing", "thing", {});
          this.registerOutputs({});
        }
      })();
    });
  });

  const inputs = async (key: string) => (await recordOf(r[key]!)).inputs;

  test("stack tags win over a resource's own values for the same keys; other own tags stay", async () => {
    expect((await inputs("vpc")).tags).toEqual({ Name: "main", ...awsTags(TAGS) });
  });

  test("tags given as an Output are merged too", async () => {
    expect((await inputs("outputTags")).tags).toEqual({ Name: "logs", ...awsTags(TAGS) });
  });

  test("resources that take no tag map get no tags input", async () => {
    expect((await inputs("route")).tags).toBeUndefined();
    expect((await inputs("alias")).tags).toBeUndefined();
    expect((await inputs("asg")).tags).toEqual([
      { key: "Name", value: "web", propagateAtLaunch: true },
    ]);
  });

  test("explicit providers do not escape it", async () => {
    expect((await inputs("explicitProvider")).tags).toEqual(awsTags(TAGS));
  });

  test("reads of existing resources are left alone", async () => {
    const read = await recordOf(r.read!);
    expect(read.read).toBe(true);
    expect(read.inputs.tags).toBeUndefined();
  });

  test("GCP resources get sanitized labels; label-descriptor lists are untouched", async () => {
    expect((await inputs("gcsBucket")).labels).toEqual({ team: "x", ...gcpLabels(TAGS) });
    expect((await inputs("metric")).labels).toEqual([{ key: "route", valueType: "STRING" }]);
  });

  test("component resources carry no inputs to tag", async () => {
    expect(await inputs("component")).toEqual({});
  });
});

describe("launch templates", () => {
  it("tag the instances and volumes they launch with the stack tags, keeping their own specifications", async () => {
    const stack = {
      app: "agent",
      environment: "prod",
      owner: "o",
      "cost-center": "c",
      "pulumi-stack": "agent-x",
    };
    const specs = await new Promise<unknown>((resolve) =>
      withLaunchedTags(
        [
          { resourceType: "network-interface", tags: { role: "eni" } },
          { resourceType: "instance", tags: { environment: "wrong" } },
        ],
        stack,
      ).apply(resolve),
    );
    expect(specs).toEqual([
      { resourceType: "network-interface", tags: { role: "eni", ...stack } },
      { resourceType: "instance", tags: stack },
      { resourceType: "volume", tags: stack },
    ]);
  });
});
