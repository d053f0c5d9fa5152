import * as pulumi from "@pulumi/pulumi";
import type { DataPlaneOutputs, SecretRef } from "../contracts";
import type { EnvironmentProfile } from "../environment";
import { gcpSizing, type GcpSizing } from "./sizing";
import { GcpNetwork, type GcpNetworkArgs } from "./network";
import { GcpRedis } from "./redis";
import { GcpPostgres } from "./postgres";
import { GcpSecrets, SecretAccessGrant, type SecretReplicationPolicy } from "./secrets";
import { GcpMonitoring, type StoreAlertThresholds } from "./monitoring";
import { GcpBudget } from "./budget";
import { checkAutonamedName, checkProjectId, checkRegion, joinProblems } from "./naming";

export interface GcpDataPlaneArgs {
  project: string;
  region: string;
  /** `environmentProfile(env)`: every dev/prod difference comes from here (through `gcpSizing`). */
  profile: EnvironmentProfile;
  /**
   * The Anthropic API key, as a Pulumi secret (`config.requireSecret`); none with the vertex
   * upstream (the service account calls Vertex AI).
   */
  anthropicApiKey?: pulumi.Input<string>;
  /** Alert and budget recipients (1-5 addresses: a budget mails at most five channels). */
  alertEmails: string[];
  /** Billing account the budget is created on, `XXXXXX-XXXXXX-XXXXXX`. */
  billingAccount: string;
  /**
   * The project's number, for the budget filter.
   * @default looked up from `project`
   */
  projectNumber?: pulumi.Input<string>;
  /**
   * Monthly budget in USD.
   * @default profile.monthlyBudgetUsd
   */
  monthlyBudgetUsd?: number;
  /**
   * Count only spend carrying this one label. Leave unset when the project belongs to this stack
   * alone: unlabelled costs (NAT, egress, logging) would otherwise escape the budget.
   * @default no label filter (the whole project)
   */
  budgetLabelFilter?: Record<string, string>;
  /**
   * Labels for the resources that take them (stack-wide labels also come from tagging).
   * @default {}
   */
  labels?: Record<string, string>;
  /**
   * Network ranges, compute tag and service port.
   * @default { subnetCidr: "10.10.0.0/20", privateServiceCidr: "10.64.0.0/16", computeTag: "agent-compute", appPort: SERVICE_CONTRACT.port }
   */
  network?: Pick<GcpNetworkArgs, "subnetCidr" | "privateServiceCidr" | "computeTag" | "appPort">;
  /**
   * Replication of every secret.
   * @default { kind: "user-managed", locations: [region] }
   */
  secretReplication?: SecretReplicationPolicy;
  /**
   * Set the project's `_Default` log bucket retention (project-wide: turn off in shared projects).
   * @default true
   */
  manageLogRetention?: boolean;
  /** @default { redisMemoryRatio: 0.8, sqlCpuRatio: 0.8, sqlDiskRatio: 0.85 } */
  alertThresholds?: StoreAlertThresholds;
  /**
   * Provider for the billing budget: `ProjectApis.billingProvider` bills the Budget API's quota
   * to this project, where the stack enables it.
   * @default the inherited provider (the deployer's own quota project must have
   *   billingbudgets.googleapis.com enabled)
   */
  billingProvider?: pulumi.ProviderResource;
  /** The budget's name in the billing console. @default the budget component's name */
  budgetDisplayName?: string;
}

export function validateDataPlaneArgs(name: string, args: GcpDataPlaneArgs): string | undefined {
  return joinProblems(`GcpDataPlane "${name}"`, [
    // The longest child name is `${name}-redis-instance`, and Memorystore allows 40 characters.
    checkAutonamedName(`${name}-redis-instance`, 40),
    checkProjectId(args.project),
    checkRegion(args.region),
    args.alertEmails.length >= 1 && args.alertEmails.length <= 5
      ? undefined
      : `alertEmails has ${args.alertEmails.length} addresses: give 1 to 5 (a budget mails at most five channels; use a group address for more people).`,
    args.monthlyBudgetUsd === undefined ||
    (Number.isFinite(args.monthlyBudgetUsd) && args.monthlyBudgetUsd > 0)
      ? undefined
      : `monthlyBudgetUsd ${args.monthlyBudgetUsd} must be a positive number of dollars.`,
  ]);
}

/**
 * The GCP data plane: a private VPC with Cloud NAT, Memorystore Redis and Cloud SQL Postgres on
 * Private Service Access, Secret Manager secrets, Cloud Monitoring, and a billing budget. Targets
 * consume `outputs` (the cloud-neutral contract) and call `grantAccess` for their identity.
 *
 * Cost in us-central1, before the target's compute: dev about $100/month (NAT $33, Redis BASIC
 * 1 GB $36, Cloud SQL db-g1-small $28); prod about $440/month (NAT $33, Redis STANDARD_HA 5 GB
 * $197, Cloud SQL db-custom-2-7680 REGIONAL $210), plus traffic, backups and log storage.
 */
export class GcpDataPlane extends pulumi.ComponentResource {
  public readonly outputs: DataPlaneOutputs<"gcp">;
  public readonly sizing: GcpSizing;
  /** The data plane's secrets by stable key: what `grantAccess` binds. */
  public readonly secretRefs: Partial<Record<"anthropic-key", SecretRef<"gcp">>> &
    Record<"redis-auth" | "postgres-password", SecretRef<"gcp">>;
  /** PEM CA certificates of Memorystore, for clients' TLS verification. */
  public readonly redisServerCaCerts: pulumi.Output<string[]>;
  public readonly network: GcpNetwork;
  public readonly secrets: GcpSecrets;
  public readonly redis: GcpRedis;
  public readonly postgres: GcpPostgres;
  public readonly monitoring: GcpMonitoring;
  public readonly budget: GcpBudget;
  private readonly baseName: string;

  constructor(name: string, args: GcpDataPlaneArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:gcp:DataPlane", name, {}, opts);
    const problem = validateDataPlaneArgs(name, args);
    if (problem) throw new pulumi.ResourceError(problem, this);
    this.baseName = name;
    const sizing = gcpSizing(args.profile);
    this.sizing = sizing;

    this.network = this.createNetwork(name, args, sizing);
    this.secrets = this.createSecrets(name, args);
    this.redis = this.createRedis(name, args, sizing);
    this.postgres = this.createPostgres(name, args, sizing);
    this.monitoring = this.createMonitoring(name, args, sizing);
    this.budget = this.createBudget(name, args);

    this.secretRefs = {
      ...(this.secrets.anthropicKey && { "anthropic-key": this.secrets.anthropicKey.ref }),
      "redis-auth": this.redis.endpoint.authSecret,
      "postgres-password": this.postgres.endpoint.passwordSecret,
    };
    this.redisServerCaCerts = this.redis.serverCaCerts;
    this.outputs = {
      cloud: "gcp",
      environment: args.profile.environment,
      region: args.region,
      redis: this.redis.endpoint,
      postgres: this.postgres.endpoint,
      anthropicKey: this.secrets.anthropicKey?.ref,
      network: this.network.attachment,
      monitoring: this.monitoring.hooks,
      secrets: Object.values(this.secretRefs),
    } satisfies DataPlaneOutputs<"gcp">;

    this.registerOutputs({
      redisHost: this.outputs.redis.host,
      postgresHost: this.outputs.postgres.host,
      networkId: this.network.attachment.networkId,
      dashboardUrl: this.outputs.monitoring.dashboardUrl,
    });
  }

  /**
   * Lets `serviceAccountEmail` read exactly this data plane's secrets (one
   * `roles/secretmanager.secretAccessor` binding per secret). Targets call it once their
   * service account exists, usually with `{ parent: this }` of the target.
   */
  public grantAccess(
    serviceAccountEmail: pulumi.Input<string>,
    opts: { name?: string; parent?: pulumi.Resource } = {},
  ): SecretAccessGrant {
    return new SecretAccessGrant(
      opts.name ?? `${this.baseName}-secret-access`,
      { serviceAccountEmail, secrets: this.secretRefs },
      { parent: opts.parent ?? this },
    );
  }

  private createNetwork(name: string, args: GcpDataPlaneArgs, sizing: GcpSizing): GcpNetwork {
    return new GcpNetwork(
      `${name}-network`,
      {
        project: args.project,
        region: args.region,
        nat: sizing.nat,
        flowLogSampling: sizing.flowLogSampling,
        ...args.network,
      },
      { parent: this },
    );
  }

  private createSecrets(name: string, args: GcpDataPlaneArgs): GcpSecrets {
    return new GcpSecrets(
      `${name}-secrets`,
      {
        project: args.project,
        region: args.region,
        anthropicApiKey: args.anthropicApiKey,
        replication: args.secretReplication,
        labels: args.labels,
      },
      { parent: this },
    );
  }

  /** Where both stores live: the private service range of this network, same labels and protection. */
  private privatePlacement(args: GcpDataPlaneArgs, sizing: GcpSizing) {
    return {
      project: args.project,
      region: args.region,
      networkId: this.network.attachment.networkId,
      privateServiceRangeName: this.network.privateServiceRangeName,
      privateServiceConnection: this.network.privateServiceConnection,
      secretReplication: this.secrets.replication,
      protect: sizing.protectData,
      labels: args.labels,
    };
  }

  private createRedis(name: string, args: GcpDataPlaneArgs, sizing: GcpSizing): GcpRedis {
    return new GcpRedis(
      `${name}-redis`,
      {
        ...this.privatePlacement(args, sizing),
        sizing: sizing.redis,
      },
      { parent: this },
    );
  }

  private createPostgres(name: string, args: GcpDataPlaneArgs, sizing: GcpSizing): GcpPostgres {
    return new GcpPostgres(
      `${name}-postgres`,
      {
        ...this.privatePlacement(args, sizing),
        sizing: sizing.postgres,
      },
      { parent: this },
    );
  }

  private createMonitoring(name: string, args: GcpDataPlaneArgs, sizing: GcpSizing): GcpMonitoring {
    return new GcpMonitoring(
      `${name}-monitoring`,
      {
        project: args.project,
        alertEmails: args.alertEmails,
        stores: {
          redisInstanceId: this.redis.instanceId,
          cloudSqlDatabaseId: this.postgres.monitoringDatabaseId,
        },
        logRetentionDays: sizing.logRetentionDays,
        manageLogRetention: args.manageLogRetention,
        thresholds: args.alertThresholds,
        labels: args.labels,
      },
      { parent: this },
    );
  }

  private createBudget(name: string, args: GcpDataPlaneArgs): GcpBudget {
    return new GcpBudget(
      `${name}-budget`,
      {
        billingAccount: args.billingAccount,
        project: args.project,
        projectNumber: args.projectNumber,
        amount: args.monthlyBudgetUsd ?? args.profile.monthlyBudgetUsd,
        labelFilter: args.budgetLabelFilter,
        displayName: args.budgetDisplayName,
        notificationChannelIds: this.monitoring.channels.map((c) => c.id),
      },
      { parent: this, ...(args.billingProvider ? { provider: args.billingProvider } : {}) },
    );
  }
}
