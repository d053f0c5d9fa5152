import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { checkPostgresArgs, PASSWORD_SPEC, Postgres } from "../../../components/aws/postgres";
import { awsSizing, type PostgresSizing } from "../../../components/aws/sizing";
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

const devSizing = awsSizing(environmentProfile("dev")).postgres;
const prodSizing = awsSizing(environmentProfile("prod")).postgres;
const base = { subnetIds: ["subnet-a", "subnet-b"], securityGroupId: "sg-pg" };

let dev: Postgres;
let prod: Postgres;
let devQ: ResourceQuery;
let prodQ: ResourceQuery;

beforeAll(async () => {
  dev = new Postgres("dev", { ...base, sizing: devSizing });
  prod = new Postgres("prod", {
    ...base,
    sizing: prodSizing,
    protect: true,
    databaseName: "agent_prod",
    username: "svc",
  });
  [devQ, prodQ] = await Promise.all([within(dev), within(prod)]);
});

describe("checkPostgresArgs", () => {
  test("the shipped sizings and defaults are valid", () => {
    for (const env of ["dev", "staging", "prod"] as const) {
      expect(
        checkPostgresArgs("agent", "agent", awsSizing(environmentProfile(env)).postgres),
      ).toEqual([]);
    }
  });

  test.each<[string, string, Partial<PostgresSizing>, RegExp]>([
    ["Agent", "agent", {}, /databaseName "Agent" must be lowercase/],
    ["agent", "rdsadmin", {}, /username "rdsadmin" is reserved/],
    ["agent", "pg_user", {}, /username "pg_user" is reserved/],
    ["agent", "agent", { engineVersion: "15.4" }, /is not PostgreSQL 16/],
    ["agent", "agent", { parameterGroupFamily: "postgres15" }, /must be "postgres16"/],
    ["agent", "agent", { allocatedStorageGb: 10 }, /allocatedStorageGb is 10: gp3 needs 20/],
    ["agent", "agent", { maxAllocatedStorageGb: 20 }, /must exceed allocatedStorageGb \(20\)/],
    ["agent", "agent", { backupRetentionDays: 0 }, /0 would disable backups/],
    ["agent", "agent", { instanceClass: "m7g.large" }, /not an RDS class/],
  ])("%s / %s / %j", (db, user, override, message) => {
    expect(checkPostgresArgs(db, user, { ...devSizing, ...override }).join(" ")).toMatch(message);
  });
});

describe("instance", () => {
  test("private, encrypted, PostgreSQL 16, gp3 with bounded autoscaling, in the given subnets and group", () => {
    for (const q of [devQ, prodQ]) {
      const db = q.findOne(aws.rds.Instance).inputs;
      expect(db).toMatchObject({
        engine: "postgres",
        engineVersion: "16",
        publiclyAccessible: false,
        storageEncrypted: true,
        storageType: "gp3",
        vpcSecurityGroupIds: ["sg-pg"],
        performanceInsightsEnabled: true,
        performanceInsightsRetentionPeriod: 7,
        allowMajorVersionUpgrade: false,
        autoMinorVersionUpgrade: true,
      });
      expect(db.maxAllocatedStorage!).toBeGreaterThan(db.allocatedStorage!);
      expect(q.findOne(aws.rds.SubnetGroup).inputs.subnetIds).toEqual(base.subnetIds);
      expect(db.dbSubnetGroupName).toBe(q.findOne(aws.rds.SubnetGroup).state.name);
      expect(db.parameterGroupName).toBe(q.findOne(aws.rds.ParameterGroup).state.name);
    }
  });

  test("the server requires TLS (rds.force_ssl=1) and logs slow statements", () => {
    const pg = devQ.findOne(aws.rds.ParameterGroup).inputs;
    expect(pg.family).toBe("postgres16");
    expect(pg.parameters).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: "rds.force_ssl", value: "1" }),
        expect.objectContaining({ name: "log_min_duration_statement", value: "1000" }),
      ]),
    );
    expect(dev.endpoint.requireTls).toBe(true);
  });

  test("dev: small, single-AZ, 1 day of backups, no deletion protection, no final snapshot", () => {
    expect(devQ.findOne(aws.rds.Instance).inputs).toMatchObject({
      instanceClass: "db.t4g.micro",
      allocatedStorage: 20,
      maxAllocatedStorage: 50,
      multiAz: false,
      backupRetentionPeriod: 1,
      deletionProtection: false,
      skipFinalSnapshot: true,
      deleteAutomatedBackups: true,
      applyImmediately: true,
    });
    expect(devQ.findOne(aws.rds.Instance).inputs.finalSnapshotIdentifier).toBeUndefined();
  });

  test("prod: Multi-AZ, 30 days of backups, deletion protection, a final snapshot, backups outlive the instance", () => {
    expect(prodQ.findOne(aws.rds.Instance).inputs).toMatchObject({
      instanceClass: "db.m7g.large",
      allocatedStorage: 100,
      maxAllocatedStorage: 500,
      multiAz: true,
      backupRetentionPeriod: 30,
      deletionProtection: true,
      skipFinalSnapshot: false,
      finalSnapshotIdentifier: expect.stringMatching(/^prod-test-final-[0-9a-f]{8}$/),
      deleteAutomatedBackups: false,
      applyImmediately: false,
      dbName: "agent_prod",
      username: "svc",
    });
  });

  test("backup and maintenance windows do not overlap", () => {
    const db = devQ.findOne(aws.rds.Instance).inputs;
    expect([db.backupWindow, db.maintenanceWindow]).toEqual(["03:00-04:00", "sun:04:30-sun:05:30"]);
  });
});

describe("password", () => {
  test("40 letters and digits, secret in every place it travels", async () => {
    expect(devQ.findOne(random.RandomPassword).inputs).toMatchObject(PASSWORD_SPEC);
    expect(await outputOf(dev.password.result)).toMatch(/^[A-Za-z0-9]{40}$/);
    expect(await isSecretOutput(dev.password.result)).toBe(true);
    expect(devQ.findOne(aws.rds.Instance).secretInputs.has("password")).toBe(true);
    const version = devQ.findOne(aws.secretsmanager.SecretVersion);
    expect(version.secretInputs.has("secretString")).toBe(true);
    expect(version.inputs.secretString).toBe(await outputOf(dev.password.result));
  });

  test("the endpoint carries a reference to the secret, never the value", async () => {
    const e = prod.endpoint;
    expect([e.database, e.user]).toEqual(["agent_prod", "svc"]);
    expect(await outputOf(e.host)).toMatch(/\.us-east-1\.rds\.amazonaws\.com$/);
    expect(await outputOf(e.port)).toBe(5432);
    expect(await outputOf(e.passwordSecret.id)).toMatch(/^arn:aws:secretsmanager:/);
  });
});

describe("protection", () => {
  test("prod protects instance, password and secret; dev nothing", () => {
    for (const cls of [
      aws.rds.Instance,
      random.RandomPassword,
      aws.secretsmanager.Secret,
      aws.secretsmanager.SecretVersion,
    ]) {
      expect(prodQ.findOne(cls).options.protect).toBe(true);
    }
    expect(devQ.all().filter((r) => r.options.protect)).toEqual([]);
  });

  test("children are prefixed and parented", () => {
    for (const r of prodQ.all()) {
      expect(r.name.startsWith("prod-")).toBe(true);
      expect(["prod", "prod-password"]).toContain(resources.parentOf(r)!.name);
    }
  });
});

describe("validation", () => {
  test("bad names throw a ResourceError naming the fix", () => {
    expect(
      () => new Postgres("bad", { ...base, sizing: devSizing, username: "rds_admin" }),
    ).toThrow(pulumi.ResourceError);
    expect(
      () => new Postgres("bad", { ...base, sizing: devSizing, username: "rds_admin" }),
    ).toThrow(/Postgres "bad": username "rds_admin" is reserved/);
  });

  test("storage autoscaling must have a ceiling above the start", () => {
    expect(
      () => new Postgres("bad2", { ...base, sizing: { ...devSizing, maxAllocatedStorageGb: 10 } }),
    ).toThrow(/maxAllocatedStorageGb \(10\)/);
  });

  test("an invalid slow-query threshold is refused", () => {
    expect(
      () => new Postgres("bad3", { ...base, sizing: devSizing, logMinDurationStatementMs: -5 }),
    ).toThrow(/logMinDurationStatementMs is -5/);
  });
});
