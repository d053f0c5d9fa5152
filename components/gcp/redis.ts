import * as pulumi from "@pulumi/pulumi";
import * as gcp from "@pulumi/gcp";
import type { RedisEndpoint } from "../contracts";
import { MEMORYSTORE_REDIS_VERSION } from "../versions";
import type { RedisSizing } from "./sizing";
import { GcpSecret, type SecretReplicationPolicy } from "./secrets";
import { checkAutonamedName, checkProjectId, checkRegion, joinProblems } from "./naming";

/** Memorystore's 7.x line. */
/** From components/versions.ts. */
export const REDIS_VERSION = MEMORYSTORE_REDIS_VERSION;

export interface GcpRedisArgs {
  project: string;
  region: string;
  sizing: RedisSizing;
  /** `GcpNetwork.attachment.networkId`. */
  networkId: pulumi.Input<string>;
  /** Name of the PSA range the instance takes its /29 from (`GcpNetwork.privateServiceRangeName`). */
  privateServiceRangeName: pulumi.Input<string>;
  /** The PSA peering must exist before the instance: `GcpNetwork.privateServiceConnection`. */
  privateServiceConnection: pulumi.Resource;
  /** Replication for the AUTH-string secret. */
  secretReplication: SecretReplicationPolicy;
  /**
   * Refuse deletion (API deletion protection) and Pulumi `protect`.
   * @default false
   */
  protect?: boolean;
  /** @default {} */
  labels?: pulumi.Input<Record<string, pulumi.Input<string>>>;
}

export function validateRedisArgs(name: string, args: GcpRedisArgs): string | undefined {
  const { memorySizeGb, tier } = args.sizing;
  return joinProblems(`GcpRedis "${name}"`, [
    // Memorystore instance ids are limited to 40 characters.
    checkAutonamedName(`${name}-instance`, 40),
    checkProjectId(args.project),
    checkRegion(args.region),
    Number.isInteger(memorySizeGb) && memorySizeGb >= 1 && memorySizeGb <= 300
      ? undefined
      : `memorySizeGb ${memorySizeGb} must be a whole number of GB between 1 and 300.`,
    tier === "BASIC" || tier === "STANDARD_HA"
      ? undefined
      : `tier "${String(tier)}" must be BASIC or STANDARD_HA.`,
  ]);
}

/** The Memorystore arguments that follow from sizing: pure, so tests read them directly. */
export function redisInstanceSettings(sizing: RedisSizing, protect: boolean) {
  return {
    tier: sizing.tier,
    memorySizeGb: sizing.memorySizeGb,
    redisVersion: REDIS_VERSION,
    authEnabled: true,
    // TLS with server authentication: clients verify the instance against `serverCaCerts`.
    transitEncryptionMode: "SERVER_AUTHENTICATION",
    connectMode: "PRIVATE_SERVICE_ACCESS",
    // Unset means "protected" for this resource, so state it both ways.
    deletionProtection: protect,
    persistenceConfig: sizing.rdbSnapshotPeriod
      ? { persistenceMode: "RDB", rdbSnapshotPeriod: sizing.rdbSnapshotPeriod }
      : { persistenceMode: "DISABLED" },
    redisConfigs: {
      // Evict only keys with a TTL (cache entries); rate-limit and budget counters stay.
      "maxmemory-policy": "volatile-lru",
    },
  };
}

/**
 * Memorystore for Redis 7 on Private Service Access: AUTH on, TLS (server authentication) on,
 * no public endpoint. The provider-generated AUTH string goes straight into Secret Manager.
 *
 * Cost in us-central1: BASIC 1 GB about $36/month (dev); STANDARD_HA 5 GB about $197/month (prod).
 */
export class GcpRedis extends pulumi.ComponentResource {
  public readonly endpoint: RedisEndpoint<"gcp">;
  /** PEM certificates of the instance's CA: clients must trust these for TLS. */
  public readonly serverCaCerts: pulumi.Output<string[]>;
  /** The AUTH string, as a Pulumi secret. Prefer `endpoint.authSecret` at runtime. */
  public readonly authString: pulumi.Output<string>;
  /** Resource id for monitoring filters (`resource.labels.instance_id`). */
  public readonly instanceId: pulumi.Output<string>;
  public readonly instance: gcp.redis.Instance;
  public readonly authSecret: GcpSecret;

  constructor(name: string, args: GcpRedisArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:gcp:Redis", name, {}, opts);
    const problem = validateRedisArgs(name, args);
    if (problem) throw new pulumi.ResourceError(problem, this);
    const protect = args.protect ?? false;

    this.instance = this.createInstance(name, args, protect);
    this.authString = pulumi.secret(this.instance.authString);
    this.authSecret = this.storeAuthString(name, args);
    this.serverCaCerts = this.instance.serverCaCerts.apply((certs) =>
      (certs ?? []).map((c) => c.cert),
    );
    this.instanceId = this.instance.id;
    this.endpoint = {
      host: this.instance.host,
      port: this.instance.port,
      tls: true,
      authSecret: this.authSecret.ref,
      // Memorystore signs with its own CA: the app must trust it explicitly (REDIS_TLS_CA).
      caCertificate: this.serverCaCerts.apply((certs) => certs.join("\n")),
    };

    this.registerOutputs({
      host: this.endpoint.host,
      port: this.endpoint.port,
      authSecretId: this.authSecret.ref.id,
      serverCaCerts: this.serverCaCerts,
    });
  }

  private createInstance(name: string, args: GcpRedisArgs, protect: boolean): gcp.redis.Instance {
    return new gcp.redis.Instance(
      `${name}-instance`,
      {
        project: args.project,
        region: args.region,
        authorizedNetwork: args.networkId,
        reservedIpRange: args.privateServiceRangeName,
        ...redisInstanceSettings(args.sizing, protect),
        maintenancePolicy: {
          weeklyMaintenanceWindows: [
            { day: "SUNDAY", startTime: { hours: 3, minutes: 0, seconds: 0, nanos: 0 } },
          ],
        },
        labels: args.labels,
      },
      {
        parent: this,
        dependsOn: [args.privateServiceConnection],
        additionalSecretOutputs: ["authString"],
        protect,
      },
    );
  }

  private storeAuthString(name: string, args: GcpRedisArgs): GcpSecret {
    return new GcpSecret(
      `${name}-auth`,
      {
        project: args.project,
        value: this.authString,
        replication: args.secretReplication,
        labels: args.labels,
      },
      { parent: this },
    );
  }
}
