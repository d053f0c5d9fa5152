import * as pulumi from "@pulumi/pulumi";
import * as gcp from "@pulumi/gcp";
import * as random from "@pulumi/random";
import type { PostgresEndpoint } from "../contracts";
import { CLOUD_SQL_POSTGRES_VERSION } from "../versions";
import type { PostgresSizing } from "./sizing";
import { GcpSecret, type SecretReplicationPolicy } from "./secrets";
import { checkAutonamedName, checkProjectId, checkRegion, joinProblems } from "./naming";

/** From components/versions.ts. */
export const POSTGRES_VERSION = CLOUD_SQL_POSTGRES_VERSION;

export interface GcpPostgresArgs {
  project: string;
  region: string;
  sizing: PostgresSizing;
  /** `GcpNetwork.attachment.networkId`: the instance gets a private IP in this VPC only. */
  networkId: pulumi.Input<string>;
  /** The PSA range to allocate from (`GcpNetwork.privateServiceRangeName`). */
  privateServiceRangeName: pulumi.Input<string>;
  /** Cloud SQL needs the PSA peering before it can take a private IP. */
  privateServiceConnection: pulumi.Resource;
  secretReplication: SecretReplicationPolicy;
  /**
   * Database the app uses.
   * @default "agent"
   */
  databaseName?: string;
  /**
   * Built-in user the app logs in as.
   * @default "agent"
   */
  userName?: string;
  /**
   * Deletion protection at the API and Pulumi `protect` on the instance and database.
   * @default false
   */
  protect?: boolean;
  /** @default {} */
  labels?: pulumi.Input<Record<string, pulumi.Input<string>>>;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;
const RESERVED_USERS = new Set(["postgres", "cloudsqlsuperuser", "cloudsqladmin", "cloudsqlagent"]);

export function validatePostgresArgs(name: string, args: GcpPostgresArgs): string | undefined {
  const database = args.databaseName ?? "agent";
  const user = args.userName ?? "agent";
  const s = args.sizing;
  return joinProblems(`GcpPostgres "${name}"`, [
    checkAutonamedName(`${name}-instance`, 84),
    checkProjectId(args.project),
    checkRegion(args.region),
    IDENTIFIER.test(database)
      ? undefined
      : `databaseName "${database}" must be a lowercase identifier (letters, digits, underscores).`,
    IDENTIFIER.test(user)
      ? undefined
      : `userName "${user}" must be a lowercase identifier (letters, digits, underscores).`,
    RESERVED_USERS.has(user)
      ? `userName "${user}" is reserved by Cloud SQL: choose another name such as "agent".`
      : undefined,
    s.diskAutoresizeLimitGb >= s.diskSizeGb
      ? undefined
      : `diskAutoresizeLimitGb (${s.diskAutoresizeLimitGb}) is below diskSizeGb (${s.diskSizeGb}): raise the limit.`,
    s.diskSizeGb >= 10
      ? undefined
      : `diskSizeGb ${s.diskSizeGb} is below Cloud SQL's minimum of 10.`,
    s.availabilityType === "REGIONAL" && !s.pointInTimeRecovery
      ? "availabilityType REGIONAL requires pointInTimeRecovery: enable it in the sizing."
      : undefined,
    s.transactionLogRetentionDays >= 1 && s.transactionLogRetentionDays <= 7
      ? undefined
      : `transactionLogRetentionDays ${s.transactionLogRetentionDays} must be between 1 and 7 for the ENTERPRISE edition.`,
  ]);
}

/** Flags that make slow queries, lock waits and spills visible without logging every statement. */
export function postgresDatabaseFlags(sizing: PostgresSizing): { name: string; value: string }[] {
  return [
    { name: "log_min_duration_statement", value: String(sizing.logMinDurationStatementMs) },
    { name: "log_lock_waits", value: "on" },
    { name: "log_temp_files", value: "0" },
    { name: "log_checkpoints", value: "on" },
    // Kill sessions a crashed client left inside a transaction, holding locks.
    { name: "idle_in_transaction_session_timeout", value: "60000" },
  ];
}

/** Cloud SQL `settings`, minus the network: pure, so tests read it directly. */
export function postgresSettings(sizing: PostgresSizing, protect: boolean) {
  return {
    tier: sizing.tier,
    edition: sizing.edition,
    availabilityType: sizing.availabilityType,
    diskType: "PD_SSD",
    diskSize: sizing.diskSizeGb,
    diskAutoresize: true,
    diskAutoresizeLimit: sizing.diskAutoresizeLimitGb,
    deletionProtectionEnabled: protect,
    backupConfiguration: {
      enabled: true,
      startTime: "02:00",
      pointInTimeRecoveryEnabled: sizing.pointInTimeRecovery,
      transactionLogRetentionDays: sizing.pointInTimeRecovery
        ? sizing.transactionLogRetentionDays
        : undefined,
      backupRetentionSettings: { retainedBackups: sizing.retainedBackups, retentionUnit: "COUNT" },
    },
    databaseFlags: postgresDatabaseFlags(sizing),
    insightsConfig: {
      queryInsightsEnabled: true,
      recordApplicationTags: true,
      recordClientAddress: false,
    },
    maintenanceWindow: { day: 7, hour: 3, updateTrack: "stable" },
  };
}

/**
 * Cloud SQL for PostgreSQL 16 with a private IP only (no public address), TLS required,
 * automated backups, and a built-in user whose random password lives in Secret Manager.
 *
 * Cost in us-central1: dev (db-g1-small, zonal, 10 GB) about $28/month; prod
 * (db-custom-2-7680, REGIONAL, 50 GB) about $210/month before backups and egress.
 */
export class GcpPostgres extends pulumi.ComponentResource {
  public readonly endpoint: PostgresEndpoint<"gcp">;
  /** `project:instance`, as Cloud Monitoring's `resource.labels.database_id` spells it. */
  public readonly monitoringDatabaseId: pulumi.Output<string>;
  public readonly connectionName: pulumi.Output<string>;
  public readonly instance: gcp.sql.DatabaseInstance;
  public readonly database: gcp.sql.Database;
  public readonly user: gcp.sql.User;
  public readonly password: random.RandomPassword;
  public readonly passwordSecret: GcpSecret;

  constructor(name: string, args: GcpPostgresArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:gcp:Postgres", name, {}, opts);
    const problem = validatePostgresArgs(name, args);
    if (problem) throw new pulumi.ResourceError(problem, this);
    const protect = args.protect ?? false;
    const databaseName = args.databaseName ?? "agent";
    const userName = args.userName ?? "agent";

    this.instance = this.createInstance(name, args, protect);
    this.database = this.createDatabase(name, args, databaseName, protect);
    this.password = this.createPassword(name);
    this.user = this.createUser(name, args, userName);
    this.passwordSecret = this.storePassword(name, args);

    this.connectionName = this.instance.connectionName;
    this.monitoringDatabaseId = pulumi.interpolate`${args.project}:${this.instance.name}`;
    this.endpoint = {
      host: this.instance.privateIpAddress,
      port: pulumi.output(5432),
      database: databaseName,
      user: userName,
      passwordSecret: this.passwordSecret.ref,
      requireTls: true,
    };

    this.registerOutputs({
      host: this.endpoint.host,
      connectionName: this.connectionName,
      passwordSecretId: this.passwordSecret.ref.id,
    });
  }

  private createInstance(
    name: string,
    args: GcpPostgresArgs,
    protect: boolean,
  ): gcp.sql.DatabaseInstance {
    return new gcp.sql.DatabaseInstance(
      `${name}-instance`,
      {
        project: args.project,
        region: args.region,
        databaseVersion: POSTGRES_VERSION,
        deletionProtection: protect,
        settings: {
          ...postgresSettings(args.sizing, protect),
          ipConfiguration: {
            ipv4Enabled: false,
            privateNetwork: args.networkId,
            allocatedIpRange: args.privateServiceRangeName,
            sslMode: "ENCRYPTED_ONLY",
          },
          userLabels: args.labels,
        },
      },
      { parent: this, dependsOn: [args.privateServiceConnection], protect },
    );
  }

  private createDatabase(
    name: string,
    args: GcpPostgresArgs,
    databaseName: string,
    protect: boolean,
  ) {
    return new gcp.sql.Database(
      `${name}-db`,
      { project: args.project, instance: this.instance.name, name: databaseName },
      { parent: this, protect },
    );
  }

  private createPassword(name: string): random.RandomPassword {
    // Alphanumeric only: the password ends up in connection strings, where symbols need escaping.
    return new random.RandomPassword(
      `${name}-password`,
      { length: 32, special: false, minLower: 2, minUpper: 2, minNumeric: 2 },
      { parent: this, additionalSecretOutputs: ["result"] },
    );
  }

  private createUser(name: string, args: GcpPostgresArgs, userName: string): gcp.sql.User {
    return new gcp.sql.User(
      `${name}-user`,
      {
        project: args.project,
        instance: this.instance.name,
        name: userName,
        type: "BUILT_IN",
        password: pulumi.secret(this.password.result),
        // Postgres cannot drop a role that still owns objects; leave it to die with the instance.
        deletionPolicy: "ABANDON",
      },
      { parent: this, dependsOn: [this.database], additionalSecretOutputs: ["password"] },
    );
  }

  private storePassword(name: string, args: GcpPostgresArgs): GcpSecret {
    return new GcpSecret(
      `${name}-password-secret`,
      {
        project: args.project,
        value: pulumi.secret(this.password.result),
        replication: args.secretReplication,
        labels: args.labels,
      },
      { parent: this },
    );
  }
}
