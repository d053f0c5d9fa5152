/**
 * The AWS data plane: network, Redis, Postgres, secrets, monitoring and the cost budget, exposed
 * to targets only through the cloud-neutral `DataPlaneOutputs`.
 */
import * as pulumi from "@pulumi/pulumi";
import type { UpstreamKind } from "../upstream";
import type { DataPlaneOutputs, Environment } from "../contracts";
import { type EnvironmentProfile, environmentProfile } from "../environment";
import { Budget } from "./budget";
import { checkAwsRegion } from "./checks";
import { Monitoring, type DataPlaneThresholds } from "./monitoring";
import { Network } from "./network";
import { Postgres } from "./postgres";
import { Redis } from "./redis";
import { Secrets } from "./secrets";
import { type AwsSizing, awsSizing } from "./sizing";

export interface AwsDataPlaneArgs {
  environment: Environment;
  /** The provider's region (`aws:region`); reported in the outputs and used for the dashboard. */
  region: string;
  /** Tag the budget counts: `costAllocationTag(stackTags)` from components/tagging.ts. */
  costAllocationTag: { key: string; value: string };
  /**
   * The Anthropic API key (a Pulumi secret).
   * @default none: the secret is created empty and filled out of band
   */
  anthropicApiKey?: pulumi.Input<string>;
  /**
   * Who serves the model calls. With `bedrock` the service uses its IAM role and no Anthropic key
   * is stored (passing one is an error).
   * @default "anthropic"
   */
  upstream?: UpstreamKind;
  /** Alarm and budget e-mail recipients. @default [] */
  alertEmails?: string[];
  /** @default the environment profile's monthlyBudgetUsd */
  monthlyBudgetUsd?: number;
  /** @default "10.0.0.0/16" */
  vpcCidr?: string;
  /** Customer-managed KMS key for the stores and secrets. @default AWS-managed keys */
  kmsKeyArn?: pulumi.Input<string>;
  /** Alarm thresholds. @default see DataPlaneThresholds */
  thresholds?: DataPlaneThresholds;
  /** See `BudgetArgs.activateCostAllocationTag`. @default false */
  activateCostAllocationTag?: boolean;
  /** Replace the environment's profile (tests, unusual stacks). @default environmentProfile(environment) */
  profile?: EnvironmentProfile;
  /** Replace the AWS sizing derived from the profile. @default awsSizing(profile) */
  sizing?: AwsSizing;
}

/**
 * Everything the agent needs besides compute. Dev is about $70/month (single NAT $33, Redis $9,
 * Postgres $15, KMS/alarms/dashboard/secrets ~$8); prod about $650/month (3 NAT $97, Redis HA
 * $240, Postgres Multi-AZ $275, flow logs and monitoring ~$20), before traffic and storage growth.
 */
export class AwsDataPlane extends pulumi.ComponentResource {
  readonly network: Network;
  /** The Anthropic API key's secret; none with the bedrock upstream. */
  readonly secrets?: Secrets;
  readonly redis: Redis;
  readonly postgres: Postgres;
  readonly monitoring: Monitoring;
  readonly budget: Budget;
  readonly sizing: AwsSizing;
  /** What targets consume. */
  readonly outputs: DataPlaneOutputs<"aws">;

  constructor(name: string, args: AwsDataPlaneArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:aws:DataPlane", name, {}, opts);
    const profile = args.profile ?? environmentProfile(args.environment);
    this.validate(name, args, profile);
    this.sizing = args.sizing ?? awsSizing(profile);

    this.network = this.createNetwork(name, args);
    this.secrets =
      (args.upstream ?? "anthropic") === "anthropic" ? this.createSecrets(name, args) : undefined;
    if (!this.secrets && args.anthropicApiKey !== undefined) {
      throw new pulumi.ResourceError(
        `AwsDataPlane "${name}": upstream ${args.upstream} needs no Anthropic API key: remove anthropicApiKey (it would be stored for nothing).`,
        this,
      );
    }
    this.redis = this.createRedis(name, args);
    this.postgres = this.createPostgres(name, args);
    this.monitoring = this.createMonitoring(name, args);
    this.budget = this.createBudget(name, args, profile);

    this.outputs = {
      cloud: "aws",
      environment: args.environment,
      region: args.region,
      redis: this.redis.endpoint,
      postgres: this.postgres.endpoint,
      anthropicKey: this.secrets?.anthropicKeyRef,
      network: this.network.attachment,
      monitoring: this.monitoring.hooks,
      secrets: [
        ...(this.secrets ? [this.secrets.anthropicKeyRef] : []),
        this.redis.endpoint.authSecret,
        this.postgres.endpoint.passwordSecret,
      ],
    } satisfies DataPlaneOutputs<"aws">;
    this.registerOutputs({
      redisHost: this.redis.host,
      postgresHost: this.postgres.host,
      vpcId: this.network.vpc.id,
      alarmTopicArn: this.monitoring.alarmTopicArn,
      dashboardUrl: this.monitoring.dashboardUrl,
    });
  }

  private createNetwork(name: string, args: AwsDataPlaneArgs): Network {
    const s = this.sizing;
    return new Network(
      `${name}-net`,
      {
        availabilityZoneCount: s.network.availabilityZones,
        natGateways: s.network.natGateways,
        flowLogs: s.network.flowLogs,
        flowLogRetentionDays: s.logRetentionDays,
        cidrBlock: args.vpcCidr,
      },
      { parent: this },
    );
  }

  private createSecrets(name: string, args: AwsDataPlaneArgs): Secrets {
    return new Secrets(
      `${name}-secrets`,
      {
        anthropicApiKey: args.anthropicApiKey,
        kmsKeyArn: args.kmsKeyArn,
        recoveryWindowDays: this.sizing.secretRecoveryWindowDays,
        protect: this.sizing.protectData,
      },
      { parent: this },
    );
  }

  private createRedis(name: string, args: AwsDataPlaneArgs): Redis {
    return new Redis(
      `${name}-cache`,
      {
        subnetIds: this.network.privateSubnetIds,
        securityGroupId: this.network.redisSecurityGroup.id,
        sizing: this.sizing.redis,
        kmsKeyArn: args.kmsKeyArn,
        secretRecoveryWindowDays: this.sizing.secretRecoveryWindowDays,
        protect: this.sizing.protectData,
      },
      { parent: this },
    );
  }

  private createPostgres(name: string, args: AwsDataPlaneArgs): Postgres {
    return new Postgres(
      `${name}-pg`,
      {
        subnetIds: this.network.privateSubnetIds,
        securityGroupId: this.network.postgresSecurityGroup.id,
        sizing: this.sizing.postgres,
        kmsKeyArn: args.kmsKeyArn,
        secretRecoveryWindowDays: this.sizing.secretRecoveryWindowDays,
        protect: this.sizing.protectData,
      },
      { parent: this },
    );
  }

  private createMonitoring(name: string, args: AwsDataPlaneArgs): Monitoring {
    const s = this.sizing;
    return new Monitoring(
      `${name}-mon`,
      {
        region: args.region,
        logRetentionDays: s.logRetentionDays,
        alertEmails: args.alertEmails,
        redis: {
          replicationGroupId: this.redis.replicationGroup.id,
          nodeCount: s.redis.numCacheClusters,
        },
        postgres: {
          instanceIdentifier: this.postgres.instance.identifier,
          instanceClass: s.postgres.instanceClass,
          allocatedStorageGb: s.postgres.allocatedStorageGb,
        },
        thresholds: args.thresholds,
      },
      { parent: this },
    );
  }

  private createBudget(name: string, args: AwsDataPlaneArgs, profile: EnvironmentProfile): Budget {
    return new Budget(
      `${name}-budget`,
      {
        monthlyLimitUsd: args.monthlyBudgetUsd ?? profile.monthlyBudgetUsd,
        costAllocationTag: args.costAllocationTag,
        alertEmails: args.alertEmails,
        alarmTopicArn: this.monitoring.alarmTopicArn,
        activateCostAllocationTag: args.activateCostAllocationTag,
      },
      { parent: this },
    );
  }

  private validate(name: string, args: AwsDataPlaneArgs, profile: EnvironmentProfile): void {
    const problems: string[] = [];
    const region = checkAwsRegion(args.region);
    if (region) problems.push(region);
    if (profile.environment !== args.environment) {
      problems.push(
        `profile is for "${profile.environment}" but environment is "${args.environment}": pass a matching profile.`,
      );
    }
    if (args.sizing && args.sizing.environment !== args.environment) {
      problems.push(
        `sizing is for "${args.sizing.environment}" but environment is "${args.environment}": pass a matching sizing.`,
      );
    }
    if (problems.length > 0)
      throw new pulumi.ResourceError(`AwsDataPlane "${name}": ${problems.join(" ")}`, this);
  }
}
