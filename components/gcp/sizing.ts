/**
 * GCP sizing per environment: the one place that turns the cloud-neutral environment profile
 * into Memorystore tiers, Cloud SQL machine types, NAT settings and log retention.
 *
 * Components receive a `GcpSizing` (or one of its parts) and never branch on the environment
 * name. Everything here is a plain function, so tests call it directly.
 */
import type { EnvironmentProfile } from "../environment";
import type { Environment } from "../contracts";

export type RedisTier = "BASIC" | "STANDARD_HA";
export type SqlAvailability = "ZONAL" | "REGIONAL";

export interface RedisSizing {
  /** BASIC is a single node with no SLA; STANDARD_HA adds a replica in another zone and failover. */
  tier: RedisTier;
  memorySizeGb: number;
  /** RDB snapshots so a failover or maintenance restart does not start from an empty cache. */
  rdbSnapshotPeriod?: "ONE_HOUR" | "SIX_HOURS" | "TWELVE_HOURS" | "TWENTY_FOUR_HOURS";
}

export interface PostgresSizing {
  /** Cloud SQL machine type. Custom and shared-core tiers need the ENTERPRISE edition. */
  tier: string;
  edition: "ENTERPRISE";
  availabilityType: SqlAvailability;
  diskSizeGb: number;
  /** Upper bound for storage auto-resize: auto-resize can only grow, so cap what it may cost. */
  diskAutoresizeLimitGb: number;
  retainedBackups: number;
  pointInTimeRecovery: boolean;
  /** Days of write-ahead log kept for point-in-time recovery (Cloud SQL ENTERPRISE allows 1-7). */
  transactionLogRetentionDays: number;
  /** Slow-query log threshold, in milliseconds. */
  logMinDurationStatementMs: number;
}

export interface NatSizing {
  enabled: boolean;
  /** Ports per VM: more ports mean more concurrent outbound connections to the LLM API. */
  minPortsPerVm: number;
  maxPortsPerVm: number;
}

export interface GcpSizing {
  environment: Environment;
  redis: RedisSizing;
  postgres: PostgresSizing;
  nat: NatSizing;
  /** Keep stateful resources: `deletionProtection` at the API and Pulumi `protect` in state. */
  protectData: boolean;
  logRetentionDays: number;
  /** VPC flow-log sampling for the subnet, 0 to disable. */
  flowLogSampling: number;
}

/** GCP sizing for an environment profile. */
export function gcpSizing(profile: EnvironmentProfile): GcpSizing {
  const machines = profile.gcp;
  return {
    environment: profile.environment,
    redis: redisSizing(profile.highAvailability, machines.redisGb),
    postgres: postgresSizing(profile, machines),
    nat: natSizing(profile.natGateways),
    protectData: profile.protectData,
    logRetentionDays: profile.logRetentionDays,
    flowLogSampling: profile.highAvailability ? 0.5 : 0,
  };
}

export function redisSizing(highAvailability: boolean, memorySizeGb: number): RedisSizing {
  return highAvailability
    ? { tier: "STANDARD_HA", memorySizeGb, rdbSnapshotPeriod: "ONE_HOUR" }
    : { tier: "BASIC", memorySizeGb };
}

export function postgresSizing(
  profile: Pick<
    EnvironmentProfile,
    "highAvailability" | "backupRetentionDays" | "pointInTimeRecovery"
  >,
  machines: { sqlTier: string; diskGb: number; diskLimitGb: number },
): PostgresSizing {
  // Cloud SQL requires point-in-time recovery for a REGIONAL Postgres instance.
  if (profile.highAvailability && !profile.pointInTimeRecovery) {
    throw new Error(
      "A highly available Cloud SQL Postgres instance needs pointInTimeRecovery: enable it in the environment profile.",
    );
  }
  const retainedBackups = Math.max(1, Math.min(365, Math.round(profile.backupRetentionDays)));
  return {
    tier: machines.sqlTier,
    edition: "ENTERPRISE",
    availabilityType: profile.highAvailability ? "REGIONAL" : "ZONAL",
    diskSizeGb: machines.diskGb,
    diskAutoresizeLimitGb: machines.diskLimitGb,
    retainedBackups,
    pointInTimeRecovery: profile.pointInTimeRecovery,
    transactionLogRetentionDays: Math.max(1, Math.min(7, retainedBackups)),
    logMinDurationStatementMs: 500,
  };
}

/**
 * Cloud NAT is regional on GCP, so "single" and "per-az" both map to one NAT gateway; "per-az"
 * (prod) gets more ports per VM, which is what actually limits concurrent LLM connections.
 */
export function natSizing(natGateways: EnvironmentProfile["natGateways"]): NatSizing {
  switch (natGateways) {
    case "none":
      return { enabled: false, minPortsPerVm: 0, maxPortsPerVm: 0 };
    case "single":
      return { enabled: true, minPortsPerVm: 64, maxPortsPerVm: 4096 };
    case "per-az":
      return { enabled: true, minPortsPerVm: 256, maxPortsPerVm: 16384 };
  }
}

/** Rough monthly list price in us-central1, for the class docs and plan output. */
export function estimatedMonthlyUsd(sizing: GcpSizing): {
  redis: number;
  postgres: number;
  nat: number;
} {
  // Per GB-hour: capacity tier M1 is 1-4 GB, M2 is 5-10 GB; STANDARD_HA costs more for the replica.
  const m1 = sizing.redis.memorySizeGb < 5;
  const redisPerGb =
    sizing.redis.tier === "STANDARD_HA" ? (m1 ? 0.064 : 0.054) : m1 ? 0.049 : 0.027;
  const redis = Math.round(redisPerGb * sizing.redis.memorySizeGb * 730);
  const sqlBase: Record<string, number> = {
    "db-g1-small": 26,
    "db-custom-1-3840": 50,
    "db-custom-2-7680": 100,
  };
  const base = sqlBase[sizing.postgres.tier] ?? 100;
  const postgres = Math.round(
    base * (sizing.postgres.availabilityType === "REGIONAL" ? 2 : 1) +
      sizing.postgres.diskSizeGb * 0.17,
  );
  const nat = sizing.nat.enabled ? 33 : 0;
  return { redis, postgres, nat };
}
