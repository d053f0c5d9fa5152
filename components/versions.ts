/**
 * Versions the clouds support, as dated data: what a mock runtime cannot know. The program's
 * config check and the preflight of `npm run plan` (infra/preflight) read these tables; nothing
 * else hard-codes a version.
 *
 * Bump a table by reading its source again, updating `takenOn`, and running `npm run plan --
 * --all --preflight`: a shipped stack on a version that has left standard support is a blocker.
 */

/** One Kubernetes minor version on Amazon EKS. Dates are UTC days (`YYYY-MM-DD`). */
export interface EksVersionSupport {
  version: string;
  released: string;
  /** Last day of standard support ($0.10 per cluster-hour). */
  endOfStandardSupport: string;
  /** Last day of extended support ($0.60 per cluster-hour); after it AWS upgrades the cluster. */
  endOfExtendedSupport: string;
}

/**
 * Amazon EKS release calendar. 14 months of standard support, then 12 of extended support.
 * Sources: https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html (lifecycle)
 * and the calendar it links, cross-checked with https://endoflife.date/amazon-eks; taken
 * 2026-12-06. A version missing here is refused until it is added with its dates.
 */
export const EKS_VERSIONS = {
  takenOn: "2026-12-06",
  source: "https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html",
  /** Per cluster-hour, us-east-1 (https://aws.amazon.com/eks/pricing/). */
  pricePerClusterHour: { standard: 0.1, extended: 0.6 },
  versions: [
    {
      version: "1.30",
      released: "2024-05-23",
      endOfStandardSupport: "2025-07-23",
      endOfExtendedSupport: "2026-07-23",
    },
    {
      version: "1.31",
      released: "2024-09-26",
      endOfStandardSupport: "2025-11-26",
      endOfExtendedSupport: "2026-11-26",
    },
    {
      version: "1.32",
      released: "2025-01-23",
      endOfStandardSupport: "2026-03-23",
      endOfExtendedSupport: "2027-03-23",
    },
    {
      version: "1.33",
      released: "2025-05-29",
      endOfStandardSupport: "2026-07-29",
      endOfExtendedSupport: "2027-07-29",
    },
    {
      version: "1.34",
      released: "2025-10-02",
      endOfStandardSupport: "2026-12-02",
      endOfExtendedSupport: "2027-12-02",
    },
    {
      version: "1.35",
      released: "2026-01-27",
      endOfStandardSupport: "2027-03-27",
      endOfExtendedSupport: "2028-03-27",
    },
  ] satisfies EksVersionSupport[],
} as const;

/** The version new clusters get: the newest in the table (longest standard support left). */
export const DEFAULT_EKS_VERSION: string =
  EKS_VERSIONS.versions[EKS_VERSIONS.versions.length - 1]!.version;

export type EksSupportPhase = "standard" | "extended" | "ended" | "unknown";

export interface EksVersionStatus {
  version: string;
  phase: EksSupportPhase;
  support?: EksVersionSupport;
}

/** Which support phase `version` is in on `today` (a `YYYY-MM-DD` day, UTC). Pure. */
export function eksVersionStatus(version: string, today: string): EksVersionStatus {
  const support = (EKS_VERSIONS.versions as readonly EksVersionSupport[]).find(
    (v) => v.version === version,
  );
  if (!support) return { version, phase: "unknown" };
  if (today <= support.endOfStandardSupport) return { version, phase: "standard", support };
  if (today <= support.endOfExtendedSupport) return { version, phase: "extended", support };
  return { version, phase: "ended", support };
}

/** Today as `YYYY-MM-DD` in UTC: the day the clouds' calendars are read against. */
export function utcToday(now: Date = new Date()): string {
  return now.toISOString().slice(0, 10);
}

/**
 * Why `version` cannot be created on `today`, saying what to change; undefined when it can.
 * `extendedSupport` is the stack's explicit opt-in to pay the extended-support rate.
 */
export function eksVersionProblem(
  version: string,
  today: string,
  extendedSupport: boolean,
  key = "agent:eks.kubernetesVersion",
): string | undefined {
  const status = eksVersionStatus(version, today);
  const known = EKS_VERSIONS.versions.map((v) => v.version).join(", ");
  switch (status.phase) {
    case "standard":
      return undefined;
    case "unknown":
      return `${key} is ${version}, which is not in the EKS version table (components/versions.ts, taken ${EKS_VERSIONS.takenOn}; known: ${known}): use ${DEFAULT_EKS_VERSION}, or add ${version} with its dates from ${EKS_VERSIONS.source}`;
    case "ended":
      return `${key} is ${version}, whose extended support ended on ${status.support!.endOfExtendedSupport}: EKS no longer creates it; use ${DEFAULT_EKS_VERSION}`;
    case "extended":
      return extendedSupport
        ? undefined
        : `${key} is ${version}, whose standard support ended on ${status.support!.endOfStandardSupport} (extended support costs $${EKS_VERSIONS.pricePerClusterHour.extended}/h per cluster instead of $${EKS_VERSIONS.pricePerClusterHour.standard}/h): use ${DEFAULT_EKS_VERSION}, or set agent:eks.extendedSupport to true to pay for extended support until ${status.support!.endOfExtendedSupport}`;
  }
}

/**
 * Data-store engines, each with the parameter family its version implies (derived, so the two can
 * never disagree). Taken 2026-12-06 from each service's supported-versions page:
 * - ElastiCache for Valkey 8.0 (https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/supported-engine-versions.html):
 *   parameter family `valkey8`.
 * - RDS for PostgreSQL 16 (https://docs.aws.amazon.com/AmazonRDS/latest/PostgreSQLReleaseNotes/postgresql-release-calendar.html):
 *   standard support until 2028-02-29; a major version only, RDS picks the newest minor and
 *   `autoMinorVersionUpgrade` keeps it patched; parameter family `postgres16`.
 * - Memorystore for Redis 7.2 (https://cloud.google.com/memorystore/docs/redis/supported-versions).
 * - Cloud SQL for PostgreSQL 16 (https://cloud.google.com/sql/docs/postgres/db-versions).
 */
export const ENGINE_VERSIONS = {
  takenOn: "2026-12-06",
  aws: {
    valkey: { engine: "valkey", major: 8, minor: 0 },
    postgres: { engine: "postgres", major: 16, endOfStandardSupport: "2028-02-29" },
  },
  gcp: {
    redis: { major: 7, minor: 2 },
    postgres: { major: 16 },
  },
} as const;

/** ElastiCache: the engine version and its parameter group family. */
export function valkeyVersion(): { engineVersion: string; parameterGroupFamily: string } {
  const v = ENGINE_VERSIONS.aws.valkey;
  return { engineVersion: `${v.major}.${v.minor}`, parameterGroupFamily: `valkey${v.major}` };
}

/** RDS: the major version (RDS picks the newest minor) and its parameter group family. */
export function rdsPostgresVersion(): { engineVersion: string; parameterGroupFamily: string } {
  const v = ENGINE_VERSIONS.aws.postgres;
  return { engineVersion: `${v.major}`, parameterGroupFamily: `postgres${v.major}` };
}

/** Memorystore's `redisVersion`. */
export const MEMORYSTORE_REDIS_VERSION = `REDIS_${ENGINE_VERSIONS.gcp.redis.major}_${ENGINE_VERSIONS.gcp.redis.minor}`;
/** Cloud SQL's `databaseVersion`. */
export const CLOUD_SQL_POSTGRES_VERSION = `POSTGRES_${ENGINE_VERSIONS.gcp.postgres.major}`;

/**
 * Cluster add-ons the program installs, pinned: a chart version fixes the controller image and
 * the CRDs. Argo Rollouts (progressive delivery on EKS): chart 2.41.0 ships controller v1.9.0,
 * the newest in https://github.com/argoproj/argo-helm/blob/main/charts/argo-rollouts/Chart.yaml
 * (repository snapshot of 2026-07-02, read 2026-12-06).
 */
export const CLUSTER_ADDONS = {
  takenOn: "2026-12-06",
  argoRollouts: {
    chart: "argo-rollouts",
    repo: "https://argoproj.github.io/argo-helm",
    version: "2.41.0",
    appVersion: "v1.9.0",
    namespace: "argo-rollouts",
  },
} as const;
