/** Redis and Postgres components: settings functions, custom names, and argument validation. */
import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { outputOf, setupPulumiMocks, within } from "../../support/pulumi";
import "../../support/pulumi-gcp-outputs";
import { environmentProfile } from "../../../components/environment";
import { gcpSizing } from "../../../components/gcp/sizing";
import {
  GcpRedis,
  redisInstanceSettings,
  validateRedisArgs,
  type GcpRedisArgs,
} from "../../../components/gcp/redis";
import {
  GcpPostgres,
  postgresDatabaseFlags,
  postgresSettings,
  validatePostgresArgs,
  type GcpPostgresArgs,
} from "../../../components/gcp/postgres";

setupPulumiMocks({ stack: "test", region: "us-central1" });

class Peering extends pulumi.ComponentResource {
  constructor() {
    super("agent:test:Peering", "peering", {});
    this.registerOutputs({});
  }
}

const prod = gcpSizing(environmentProfile("prod"));
const dev = gcpSizing(environmentProfile("dev"));
let peering: Peering;

function redisArgs(over: Partial<GcpRedisArgs> = {}): GcpRedisArgs {
  return {
    project: "agent-dev-1",
    region: "us-central1",
    sizing: dev.redis,
    networkId: "projects/agent-dev-1/global/networks/vpc",
    privateServiceRangeName: "psa-range",
    privateServiceConnection: peering,
    secretReplication: { kind: "automatic" },
    ...over,
  };
}

function postgresArgs(over: Partial<GcpPostgresArgs> = {}): GcpPostgresArgs {
  return {
    project: "agent-dev-1",
    region: "us-central1",
    sizing: dev.postgres,
    networkId: "projects/agent-dev-1/global/networks/vpc",
    privateServiceRangeName: "psa-range",
    privateServiceConnection: peering,
    secretReplication: { kind: "automatic" },
    ...over,
  };
}

beforeAll(() => {
  peering = new Peering();
});

describe("redis", () => {
  test("settings: security on whatever the sizing; protection follows the flag", () => {
    for (const [sizing, protect] of [
      [dev.redis, false],
      [prod.redis, true],
    ] as const) {
      const s = redisInstanceSettings(sizing, protect);
      expect(s).toMatchObject({
        authEnabled: true,
        transitEncryptionMode: "SERVER_AUTHENTICATION",
        connectMode: "PRIVATE_SERVICE_ACCESS",
        redisVersion: "REDIS_7_2",
        deletionProtection: protect,
      });
      expect(s.redisConfigs["maxmemory-policy"]).toBe("volatile-lru");
    }
  });

  test("the instance takes its range from the PSA allocation and stores its AUTH string", async () => {
    const r = new GcpRedis("cache", redisArgs());
    const q = await within(r);
    expect(q.findOne(gcp.redis.Instance).inputs).toMatchObject({
      reservedIpRange: "psa-range",
      authorizedNetwork: "projects/agent-dev-1/global/networks/vpc",
    });
    expect(q.findOne(gcp.secretmanager.SecretVersion).inputs.secretData).toBe(
      await outputOf(r.authString),
    );
    expect(await outputOf(r.endpoint.host)).toBe("10.64.0.4");
  });

  test.each([
    [
      { sizing: { tier: "BASIC" as const, memorySizeGb: 0.5 } },
      /memorySizeGb 0.5 must be a whole number of GB between 1 and 300/,
    ],
    [
      { sizing: { tier: "STANDARD" as never, memorySizeGb: 1 } },
      /tier "STANDARD" must be BASIC or STANDARD_HA/,
    ],
    [{ project: "x" }, /project "x" is not a GCP project id/],
  ])("validation: %j", (over, message) => {
    expect(validateRedisArgs("cache", redisArgs(over))).toMatch(message);
  });

  test("a component name too long for Memorystore's 40 characters throws a ResourceError", () => {
    expect(() => new GcpRedis("agent-production-cache-eu", redisArgs())).toThrow(
      pulumi.ResourceError,
    );
    expect(() => new GcpRedis("agent-production-cache-eu2", redisArgs())).toThrow(
      /shorten the component name/,
    );
  });
});

describe("postgres", () => {
  test("settings: backups on, autoresize capped, insights on, flags that surface slow queries", () => {
    const s = postgresSettings(prod.postgres, true);
    expect(s).toMatchObject({
      availabilityType: "REGIONAL",
      diskAutoresize: true,
      diskAutoresizeLimit: 500,
      deletionProtectionEnabled: true,
      backupConfiguration: { enabled: true, pointInTimeRecoveryEnabled: true },
      insightsConfig: { queryInsightsEnabled: true },
    });
    expect(
      postgresSettings(dev.postgres, false).backupConfiguration.transactionLogRetentionDays,
    ).toBeUndefined();
    expect(postgresDatabaseFlags(prod.postgres).map((f) => f.name)).toEqual([
      "log_min_duration_statement",
      "log_lock_waits",
      "log_temp_files",
      "log_checkpoints",
      "idle_in_transaction_session_timeout",
    ]);
  });

  test("custom database and user names; the user is abandoned on destroy (Postgres roles own objects)", async () => {
    const p = new GcpPostgres(
      "db",
      postgresArgs({ databaseName: "agent_store", userName: "svc_agent" }),
    );
    const q = await within(p);
    expect(q.findOne(gcp.sql.Database).inputs.name).toBe("agent_store");
    expect(q.findOne(gcp.sql.User).inputs).toMatchObject({
      name: "svc_agent",
      type: "BUILT_IN",
      deletionPolicy: "ABANDON",
    });
    expect(p.endpoint).toMatchObject({
      database: "agent_store",
      user: "svc_agent",
      requireTls: true,
    });
    expect(q.findOne(gcp.sql.DatabaseInstance).inputs.settings!.ipConfiguration).toEqual({
      ipv4Enabled: false,
      privateNetwork: "projects/agent-dev-1/global/networks/vpc",
      allocatedIpRange: "psa-range",
      sslMode: "ENCRYPTED_ONLY",
    });
    expect(await outputOf(p.monitoringDatabaseId)).toBe(
      `agent-dev-1:${await outputOf(p.instance.name)}`,
    );
    expect(await outputOf(p.connectionName)).toMatch(/^agent-dev-1:us-central1:db-instance-/);
  });

  test.each([
    [{ databaseName: "Agent-DB" }, /databaseName "Agent-DB" must be a lowercase identifier/],
    [{ userName: "postgres" }, /userName "postgres" is reserved by Cloud SQL/],
    [
      { sizing: { ...dev.postgres, diskAutoresizeLimitGb: 5 } },
      /diskAutoresizeLimitGb \(5\) is below diskSizeGb \(10\): raise the limit/,
    ],
    [
      { sizing: { ...dev.postgres, diskSizeGb: 5, diskAutoresizeLimitGb: 5 } },
      /below Cloud SQL's minimum of 10/,
    ],
    [
      { sizing: { ...prod.postgres, pointInTimeRecovery: false } },
      /REGIONAL requires pointInTimeRecovery/,
    ],
    [
      { sizing: { ...prod.postgres, transactionLogRetentionDays: 14 } },
      /transactionLogRetentionDays 14 must be between 1 and 7/,
    ],
  ])("validation: %j", (over, message) => {
    expect(validatePostgresArgs("db", postgresArgs(over))).toMatch(message);
  });

  test("the component throws a ResourceError", () => {
    expect(() => new GcpPostgres("db2", postgresArgs({ userName: "cloudsqladmin" }))).toThrow(
      pulumi.ResourceError,
    );
  });
});
