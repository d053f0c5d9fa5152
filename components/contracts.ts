/**
 * The cloud-neutral contract between a data plane (one per cloud) and a deployment target.
 *
 * A target consumes only these types: it never learns whether its Redis is ElastiCache or
 * Memorystore. Each cloud's data plane declares `outputs satisfies DataPlaneOutputs<"aws">` (or
 * `<"gcp">`), so the compiler reports a cloud that falls behind the contract, and a target that
 * takes one cloud's data plane cannot be given the other's.
 */
import * as pulumi from "@pulumi/pulumi";

export type Cloud = "aws" | "gcp";
export type Environment = "dev" | "staging" | "prod";
export type TargetKind = "lambda" | "cloudrun" | "eks" | "vmgroup";

/** Each cloud's secret store. */
export interface SecretStoreOf {
  aws: "aws-secretsmanager";
  gcp: "gcp-secretmanager";
}

/**
 * A reference to a secret held in the cloud's secret store. Targets turn it into their native
 * mechanism (Cloud Run secret env, a secret read at start-up with a least-privilege role, a
 * Kubernetes secret synced from the store). The value itself never travels through this type.
 */
export interface SecretRef<C extends Cloud = Cloud> {
  store: SecretStoreOf[C];
  /** ARN (AWS) or full resource id `projects/<p>/secrets/<name>` (GCP). */
  id: pulumi.Output<string>;
  /** Short secret name, for environment variables such as `ANTHROPIC_API_KEY_SECRET`. */
  name: pulumi.Output<string>;
  /** GCP: the version to read. AWS: the version stage. */
  version: string;
}

export interface RedisEndpoint<C extends Cloud = Cloud> {
  host: pulumi.Output<string>;
  port: pulumi.Output<number>;
  /** Always true for what this project creates; kept so a target can build `rediss://` URLs. */
  tls: boolean;
  authSecret: SecretRef<C>;
  /** PEM of the CA that signs the server certificate, when it is not a public CA (Memorystore). */
  caCertificate?: pulumi.Output<string>;
}

export interface PostgresEndpoint<C extends Cloud = Cloud> {
  host: pulumi.Output<string>;
  port: pulumi.Output<number>;
  database: string;
  user: string;
  passwordSecret: SecretRef<C>;
  /** The server requires TLS; clients must use `sslmode=require` (or stricter). */
  requireTls: boolean;
}

/** What compute must join to reach the stores privately, per cloud. */
export interface NetworkOf {
  aws: {
    cloud: "aws";
    vpcId: pulumi.Output<string>;
    privateSubnetIds: pulumi.Output<string[]>;
    /** Public subnets, for internet-facing load balancers; empty when none exist. */
    publicSubnetIds: pulumi.Output<string[]>;
    /** The security group compute must carry: Redis and Postgres admit only this group. */
    computeSecurityGroupId: pulumi.Output<string>;
    availabilityZones: pulumi.Output<string[]>;
    /** Whether private subnets have a route to the internet (NAT): needed to reach the LLM API. */
    hasNat: boolean;
  };
  gcp: {
    cloud: "gcp";
    networkId: pulumi.Output<string>;
    networkName: pulumi.Output<string>;
    subnetworkId: pulumi.Output<string>;
    subnetworkName: pulumi.Output<string>;
    region: string;
    /** Network tag that firewall rules admit to the stores. */
    computeTag: string;
  };
}
export type NetworkAttachment<C extends Cloud = Cloud> = NetworkOf[C];

/** Where a target's alarms go, per cloud. */
export interface MonitoringOf {
  aws: {
    /** SNS topic ARN that alarms go to (targets create no alarms without one). */
    alarmTopicArn?: pulumi.Output<string>;
    /** Log group targets may write into. */
    logGroupName?: pulumi.Output<string>;
    dashboardUrl: pulumi.Output<string>;
  };
  gcp: {
    /** Notification channel ids that alert policies notify (none: alerts show in the console only). */
    notificationChannelIds?: pulumi.Output<string[]>;
    /** The log bucket whose retention the data plane owns, when it does. */
    logGroupName?: pulumi.Output<string>;
    dashboardUrl: pulumi.Output<string>;
  };
}
export type MonitoringHooks<C extends Cloud = Cloud> = MonitoringOf[C];

/**
 * What a cloud's data plane gives a target. Generic in the cloud: a Lambda target takes
 * `DataPlaneOutputs<"aws">`, and handing it a GCP data plane is a compile error, not a run-time
 * check. `DataPlaneOutputs` alone is the union of both clouds.
 */
export type DataPlaneOutputs<C extends Cloud = Cloud> = {
  [K in C]: {
    cloud: K;
    environment: Environment;
    region: string;
    redis: RedisEndpoint<K>;
    postgres: PostgresEndpoint<K>;
    /** The Anthropic API key; none when the service calls Claude on the cloud (Bedrock, Vertex). */
    anthropicKey?: SecretRef<K>;
    network: NetworkOf[K];
    monitoring: MonitoringOf[K];
    /**
     * Every secret a target's runtime identity must be able to read, and nothing else.
     * Targets grant exactly these (least privilege).
     */
    secrets: SecretRef<K>[];
  };
}[C];

/** A container image pinned by digest. */
export interface ImageArtifact {
  kind: "image";
  /** Fully qualified reference pinned by digest: `<repo>@sha256:<hex>`. */
  imageRef: pulumi.Output<string>;
  digest: pulumi.Output<string>;
}

/** A Lambda bundle, by content hash. */
export interface ZipArtifact {
  kind: "lambda-zip";
  /** A local path or an S3 location (`s3://bucket/key`) of the bundle zip. */
  location: pulumi.Output<string>;
  /** Base64 SHA-256 of the zip, as Lambda's `sourceCodeHash` expects. */
  sha256: pulumi.Output<string>;
}

/** What a target runs: each target names the kind it takes. */
export type Artifact = ImageArtifact | ZipArtifact;

/** What every target exposes, whatever its compute. */
export interface TargetOutputs {
  url: pulumi.Output<string>;
  target: TargetKind;
}
