/**
 * AWS sizing per environment: the one place that turns the cloud-neutral environment profile
 * into ElastiCache node types, RDS instance classes, NAT layout and retention settings.
 *
 * Components receive an `AwsSizing` (or one of its parts) and never branch on the environment
 * name. Prices are on-demand us-east-1 list prices, for orientation only.
 */
import type { Environment } from "../contracts";
import type { EnvironmentProfile } from "../environment";
import { rdsPostgresVersion, valkeyVersion } from "../versions";

export type CacheEngine = "valkey" | "redis";

export interface RedisSizing {
  /**
   * Valkey is the ElastiCache default going forward and about 20 % cheaper per node-hour than
   * Redis OSS for the same node type; it speaks the Redis protocol the app's client uses.
   */
  engine: CacheEngine;
  engineVersion: string;
  /** Parameter group family matching engine and major version. */
  parameterGroupFamily: string;
  nodeType: string;
  /** Primary plus replicas. 2+ enables automatic failover and Multi-AZ. */
  numCacheClusters: number;
  automaticFailover: boolean;
  multiAz: boolean;
  /** Days of daily snapshots; 0 disables them. */
  snapshotRetentionDays: number;
  /** Apply modifications now (dev) or in the maintenance window (prod). */
  applyImmediately: boolean;
}

export interface PostgresSizing {
  engineVersion: string;
  parameterGroupFamily: string;
  instanceClass: string;
  allocatedStorageGb: number;
  /** Storage autoscaling ceiling: autoscaling only grows, so this bounds what it can cost. */
  maxAllocatedStorageGb: number;
  multiAz: boolean;
  backupRetentionDays: number;
  deletionProtection: boolean;
  /** Take a final snapshot when the instance is deleted. */
  finalSnapshot: boolean;
  /** Performance Insights (7 days of history is free). */
  performanceInsights: boolean;
  applyImmediately: boolean;
}

export interface NetworkSizing {
  availabilityZones: 2 | 3;
  natGateways: "none" | "single" | "per-az";
  /** VPC flow logs of rejected traffic, for incident forensics. */
  flowLogs: boolean;
}

export interface AwsSizing {
  environment: Environment;
  redis: RedisSizing;
  postgres: PostgresSizing;
  network: NetworkSizing;
  logRetentionDays: number;
  /** Pulumi `protect` on stateful resources, and deletion protection where the API has it. */
  protectData: boolean;
  /** Days Secrets Manager keeps a deleted secret recoverable (0 = delete at once). */
  secretRecoveryWindowDays: number;
}

export function awsSizing(profile: EnvironmentProfile): AwsSizing {
  const shape = profile.aws;
  const ha = profile.highAvailability;
  return {
    environment: profile.environment,
    redis: {
      engine: "valkey",
      ...valkeyVersion(),
      nodeType: shape.cacheNode,
      numCacheClusters: ha ? 2 : 1,
      automaticFailover: ha,
      multiAz: ha,
      // Snapshots are only useful where the cache holds state worth keeping across a failure
      // (budget counters, rate-limit windows); dev rebuilds from nothing.
      snapshotRetentionDays: profile.protectData ? 7 : 0,
      applyImmediately: !profile.protectData,
    },
    postgres: {
      ...rdsPostgresVersion(),
      instanceClass: shape.dbClass,
      allocatedStorageGb: shape.storage,
      maxAllocatedStorageGb: shape.maxStorage,
      multiAz: ha,
      backupRetentionDays: profile.backupRetentionDays,
      deletionProtection: profile.protectData,
      // Anything with point-in-time recovery holds data someone cares about: snapshot on delete.
      finalSnapshot: profile.pointInTimeRecovery,
      performanceInsights: true,
      applyImmediately: !profile.protectData,
    },
    network: {
      availabilityZones: profile.availabilityZones,
      natGateways: profile.natGateways,
      flowLogs: profile.protectData,
    },
    logRetentionDays: profile.logRetentionDays,
    protectData: profile.protectData,
    secretRecoveryWindowDays: profile.protectData ? 30 : 0,
  };
}
