/**
 * Everything that differs between dev, staging and prod, in one place.
 *
 * Components take `EnvironmentProfile` (or fields of it) as arguments; they never branch on the
 * environment name themselves. A reader sees here, and only here, what prod adds.
 */
import type { Environment } from "./contracts";

export interface EnvironmentProfile {
  environment: Environment;
  /** Survive `pulumi destroy` and refuse deletion of stateful resources. */
  protectData: boolean;
  /** Multi-AZ / regional HA for Redis and Postgres. */
  highAvailability: boolean;
  /** Days of automated database backups. */
  backupRetentionDays: number;
  /** Point-in-time recovery for Postgres. */
  pointInTimeRecovery: boolean;
  /** Days to keep application logs. */
  logRetentionDays: number;
  /** NAT gateways: none, one shared, or one per AZ. */
  natGateways: "none" | "single" | "per-az";
  /** Availability zones to span. */
  availabilityZones: 2 | 3;
  /** Minimum replicas/instances of the service. */
  minReplicas: number;
  /** Upper bound on replicas/instances: caps cost. */
  maxReplicas: number;
  /** Default monthly budget for the stack, in USD. */
  monthlyBudgetUsd: number;
}

const PROFILES: Record<Environment, EnvironmentProfile> = {
  dev: {
    environment: "dev",
    protectData: false,
    highAvailability: false,
    backupRetentionDays: 1,
    pointInTimeRecovery: false,
    logRetentionDays: 7,
    natGateways: "single",
    availabilityZones: 2,
    minReplicas: 1,
    maxReplicas: 3,
    monthlyBudgetUsd: 200,
  },
  staging: {
    environment: "staging",
    protectData: false,
    highAvailability: false,
    backupRetentionDays: 7,
    pointInTimeRecovery: true,
    logRetentionDays: 30,
    natGateways: "single",
    availabilityZones: 2,
    minReplicas: 1,
    maxReplicas: 5,
    monthlyBudgetUsd: 500,
  },
  prod: {
    environment: "prod",
    protectData: true,
    highAvailability: true,
    backupRetentionDays: 30,
    pointInTimeRecovery: true,
    logRetentionDays: 90,
    natGateways: "per-az",
    availabilityZones: 3,
    minReplicas: 2,
    maxReplicas: 20,
    monthlyBudgetUsd: 3000,
  },
};

export function environmentProfile(environment: Environment): EnvironmentProfile {
  const profile = PROFILES[environment];
  if (!profile) {
    throw new Error(`Unknown environment "${String(environment)}": use one of dev, staging, prod.`);
  }
  return { ...profile };
}
