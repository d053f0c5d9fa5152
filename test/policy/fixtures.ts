/**
 * Resources as the policy rules see them, compliant by default: each builder takes overrides
 * that make one thing wrong. Shapes follow what the components render (see the stack tests).
 */
import type { Environment, PolicyResource } from "../../infra/policy/types";
import { evaluatePolicies, type Violation } from "../../infra/policy/runner";
import type { PolicyConfigFile } from "../../infra/policy/config";
import { ruleNamed } from "../../infra/policy/rules";

export const TAGS = {
  app: "agent",
  environment: "prod",
  owner: "platform-team",
  "cost-center": "cc-ai-100",
  "pulumi-stack": "agent-test-prod",
};
export const DIGEST = `sha256:${"ab".repeat(32)}`;
export const IMAGE = `123456789012.dkr.ecr.us-east-1.amazonaws.com/agent@${DIGEST}`;
export const GCP_IMAGE = `us-central1-docker.pkg.dev/p/agent-image/agent@${DIGEST}`;

let counter = 0;

/** Deep merge where `undefined` in the override deletes the key. */
export function merge<T>(base: T, over: unknown): T {
  if (over === undefined) return base;
  if (
    base === null ||
    typeof base !== "object" ||
    Array.isArray(base) ||
    over === null ||
    typeof over !== "object" ||
    Array.isArray(over)
  ) {
    return over as T;
  }
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(over as Record<string, unknown>)) {
    if (v === undefined) delete out[k];
    else out[k] = merge(out[k], v);
  }
  return out as T;
}

export function res(
  type: string,
  props: Record<string, unknown>,
  extra: Partial<PolicyResource> = {},
): PolicyResource {
  const name = extra.name ?? `r${++counter}`;
  return {
    type,
    name,
    urn: `urn:pulumi:test-prod::agent::${type}::${name}`,
    props,
    protect: false,
    ...extra,
  };
}

type Over = Record<string, unknown>;

export const aws = {
  rds: (o: Over = {}, protect = true) =>
    res(
      "aws:rds/instance:Instance",
      merge(
        {
          engine: "postgres",
          engineVersion: "16",
          instanceClass: "db.m7g.large",
          storageEncrypted: true,
          publiclyAccessible: false,
          backupRetentionPeriod: 30,
          deletionProtection: true,
          skipFinalSnapshot: false,
          parameterGroupName: "agent-pg-params-1",
          multiAz: true,
          allocatedStorage: 100,
          tags: TAGS,
        },
        o,
      ),
      { protect },
    ),
  rdsParams: (o: Over = {}) =>
    res(
      "aws:rds/parameterGroup:ParameterGroup",
      merge(
        { family: "postgres16", parameters: [{ name: "rds.force_ssl", value: "1" }], tags: TAGS },
        o,
      ),
    ),
  redis: (o: Over = {}, protect = true) =>
    res(
      "aws:elasticache/replicationGroup:ReplicationGroup",
      merge(
        {
          engine: "valkey",
          nodeType: "cache.m7g.large",
          numCacheClusters: 2,
          atRestEncryptionEnabled: true,
          transitEncryptionEnabled: true,
          transitEncryptionMode: "required",
          authToken: "generated-token-value-0123456789",
          snapshotRetentionLimit: 7,
          tags: TAGS,
        },
        o,
      ),
      { protect },
    ),
  sgIngress: (o: Over = {}) =>
    res(
      "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
      merge(
        {
          cidrIpv4: "0.0.0.0/0",
          fromPort: 443,
          toPort: 443,
          ipProtocol: "tcp",
          securityGroupId: "sg-1",
          tags: TAGS,
        },
        o,
      ),
    ),
  launchTemplate: (o: Over = {}) =>
    res(
      "aws:ec2/launchTemplate:LaunchTemplate",
      merge(
        {
          instanceType: "m7g.large",
          metadataOptions: {
            httpEndpoint: "enabled",
            httpTokens: "required",
            httpPutResponseHopLimit: 2,
          },
          blockDeviceMappings: [
            {
              deviceName: "/dev/xvda",
              ebs: { encrypted: "true", volumeSize: 30, volumeType: "gp3" },
            },
          ],
          networkInterfaces: [{ associatePublicIpAddress: "false", deviceIndex: 0 }],
          tagSpecifications: ["instance", "volume"].map((resourceType) => ({
            resourceType,
            tags: TAGS,
          })),
          userData: Buffer.from(
            `#cloud-config\nwrite_files:\n  - path: /etc/agent/agent.env\n    content: |\n      ANTHROPIC_API_KEY_SECRET=aws-sm://arn:aws:secretsmanager:us-east-1:1:secret:k\n      LOG_LEVEL=info\nruncmd:\n  - [ docker, run, ${IMAGE} ]\n`,
          ).toString("base64"),
          tags: TAGS,
        },
        o,
      ),
    ),
  asg: (o: Over = {}) =>
    res("aws:autoscaling/group:Group", merge({ minSize: 2, maxSize: 10, desiredCapacity: 2 }, o)),
  nodeGroup: (o: Over = {}) =>
    res(
      "aws:eks/nodeGroup:NodeGroup",
      merge(
        {
          instanceTypes: ["m6i.large"],
          scalingConfig: { minSize: 3, maxSize: 10, desiredSize: 3 },
          tags: TAGS,
        },
        o,
      ),
    ),
  lambda: (o: Over = {}) =>
    res(
      "aws:lambda/function:Function",
      merge(
        {
          runtime: "nodejs22.x",
          memorySize: 2048,
          reservedConcurrentExecutions: 200,
          tracingConfig: { mode: "Active" },
          environment: {
            variables: {
              ANTHROPIC_API_KEY_SECRET:
                "aws-sm://arn:aws:secretsmanager:us-east-1:123456789012:secret:agent-key",
              DATABASE_URL: "postgres://agent@db.example.internal:5432/agent?sslmode=require",
              LOG_LEVEL: "info",
            },
          },
          tags: TAGS,
        },
        o,
      ),
    ),
  ecr: (o: Over = {}) =>
    res(
      "aws:ecr/repository:Repository",
      merge(
        {
          imageScanningConfiguration: { scanOnPush: true },
          imageTagMutability: "IMMUTABLE",
          tags: TAGS,
        },
        o,
      ),
    ),
  logGroup: (o: Over = {}) =>
    res("aws:cloudwatch/logGroup:LogGroup", merge({ retentionInDays: 90, tags: TAGS }, o)),
  eks: (o: Over = {}) =>
    res(
      "aws:eks/cluster:Cluster",
      merge(
        {
          encryptionConfig: {
            provider: { keyArn: "arn:aws:kms:us-east-1:1:key/k" },
            resources: ["secrets"],
          },
          vpcConfig: {
            endpointPrivateAccess: true,
            endpointPublicAccess: true,
            publicAccessCidrs: ["203.0.113.0/24"],
          },
          tags: TAGS,
        },
        o,
      ),
    ),
  alarm: (o: Over = {}) =>
    res(
      "aws:cloudwatch/metricAlarm:MetricAlarm",
      merge(
        {
          namespace: "AWS/RDS",
          metricName: "CPUUtilization",
          alarmActions: ["arn:aws:sns:us-east-1:1:alarms"],
          tags: TAGS,
        },
        o,
      ),
    ),
  budget: (thresholds = [50, 80, 100], o: Over = {}) =>
    res(
      "aws:budgets/budget:Budget",
      merge(
        {
          budgetType: "COST",
          limitAmount: "2500.00",
          notifications: thresholds.map((threshold) => ({
            notificationType: "ACTUAL",
            thresholdType: "PERCENTAGE",
            comparisonOperator: "GREATER_THAN",
            threshold,
            subscriberEmailAddresses: ["oncall@example.com"],
          })),
          tags: TAGS,
        },
        o,
      ),
    ),
  provisioned: (n: number) =>
    res("aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig", {
      provisionedConcurrentExecutions: n,
      functionName: "agent",
      qualifier: "live",
    }),
};

const LABELS = { ...TAGS };

export const gcp = {
  sql: (o: Over = {}, protect = true) =>
    res(
      "gcp:sql/databaseInstance:DatabaseInstance",
      merge(
        {
          databaseVersion: "POSTGRES_16",
          deletionProtection: true,
          settings: {
            tier: "db-custom-2-7680",
            availabilityType: "REGIONAL",
            deletionProtectionEnabled: true,
            ipConfiguration: {
              ipv4Enabled: false,
              privateNetwork: "projects/p/global/networks/n",
              sslMode: "ENCRYPTED_ONLY",
            },
            backupConfiguration: {
              enabled: true,
              pointInTimeRecoveryEnabled: true,
              backupRetentionSettings: { retainedBackups: 30, retentionUnit: "COUNT" },
            },
            userLabels: LABELS,
          },
        },
        o,
      ),
      { protect },
    ),
  redis: (o: Over = {}, protect = true) =>
    res(
      "gcp:redis/instance:Instance",
      merge(
        {
          tier: "STANDARD_HA",
          memorySizeGb: 5,
          authEnabled: true,
          transitEncryptionMode: "SERVER_AUTHENTICATION",
          persistenceConfig: { persistenceMode: "RDB", rdbSnapshotPeriod: "ONE_HOUR" },
          deletionProtection: true,
          labels: LABELS,
        },
        o,
      ),
      { protect },
    ),
  firewall: (o: Over = {}) =>
    res(
      "gcp:compute/firewall:Firewall",
      merge(
        {
          direction: "INGRESS",
          sourceRanges: ["35.191.0.0/16"],
          allows: [{ protocol: "tcp", ports: ["8080"] }],
        },
        o,
      ),
    ),
  template: (o: Over = {}) =>
    res(
      "gcp:compute/instanceTemplate:InstanceTemplate",
      merge(
        {
          machineType: "e2-standard-2",
          networkInterfaces: [{ network: "n", subnetwork: "s" }],
          metadata: {
            "user-data": `#cloud-config\nwrite_files:\n  - content: |\n      DATABASE_PASSWORD_SECRET=gcp-sm://projects/p/secrets/pg/versions/latest\nruncmd:\n  - [ docker, pull, ${GCP_IMAGE} ]\n`,
            "enable-oslogin": "TRUE",
          },
          labels: LABELS,
        },
        o,
      ),
    ),
  autoscaler: (o: Over = {}) =>
    res(
      "gcp:compute/regionAutoscaler:RegionAutoscaler",
      merge({ autoscalingPolicy: { minReplicas: 2, maxReplicas: 10 } }, o),
    ),
  cloudRun: (o: Over = {}) =>
    res(
      "gcp:cloudrunv2/service:Service",
      merge(
        {
          labels: LABELS,
          template: {
            scaling: { minInstanceCount: 2, maxInstanceCount: 20 },
            containers: [
              {
                image: GCP_IMAGE,
                resources: { limits: { cpu: "2", memory: "2Gi" } },
                envs: [
                  { name: "LOG_LEVEL", value: "info" },
                  {
                    name: "REDIS_TLS_CA",
                    value: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                  },
                  {
                    name: "ANTHROPIC_API_KEY",
                    valueSource: {
                      secretKeyRef: { secret: "projects/p/secrets/key", version: "latest" },
                    },
                  },
                ],
              },
            ],
          },
        },
        o,
      ),
    ),
  logBucket: (o: Over = {}) =>
    res(
      "gcp:logging/projectBucketConfig:ProjectBucketConfig",
      merge({ bucketId: "_Default", location: "global", retentionDays: 90 }, o),
    ),
  alert: (filter: string, o: Over = {}) =>
    res(
      "gcp:monitoring/alertPolicy:AlertPolicy",
      merge(
        {
          conditions: [{ conditionThreshold: { filter: `resource.type = "${filter}"` } }],
          notificationChannels: ["projects/p/notificationChannels/1"],
        },
        o,
      ),
    ),
  budget: (percents = [0.5, 0.8, 1], o: Over = {}) =>
    res(
      "gcp:billing/budget:Budget",
      merge(
        {
          thresholdRules: percents.map((thresholdPercent) => ({
            thresholdPercent,
            spendBasis: "CURRENT_SPEND",
          })),
          allUpdatesRule: { monitoringNotificationChannels: ["projects/p/notificationChannels/1"] },
        },
        o,
      ),
    ),
};

export function container(o: Over = {}): Record<string, unknown> {
  return merge(
    {
      name: "agent",
      image: IMAGE,
      env: [
        {
          name: "DATABASE_PASSWORD_SECRET",
          value: "aws-sm://arn:aws:secretsmanager:us-east-1:1:secret:pg",
        },
        {
          name: "AWS_WEB_IDENTITY_TOKEN_FILE",
          value: "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
        },
        { name: "REDIS_PASSWORD", valueFrom: { secretKeyRef: { name: "redis", key: "password" } } },
      ],
      resources: {
        requests: { cpu: "250m", memory: "512Mi" },
        limits: { cpu: "500m", memory: "1Gi" },
      },
      securityContext: {
        runAsNonRoot: true,
        runAsUser: 10001,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ["ALL"] },
      },
    },
    o,
  );
}

const POD_LABELS = { "app.kubernetes.io/name": "agent", "app.kubernetes.io/instance": "agent" };

export const k8s = {
  deployment: (c: Over = {}, o: Over = {}) =>
    res(
      "kubernetes:apps/v1:Deployment",
      merge(
        {
          metadata: { name: "agent", namespace: "agent" },
          spec: {
            replicas: 2,
            selector: { matchLabels: POD_LABELS },
            template: {
              metadata: { labels: POD_LABELS },
              spec: { securityContext: { runAsNonRoot: true }, containers: [container(c)] },
            },
          },
        },
        o,
      ),
    ),
  hpa: (o: Over = {}) =>
    res(
      "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
      merge(
        {
          metadata: { name: "agent", namespace: "agent" },
          spec: { minReplicas: 2, maxReplicas: 20 },
        },
        o,
      ),
    ),
  pdb: (o: Over = {}) =>
    res(
      "kubernetes:policy/v1:PodDisruptionBudget",
      merge(
        {
          metadata: { name: "agent", namespace: "agent" },
          spec: { maxUnavailable: 1, selector: { matchLabels: POD_LABELS } },
        },
        o,
      ),
    ),
  secret: (o: Over = {}) =>
    res("kubernetes:core/v1:Secret", merge({ metadata: { name: "s", namespace: "agent" } }, o)),
};

/** Violations of one rule over the resources, in the environment, with an optional config for that rule. */
export function violationsOf(
  rule: string,
  resources: PolicyResource | PolicyResource[],
  environment: Environment = "prod",
  config?: Record<string, unknown>,
): Violation[] {
  const r = ruleNamed(rule);
  if (!r) throw new Error(`no rule ${rule}`);
  const file: PolicyConfigFile | undefined = config ? { [rule]: config } : undefined;
  return evaluatePolicies(Array.isArray(resources) ? resources : [resources], {
    environment,
    rules: [r],
    config: file,
  });
}

export function messagesOf(
  rule: string,
  resources: PolicyResource | PolicyResource[],
  environment: Environment = "prod",
  config?: Record<string, unknown>,
): string[] {
  return violationsOf(rule, resources, environment, config).map((v) => v.message);
}
