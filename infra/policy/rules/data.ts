/**
 * Data: the managed Postgres (RDS / Cloud SQL) and Redis (ElastiCache / Memorystore) stores are
 * encrypted at rest and in transit, never reachable from the internet, backed up, and protected
 * from deletion in prod.
 *
 * Cloud SQL and Memorystore encrypt at rest always (Google-managed keys), so the at-rest rules
 * only have something to check on AWS.
 */
import { LEVELS, resourceRule, type PolicyResource, type ReportResource } from "../types";
import { UNKNOWN, bool, get, list, num, record, str } from "../values";

export const T = {
  rdsInstance: "aws:rds/instance:Instance",
  rdsCluster: "aws:rds/cluster:Cluster",
  rdsClusterInstance: "aws:rds/clusterInstance:ClusterInstance",
  rdsParameterGroup: "aws:rds/parameterGroup:ParameterGroup",
  rdsClusterParameterGroup: "aws:rds/clusterParameterGroup:ClusterParameterGroup",
  cloudSql: "gcp:sql/databaseInstance:DatabaseInstance",
  elasticacheRg: "aws:elasticache/replicationGroup:ReplicationGroup",
  elasticacheCluster: "aws:elasticache/cluster:Cluster",
  elasticacheServerless: "aws:elasticache/serverlessCache:ServerlessCache",
  memorystore: "gcp:redis/instance:Instance",
  memorystoreCluster: "gcp:redis/cluster:Cluster",
  sgIngressRule: "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
  sgRule: "aws:ec2/securityGroupRule:SecurityGroupRule",
  securityGroup: "aws:ec2/securityGroup:SecurityGroup",
  gcpFirewall: "gcp:compute/firewall:Firewall",
} as const;

/** Ports of the stores (Postgres, Redis, Memorystore TLS, Cloud SQL auth proxy) and of remote shells. */
const PROTECTED_PORTS = [5432, 6379, 6378, 3307, 22, 3389];

function flagFalse(report: ReportResource, value: unknown, message: string): void {
  const b = bool(value);
  if (b === UNKNOWN) return;
  if (b !== true) report(message);
}

export const databaseEncryptedAtRest = resourceRule({
  name: "database-encrypted-at-rest",
  description: "Postgres storage is encrypted at rest (RDS; Cloud SQL always is).",
  domain: "data",
  enforcement: LEVELS.security,
  types: [T.rdsInstance, T.rdsCluster],
  validateResource(r, _ctx, report) {
    // Cluster members inherit the cluster's encryption.
    if (r.type === T.rdsInstance && str(r.props.replicateSourceDb)) return;
    flagFalse(
      report,
      r.props.storageEncrypted,
      "Set storageEncrypted: true (with the default aws/rds key or kmsKeyId); RDS cannot encrypt an existing instance in place, so create it encrypted.",
    );
  },
});

function postgresMajor(version: unknown): number | undefined {
  const m = /(\d+)/.exec(String(version ?? ""));
  return m ? Number(m[1]) : undefined;
}

export const databaseTlsRequired = resourceRule({
  name: "database-tls-required",
  description:
    "Postgres refuses unencrypted connections (rds.force_ssl=1 on RDS, sslMode ENCRYPTED_ONLY on Cloud SQL).",
  domain: "data",
  enforcement: LEVELS.security,
  types: [T.cloudSql, T.rdsParameterGroup, T.rdsClusterParameterGroup, T.rdsInstance],
  validateResource(r, _ctx, report) {
    const p = r.props;
    if (r.type === T.cloudSql) {
      const version = str(p.databaseVersion);
      if (version === UNKNOWN || (version && !version.startsWith("POSTGRES"))) return;
      const mode = str(get(p, "settings.ipConfiguration.sslMode"));
      const legacy = bool(get(p, "settings.ipConfiguration.requireSsl"));
      if (mode === UNKNOWN || legacy === UNKNOWN) return;
      if (mode === "ENCRYPTED_ONLY" || mode === "TRUSTED_CLIENT_CERTIFICATE_REQUIRED") return;
      if (mode === undefined && legacy === true) return;
      report(
        `settings.ipConfiguration.sslMode is ${mode ?? "unset"}: set it to "ENCRYPTED_ONLY" (or "TRUSTED_CLIENT_CERTIFICATE_REQUIRED") so the server refuses plaintext connections.`,
      );
      return;
    }
    if (r.type === T.rdsParameterGroup || r.type === T.rdsClusterParameterGroup) {
      const family = str(p.family);
      if (family === UNKNOWN || !family || !/postgres/.test(family)) return;
      const params = list(p.parameters);
      if (params === UNKNOWN || params.some((x) => x === UNKNOWN || get(x, "name") === UNKNOWN))
        return;
      const forceSsl = params.find(
        (x) => record(x) && (x as Record<string, unknown>).name === "rds.force_ssl",
      ) as Record<string, unknown> | undefined;
      const value = forceSsl ? str(forceSsl.value) : undefined;
      if (value === UNKNOWN) return;
      if (value === "0")
        report(
          `rds.force_ssl is 0 in parameter family ${family}: set it to "1" so clients must use TLS (sslmode=require).`,
        );
      else if (value === undefined && (postgresMajor(family) ?? 99) < 15) {
        report(
          `Family ${family} defaults rds.force_ssl to 0: add the parameter { name: "rds.force_ssl", value: "1" }.`,
        );
      }
      return;
    }
    // An instance on a default parameter group of Postgres < 15 accepts plaintext connections.
    const engine = str(p.engine);
    if (engine === UNKNOWN || engine !== "postgres") return;
    const group = str(p.parameterGroupName);
    if (group === UNKNOWN) return;
    const major = postgresMajor(p.engineVersion);
    if (
      (group === undefined || group.startsWith("default.")) &&
      major !== undefined &&
      major < 15
    ) {
      report(
        `Postgres ${major} on the default parameter group does not force TLS: attach a parameter group with rds.force_ssl=1, or use Postgres 15 or later.`,
      );
    }
  },
});

/** Whether a list of CIDRs opens to the whole internet. */
export function isInternetCidr(cidr: unknown): boolean {
  return cidr === "0.0.0.0/0" || cidr === "::/0";
}

export const databaseNotPublic = resourceRule({
  name: "database-not-public",
  description:
    "Postgres has no public endpoint (RDS publiclyAccessible false; Cloud SQL without a public IPv4 address).",
  domain: "data",
  enforcement: LEVELS.security,
  types: [T.rdsInstance, T.rdsClusterInstance, T.cloudSql],
  validateResource(r, _ctx, report) {
    if (r.type === T.cloudSql) {
      const ipv4 = bool(get(r.props, "settings.ipConfiguration.ipv4Enabled"));
      if (ipv4 === UNKNOWN) return;
      // The provider's default is a public IPv4 address.
      if (ipv4 !== false) {
        const nets = list(get(r.props, "settings.ipConfiguration.authorizedNetworks"));
        const open = nets !== UNKNOWN && nets.some((n) => isInternetCidr(get(n, "value")));
        report(
          `settings.ipConfiguration.ipv4Enabled is ${ipv4 ?? "unset (public by default)"}${open ? " and 0.0.0.0/0 is an authorized network" : ""}: set ipv4Enabled: false with a privateNetwork, and connect over private IP.`,
        );
      }
      return;
    }
    const pub = bool(r.props.publiclyAccessible);
    if (pub === true)
      report(
        "publiclyAccessible is true: set it to false; reach the database from inside the VPC (compute security group) only.",
      );
  },
});

interface BackupConfig {
  minRetentionDays: number;
  requirePointInTimeRecovery: boolean;
}

export const databaseBackups = resourceRule<BackupConfig>({
  name: "database-backups",
  description:
    "Postgres has automated backups kept long enough for the environment, with point-in-time recovery where required.",
  domain: "data",
  enforcement: LEVELS.security,
  types: [T.rdsInstance, T.rdsCluster, T.cloudSql],
  config: {
    schema: {
      minRetentionDays: {
        type: "integer",
        minimum: 1,
        maximum: 35,
        description: "Fewest days of automated backups.",
      },
      requirePointInTimeRecovery: {
        type: "boolean",
        description:
          "Cloud SQL must have point-in-time recovery (RDS has it whenever backups are on).",
      },
    },
    defaults: {
      dev: { minRetentionDays: 1, requirePointInTimeRecovery: false },
      staging: { minRetentionDays: 7, requirePointInTimeRecovery: true },
      prod: { minRetentionDays: 14, requirePointInTimeRecovery: true },
    },
  },
  validateResource(r, { config }, report) {
    if (r.type === T.cloudSql) {
      const enabled = bool(get(r.props, "settings.backupConfiguration.enabled"));
      if (enabled === UNKNOWN) return;
      if (enabled !== true) {
        report(
          `settings.backupConfiguration.enabled is ${enabled ?? "unset"}: set it to true and keep at least ${config.minRetentionDays} backups (backupRetentionSettings.retainedBackups).`,
        );
        return;
      }
      const kept = num(
        get(r.props, "settings.backupConfiguration.backupRetentionSettings.retainedBackups"),
      );
      // Cloud SQL keeps 7 backups unless told otherwise.
      const retained = kept === undefined ? 7 : kept;
      if (retained !== UNKNOWN && retained < config.minRetentionDays) {
        report(
          `Cloud SQL keeps ${retained} daily backups: set settings.backupConfiguration.backupRetentionSettings.retainedBackups to at least ${config.minRetentionDays}.`,
        );
      }
      const pitr = bool(get(r.props, "settings.backupConfiguration.pointInTimeRecoveryEnabled"));
      if (config.requirePointInTimeRecovery && pitr !== UNKNOWN && pitr !== true) {
        report(
          "settings.backupConfiguration.pointInTimeRecoveryEnabled is off: set it to true so the database can be restored to any second inside the retention window.",
        );
      }
      return;
    }
    // Read replicas take no automated backups of their own.
    if (r.type === T.rdsInstance && str(r.props.replicateSourceDb)) return;
    const days = num(r.props.backupRetentionPeriod);
    if (days === UNKNOWN) return;
    // RDS defaults to 1 day (instances created through the API); 0 disables backups.
    const effective = days ?? 1;
    if (effective < config.minRetentionDays) {
      report(
        `backupRetentionPeriod is ${days ?? "unset (1 day)"}: set it to at least ${config.minRetentionDays} days.`,
      );
    }
  },
});

export const redisEncryptedAtRest = resourceRule({
  name: "redis-encrypted-at-rest",
  description:
    "Redis data and snapshots are encrypted at rest (ElastiCache; Memorystore always is).",
  domain: "data",
  enforcement: LEVELS.security,
  types: [T.elasticacheRg],
  validateResource(r, _ctx, report) {
    flagFalse(
      report,
      r.props.atRestEncryptionEnabled,
      "Set atRestEncryptionEnabled: true (it cannot be turned on later: the replication group is replaced).",
    );
  },
});

export const redisTlsAndAuth = resourceRule({
  name: "redis-tls-and-auth",
  description:
    "Redis requires TLS and authentication (ElastiCache transit encryption required plus an AUTH token or RBAC; Memorystore SERVER_AUTHENTICATION plus AUTH).",
  domain: "data",
  enforcement: LEVELS.security,
  types: [T.elasticacheRg, T.elasticacheCluster, T.memorystore],
  validateResource(r, _ctx, report) {
    const p = r.props;
    if (r.type === T.memorystore) {
      const mode = str(p.transitEncryptionMode);
      if (mode !== UNKNOWN && mode !== "SERVER_AUTHENTICATION") {
        report(
          `transitEncryptionMode is ${mode ?? "unset (DISABLED)"}: set it to "SERVER_AUTHENTICATION" and have clients use rediss:// with the instance's CA.`,
        );
      }
      flagFalse(
        report,
        p.authEnabled,
        "authEnabled is off: set authEnabled: true and hand the AUTH string to the service through Secret Manager.",
      );
      return;
    }
    if (r.type === T.elasticacheCluster) {
      // Single-node clusters support neither TLS (before Redis 7) nor AUTH in the same way: use a replication group.
      const engine = str(p.engine);
      if (engine === UNKNOWN) return;
      if (engine === "redis" || engine === "valkey") {
        flagFalse(
          report,
          p.transitEncryptionEnabled,
          "Set transitEncryptionEnabled: true, or use an aws.elasticache.ReplicationGroup with transit encryption and an AUTH token.",
        );
      }
      return;
    }
    flagFalse(
      report,
      p.transitEncryptionEnabled,
      "Set transitEncryptionEnabled: true (clients connect with rediss://).",
    );
    const mode = str(p.transitEncryptionMode);
    if (mode === "preferred")
      report(
        'transitEncryptionMode is "preferred", which still accepts plaintext: set it to "required".',
      );
    const token = p.authToken;
    const groups = list(p.userGroupIds);
    if (token === UNKNOWN || groups === UNKNOWN) return;
    if ((token === undefined || token === "") && groups.length === 0) {
      report(
        "No authToken and no userGroupIds: set authToken from a generated password stored in Secrets Manager (or attach an RBAC user group).",
      );
    }
  },
});

interface RedisBackupConfig {
  minSnapshotRetentionDays: number;
}

export const redisBackups = resourceRule<RedisBackupConfig>({
  name: "redis-backups",
  description:
    "Redis keeps snapshots (ElastiCache snapshotRetentionLimit, Memorystore RDB persistence), so rate-limit and budget counters survive a failure.",
  domain: "data",
  enforcement: { dev: "disabled", staging: "advisory", prod: "mandatory" },
  types: [T.elasticacheRg, T.memorystore],
  config: {
    schema: {
      minSnapshotRetentionDays: {
        type: "integer",
        minimum: 1,
        maximum: 35,
        description: "Fewest days of ElastiCache snapshots.",
      },
    },
    defaults: {
      dev: { minSnapshotRetentionDays: 1 },
      staging: { minSnapshotRetentionDays: 1 },
      prod: { minSnapshotRetentionDays: 3 },
    },
  },
  validateResource(r, { config }, report) {
    if (r.type === T.memorystore) {
      const mode = str(get(r.props, "persistenceConfig.persistenceMode"));
      if (mode !== UNKNOWN && mode !== "RDB") {
        report(
          `persistenceConfig.persistenceMode is ${mode ?? "unset (DISABLED)"}: set { persistenceMode: "RDB", rdbSnapshotPeriod: "ONE_HOUR" } (needs tier STANDARD_HA or BASIC with Redis 7+).`,
        );
      }
      return;
    }
    const days = num(r.props.snapshotRetentionLimit);
    if (days === UNKNOWN) return;
    if ((days ?? 0) < config.minSnapshotRetentionDays) {
      report(
        `snapshotRetentionLimit is ${days ?? "unset (0: no snapshots)"}: set it to at least ${config.minSnapshotRetentionDays} days.`,
      );
    }
  },
});

/** The ports a rule opens, `[from, to]`, or undefined for "all ports". */
function portRange(
  from: unknown,
  to: unknown,
  protocol: unknown,
): [number, number] | undefined | typeof UNKNOWN {
  const f = num(from);
  const t = num(to);
  const proto = str(protocol);
  if (f === UNKNOWN || t === UNKNOWN || proto === UNKNOWN) return UNKNOWN;
  if (proto === "-1" || proto === "all") return undefined;
  if (f === undefined || t === undefined) return undefined;
  if (f === -1 || t === -1) return undefined;
  return [f, t];
}

function exposedPorts(range: [number, number] | undefined): number[] {
  if (!range) return PROTECTED_PORTS;
  return PROTECTED_PORTS.filter((p) => p >= range[0] && p <= range[1]);
}

function reportOpen(report: ReportResource, ports: number[], where: string): void {
  if (ports.length === 0) return;
  report(
    `${where} admits 0.0.0.0/0 on port${ports.length > 1 ? "s" : ""} ${ports.join(", ")} (databases, caches, SSH/RDP): admit only the compute security group or a private CIDR, and reach hosts through SSM or IAP instead of SSH.`,
  );
}

export const dataPortsNotPublic = resourceRule({
  name: "data-ports-not-public",
  description:
    "No firewall or security group admits the internet to Postgres, Redis, SSH or RDP ports.",
  domain: "data",
  enforcement: LEVELS.security,
  types: [T.sgIngressRule, T.sgRule, T.securityGroup, T.gcpFirewall],
  validateResource(r, _ctx, report) {
    const p = r.props;
    switch (r.type) {
      case T.sgIngressRule: {
        if (!isInternetCidr(p.cidrIpv4) && !isInternetCidr(p.cidrIpv6)) return;
        const range = portRange(p.fromPort, p.toPort, p.ipProtocol);
        if (range === UNKNOWN) return;
        reportOpen(report, exposedPorts(range), "This ingress rule");
        return;
      }
      case T.sgRule: {
        if (p.type !== "ingress") return;
        const cidrs = [...asList(p.cidrBlocks), ...asList(p.ipv6CidrBlocks)];
        if (!cidrs.some(isInternetCidr)) return;
        const range = portRange(p.fromPort, p.toPort, p.protocol);
        if (range === UNKNOWN) return;
        reportOpen(report, exposedPorts(range), "This security group rule");
        return;
      }
      case T.securityGroup: {
        const ingress = list(p.ingress);
        if (ingress === UNKNOWN) return;
        for (const rule of ingress) {
          const cidrs = [
            ...asList(get(rule, "cidrBlocks")),
            ...asList(get(rule, "ipv6CidrBlocks")),
          ];
          if (!cidrs.some(isInternetCidr)) continue;
          const range = portRange(
            get(rule, "fromPort"),
            get(rule, "toPort"),
            get(rule, "protocol"),
          );
          if (range === UNKNOWN) continue;
          reportOpen(report, exposedPorts(range), "An inline ingress rule of this security group");
        }
        return;
      }
      case T.gcpFirewall: {
        const direction = str(p.direction);
        if (direction === UNKNOWN || (direction !== undefined && direction !== "INGRESS")) return;
        if (!asList(p.sourceRanges).some(isInternetCidr)) return;
        const allows = list(p.allows);
        if (allows === UNKNOWN) return;
        const open = new Set<number>();
        for (const a of allows) {
          const proto = str(get(a, "protocol"));
          if (proto === UNKNOWN) continue;
          const ports = list(get(a, "ports"));
          if (ports === UNKNOWN) continue;
          if (proto === "all" || ((proto === "tcp" || proto === "udp") && ports.length === 0)) {
            PROTECTED_PORTS.forEach((x) => open.add(x));
            continue;
          }
          if (proto !== "tcp" && proto !== "udp") continue;
          for (const spec of ports) {
            const [lo, hi] = String(spec).split("-").map(Number);
            exposedPorts([lo!, hi ?? lo!]).forEach((x) => open.add(x));
          }
        }
        reportOpen(
          report,
          [...open].sort((a, b) => a - b),
          "This firewall rule",
        );
        return;
      }
    }
  },
});

function asList(v: unknown): unknown[] {
  const l = list(v);
  return l === UNKNOWN ? [] : l;
}

/** Stateful stores whose loss is data loss. */
const STATEFUL = [
  T.rdsInstance,
  T.rdsCluster,
  T.cloudSql,
  T.elasticacheRg,
  T.memorystore,
  T.memorystoreCluster,
];

export const prodDeletionProtection = resourceRule({
  name: "prod-deletion-protection",
  description:
    "In prod, databases and caches refuse deletion: the provider's deletion protection where it exists, and Pulumi's protect option always.",
  domain: "data",
  enforcement: LEVELS.prodOnly,
  types: STATEFUL,
  validateResource(r: PolicyResource, _ctx, report) {
    const p = r.props;
    if (r.protect === false) {
      report(
        "The protect resource option is off: pass { protect: true } (and retainOnDelete) so `pulumi destroy` or a rename cannot delete the data.",
      );
    }
    if (r.type === T.rdsInstance || r.type === T.rdsCluster) {
      flagFalse(
        report,
        p.deletionProtection,
        "deletionProtection is off: set deletionProtection: true.",
      );
      const skip = bool(p.skipFinalSnapshot);
      if (skip === true)
        report(
          "skipFinalSnapshot is true: set it to false and give finalSnapshotIdentifier, so a deletion leaves a snapshot.",
        );
    } else if (r.type === T.cloudSql) {
      // `deletionProtection` (Pulumi side) defaults to true; the API-side flag does not.
      const pulumiSide = bool(p.deletionProtection);
      if (pulumiSide === false) report("deletionProtection is false: remove it or set it to true.");
      flagFalse(
        report,
        get(p, "settings.deletionProtectionEnabled"),
        "settings.deletionProtectionEnabled is off: set it to true so the instance cannot be deleted from the console or API either.",
      );
    } else if (r.type === T.memorystore) {
      const flag = bool(p.deletionProtection);
      if (flag === false) report("deletionProtection is false: set it to true.");
    }
  },
});

export const dataRules = [
  databaseEncryptedAtRest,
  databaseTlsRequired,
  databaseNotPublic,
  databaseBackups,
  redisEncryptedAtRest,
  redisTlsAndAuth,
  redisBackups,
  dataPortsNotPublic,
  prodDeletionProtection,
];
