/**
 * The composed AWS data plane, rendered once for dev and once for prod inside a real stack (so
 * the stack-wide tagging transformation applies, as in `pulumi up`).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as aws from "@pulumi/aws";
import * as random from "@pulumi/random";
import { AwsDataPlane } from "../../../components/aws/data-plane";
import { awsSizing } from "../../../components/aws/sizing";
import { environmentProfile } from "../../../components/environment";
import {
  awsTags,
  costAllocationTag,
  registerStackTagging,
  type StackTags,
} from "../../../components/tagging";
import {
  isSecretOutput,
  outputOf,
  type RecordedResource,
  renderInStack,
  resources,
  type ResourceQuery,
  setupPulumiMocks,
  within,
} from "../../support/pulumi";

setupPulumiMocks({ stack: "dev" });

const TAGS: StackTags = {
  app: "agent",
  environment: "dev",
  owner: "platform",
  costCenter: "cc-42",
  stack: "agent-dev",
};

let dev: AwsDataPlane;
let prod: AwsDataPlane;
let devQ: ResourceQuery;
let prodQ: ResourceQuery;

beforeAll(async () => {
  await renderInStack(() => {
    registerStackTagging(TAGS);
    dev = new AwsDataPlane("dev", {
      environment: "dev",
      region: "us-east-1",
      costAllocationTag: costAllocationTag(TAGS),
      alertEmails: ["oncall@example.com"],
    });
    prod = new AwsDataPlane("prod", {
      environment: "prod",
      region: "us-east-1",
      costAllocationTag: { key: "pulumi-stack", value: "agent-prod" },
      anthropicApiKey: "sk-ant-test-key",
      alertEmails: ["oncall@example.com", "lead@example.com"],
    });
  });
  devQ = await within(dev);
  prodQ = await within(prod);
});

/** The SDK's own declaration is the oracle for "accepts tags": a `tagsAll` output property. */
function sdkDeclaresTagsAll(type: string): boolean {
  const [, mod, rest] = /^aws:([^/]+)\/([^:]+):/.exec(type) ?? [];
  const file = path.join(
    __dirname,
    "../../../node_modules/@pulumi/aws",
    mod === "index" ? "" : mod!,
    `${rest}.d.ts`,
  );
  return fs.readFileSync(file, "utf8").includes("readonly tagsAll:");
}

describe("resources per environment", () => {
  test("dev: 2 AZs, one NAT, single-node Redis, single-AZ Postgres, no flow logs", () => {
    expect(devQ.count(aws.ec2.Subnet)).toBe(4);
    expect(devQ.count(aws.ec2.NatGateway)).toBe(1);
    expect(devQ.count(aws.ec2.FlowLog)).toBe(0);
    expect(devQ.findOne(aws.elasticache.ReplicationGroup).inputs.numCacheClusters).toBe(1);
    expect(devQ.findOne(aws.rds.Instance).inputs.multiAz).toBe(false);
    expect(devQ.count(aws.cloudwatch.MetricAlarm)).toBe(5); // 2 Redis (1 node) + 3 RDS
  });

  test("prod: 3 AZs, NAT per AZ, Redis with a replica across AZs, Multi-AZ Postgres, flow logs", () => {
    expect(prodQ.count(aws.ec2.Subnet)).toBe(6);
    expect(prodQ.count(aws.ec2.NatGateway)).toBe(3);
    expect(prodQ.count(aws.ec2.FlowLog)).toBe(1);
    const rg = prodQ.findOne(aws.elasticache.ReplicationGroup).inputs;
    expect([rg.numCacheClusters, rg.automaticFailoverEnabled, rg.multiAzEnabled]).toEqual([
      2,
      true,
      true,
    ]);
    expect(prodQ.findOne(aws.rds.Instance).inputs.multiAz).toBe(true);
    expect(prodQ.count(aws.cloudwatch.MetricAlarm)).toBe(7);
  });

  // The resource inventory the README documents; a change here is a change in cost or risk.
  const common = {
    "aws:budgets/budget:Budget": 1,
    "aws:cloudwatch/dashboard:Dashboard": 1,
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": 1,
    "aws:ec2/internetGateway:InternetGateway": 1,
    "aws:ec2/securityGroup:SecurityGroup": 3,
    "aws:ec2/vpc:Vpc": 1,
    "aws:ec2/vpcEndpoint:VpcEndpoint": 1,
    "aws:elasticache/parameterGroup:ParameterGroup": 1,
    "aws:elasticache/replicationGroup:ReplicationGroup": 1,
    "aws:elasticache/subnetGroup:SubnetGroup": 1,
    "aws:kms/alias:Alias": 1,
    "aws:kms/key:Key": 1,
    "aws:rds/instance:Instance": 1,
    "aws:rds/parameterGroup:ParameterGroup": 1,
    "aws:rds/subnetGroup:SubnetGroup": 1,
    "aws:secretsmanager/secret:Secret": 3,
    "aws:sns/topic:Topic": 1,
    "aws:sns/topicPolicy:TopicPolicy": 1,
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": 3,
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": 2,
    "random:index/randomPassword:RandomPassword": 2,
  };
  const customCounts = (q: ResourceQuery) =>
    Object.fromEntries(Object.entries(q.countsByType()).filter(([t]) => !t.startsWith("agent:")));

  test("dev inventory", () => {
    expect(customCounts(devQ)).toEqual({
      ...common,
      "aws:cloudwatch/logGroup:LogGroup": 1,
      "aws:cloudwatch/metricAlarm:MetricAlarm": 5,
      "aws:ec2/eip:Eip": 1,
      "aws:ec2/natGateway:NatGateway": 1,
      "aws:ec2/route:Route": 2,
      "aws:ec2/routeTable:RouteTable": 2,
      "aws:ec2/routeTableAssociation:RouteTableAssociation": 4,
      "aws:ec2/subnet:Subnet": 4,
      "aws:secretsmanager/secretVersion:SecretVersion": 2,
      "aws:sns/topicSubscription:TopicSubscription": 1,
    });
  });

  test("prod inventory", () => {
    expect(customCounts(prodQ)).toEqual({
      ...common,
      "aws:cloudwatch/logGroup:LogGroup": 2,
      "aws:cloudwatch/metricAlarm:MetricAlarm": 7,
      "aws:ec2/eip:Eip": 3,
      "aws:ec2/flowLog:FlowLog": 1,
      "aws:ec2/natGateway:NatGateway": 3,
      "aws:ec2/route:Route": 4,
      "aws:ec2/routeTable:RouteTable": 4,
      "aws:ec2/routeTableAssociation:RouteTableAssociation": 6,
      "aws:ec2/subnet:Subnet": 6,
      "aws:iam/role:Role": 1,
      "aws:iam/rolePolicy:RolePolicy": 1,
      "aws:secretsmanager/secretVersion:SecretVersion": 3,
      "aws:sns/topicSubscription:TopicSubscription": 2,
      // The final snapshot's unique suffix.
      "random:index/randomId:RandomId": 1,
    });
  });
});

describe("protection", () => {
  const stateful = [
    aws.rds.Instance,
    aws.elasticache.ReplicationGroup,
    aws.secretsmanager.Secret,
    random.RandomPassword,
  ];

  test("prod protects every stateful resource and turns on deletion protection", () => {
    for (const cls of stateful) {
      for (const r of prodQ.findByType(cls))
        expect({ name: r.name, protect: r.options.protect }).toEqual({
          name: r.name,
          protect: true,
        });
    }
    const db = prodQ.findOne(aws.rds.Instance).inputs;
    expect(db.deletionProtection).toBe(true);
    expect(db.skipFinalSnapshot).toBe(false);
    // Unique per account and region beyond the stack's life: stack name plus a random suffix.
    expect(db.finalSnapshotIdentifier).toMatch(/^prod-pg-dev-final-[0-9a-f]{8}$/);
    expect(db.backupRetentionPeriod).toBe(30);
  });

  test("dev protects nothing, so the stack can be torn down", () => {
    expect(
      devQ
        .all()
        .filter((r) => r.options.protect)
        .map((r) => r.name),
    ).toEqual([]);
    expect(devQ.findOne(aws.rds.Instance).inputs.deletionProtection).toBe(false);
  });
});

describe("privacy and encryption", () => {
  test.each([
    ["dev", () => devQ],
    ["prod", () => prodQ],
  ])("%s: stores encrypted, private, TLS-only", (_env, q) => {
    const db = q().findOne(aws.rds.Instance).inputs;
    expect(db.publiclyAccessible).toBe(false);
    expect(db.storageEncrypted).toBe(true);
    const rg = q().findOne(aws.elasticache.ReplicationGroup).inputs;
    expect([
      rg.atRestEncryptionEnabled,
      rg.transitEncryptionEnabled,
      rg.transitEncryptionMode,
    ]).toEqual([true, true, "required"]);
    expect(q().findOne(aws.rds.ParameterGroup).inputs.parameters).toContainEqual(
      expect.objectContaining({ name: "rds.force_ssl", value: "1" }),
    );
    for (const s of q().findByType(aws.ec2.Subnet))
      expect(s.inputs.mapPublicIpOnLaunch).toBe(false);
    for (const rule of q().findByType(aws.vpc.SecurityGroupIngressRule))
      expect(rule.inputs.cidrIpv4).toBeUndefined();
    expect(q().findOne(aws.sns.Topic).inputs.kmsMasterKeyId).toBeDefined();
  });

  test("the stores' groups admit only the compute group, on their own port", async () => {
    const net = dev.network;
    const [computeSg, redisSg, pgSg] = await Promise.all(
      [net.computeSecurityGroup.id, net.redisSecurityGroup.id, net.postgresSecurityGroup.id].map(
        (o) => outputOf(o),
      ),
    );
    const ingress = devQ.findByType(aws.vpc.SecurityGroupIngressRule).map((r) => r.inputs);
    expect(ingress).toHaveLength(2);
    expect(ingress).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          securityGroupId: redisSg,
          referencedSecurityGroupId: computeSg,
          fromPort: 6379,
          toPort: 6379,
        }),
        expect.objectContaining({
          securityGroupId: pgSg,
          referencedSecurityGroupId: computeSg,
          fromPort: 5432,
          toPort: 5432,
        }),
      ]),
    );
    expect(devQ.findOne(aws.elasticache.ReplicationGroup).inputs.securityGroupIds).toEqual([
      redisSg,
    ]);
    expect(devQ.findOne(aws.rds.Instance).inputs.vpcSecurityGroupIds).toEqual([pgSg]);
  });
});

describe("secrets", () => {
  test("every generated credential and stored value is secret; inputs carrying them are secret", async () => {
    for (const q of [devQ, prodQ]) {
      for (const v of q.findByType(aws.secretsmanager.SecretVersion))
        expect(v.secretInputs.has("secretString")).toBe(true);
      expect(q.findOne(aws.elasticache.ReplicationGroup).secretInputs.has("authToken")).toBe(true);
      expect(q.findOne(aws.rds.Instance).secretInputs.has("password")).toBe(true);
    }
    expect(await isSecretOutput(prod.redis.authToken.result)).toBe(true);
    expect(await isSecretOutput(prod.postgres.password.result)).toBe(true);
    expect(await isSecretOutput(prod.secrets!.anthropicKey.version!.secretString)).toBe(true);
  });

  test("dev without an API key creates the key's secret empty (value set out of band)", () => {
    expect(dev.secrets!.anthropicKey.version).toBeUndefined();
    expect(devQ.count(aws.secretsmanager.SecretVersion)).toBe(2);
  });
});

describe("outputs (the contract)", () => {
  test("endpoints, secret refs and network attachment resolve", async () => {
    const o = prod.outputs;
    expect([o.cloud, o.environment, o.region, o.redis.tls, o.postgres.requireTls]).toEqual([
      "aws",
      "prod",
      "us-east-1",
      true,
      true,
    ]);
    expect(await outputOf(o.redis.host)).toMatch(/\.cache\.amazonaws\.com$/);
    expect(await outputOf(o.redis.port)).toBe(6379);
    expect(await outputOf(o.postgres.host)).toMatch(/\.rds\.amazonaws\.com$/);
    expect(await outputOf(o.postgres.port)).toBe(5432);
    expect([o.postgres.database, o.postgres.user]).toEqual(["agent", "agent"]);
    const ids = await Promise.all(o.secrets.map((s) => outputOf(s.id)));
    expect(new Set(ids).size).toBe(3);
    for (const id of ids) expect(id).toMatch(/^arn:aws:secretsmanager:us-east-1:\d{12}:secret:/);
    expect(await outputOf(o.anthropicKey!.id)).toBe(ids[0]);
    if (o.network.cloud !== "aws") throw new Error("expected an AWS attachment");
    expect(await outputOf(o.network.privateSubnetIds)).toHaveLength(3);
    expect(await outputOf(o.network.availabilityZones)).toEqual([
      "us-east-1a",
      "us-east-1b",
      "us-east-1c",
    ]);
    expect(o.network.hasNat).toBe(true);
    expect(await outputOf(o.monitoring.alarmTopicArn!)).toMatch(/^arn:aws:sns:/);
    expect(await outputOf(o.monitoring.dashboardUrl)).toContain(
      "#dashboards/dashboard/agent-dev-prod-mon",
    );
  });

  test("Redis and Postgres sit in the private subnets", async () => {
    const privateIds = await outputOf(dev.network.privateSubnetIds);
    expect(devQ.findOne(aws.elasticache.SubnetGroup).inputs.subnetIds).toEqual(privateIds);
    expect(devQ.findOne(aws.rds.SubnetGroup).inputs.subnetIds).toEqual(privateIds);
  });

  test("the budget counts this stack's tag and alerts e-mail and the alarm topic", async () => {
    const b = devQ.findOne(aws.budgets.Budget).inputs;
    expect(b.costFilters).toEqual([
      { name: "TagKeyValue", values: ["user:pulumi-stack$agent-dev"] },
    ]);
    expect(b.limitAmount).toBe("200.00");
    const topic = await outputOf(dev.monitoring.alarmTopicArn);
    for (const n of b.notifications ?? []) {
      expect(n.subscriberSnsTopicArns).toEqual([topic]);
      expect(n.subscriberEmailAddresses).toEqual(["oncall@example.com"]);
    }
  });
});

describe("structure", () => {
  test("every resource is named after, and parented within, its data plane", () => {
    for (const [name, q] of [
      ["dev", devQ],
      ["prod", prodQ],
    ] as const) {
      for (const r of q.all()) expect(r.name.startsWith(`${name}-`)).toBe(true);
    }
    const top = devQ.all().filter((r) => resources.parentOf(r)?.type === "agent:aws:DataPlane");
    expect(top.map((r) => r.type).sort()).toEqual([
      "agent:aws:Budget",
      "agent:aws:Monitoring",
      "agent:aws:Network",
      "agent:aws:Postgres",
      "agent:aws:Redis",
      "agent:aws:Secrets",
    ]);
  });

  test("sizing comes from the environment's profile", () => {
    expect(prod.sizing).toEqual(awsSizing(environmentProfile("prod")));
  });
});

describe("stack-wide tags", () => {
  const expected = awsTags(TAGS);

  test("every AWS resource that accepts tags carries the stack's, and no other gets a tags input", () => {
    const awsResources = resources
      .all()
      .filter((r): r is RecordedResource => r.custom && r.type.startsWith("aws:"));
    expect(awsResources.length).toBeGreaterThan(100);
    for (const r of awsResources) {
      if (sdkDeclaresTagsAll(r.type)) {
        expect({ r: r.name, tags: r.inputs.tags }).toEqual({
          r: r.name,
          tags: expect.objectContaining(expected),
        });
      } else {
        expect({ r: r.name, tags: r.inputs.tags }).toEqual({ r: r.name, tags: undefined });
      }
    }
  });

  test("a component's own tags survive next to the stack's", () => {
    expect(devQ.findOne(aws.ec2.Vpc).inputs.tags).toEqual({ ...expected, Name: "dev-net-vpc" });
  });
});

describe("validation", () => {
  test("a region typo is refused before anything is created", () => {
    expect(
      () =>
        new AwsDataPlane("bad", {
          environment: "dev",
          region: "us-east1",
          costAllocationTag: { key: "k", value: "v" },
        }),
    ).toThrow(/region "us-east1" is not an AWS region name/);
  });

  test("a profile for another environment is refused", () => {
    expect(
      () =>
        new AwsDataPlane("bad2", {
          environment: "prod",
          region: "us-east-1",
          costAllocationTag: { key: "k", value: "v" },
          profile: environmentProfile("dev"),
        }),
    ).toThrow(/profile is for "dev" but environment is "prod"/);
  });
});
