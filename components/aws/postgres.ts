/**
 * RDS for PostgreSQL 16: private, encrypted, TLS required, backed up, its password generated
 * here and kept in Secrets Manager.
 *
 * Why a generated password in our own secret rather than `manageMasterUserPassword`: the
 * RDS-managed secret holds JSON (`{"username","password"}`) under an AWS-chosen name and rotates
 * on its own schedule, while the contract's `SecretRef` and the app (`DATABASE_PASSWORD`) expect
 * one plain string, the same shape as the Redis token and the GCP data plane's secrets. The cost
 * is that the password sits in Pulumi state, encrypted as a Pulumi secret.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import type { PostgresEndpoint } from "../contracts";
import { checkAutonamedIdentifier } from "./checks";
import type { PostgresSizing } from "./sizing";
import { StoredSecret } from "./stored-secret";

export interface PostgresArgs {
  /** Private subnets in at least two AZs (RDS requires two even for single-AZ). */
  subnetIds: pulumi.Input<pulumi.Input<string>[]>;
  /** The Postgres security group (admits only compute). */
  securityGroupId: pulumi.Input<string>;
  /** Instance class, storage, HA, backups: from `awsSizing(profile).postgres`. */
  sizing: PostgresSizing;
  /**
   * Pulumi `protect` on the instance, password and secret.
   * @default false
   */
  protect?: boolean;
  /** @default "agent" */
  databaseName?: string;
  /** @default "agent" */
  username?: string;
  /**
   * Customer-managed KMS key for storage, Performance Insights and the password secret.
   * @default AWS-managed keys
   */
  kmsKeyArn?: pulumi.Input<string>;
  /** @default 30 */
  secretRecoveryWindowDays?: number;
  /** UTC. @default "03:00-04:00" */
  backupWindow?: string;
  /** UTC, must not overlap the backup window. @default "sun:04:30-sun:05:30" */
  maintenanceWindow?: string;
  /** Log statements slower than this. @default 1000 */
  logMinDurationStatementMs?: number;
}

/**
 * Letters and digits only: RDS rejects `/`, `@`, `"` and spaces in master passwords, and the
 * password may end up in a `postgres://` URL. 40 characters is ~238 bits.
 */
export const PASSWORD_SPEC = {
  length: 40,
  special: false,
  upper: true,
  lower: true,
  numeric: true,
} as const;

const PG_IDENTIFIER = /^[a-z][a-z0-9_]{0,62}$/;

/** Problems with the database/user names and the sizing, each saying what to change. */
export function checkPostgresArgs(
  databaseName: string,
  username: string,
  s: PostgresSizing,
): string[] {
  const problems: string[] = [];
  if (!PG_IDENTIFIER.test(databaseName)) {
    problems.push(
      `databaseName "${databaseName}" must be lowercase letters, digits and _, starting with a letter (max 63).`,
    );
  }
  if (!PG_IDENTIFIER.test(username)) {
    problems.push(
      `username "${username}" must be lowercase letters, digits and _, starting with a letter (max 63).`,
    );
  } else if (username === "rdsadmin" || /^(rds|pg)_/.test(username)) {
    problems.push(
      `username "${username}" is reserved by RDS/PostgreSQL: choose another, e.g. "agent".`,
    );
  }
  if (!s.instanceClass.startsWith("db."))
    problems.push(`instanceClass "${s.instanceClass}" is not an RDS class such as "db.t4g.micro".`);
  if (!/^16(\.\d+)?$/.test(s.engineVersion))
    problems.push(
      `engineVersion "${s.engineVersion}" is not PostgreSQL 16: use "16" or "16.<minor>".`,
    );
  if (s.parameterGroupFamily !== "postgres16")
    problems.push(
      `parameterGroupFamily "${s.parameterGroupFamily}" must be "postgres16" for PostgreSQL 16.`,
    );
  if (
    !Number.isInteger(s.allocatedStorageGb) ||
    s.allocatedStorageGb < 20 ||
    s.allocatedStorageGb > 65536
  ) {
    problems.push(`allocatedStorageGb is ${s.allocatedStorageGb}: gp3 needs 20 to 65536.`);
  }
  if (!(s.maxAllocatedStorageGb > s.allocatedStorageGb) || s.maxAllocatedStorageGb > 65536) {
    problems.push(
      `maxAllocatedStorageGb (${s.maxAllocatedStorageGb}) must exceed allocatedStorageGb (${s.allocatedStorageGb}) and be at most 65536: it bounds storage autoscaling.`,
    );
  }
  if (
    !Number.isInteger(s.backupRetentionDays) ||
    s.backupRetentionDays < 1 ||
    s.backupRetentionDays > 35
  ) {
    problems.push(
      `backupRetentionDays is ${s.backupRetentionDays}: use 1 to 35 (0 would disable backups and point-in-time recovery).`,
    );
  }
  return problems;
}

/**
 * A PostgreSQL 16 instance. Dev (db.t4g.micro, 20 GB gp3, single-AZ) about $15/month; prod
 * (db.m7g.large Multi-AZ, 100 GB gp3, 30 days of backups) about $275/month plus backup storage
 * beyond the instance's size.
 */
export class Postgres extends pulumi.ComponentResource {
  readonly instance: aws.rds.Instance;
  readonly password: random.RandomPassword;
  readonly passwordSecret: StoredSecret;
  readonly host: pulumi.Output<string>;
  readonly port: pulumi.Output<number>;
  readonly databaseName: string;
  readonly username: string;
  /** The cloud-neutral endpoint targets consume. */
  readonly endpoint: PostgresEndpoint<"aws">;

  private readonly name: string;

  constructor(name: string, args: PostgresArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:aws:Postgres", name, {}, opts);
    this.name = name;
    this.databaseName = args.databaseName ?? "agent";
    this.username = args.username ?? "agent";
    this.validate(args);
    const protect = args.protect ?? false;

    this.password = new random.RandomPassword(
      `${name}-password`,
      { ...PASSWORD_SPEC },
      { parent: this, protect },
    );
    this.passwordSecret = this.storePassword(args, protect);
    const subnetGroup = this.createSubnetGroup(args.subnetIds);
    const parameterGroup = this.createParameterGroup(args);
    this.instance = this.createInstance(args, subnetGroup, parameterGroup, protect);

    this.host = this.instance.address;
    this.port = this.instance.port;
    this.endpoint = {
      host: this.host,
      port: this.port,
      database: this.databaseName,
      user: this.username,
      passwordSecret: this.passwordSecret.ref,
      requireTls: true,
    };
    this.registerOutputs({
      host: this.host,
      port: this.port,
      passwordSecretArn: this.passwordSecret.ref.id,
    });
  }

  private validate(args: PostgresArgs): void {
    const problems = [
      checkAutonamedIdentifier(`${this.name}-db`, 63, "Postgres"),
      ...checkPostgresArgs(this.databaseName, this.username, args.sizing),
    ];
    const ms = args.logMinDurationStatementMs ?? 1000;
    if (!Number.isInteger(ms) || ms < -1)
      problems.push(`logMinDurationStatementMs is ${ms}: use -1 (off) or milliseconds.`);
    const first = problems.find((p) => p !== undefined);
    if (first) throw new pulumi.ResourceError(`Postgres "${this.name}": ${first}`, this);
  }

  private storePassword(args: PostgresArgs, protect: boolean): StoredSecret {
    return new StoredSecret(
      `${this.name}-password`,
      {
        description: `PostgreSQL password (DATABASE_PASSWORD) of user ${this.username}`,
        value: this.password.result,
        kmsKeyArn: args.kmsKeyArn,
        recoveryWindowDays: args.secretRecoveryWindowDays,
        protect,
      },
      { parent: this },
    );
  }

  private createSubnetGroup(subnetIds: pulumi.Input<pulumi.Input<string>[]>): aws.rds.SubnetGroup {
    return new aws.rds.SubnetGroup(
      `${this.name}-subnets`,
      { description: "Private subnets for the agent database", subnetIds },
      { parent: this },
    );
  }

  private createParameterGroup(args: PostgresArgs): aws.rds.ParameterGroup {
    return new aws.rds.ParameterGroup(
      `${this.name}-params`,
      {
        family: args.sizing.parameterGroupFamily,
        description: "Agent database: TLS only, slow-query log",
        parameters: [
          // PostgreSQL 15+ on RDS defaults to 1, but only a parameter we own keeps it that way.
          { name: "rds.force_ssl", value: "1" },
          {
            name: "log_min_duration_statement",
            value: String(args.logMinDurationStatementMs ?? 1000),
          },
        ],
      },
      { parent: this },
    );
  }

  /**
   * Snapshot identifiers are unique per account and region, and the snapshot outlives the stack:
   * a fixed name fails the second stack's delete, and the same stack's after a re-create. The
   * stack's name plus a random suffix drawn once per instance is unique for both.
   */
  private finalSnapshotIdentifier(): pulumi.Output<string> {
    const suffix = new random.RandomId(
      `${this.name}-final-snapshot-id`,
      { byteLength: 4 },
      { parent: this },
    );
    const stack = pulumi
      .getStack()
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "");
    return pulumi.interpolate`${this.name}-${stack}-final-${suffix.hex}`;
  }

  private createInstance(
    args: PostgresArgs,
    subnetGroup: aws.rds.SubnetGroup,
    parameterGroup: aws.rds.ParameterGroup,
    protect: boolean,
  ): aws.rds.Instance {
    const s = args.sizing;
    return new aws.rds.Instance(
      `${this.name}-db`,
      {
        engine: "postgres",
        // A major version only: RDS picks the newest minor and autoMinorVersionUpgrade keeps it patched.
        engineVersion: s.engineVersion,
        instanceClass: s.instanceClass,
        dbName: this.databaseName,
        username: this.username,
        password: this.password.result,
        port: 5432,
        dbSubnetGroupName: subnetGroup.name,
        vpcSecurityGroupIds: [args.securityGroupId],
        parameterGroupName: parameterGroup.name,
        publiclyAccessible: false,
        storageType: "gp3",
        allocatedStorage: s.allocatedStorageGb,
        maxAllocatedStorage: s.maxAllocatedStorageGb,
        storageEncrypted: true,
        kmsKeyId: args.kmsKeyArn,
        multiAz: s.multiAz,
        backupRetentionPeriod: s.backupRetentionDays,
        backupWindow: args.backupWindow ?? "03:00-04:00",
        maintenanceWindow: args.maintenanceWindow ?? "sun:04:30-sun:05:30",
        copyTagsToSnapshot: true,
        deletionProtection: s.deletionProtection,
        skipFinalSnapshot: !s.finalSnapshot,
        finalSnapshotIdentifier: s.finalSnapshot ? this.finalSnapshotIdentifier() : undefined,
        // Keep automated backups after deletion where data matters: they are the last copy.
        deleteAutomatedBackups: !s.deletionProtection,
        performanceInsightsEnabled: s.performanceInsights,
        performanceInsightsRetentionPeriod: s.performanceInsights ? 7 : undefined,
        performanceInsightsKmsKeyId: s.performanceInsights ? args.kmsKeyArn : undefined,
        autoMinorVersionUpgrade: true,
        allowMajorVersionUpgrade: false,
        caCertIdentifier: "rds-ca-rsa2048-g1",
        applyImmediately: s.applyImmediately,
      },
      { parent: this, protect },
    );
  }
}
