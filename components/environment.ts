/**
 * Everything that differs between dev, staging and prod, in one place: protection and recovery,
 * networking, the default scaling of every target, EKS nodes, and each cloud's store shapes.
 *
 * Components take `EnvironmentProfile` (or fields of it) as arguments; they never branch on the
 * environment name themselves, and no other file holds a per-environment number. A reader sees
 * here, and only here, what prod adds. Prices in comments are on-demand list prices for
 * orientation (us-east-1 / us-central1).
 */
import type { Environment } from "./contracts";
import type { RolloutStep } from "./release/rollout-plan";
import type { TargetScalingDefaults } from "./targets/scaling";
import type { EksNodeGroupSizing } from "./targets/eks/cluster-config";

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
  /** Default monthly budget for the stack, in USD. */
  monthlyBudgetUsd: number;
  /**
   * Progressive delivery: the canary steps before 100 % (`agent:rollout.steps` overrides).
   * Empty deploys all at once.
   */
  rolloutSteps: RolloutStep[];
  /** Every target's default scaling (targets/scaling.ts checks and applies overrides). */
  scaling: TargetScalingDefaults;
  /** EKS managed nodes (a node autoscaler is not installed: `maxSize` bounds the HPA's room). */
  eksNodes: EksNodeGroupSizing;
  /** AWS store shapes. Graviton (g) classes: same price band, more throughput. */
  aws: { cacheNode: string; dbClass: string; storage: number; maxStorage: number };
  /** GCP store machines and memory. */
  gcp: { sqlTier: string; diskGb: number; diskLimitGb: number; redisGb: number };
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
    monthlyBudgetUsd: 200,
    // Dev deploys at once: nobody waits for a canary of their own change.
    rolloutSteps: [],
    scaling: {
      // 10 sandboxes at most: a runaway client cannot run up the bill or the database.
      lambda: {
        memoryMb: 512,
        timeoutSeconds: 300,
        reservedConcurrency: 10,
        provisionedConcurrency: 0,
        databasePoolMax: 2,
        throttleBurst: 20,
        throttleRatePerSecond: 10,
      },
      // Scale to zero: dev costs nothing while idle.
      cloudRun: { minInstances: 0, maxInstances: 5, concurrency: 80, cpu: "1", memory: "1Gi" },
      eks: {
        minReplicas: 1,
        maxReplicas: 3,
        targetCpuPercent: 70,
        requests: { cpu: "100m", memory: "256Mi" },
        limits: { cpu: "500m", memory: "512Mi" },
      },
      vm: { minInstances: 1, maxInstances: 3, targetCpuPercent: 60 },
    },
    // t3.medium ~$30/month each.
    eksNodes: {
      instanceTypes: ["t3.medium"],
      minSize: 1,
      maxSize: 3,
      desiredSize: 2,
      capacityType: "ON_DEMAND",
      diskSizeGb: 20,
    },
    // cache.t4g.micro ~$9/month (valkey); db.t4g.micro ~$12/month + 20 GB gp3 ~$2.3/month.
    aws: { cacheNode: "cache.t4g.micro", dbClass: "db.t4g.micro", storage: 20, maxStorage: 50 },
    // db-g1-small is shared-core (no SLA): fine for a dev database, about $26/month.
    gcp: { sqlTier: "db-g1-small", diskGb: 10, diskLimitGb: 50, redisGb: 1 },
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
    monthlyBudgetUsd: 500,
    // 10 % of traffic for 5 minutes on the new release, then all of it, unless a gate trips.
    rolloutSteps: [{ percent: 10, minutes: 5 }],
    scaling: {
      lambda: {
        memoryMb: 1024,
        timeoutSeconds: 300,
        reservedConcurrency: 50,
        provisionedConcurrency: 0,
        databasePoolMax: 2,
        throttleBurst: 100,
        throttleRatePerSecond: 50,
      },
      cloudRun: { minInstances: 1, maxInstances: 10, concurrency: 80, cpu: "1", memory: "1Gi" },
      eks: {
        minReplicas: 2,
        maxReplicas: 6,
        targetCpuPercent: 70,
        requests: { cpu: "250m", memory: "512Mi" },
        limits: { cpu: "500m", memory: "1Gi" },
      },
      vm: { minInstances: 1, maxInstances: 4, targetCpuPercent: 60 },
    },
    // t3.large ~$61/month each.
    eksNodes: {
      instanceTypes: ["t3.large"],
      minSize: 2,
      maxSize: 4,
      desiredSize: 2,
      capacityType: "ON_DEMAND",
      diskSizeGb: 30,
    },
    // cache.t4g.small ~$18/month; db.t4g.small ~$24/month.
    aws: { cacheNode: "cache.t4g.small", dbClass: "db.t4g.small", storage: 20, maxStorage: 100 },
    gcp: { sqlTier: "db-custom-1-3840", diskGb: 20, diskLimitGb: 100, redisGb: 1 },
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
    monthlyBudgetUsd: 3000,
    rolloutSteps: [{ percent: 10, minutes: 5 }],
    scaling: {
      // Two warm sandboxes (about $18/month) take the cold start off the first requests after a lull.
      lambda: {
        memoryMb: 1024,
        timeoutSeconds: 300,
        reservedConcurrency: 200,
        provisionedConcurrency: 2,
        databasePoolMax: 2,
        throttleBurst: 500,
        throttleRatePerSecond: 200,
      },
      // Two warm instances (about $26/month at 1 vCPU / 1 GiB, the idle rate of request-based billing).
      cloudRun: { minInstances: 2, maxInstances: 20, concurrency: 80, cpu: "1", memory: "1Gi" },
      eks: {
        minReplicas: 2,
        maxReplicas: 20,
        targetCpuPercent: 70,
        requests: { cpu: "250m", memory: "512Mi" },
        limits: { cpu: "500m", memory: "1Gi" },
      },
      vm: { minInstances: 2, maxInstances: 10, targetCpuPercent: 60 },
    },
    // m7i.large ~$74/month each: three hold the HPA's 20 replicas at 250m with room for system pods.
    eksNodes: {
      instanceTypes: ["m7i.large"],
      minSize: 3,
      maxSize: 10,
      desiredSize: 3,
      capacityType: "ON_DEMAND",
      diskSizeGb: 50,
    },
    // 2 x cache.m7g.large ~$240/month; db.m7g.large Multi-AZ ~$250/month + 100 GB gp3 Multi-AZ ~$23.
    aws: { cacheNode: "cache.m7g.large", dbClass: "db.m7g.large", storage: 100, maxStorage: 500 },
    // 2 vCPU / 7.5 GB: room for a connection per replica at maxReplicas=20 and a pool of 5 each.
    gcp: { sqlTier: "db-custom-2-7680", diskGb: 50, diskLimitGb: 500, redisGb: 5 },
  },
};

export function environmentProfile(environment: Environment): EnvironmentProfile {
  const profile = PROFILES[environment];
  if (!profile) {
    throw new Error(`Unknown environment "${String(environment)}": use one of dev, staging, prod.`);
  }
  // A copy made with this realm's JSON, not structuredClone: under jest, structuredClone builds
  // arrays of the outer realm, which Pulumi's serializer (`instanceof Array`) takes for objects.
  return JSON.parse(JSON.stringify(profile)) as EnvironmentProfile;
}
