import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { AUTH_TOKEN_SPEC, checkRedisSizing, Redis } from "../../../components/aws/redis";
import { awsSizing, type RedisSizing } from "../../../components/aws/sizing";
import { environmentProfile } from "../../../components/environment";
import {
  isSecretOutput,
  outputOf,
  resources,
  type ResourceQuery,
  setupPulumiMocks,
  within,
} from "../../support/pulumi";

setupPulumiMocks({ stack: "test" });

const devSizing = awsSizing(environmentProfile("dev")).redis;
const prodSizing = awsSizing(environmentProfile("prod")).redis;
const base = { subnetIds: ["subnet-a", "subnet-b", "subnet-c"], securityGroupId: "sg-redis" };

let dev: Redis;
let prod: Redis;
let devQ: ResourceQuery;
let prodQ: ResourceQuery;

beforeAll(async () => {
  dev = new Redis("dev", { ...base, sizing: devSizing });
  prod = new Redis("prod", {
    ...base,
    sizing: prodSizing,
    protect: true,
    kmsKeyArn: "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
  });
  [devQ, prodQ] = await Promise.all([within(dev), within(prod)]);
});

describe("checkRedisSizing", () => {
  test("the shipped sizings are valid", () => {
    for (const env of ["dev", "staging", "prod"] as const)
      expect(checkRedisSizing(awsSizing(environmentProfile(env)).redis)).toEqual([]);
  });

  test.each<[Partial<RedisSizing>, RegExp]>([
    [
      { automaticFailover: true, multiAz: false, numCacheClusters: 1 },
      /automaticFailover needs a replica/,
    ],
    [{ multiAz: true, automaticFailover: false }, /multiAz requires automaticFailover/],
    [{ numCacheClusters: 7 }, /numCacheClusters is 7/],
    [{ nodeType: "t4g.micro" }, /not an ElastiCache node type/],
    [{ parameterGroupFamily: "redis7" }, /does not match engine "valkey"/],
    [{ snapshotRetentionDays: 40 }, /snapshotRetentionDays is 40/],
  ])("%j", (override, message) => {
    expect(checkRedisSizing({ ...devSizing, ...override }).join(" ")).toMatch(message);
  });
});

describe("replication group", () => {
  test("TLS required, encrypted at rest, AUTH token set, in the given subnets and group", () => {
    for (const q of [devQ, prodQ]) {
      const rg = q.findOne(aws.elasticache.ReplicationGroup).inputs;
      expect(rg).toMatchObject({
        transitEncryptionEnabled: true,
        transitEncryptionMode: "required",
        atRestEncryptionEnabled: true,
        securityGroupIds: ["sg-redis"],
        engine: "valkey",
        engineVersion: "8.0",
        port: 6379,
      });
      expect(typeof rg.authToken).toBe("string");
      expect(q.findOne(aws.elasticache.SubnetGroup).inputs.subnetIds).toEqual(base.subnetIds);
      expect(rg.subnetGroupName).toMatch(/-subnets-[0-9a-f]{7}$/);
      expect(rg.subnetGroupName).toBe(q.findOne(aws.elasticache.SubnetGroup).state.name);
      expect(rg.parameterGroupName).toBe(q.findOne(aws.elasticache.ParameterGroup).state.name);
    }
  });

  test("dev: one small node, no failover, no snapshots, changes applied at once", () => {
    expect(devQ.findOne(aws.elasticache.ReplicationGroup).inputs).toMatchObject({
      nodeType: "cache.t4g.micro",
      numCacheClusters: 1,
      automaticFailoverEnabled: false,
      multiAzEnabled: false,
      snapshotRetentionLimit: 0,
      applyImmediately: true,
    });
    expect(devQ.findOne(aws.elasticache.ReplicationGroup).inputs.snapshotWindow).toBeUndefined();
  });

  test("prod: primary and replica across AZs with failover, daily snapshots kept 7 days, CMK", () => {
    expect(prodQ.findOne(aws.elasticache.ReplicationGroup).inputs).toMatchObject({
      nodeType: "cache.m7g.large",
      numCacheClusters: 2,
      automaticFailoverEnabled: true,
      multiAzEnabled: true,
      snapshotRetentionLimit: 7,
      snapshotWindow: "03:00-04:00",
      applyImmediately: false,
      kmsKeyId: "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    });
  });

  test("eviction never touches keys without a TTL (budget ledgers)", () => {
    const pg = devQ.findOne(aws.elasticache.ParameterGroup).inputs;
    expect(pg.family).toBe("valkey8");
    expect(pg.parameters).toEqual([{ name: "maxmemory-policy", value: "volatile-lru" }]);
  });
});

describe("AUTH token", () => {
  test("letters and digits only, 64 long: nothing ElastiCache or a URL would reject", async () => {
    expect(devQ.findOne(random.RandomPassword).inputs).toMatchObject(AUTH_TOKEN_SPEC);
    expect(await outputOf(dev.authToken.result)).toMatch(/^[A-Za-z0-9]{64}$/);
  });

  test("the token is secret everywhere it travels, and stored as the secret's value", async () => {
    expect(await isSecretOutput(dev.authToken.result)).toBe(true);
    expect(devQ.findOne(aws.elasticache.ReplicationGroup).secretInputs.has("authToken")).toBe(true);
    const version = devQ.findOne(aws.secretsmanager.SecretVersion);
    expect(version.secretInputs.has("secretString")).toBe(true);
    expect(version.inputs.secretString).toBe(await outputOf(dev.authToken.result));
    expect(version.inputs.secretId).toBe(await outputOf(dev.authSecret.secret.id));
  });
});

describe("outputs", () => {
  test("the endpoint targets consume: primary endpoint, port, TLS and the secret ref", async () => {
    const e = prod.endpoint;
    expect(await outputOf(e.host)).toMatch(/^master\..+\.cache\.amazonaws\.com$/);
    expect(await outputOf(e.port)).toBe(6379);
    expect(e.tls).toBe(true);
    expect(e.authSecret.store).toBe("aws-secretsmanager");
    expect(e.authSecret.version).toBe("AWSCURRENT");
    expect(await outputOf(e.authSecret.id)).toMatch(
      /^arn:aws:secretsmanager:.*:secret:prod-auth-secret/,
    );
    expect(await isSecretOutput(e.host)).toBe(false);
  });
});

describe("protection", () => {
  test("prod protects the group, the token and its secret; dev protects nothing", () => {
    const stateful = (q: ResourceQuery) =>
      [
        aws.elasticache.ReplicationGroup,
        random.RandomPassword,
        aws.secretsmanager.Secret,
        aws.secretsmanager.SecretVersion,
      ].map((cls) => q.findOne(cls).options.protect);
    expect(stateful(prodQ)).toEqual([true, true, true, true]);
    expect(devQ.all().some((r) => r.options.protect)).toBe(false);
  });

  test("children are prefixed and parented to the component (secrets via their own component)", () => {
    for (const r of devQ.all()) {
      expect(r.name.startsWith("dev-")).toBe(true);
      const parent = resources.parentOf(r)!;
      expect(["dev", "dev-auth"]).toContain(parent.name);
    }
  });
});

describe("validation", () => {
  test("a name too long for ElastiCache's 40 characters says how long it may be", () => {
    expect(
      () => new Redis("a-very-long-component-name-here", { ...base, sizing: devSizing }),
    ).toThrow(
      /is 37 characters; with Pulumi's random suffix it must be at most 32: shorten the component name/,
    );
  });

  test("upper-case names are refused (ElastiCache ids are lowercase)", () => {
    expect(() => new Redis("Cache", { ...base, sizing: devSizing })).toThrow(pulumi.ResourceError);
  });

  test("an inconsistent sizing is refused with the fix", () => {
    expect(() => new Redis("bad", { ...base, sizing: { ...devSizing, multiAz: true } })).toThrow(
      /Redis "bad": multiAz requires automaticFailover/,
    );
  });
});
