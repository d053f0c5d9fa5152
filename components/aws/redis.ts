/**
 * ElastiCache (Valkey or Redis OSS) for the agent's cache, rate limits and budget counters:
 * private subnets only, TLS required, encrypted at rest, AUTH token kept in Secrets Manager.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import type { RedisEndpoint, SecretRef } from "../contracts";
import { checkAutonamedIdentifier } from "./checks";
import type { RedisSizing } from "./sizing";
import { StoredSecret } from "./stored-secret";

export interface RedisArgs {
  /** Private subnets, one per AZ the nodes may use. */
  subnetIds: pulumi.Input<pulumi.Input<string>[]>;
  /** The Redis security group (admits only compute). */
  securityGroupId: pulumi.Input<string>;
  /** Node type, count, HA and snapshots: from `awsSizing(profile).redis`. */
  sizing: RedisSizing;
  /**
   * Pulumi `protect` on the replication group, its token and secret.
   * @default false
   */
  protect?: boolean;
  /**
   * Customer-managed KMS key for at-rest encryption and the AUTH secret.
   * @default AWS-managed keys
   */
  kmsKeyArn?: pulumi.Input<string>;
  /** @default 30 */
  secretRecoveryWindowDays?: number;
  /** UTC. @default "sun:05:00-sun:06:00" */
  maintenanceWindow?: string;
  /** UTC, must not overlap the maintenance window. @default "03:00-04:00" */
  snapshotWindow?: string;
}

/**
 * The AUTH token's shape. ElastiCache accepts 16-128 printable characters but rejects `@`, `"`
 * and `/`, and clients put the token in `rediss://` URLs, so letters and digits only: 64 of them
 * are ~380 bits, far beyond what any special character would add.
 */
export const AUTH_TOKEN_SPEC = {
  length: 64,
  special: false,
  upper: true,
  lower: true,
  numeric: true,
} as const;

/** Problems with a sizing, each saying what to change. Empty when valid. */
export function checkRedisSizing(s: RedisSizing): string[] {
  const problems: string[] = [];
  if (!s.nodeType.startsWith("cache."))
    problems.push(
      `nodeType "${s.nodeType}" is not an ElastiCache node type such as "cache.t4g.micro".`,
    );
  if (!Number.isInteger(s.numCacheClusters) || s.numCacheClusters < 1 || s.numCacheClusters > 6) {
    problems.push(`numCacheClusters is ${s.numCacheClusters}: use 1 (no replica) to 6.`);
  }
  if (s.automaticFailover && s.numCacheClusters < 2) {
    problems.push(
      "automaticFailover needs a replica: set numCacheClusters to 2 or more, or turn failover off.",
    );
  }
  if (s.multiAz && !s.automaticFailover)
    problems.push("multiAz requires automaticFailover: turn both on or both off.");
  if (!s.parameterGroupFamily.startsWith(s.engine)) {
    problems.push(
      `parameterGroupFamily "${s.parameterGroupFamily}" does not match engine "${s.engine}": use e.g. "${s.engine}${s.engineVersion.split(".")[0]}".`,
    );
  }
  if (
    !Number.isInteger(s.snapshotRetentionDays) ||
    s.snapshotRetentionDays < 0 ||
    s.snapshotRetentionDays > 35
  ) {
    problems.push(`snapshotRetentionDays is ${s.snapshotRetentionDays}: use 0 (off) to 35.`);
  }
  return problems;
}

/**
 * A replication group with TLS and AUTH. Dev (1 x cache.t4g.micro) about $9/month; prod
 * (2 x cache.m7g.large across AZs, with snapshots) about $240/month plus snapshot storage.
 */
export class Redis extends pulumi.ComponentResource {
  readonly replicationGroup: aws.elasticache.ReplicationGroup;
  readonly authToken: random.RandomPassword;
  readonly authSecret: StoredSecret;
  readonly host: pulumi.Output<string>;
  readonly port: pulumi.Output<number>;
  /** The cloud-neutral endpoint targets consume. */
  readonly endpoint: RedisEndpoint<"aws">;

  private readonly name: string;

  constructor(name: string, args: RedisArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:aws:Redis", name, {}, opts);
    this.name = name;
    this.validate(args);
    const protect = args.protect ?? false;

    this.authToken = new random.RandomPassword(
      `${name}-auth-token`,
      { ...AUTH_TOKEN_SPEC },
      { parent: this, protect },
    );
    this.authSecret = this.storeToken(args, protect);
    const subnetGroup = this.createSubnetGroup(args.subnetIds);
    const parameterGroup = this.createParameterGroup(args.sizing);
    this.replicationGroup = this.createReplicationGroup(args, subnetGroup, parameterGroup, protect);

    this.host = this.replicationGroup.primaryEndpointAddress;
    this.port = this.replicationGroup.port.apply((p) => p ?? 6379);
    this.endpoint = {
      host: this.host,
      port: this.port,
      tls: true,
      authSecret: this.authSecret.ref,
    };
    this.registerOutputs({
      host: this.host,
      port: this.port,
      authSecretArn: this.authSecret.ref.id,
    });
  }

  get authSecretRef(): SecretRef<"aws"> {
    return this.authSecret.ref;
  }

  private validate(args: RedisArgs): void {
    // The replication group id is auto-named from `${name}-redis` and limited to 40 characters.
    const problems = [
      checkAutonamedIdentifier(`${this.name}-redis`, 40, "Redis"),
      ...checkRedisSizing(args.sizing),
    ];
    const first = problems.find((p) => p !== undefined);
    if (first) throw new pulumi.ResourceError(`Redis "${this.name}": ${first}`, this);
  }

  private storeToken(args: RedisArgs, protect: boolean): StoredSecret {
    return new StoredSecret(
      `${this.name}-auth`,
      {
        description: "ElastiCache AUTH token (REDIS_PASSWORD) for the agent service",
        value: this.authToken.result,
        kmsKeyArn: args.kmsKeyArn,
        recoveryWindowDays: args.secretRecoveryWindowDays,
        protect,
      },
      { parent: this },
    );
  }

  private createSubnetGroup(
    subnetIds: pulumi.Input<pulumi.Input<string>[]>,
  ): aws.elasticache.SubnetGroup {
    return new aws.elasticache.SubnetGroup(
      `${this.name}-subnets`,
      { description: "Private subnets for the agent cache", subnetIds },
      { parent: this },
    );
  }

  private createParameterGroup(sizing: RedisSizing): aws.elasticache.ParameterGroup {
    return new aws.elasticache.ParameterGroup(
      `${this.name}-params`,
      {
        family: sizing.parameterGroupFamily,
        description: "Agent cache parameters",
        parameters: [
          // Evict only keys with a TTL (cache entries), never budget ledgers or idempotency
          // records, which carry none: running out of memory then fails writes loudly instead
          // of silently forgetting spend.
          { name: "maxmemory-policy", value: "volatile-lru" },
        ],
      },
      { parent: this },
    );
  }

  private createReplicationGroup(
    args: RedisArgs,
    subnetGroup: aws.elasticache.SubnetGroup,
    parameterGroup: aws.elasticache.ParameterGroup,
    protect: boolean,
  ): aws.elasticache.ReplicationGroup {
    const s = args.sizing;
    return new aws.elasticache.ReplicationGroup(
      `${this.name}-redis`,
      {
        description: "Agent cache, rate limits and budget counters",
        engine: s.engine,
        engineVersion: s.engineVersion,
        nodeType: s.nodeType,
        numCacheClusters: s.numCacheClusters,
        automaticFailoverEnabled: s.automaticFailover,
        multiAzEnabled: s.multiAz,
        port: 6379,
        subnetGroupName: subnetGroup.name,
        securityGroupIds: [args.securityGroupId],
        parameterGroupName: parameterGroup.name,
        atRestEncryptionEnabled: true,
        kmsKeyId: args.kmsKeyArn,
        transitEncryptionEnabled: true,
        // "required" rejects plaintext connections; "preferred" is only for migrations.
        transitEncryptionMode: "required",
        authToken: this.authToken.result,
        snapshotRetentionLimit: s.snapshotRetentionDays,
        snapshotWindow:
          s.snapshotRetentionDays > 0 ? (args.snapshotWindow ?? "03:00-04:00") : undefined,
        maintenanceWindow: args.maintenanceWindow ?? "sun:05:00-sun:06:00",
        autoMinorVersionUpgrade: true,
        applyImmediately: s.applyImmediately,
      },
      { parent: this, protect },
    );
  }
}
