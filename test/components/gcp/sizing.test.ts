/** Pure logic: sizing per environment and the naming/CIDR helpers. No Pulumi runtime needed. */
import { environmentProfile } from "../../../components/environment";
import {
  estimatedMonthlyUsd,
  gcpSizing,
  natSizing,
  postgresSizing,
  redisSizing,
} from "../../../components/gcp/sizing";
import {
  checkAutonamedName,
  checkProjectId,
  checkRegion,
  cidrsOverlap,
  parseCidr,
} from "../../../components/gcp/naming";

describe("gcpSizing", () => {
  test("dev: single-node Redis, zonal shared-core Postgres, nothing protected", () => {
    const s = gcpSizing(environmentProfile("dev"));
    expect(s.redis).toEqual({ tier: "BASIC", memorySizeGb: 1 });
    expect(s.postgres).toMatchObject({
      tier: "db-g1-small",
      edition: "ENTERPRISE",
      availabilityType: "ZONAL",
      pointInTimeRecovery: false,
      retainedBackups: 1,
    });
    expect(s.protectData).toBe(false);
    expect(s.logRetentionDays).toBe(7);
    expect(s.flowLogSampling).toBe(0);
  });

  test("staging: zonal but with point-in-time recovery and a dedicated-core tier", () => {
    const s = gcpSizing(environmentProfile("staging"));
    expect(s.redis.tier).toBe("BASIC");
    expect(s.postgres).toMatchObject({
      tier: "db-custom-1-3840",
      availabilityType: "ZONAL",
      pointInTimeRecovery: true,
      retainedBackups: 7,
      transactionLogRetentionDays: 7,
    });
    expect(s.protectData).toBe(false);
  });

  test("prod: STANDARD_HA Redis with snapshots, REGIONAL Postgres, protected, flow logs on", () => {
    const s = gcpSizing(environmentProfile("prod"));
    expect(s.redis).toEqual({
      tier: "STANDARD_HA",
      memorySizeGb: 5,
      rdbSnapshotPeriod: "ONE_HOUR",
    });
    expect(s.postgres).toMatchObject({
      tier: "db-custom-2-7680",
      availabilityType: "REGIONAL",
      pointInTimeRecovery: true,
      retainedBackups: 30,
      transactionLogRetentionDays: 7,
      diskAutoresizeLimitGb: 500,
    });
    expect(s.protectData).toBe(true);
    expect(s.logRetentionDays).toBe(90);
    expect(s.flowLogSampling).toBeGreaterThan(0);
  });

  test("every environment's disk may grow, but only up to a limit above its start size", () => {
    for (const env of ["dev", "staging", "prod"] as const) {
      const p = gcpSizing(environmentProfile(env)).postgres;
      expect(p.diskAutoresizeLimitGb).toBeGreaterThan(p.diskSizeGb);
      expect(p.diskSizeGb).toBeGreaterThanOrEqual(10);
    }
  });

  test("an unknown environment is refused by name where profiles come from (the one per-environment table)", () => {
    expect(() => environmentProfile("qa" as never)).toThrow(
      'Unknown environment "qa": use one of dev, staging, prod.',
    );
  });
});

describe("sizing parts", () => {
  test("redisSizing follows high availability", () => {
    expect(redisSizing(false, 2).tier).toBe("BASIC");
    expect(redisSizing(true, 2)).toEqual({
      tier: "STANDARD_HA",
      memorySizeGb: 2,
      rdbSnapshotPeriod: "ONE_HOUR",
    });
  });

  test("postgresSizing refuses HA without point-in-time recovery, as Cloud SQL would", () => {
    const machines = { sqlTier: "db-custom-1-3840", diskGb: 10, diskLimitGb: 20 };
    expect(() =>
      postgresSizing(
        { highAvailability: true, pointInTimeRecovery: false, backupRetentionDays: 7 },
        machines,
      ),
    ).toThrow(/needs pointInTimeRecovery/);
  });

  test("postgresSizing clamps backup and log retention to what Cloud SQL accepts", () => {
    const machines = { sqlTier: "t", diskGb: 10, diskLimitGb: 20 };
    const long = postgresSizing(
      { highAvailability: false, pointInTimeRecovery: true, backupRetentionDays: 900 },
      machines,
    );
    expect(long.retainedBackups).toBe(365);
    expect(long.transactionLogRetentionDays).toBe(7);
    const short = postgresSizing(
      { highAvailability: false, pointInTimeRecovery: true, backupRetentionDays: 0 },
      machines,
    );
    expect(short.retainedBackups).toBe(1);
    expect(short.transactionLogRetentionDays).toBe(1);
  });

  test("natSizing: one regional gateway for single and per-az; more ports for per-az; none disables", () => {
    expect(natSizing("none").enabled).toBe(false);
    expect(natSizing("single")).toMatchObject({ enabled: true, minPortsPerVm: 64 });
    expect(natSizing("per-az").minPortsPerVm).toBeGreaterThan(natSizing("single").minPortsPerVm);
    for (const n of [natSizing("single"), natSizing("per-az")])
      expect(n.maxPortsPerVm).toBeGreaterThan(n.minPortsPerVm);
  });

  test("estimated monthly cost matches the class docs' figures", () => {
    expect(estimatedMonthlyUsd(gcpSizing(environmentProfile("dev")))).toEqual({
      redis: 36,
      postgres: 28,
      nat: 33,
    });
    expect(estimatedMonthlyUsd(gcpSizing(environmentProfile("prod")))).toEqual({
      redis: 197,
      postgres: 209,
      nat: 33,
    });
  });
});

describe("naming and CIDR helpers", () => {
  test("auto-named names leave room for Pulumi's 8-character suffix", () => {
    expect(checkAutonamedName("agent-dev-redis-instance", 40)).toBeUndefined();
    expect(checkAutonamedName("a".repeat(33), 40)).toMatch(/is 33 characters.*at most 32: shorten/);
    expect(checkAutonamedName("Agent", 63)).toMatch(/not a valid GCP resource name/);
    expect(checkAutonamedName("agent-", 63)).toMatch(/not a valid GCP resource name/);
  });

  test("project ids and regions", () => {
    expect(checkProjectId("agent-prod-1")).toBeUndefined();
    expect(checkProjectId("short")).toMatch(/not a GCP project id/);
    expect(checkProjectId("1agent-prod")).toMatch(/not a GCP project id/);
    expect(checkRegion("europe-west4")).toBeUndefined();
    expect(checkRegion("us-central1-a")).toMatch(/not a GCP region name/);
  });

  test("parseCidr rejects malformed ranges and host bits", () => {
    expect(parseCidr("10.64.0.0/16")).toEqual({ base: 10 * 2 ** 24 + 64 * 2 ** 16, prefix: 16 });
    expect(parseCidr("10.64.0.1/16")).toBeUndefined();
    expect(parseCidr("10.64.0.0")).toBeUndefined();
    expect(parseCidr("300.0.0.0/8")).toBeUndefined();
    expect(parseCidr("10.0.0.0/33")).toBeUndefined();
  });

  test("cidrsOverlap", () => {
    expect(cidrsOverlap("10.10.0.0/20", "10.64.0.0/16")).toBe(false);
    expect(cidrsOverlap("10.64.16.0/20", "10.64.0.0/16")).toBe(true);
    expect(cidrsOverlap("10.0.0.0/8", "10.64.0.0/16")).toBe(true);
    expect(cidrsOverlap("10.10.0.0/20", "10.10.16.0/20")).toBe(false);
  });
});
