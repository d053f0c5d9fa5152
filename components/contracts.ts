/**
 * The cloud-neutral contract between a data plane (one per cloud) and a deployment target.
 *
 * A target consumes only these types: it never learns whether its Redis is ElastiCache or
 * Memorystore. Each cloud's data plane declares `outputs satisfies DataPlaneOutputs`, so the
 * compiler reports a cloud that falls behind the contract.
 */
import * as pulumi from "@pulumi/pulumi";

export type Cloud = "aws" | "gcp";
export type Environment = "dev" | "staging" | "prod";
export type TargetKind = "lambda" | "cloudrun" | "eks" | "vmgroup";

/**
 * A reference to a secret held in the cloud's secret store. Targets turn it into their native
 * mechanism (Cloud Run secret env, a secret read at start-up with a least-privilege role, a
 * Kubernetes secret synced from the store). The value itself never travels through this type.
 */
export interface SecretRef {
  store: "aws-secretsmanager" | "gcp-secretmanager";
  /** ARN (AWS) or full resource id `projects/<p>/secrets/<name>` (GCP). */
  id: pulumi.Output<string>;
  /** Short secret name, for environment variables such as `ANTHROPIC_API_KEY_SECRET`. */
  name: pulumi.Output<string>;
  /** GCP: the version to read. AWS: the version stage. */
  version: string;
}

export interface RedisEndpoint {
  host: pulumi.Output<string>;
  port: pulumi.Output<number>;
  /** Always true for what this project creates; kept so a target can build `rediss://` URLs. */
  tls: boolean;
  authSecret: SecretRef;
  /** PEM of the CA that signs the server certificate, when it is not a public CA (Memorystore). */
  caCertificate?: pulumi.Output<string>;
}

export interface PostgresEndpoint {
  host: pulumi.Output<string>;
  port: pulumi.Output<number>;
  database: string;
  user: string;
  passwordSecret: SecretRef;
  /** The server requires TLS; clients must use `sslmode=require` (or stricter). */
  requireTls: boolean;
}

/** What compute must join to reach the stores privately. */
export type NetworkAttachment =
  | {
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
    }
  | {
      cloud: "gcp";
      networkId: pulumi.Output<string>;
      networkName: pulumi.Output<string>;
      subnetworkId: pulumi.Output<string>;
      subnetworkName: pulumi.Output<string>;
      region: string;
      /** Network tag that firewall rules admit to the stores. */
      computeTag: string;
    };

export interface MonitoringHooks {
  /** SNS topic ARN (AWS) or notification channel ids (GCP) that alarms go to. */
  alarmTopicArn?: pulumi.Output<string>;
  notificationChannelIds?: pulumi.Output<string[]>;
  /** Log group (AWS) or log bucket/retention owner (GCP) targets should write into. */
  logGroupName?: pulumi.Output<string>;
  dashboardUrl: pulumi.Output<string>;
}

export interface DataPlaneOutputs {
  cloud: Cloud;
  environment: Environment;
  region: string;
  redis: RedisEndpoint;
  postgres: PostgresEndpoint;
  anthropicKey: SecretRef;
  network: NetworkAttachment;
  monitoring: MonitoringHooks;
  /**
   * Every secret a target's runtime identity must be able to read, and nothing else.
   * Targets grant exactly these (least privilege).
   */
  secrets: SecretRef[];
}

/** What a target runs: a container image by digest, or a Lambda zip by content hash. */
export type Artifact =
  | {
      kind: "image";
      /** Fully qualified reference pinned by digest: `<repo>@sha256:<hex>`. */
      imageRef: pulumi.Output<string>;
      digest: pulumi.Output<string>;
    }
  | {
      kind: "lambda-zip";
      /** A local path or an S3 location (`s3://bucket/key`) of the bundle zip. */
      location: pulumi.Output<string>;
      /** Base64 SHA-256 of the zip, as Lambda's `sourceCodeHash` expects. */
      sha256: pulumi.Output<string>;
    };

/** What every target exposes, whatever its compute. */
export interface TargetOutputs {
  url: pulumi.Output<string>;
  target: TargetKind;
}
