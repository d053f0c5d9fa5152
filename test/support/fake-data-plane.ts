/**
 * A `DataPlaneOutputs` for either cloud built from plain `pulumi.output(...)` values, so target
 * tests exercise only the target: no Redis, Postgres or network component is constructed, and
 * the expected ids (secret ARNs, subnets, channels) are known constants the tests assert on.
 *
 * Build it inside the test (after `setupPulumiMocks`), once per render: Outputs are tied to the
 * runtime state of the file that creates them.
 */
import * as pulumi from "@pulumi/pulumi";
import type {
  Cloud,
  DataPlaneOutputs,
  Environment,
  ImageArtifact,
  SecretRef,
  ZipArtifact,
} from "../../components/contracts";

export const FAKE_AWS = {
  region: "us-east-1",
  account: "123456789012",
  vpcId: "vpc-0fake0000000000001",
  privateSubnetIds: ["subnet-0private000000001", "subnet-0private000000002"],
  publicSubnetIds: ["subnet-0public0000000001", "subnet-0public0000000002"],
  computeSecurityGroupId: "sg-0compute0000000001",
  alarmTopicArn: "arn:aws:sns:us-east-1:123456789012:agent-alarms",
  redisHost: "master.agent-redis.abc123.use1.cache.amazonaws.com",
  postgresHost: "agent-db.cabc123.us-east-1.rds.amazonaws.com",
  secretArns: {
    anthropic: "arn:aws:secretsmanager:us-east-1:123456789012:secret:agent/anthropic-key-AbCdEf",
    postgres: "arn:aws:secretsmanager:us-east-1:123456789012:secret:agent/postgres-password-GhIjKl",
    redis: "arn:aws:secretsmanager:us-east-1:123456789012:secret:agent/redis-auth-MnOpQr",
  },
} as const;

export const FAKE_GCP = {
  project: "agent-test-project",
  region: "us-central1",
  networkId: "projects/agent-test-project/global/networks/agent-net",
  networkName: "agent-net",
  subnetworkId: "projects/agent-test-project/regions/us-central1/subnetworks/agent-subnet",
  subnetworkName: "agent-subnet",
  computeTag: "agent-compute",
  notificationChannelIds: [
    "projects/agent-test-project/notificationChannels/1111",
    "projects/agent-test-project/notificationChannels/2222",
  ],
  redisHost: "10.64.0.3",
  postgresHost: "10.64.1.5",
  redisCa: "-----BEGIN CERTIFICATE-----\nMIIBfakeMemorystoreCA\n-----END CERTIFICATE-----\n",
  secretIds: {
    anthropic: "projects/agent-test-project/secrets/agent-anthropic-key",
    postgres: "projects/agent-test-project/secrets/agent-postgres-password",
    redis: "projects/agent-test-project/secrets/agent-redis-auth",
  },
} as const;

export interface FakeDataPlaneOptions<C extends Cloud = Cloud> {
  /** @default "dev" */
  environment?: Environment;
  /** AWS: whether the private subnets reach the internet. @default true */
  hasNat?: boolean;
  /** Leave the alarm topic / notification channels out. @default false */
  withoutAlerting?: boolean;
  /** Extra secrets beyond the three the service reads (they must be granted too). */
  extraSecrets?: SecretRef<C>[];
}

function awsSecret(arn: string): SecretRef<"aws"> {
  return {
    store: "aws-secretsmanager",
    id: pulumi.output(arn),
    name: pulumi.output(arn.split(":secret:")[1]!.replace(/-[A-Za-z0-9]{6}$/, "")),
    version: "AWSCURRENT",
  };
}

function gcpSecret(id: string): SecretRef<"gcp"> {
  return {
    store: "gcp-secretmanager",
    id: pulumi.output(id),
    name: pulumi.output(id.split("/").pop()!),
    version: "latest",
  };
}

/** The AWS data plane's contract, from constants. */
export function fakeAwsDataPlane(opts: FakeDataPlaneOptions<"aws"> = {}): DataPlaneOutputs<"aws"> {
  const anthropicKey = awsSecret(FAKE_AWS.secretArns.anthropic);
  const pgPassword = awsSecret(FAKE_AWS.secretArns.postgres);
  const redisAuth = awsSecret(FAKE_AWS.secretArns.redis);
  return {
    cloud: "aws",
    environment: opts.environment ?? "dev",
    region: FAKE_AWS.region,
    redis: {
      host: pulumi.output(FAKE_AWS.redisHost),
      port: pulumi.output(6379),
      tls: true,
      authSecret: redisAuth,
    },
    postgres: {
      host: pulumi.output(FAKE_AWS.postgresHost),
      port: pulumi.output(5432),
      database: "agent",
      user: "agent",
      passwordSecret: pgPassword,
      requireTls: true,
    },
    anthropicKey,
    network: {
      cloud: "aws",
      vpcId: pulumi.output(FAKE_AWS.vpcId),
      privateSubnetIds: pulumi.output([...FAKE_AWS.privateSubnetIds]),
      publicSubnetIds: pulumi.output([...FAKE_AWS.publicSubnetIds]),
      computeSecurityGroupId: pulumi.output(FAKE_AWS.computeSecurityGroupId),
      availabilityZones: pulumi.output(["us-east-1a", "us-east-1b"]),
      hasNat: opts.hasNat ?? true,
    },
    monitoring: {
      alarmTopicArn: opts.withoutAlerting ? undefined : pulumi.output(FAKE_AWS.alarmTopicArn),
      logGroupName: pulumi.output("/agent/app"),
      dashboardUrl: pulumi.output(
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home#dashboards/dashboard/agent",
      ),
    },
    secrets: [anthropicKey, pgPassword, redisAuth, ...(opts.extraSecrets ?? [])],
  };
}

/** The GCP data plane's contract, from constants. */
export function fakeGcpDataPlane(opts: FakeDataPlaneOptions<"gcp"> = {}): DataPlaneOutputs<"gcp"> {
  const anthropicKey = gcpSecret(FAKE_GCP.secretIds.anthropic);
  const pgPassword = gcpSecret(FAKE_GCP.secretIds.postgres);
  const redisAuth = gcpSecret(FAKE_GCP.secretIds.redis);
  return {
    cloud: "gcp",
    environment: opts.environment ?? "dev",
    region: FAKE_GCP.region,
    redis: {
      host: pulumi.output(FAKE_GCP.redisHost),
      port: pulumi.output(6378),
      tls: true,
      authSecret: redisAuth,
      caCertificate: pulumi.output(FAKE_GCP.redisCa),
    },
    postgres: {
      host: pulumi.output(FAKE_GCP.postgresHost),
      port: pulumi.output(5432),
      database: "agent",
      user: "agent",
      passwordSecret: pgPassword,
      requireTls: true,
    },
    anthropicKey,
    network: {
      cloud: "gcp",
      networkId: pulumi.output(FAKE_GCP.networkId),
      networkName: pulumi.output(FAKE_GCP.networkName),
      subnetworkId: pulumi.output(FAKE_GCP.subnetworkId),
      subnetworkName: pulumi.output(FAKE_GCP.subnetworkName),
      region: FAKE_GCP.region,
      computeTag: FAKE_GCP.computeTag,
    },
    monitoring: {
      notificationChannelIds: opts.withoutAlerting
        ? undefined
        : pulumi.output([...FAKE_GCP.notificationChannelIds]),
      dashboardUrl: pulumi.output(
        "https://console.cloud.google.com/monitoring/dashboards/custom/1?project=agent-test-project",
      ),
    },
    secrets: [anthropicKey, pgPassword, redisAuth, ...(opts.extraSecrets ?? [])],
  };
}

/** A cloud's fake data plane. */
export function fakeDataPlane<C extends Cloud>(
  cloud: C,
  opts: FakeDataPlaneOptions<C> = {},
): DataPlaneOutputs<C> {
  const planes: { [K in Cloud]: (o: FakeDataPlaneOptions<K>) => DataPlaneOutputs<K> } = {
    aws: fakeAwsDataPlane,
    gcp: fakeGcpDataPlane,
  };
  return planes[cloud](opts);
}

export const FAKE_IMAGE_DIGEST = `sha256:${"ab".repeat(32)}`;
export const FAKE_IMAGE_REF = `us-central1-docker.pkg.dev/agent-test-project/agent/agent@${FAKE_IMAGE_DIGEST}`;
/** Base64 SHA-256, as Lambda's sourceCodeHash expects. */
export const FAKE_ZIP_SHA256 = "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=";

export function fakeImageArtifact(imageRef: string = FAKE_IMAGE_REF): ImageArtifact {
  const digest = imageRef.includes("@") ? imageRef.split("@")[1]! : "";
  return { kind: "image", imageRef: pulumi.output(imageRef), digest: pulumi.output(digest) };
}

export function fakeLambdaZipArtifact(
  location = "dist/lambda.zip",
  sha256: string = FAKE_ZIP_SHA256,
): ZipArtifact {
  return { kind: "lambda-zip", location: pulumi.output(location), sha256: pulumi.output(sha256) };
}
