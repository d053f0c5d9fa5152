/**
 * What the clouds refuse that a mock runtime accepts, as data with its source and the day it was
 * read. The preflight (`npm run plan -- --all --preflight`) checks every rendered stack, and all
 * stacks together, against these tables. Change a value only from its source, and say so in the
 * commit.
 */

/** Where a physical name must be unique. */
export type NameScope =
  /** One AWS account, all regions (IAM, budgets, CloudWatch dashboards). */
  | "aws-account"
  /** One AWS account and region. */
  | "aws-region"
  /** Every AWS account in the partition (S3 bucket names). */
  | "aws-global"
  /** One GCP project, all locations. */
  | "gcp-project"
  /** One GCP project and location (region). */
  | "gcp-location";

export interface NameRule {
  /** The input that holds the physical name. Absent means Pulumi auto-names it (random suffix). */
  field: string;
  scope: NameScope;
  /** For `gcp-location`: the input holding the location. @default "region", then "location" */
  locationField?: string;
  /** A name that outlives the resource (snapshots), or that one resource owns per project. */
  note?: string;
  /**
   * A singleton that already exists and that each stack adopts (the project's `_Default` log
   * bucket): two stacks may manage it only while they set these inputs alike; otherwise each
   * deploy overwrites the other's setting.
   */
  sharedWhenEqual?: string[];
}

/**
 * Physical names that must be unique, per resource type. Sources (read 2026-12-06): the AWS API
 * references' "must be unique" clauses (ECR CreateRepository, S3 bucket naming rules, IAM
 * CreateRole/CreatePolicy/CreateInstanceProfile, EKS CreateCluster, RDS CreateDBInstance
 * `FinalDBSnapshotIdentifier`, ElastiCache CreateReplicationGroup, CloudWatch Logs
 * CreateLogGroup, CloudWatch PutDashboard (dashboards are global to the account), Secrets Manager
 * CreateSecret, Lambda CreateFunction, ELB CreateLoadBalancer/CreateTargetGroup, Budgets
 * CreateBudget, Cost Explorer UpdateCostAllocationTagsStatus); the GCP REST references' resource
 * name rules (Artifact Registry repositories, Secret Manager secrets, IAM service accounts,
 * Compute Engine global and regional resources, Cloud SQL instances, Memorystore instances, Cloud
 * Run services, Cloud Logging buckets).
 */
export const NAME_RULES: Record<string, NameRule[]> = {
  "aws:ecr/repository:Repository": [{ field: "name", scope: "aws-region" }],
  "aws:s3/bucketV2:BucketV2": [{ field: "bucket", scope: "aws-global" }],
  "aws:s3/bucket:Bucket": [{ field: "bucket", scope: "aws-global" }],
  "aws:iam/role:Role": [{ field: "name", scope: "aws-account" }],
  "aws:iam/policy:Policy": [{ field: "name", scope: "aws-account" }],
  "aws:iam/instanceProfile:InstanceProfile": [{ field: "name", scope: "aws-account" }],
  "aws:eks/cluster:Cluster": [{ field: "name", scope: "aws-region" }],
  "aws:rds/instance:Instance": [
    { field: "identifier", scope: "aws-region" },
    {
      field: "finalSnapshotIdentifier",
      scope: "aws-region",
      note: "the snapshot outlives the stack: a fixed name fails the next delete",
    },
  ],
  "aws:rds/parameterGroup:ParameterGroup": [{ field: "name", scope: "aws-region" }],
  "aws:rds/subnetGroup:SubnetGroup": [{ field: "name", scope: "aws-region" }],
  "aws:elasticache/replicationGroup:ReplicationGroup": [
    { field: "replicationGroupId", scope: "aws-region" },
  ],
  "aws:elasticache/parameterGroup:ParameterGroup": [{ field: "name", scope: "aws-region" }],
  "aws:elasticache/subnetGroup:SubnetGroup": [{ field: "name", scope: "aws-region" }],
  "aws:cloudwatch/logGroup:LogGroup": [{ field: "name", scope: "aws-region" }],
  "aws:cloudwatch/dashboard:Dashboard": [{ field: "dashboardName", scope: "aws-account" }],
  "aws:cloudwatch/metricAlarm:MetricAlarm": [{ field: "name", scope: "aws-region" }],
  "aws:secretsmanager/secret:Secret": [{ field: "name", scope: "aws-region" }],
  "aws:sns/topic:Topic": [{ field: "name", scope: "aws-region" }],
  "aws:kms/alias:Alias": [{ field: "name", scope: "aws-region" }],
  "aws:lambda/function:Function": [{ field: "name", scope: "aws-region" }],
  "aws:lb/loadBalancer:LoadBalancer": [{ field: "name", scope: "aws-region" }],
  "aws:lb/targetGroup:TargetGroup": [{ field: "name", scope: "aws-region" }],
  "aws:autoscaling/group:Group": [{ field: "name", scope: "aws-region" }],
  "aws:ec2/launchTemplate:LaunchTemplate": [{ field: "name", scope: "aws-region" }],
  "aws:budgets/budget:Budget": [{ field: "name", scope: "aws-account" }],
  "aws:costexplorer/costAllocationTag:CostAllocationTag": [
    {
      field: "tagKey",
      scope: "aws-account",
      note: "the tag key is account-wide (payer account): let exactly one stack own it",
    },
  ],
  "gcp:artifactregistry/repository:Repository": [
    { field: "repositoryId", scope: "gcp-location", locationField: "location" },
  ],
  "gcp:secretmanager/secret:Secret": [{ field: "secretId", scope: "gcp-project" }],
  "gcp:serviceaccount/account:Account": [{ field: "accountId", scope: "gcp-project" }],
  "gcp:sql/databaseInstance:DatabaseInstance": [
    {
      field: "name",
      scope: "gcp-project",
      note: "a deleted instance's name cannot be reused for up to a week",
    },
  ],
  "gcp:redis/instance:Instance": [{ field: "name", scope: "gcp-location" }],
  "gcp:cloudrunv2/service:Service": [
    { field: "name", scope: "gcp-location", locationField: "location" },
  ],
  "gcp:compute/network:Network": [{ field: "name", scope: "gcp-project" }],
  "gcp:compute/subnetwork:Subnetwork": [{ field: "name", scope: "gcp-location" }],
  "gcp:compute/firewall:Firewall": [{ field: "name", scope: "gcp-project" }],
  "gcp:compute/globalAddress:GlobalAddress": [{ field: "name", scope: "gcp-project" }],
  "gcp:compute/router:Router": [{ field: "name", scope: "gcp-location" }],
  "gcp:compute/instanceTemplate:InstanceTemplate": [{ field: "name", scope: "gcp-project" }],
  "gcp:compute/healthCheck:HealthCheck": [{ field: "name", scope: "gcp-project" }],
  "gcp:compute/backendService:BackendService": [{ field: "name", scope: "gcp-project" }],
  "gcp:compute/uRLMap:URLMap": [{ field: "name", scope: "gcp-project" }],
  "gcp:compute/globalForwardingRule:GlobalForwardingRule": [
    { field: "name", scope: "gcp-project" },
  ],
  "gcp:compute/managedSslCertificate:ManagedSslCertificate": [
    { field: "name", scope: "gcp-project" },
  ],
  "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager": [
    { field: "name", scope: "gcp-location" },
  ],
  "gcp:logging/projectBucketConfig:ProjectBucketConfig": [
    {
      field: "bucketId",
      scope: "gcp-location",
      locationField: "location",
      note: "the project's _Default bucket: each stack's deploy overwrites the other's retention",
      sharedWhenEqual: ["retentionDays"],
    },
  ],
};

/** A default quota, with the code `--live` reads from Service Quotas and the source. */
export interface Quota {
  /** What is counted, for messages. */
  what: string;
  /** The default for a new account or region. */
  defaultValue: number;
  /** AWS Service Quotas service and quota code. */
  serviceCode: string;
  quotaCode: string;
  source: string;
}

/** AWS default quotas per account and region (read 2026-12-06). */
export const AWS_QUOTAS = {
  vpcs: {
    what: "VPCs per region",
    defaultValue: 5,
    serviceCode: "vpc",
    quotaCode: "L-F678F1CE",
    source: "https://docs.aws.amazon.com/vpc/latest/userguide/amazon-vpc-limits.html",
  },
  elasticIps: {
    what: "Elastic IP addresses per region",
    defaultValue: 5,
    serviceCode: "ec2",
    quotaCode: "L-0263D0A3",
    source:
      "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/elastic-ip-addresses-eip.html#using-instance-addressing-limit",
  },
  lambdaConcurrency: {
    what: "Lambda concurrent executions per region",
    defaultValue: 1000,
    serviceCode: "lambda",
    quotaCode: "L-B99A9384",
    source: "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html",
  },
} as const satisfies Record<string, Quota>;

/**
 * Lambda keeps this many concurrent executions unreserved: a reservation that would leave fewer
 * fails (https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html).
 */
export const LAMBDA_UNRESERVED_MINIMUM = 100;
/**
 * New accounts may start with a total of 10 concurrent executions, not 1,000, until usage raises
 * it (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html, "new accounts").
 */
export const LAMBDA_NEW_ACCOUNT_CONCURRENCY = 10;

/**
 * Values that cannot exist in a real account: documentation ranges and names. A stack file that
 * still holds one is a blocker. Sources: RFC 5737 (IPv4 documentation ranges), RFC 2606
 * (example domains), AWS's documentation account 123456789012, GCP's example billing account.
 */
export const PLACEHOLDER_PATTERNS: ReadonlyArray<{ pattern: RegExp; what: string }> = [
  {
    pattern: /^(192\.0\.2|198\.51\.100|203\.0\.113)\.\d+\/\d+$/,
    what: "an RFC 5737 documentation range",
  },
  {
    pattern: /(^|\.)example\.(com|org|net)$|@example\.(com|org|net)$/,
    what: "an RFC 2606 example domain",
  },
  {
    pattern: /^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(123456789012|111122223333|000000000000):/,
    what: "an AWS documentation account id",
  },
  { pattern: /^(012345-6789AB-CDEF01|000000-000000-000000)$/, what: "an example billing account" },
  { pattern: /^ami-0123456789abcdef0$/, what: "an example AMI id" },
  { pattern: /^Z0SAMPLEZONE/, what: "a sample hosted zone id" },
];
