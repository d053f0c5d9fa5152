/**
 * Every rule with a compliant resource (no violation), a non-compliant one (a violation whose
 * message says what to change) and, where the rule reads values computed at deploy time, the
 * same resource with those values unknown (no violation: preview must not flag unknowns).
 */
import { RULES } from "../../infra/policy/rules";
import type { Environment, PolicyResource } from "../../infra/policy/types";
import { UNKNOWN } from "../../infra/policy/values";
import { TAGS, aws, container, gcp, k8s, messagesOf, res } from "./fixtures";
import { bedrockInvokePolicy } from "../../components/upstream";

interface Case {
  title: string;
  resources: PolicyResource[];
  env?: Environment;
  config?: Record<string, unknown>;
}
interface FailCase extends Case {
  /** Every message must match one of these, and each must match some message. */
  expect: RegExp[];
}
interface RuleCases {
  pass: Case[];
  fail: FailCase[];
  unknown?: Case[];
}

const pass = (title: string, resources: PolicyResource[], extra: Partial<Case> = {}): Case => ({
  title,
  resources,
  ...extra,
});
const fail = (
  title: string,
  resources: PolicyResource[],
  expect: RegExp[],
  extra: Partial<Case> = {},
): FailCase => ({ title, resources, expect, ...extra });

const stackOf = (...rs: PolicyResource[]) => rs;
const awsStack = () =>
  stackOf(
    aws.rds(),
    aws.redis(),
    aws.lambda(),
    aws.alarm(),
    aws.alarm({ namespace: "AWS/ElastiCache" }),
    aws.alarm({ namespace: "AWS/Lambda", metricName: "Errors" }),
    aws.budget(),
  );

const CASES: Record<string, RuleCases> = {
  // --- data
  "database-encrypted-at-rest": {
    pass: [pass("encrypted RDS", [aws.rds()])],
    fail: [
      fail("unencrypted RDS", [aws.rds({ storageEncrypted: false })], [/storageEncrypted: true/]),
      fail("unset", [aws.rds({ storageEncrypted: undefined })], [/storageEncrypted: true/]),
    ],
    unknown: [pass("encryption unknown", [aws.rds({ storageEncrypted: UNKNOWN })])],
  },
  "database-tls-required": {
    pass: [
      pass("Cloud SQL ENCRYPTED_ONLY", [gcp.sql()]),
      pass("RDS force_ssl=1", [aws.rdsParams(), aws.rds()]),
      pass("Postgres 16 on the default group forces TLS", [
        aws.rds({ parameterGroupName: undefined }),
      ]),
    ],
    fail: [
      fail(
        "Cloud SQL allows plaintext",
        [
          gcp.sql({
            settings: { ipConfiguration: { sslMode: "ALLOW_UNENCRYPTED_AND_ENCRYPTED" } },
          }),
        ],
        [/sslMode is ALLOW_UNENCRYPTED_AND_ENCRYPTED: set it to "ENCRYPTED_ONLY"/],
      ),
      fail(
        "force_ssl=0",
        [aws.rdsParams({ parameters: [{ name: "rds.force_ssl", value: "0" }] })],
        [/rds.force_ssl is 0.*set it to "1"/],
      ),
      fail(
        "old family without force_ssl",
        [aws.rdsParams({ family: "postgres14", parameters: [] })],
        [/postgres14 defaults rds.force_ssl to 0/],
      ),
      fail(
        "Postgres 14 on the default group",
        [aws.rds({ engineVersion: "14.9", parameterGroupName: undefined })],
        [/Postgres 14 on the default parameter group/],
      ),
    ],
    unknown: [
      pass("sslMode unknown", [gcp.sql({ settings: { ipConfiguration: { sslMode: UNKNOWN } } })]),
      pass("parameters unknown", [aws.rdsParams({ family: "postgres14", parameters: UNKNOWN })]),
    ],
  },
  "database-not-public": {
    pass: [pass("private RDS", [aws.rds()]), pass("private Cloud SQL", [gcp.sql()])],
    fail: [
      fail(
        "public RDS",
        [aws.rds({ publiclyAccessible: true })],
        [/publiclyAccessible is true: set it to false/],
      ),
      fail(
        "Cloud SQL public IP open to the world",
        [
          gcp.sql({
            settings: {
              ipConfiguration: { ipv4Enabled: true, authorizedNetworks: [{ value: "0.0.0.0/0" }] },
            },
          }),
        ],
        [/ipv4Enabled is true and 0.0.0.0\/0 is an authorized network: set ipv4Enabled: false/],
      ),
      fail(
        "Cloud SQL default (public)",
        [gcp.sql({ settings: { ipConfiguration: { ipv4Enabled: undefined } } })],
        [/unset \(public by default\)/],
      ),
    ],
    unknown: [
      pass("ipv4Enabled unknown", [
        gcp.sql({ settings: { ipConfiguration: { ipv4Enabled: UNKNOWN } } }),
      ]),
      pass("publiclyAccessible unknown", [aws.rds({ publiclyAccessible: UNKNOWN })]),
    ],
  },
  "database-backups": {
    pass: [
      pass("30 days RDS", [aws.rds()]),
      pass("Cloud SQL 30 backups + PITR", [gcp.sql()]),
      pass("1 day is enough in dev", [aws.rds({ backupRetentionPeriod: 1 })], { env: "dev" }),
    ],
    fail: [
      fail(
        "backups off",
        [aws.rds({ backupRetentionPeriod: 0 })],
        [/backupRetentionPeriod is 0: set it to at least 14 days/],
      ),
      fail("too short for prod", [aws.rds({ backupRetentionPeriod: 7 })], [/at least 14/]),
      fail(
        "Cloud SQL backups off",
        [gcp.sql({ settings: { backupConfiguration: { enabled: false } } })],
        [/backupConfiguration.enabled is false: set it to true/],
      ),
      fail(
        "Cloud SQL without PITR and too few",
        [
          gcp.sql({
            settings: {
              backupConfiguration: {
                pointInTimeRecoveryEnabled: false,
                backupRetentionSettings: { retainedBackups: 3 },
              },
            },
          }),
        ],
        [/retainedBackups to at least 14/, /pointInTimeRecoveryEnabled is off/],
      ),
      fail("config raises the floor", [aws.rds({ backupRetentionPeriod: 30 })], [/at least 35/], {
        config: { minRetentionDays: 35 },
      }),
    ],
    unknown: [pass("retention unknown", [aws.rds({ backupRetentionPeriod: UNKNOWN })])],
  },
  "redis-encrypted-at-rest": {
    pass: [pass("encrypted", [aws.redis()])],
    fail: [
      fail(
        "not encrypted",
        [aws.redis({ atRestEncryptionEnabled: false })],
        [/atRestEncryptionEnabled: true/],
      ),
    ],
    unknown: [pass("unknown", [aws.redis({ atRestEncryptionEnabled: UNKNOWN })])],
  },
  "redis-tls-and-auth": {
    pass: [
      pass("ElastiCache TLS + token", [aws.redis()]),
      pass("Memorystore", [gcp.redis()]),
      pass("RBAC instead of a token", [aws.redis({ authToken: undefined, userGroupIds: ["ug"] })]),
    ],
    fail: [
      fail(
        "no TLS",
        [aws.redis({ transitEncryptionEnabled: false, transitEncryptionMode: undefined })],
        [/transitEncryptionEnabled: true/],
      ),
      fail(
        "TLS preferred",
        [aws.redis({ transitEncryptionMode: "preferred" })],
        [/"preferred".*set it to "required"/],
      ),
      fail("no auth", [aws.redis({ authToken: undefined })], [/No authToken and no userGroupIds/]),
      fail(
        "Memorystore plaintext and no AUTH",
        [gcp.redis({ transitEncryptionMode: "DISABLED", authEnabled: false })],
        [
          /transitEncryptionMode is DISABLED: set it to "SERVER_AUTHENTICATION"/,
          /authEnabled is off/,
        ],
      ),
    ],
    unknown: [
      pass("token unknown (a generated password)", [aws.redis({ authToken: UNKNOWN })]),
      pass("mode unknown", [gcp.redis({ transitEncryptionMode: UNKNOWN })]),
    ],
  },
  "redis-backups": {
    pass: [
      pass("7 days of snapshots", [aws.redis()]),
      pass("RDB", [gcp.redis()]),
      pass("not checked in dev", [aws.redis({ snapshotRetentionLimit: 0 })], { env: "dev" }),
    ],
    fail: [
      fail(
        "no snapshots",
        [aws.redis({ snapshotRetentionLimit: 0 })],
        [/snapshotRetentionLimit is 0: set it to at least 3 days/],
      ),
      fail(
        "persistence off",
        [gcp.redis({ persistenceConfig: { persistenceMode: "DISABLED" } })],
        [/persistenceMode is DISABLED: set \{ persistenceMode: "RDB"/],
      ),
    ],
    unknown: [pass("unknown", [aws.redis({ snapshotRetentionLimit: UNKNOWN })])],
  },
  "data-ports-not-public": {
    pass: [
      pass("HTTPS from anywhere", [aws.sgIngress()]),
      pass("Postgres from a security group", [
        aws.sgIngress({
          cidrIpv4: undefined,
          referencedSecurityGroupId: "sg-2",
          fromPort: 5432,
          toPort: 5432,
        }),
      ]),
      pass("health checkers", [gcp.firewall()]),
    ],
    fail: [
      fail(
        "Postgres open",
        [aws.sgIngress({ fromPort: 5432, toPort: 5432 })],
        [/admits 0.0.0.0\/0 on port 5432/],
      ),
      fail(
        "all traffic",
        [aws.sgIngress({ ipProtocol: "-1", fromPort: undefined, toPort: undefined })],
        [/ports 5432, 6379, 6378, 3307, 22, 3389/],
      ),
      fail(
        "SSH via a firewall range",
        [
          gcp.firewall({
            sourceRanges: ["0.0.0.0/0"],
            allows: [{ protocol: "tcp", ports: ["20-30"] }],
          }),
        ],
        [/This firewall rule admits 0.0.0.0\/0 on port 22/],
      ),
      fail(
        "inline rule on a security group",
        [
          res("aws:ec2/securityGroup:SecurityGroup", {
            ingress: [{ protocol: "tcp", fromPort: 6379, toPort: 6379, cidrBlocks: ["0.0.0.0/0"] }],
          }),
        ],
        [/inline ingress rule.*port 6379/],
      ),
    ],
    unknown: [pass("ports unknown", [aws.sgIngress({ fromPort: UNKNOWN, toPort: UNKNOWN })])],
  },
  "prod-deletion-protection": {
    pass: [
      pass("protected stores", [aws.rds(), aws.redis(), gcp.sql(), gcp.redis()]),
      pass("not required in dev", [aws.rds({ deletionProtection: false }, false)], { env: "dev" }),
    ],
    fail: [
      fail(
        "RDS unprotected",
        [aws.rds({ deletionProtection: false, skipFinalSnapshot: true }, false)],
        [
          /protect resource option is off/,
          /deletionProtection is off/,
          /skipFinalSnapshot is true/,
        ],
      ),
      fail(
        "Cloud SQL API flag off",
        [gcp.sql({ settings: { deletionProtectionEnabled: false } })],
        [/deletionProtectionEnabled is off/],
      ),
      fail(
        "Memorystore not protected",
        [gcp.redis({ deletionProtection: false }, false)],
        [/protect resource option is off/, /deletionProtection is false/],
      ),
    ],
    unknown: [pass("flag unknown", [aws.rds({ deletionProtection: UNKNOWN })])],
  },
  // --- compute
  "vm-no-public-ip": {
    pass: [
      pass("private launch template", [aws.launchTemplate()]),
      pass("GCP template without access configs", [gcp.template()]),
    ],
    fail: [
      fail(
        "public IP on the template",
        [aws.launchTemplate({ networkInterfaces: [{ associatePublicIpAddress: "true" }] })],
        [/associatePublicIpAddress is true: set it to "false"/],
      ),
      fail(
        "GCP external IP",
        [gcp.template({ networkInterfaces: [{ network: "n", accessConfigs: [{}] }] })],
        [/accessConfigs gives the VM an external IP/],
      ),
      fail(
        "EC2 instance",
        [res("aws:ec2/instance:Instance", { associatePublicIpAddress: true })],
        [/associatePublicIpAddress is true/],
      ),
    ],
    unknown: [pass("interfaces unknown", [aws.launchTemplate({ networkInterfaces: UNKNOWN })])],
  },
  "vm-imdsv2-required": {
    pass: [
      pass("tokens required", [aws.launchTemplate()]),
      pass("metadata disabled", [
        aws.launchTemplate({
          metadataOptions: { httpEndpoint: "disabled", httpTokens: undefined },
        }),
      ]),
    ],
    fail: [
      fail(
        "optional",
        [aws.launchTemplate({ metadataOptions: { httpTokens: "optional" } })],
        [/httpTokens is optional: set metadataOptions: \{ httpTokens: "required"/],
      ),
      fail("unset", [aws.launchTemplate({ metadataOptions: undefined })], [/unset \(optional\)/]),
    ],
    unknown: [pass("unknown", [aws.launchTemplate({ metadataOptions: UNKNOWN })])],
  },
  "vm-volumes-encrypted": {
    pass: [
      pass("encrypted root", [aws.launchTemplate()]),
      pass("encrypted volume", [res("aws:ebs/volume:Volume", { encrypted: true, size: 10 })]),
    ],
    fail: [
      fail(
        "unencrypted root",
        [
          aws.launchTemplate({
            blockDeviceMappings: [{ deviceName: "/dev/xvda", ebs: { encrypted: "false" } }],
          }),
        ],
        [/blockDeviceMappings\[0\].ebs.encrypted is false: set encrypted: true/],
      ),
      fail(
        "no mappings",
        [aws.launchTemplate({ blockDeviceMappings: [] })],
        [/No blockDeviceMappings, so the root volume follows the AMI/],
      ),
      fail("plain volume", [res("aws:ebs/volume:Volume", { size: 10 })], [/encrypted is unset/]),
    ],
    unknown: [
      pass("unknown", [
        aws.launchTemplate({ blockDeviceMappings: [{ ebs: { encrypted: UNKNOWN } }] }),
      ]),
    ],
  },
  "lambda-reserved-concurrency": {
    pass: [pass("200 in prod", [aws.lambda()])],
    fail: [
      fail(
        "unreserved",
        [aws.lambda({ reservedConcurrentExecutions: undefined })],
        [/unset \(unreserved.*set it between 1 and 1000/],
      ),
      fail("-1", [aws.lambda({ reservedConcurrentExecutions: -1 })], [/is -1/]),
      fail(
        "0 throttles everything",
        [aws.lambda({ reservedConcurrentExecutions: 0 })],
        [/throttles every invocation/],
      ),
      fail(
        "above the dev limit",
        [aws.lambda({ reservedConcurrentExecutions: 200 })],
        [/lower it to at most 50/],
        { env: "dev" },
      ),
    ],
    unknown: [pass("unknown", [aws.lambda({ reservedConcurrentExecutions: UNKNOWN })])],
  },
  "lambda-tracing": {
    pass: [pass("active", [aws.lambda()])],
    fail: [
      fail(
        "pass-through",
        [aws.lambda({ tracingConfig: { mode: "PassThrough" } })],
        [/tracingConfig.mode is PassThrough: set tracingConfig: \{ mode: "Active" \}/],
      ),
      fail("unset", [aws.lambda({ tracingConfig: undefined })], [/unset/]),
    ],
    unknown: [pass("unknown", [aws.lambda({ tracingConfig: UNKNOWN })])],
  },
  "bedrock-invoke-scoped": {
    pass: [
      pass("the models and their profiles, by ARN (bedrockInvokePolicy)", [
        res("aws:iam/rolePolicy:RolePolicy", {
          policy: JSON.stringify(
            bedrockInvokePolicy({
              region: "us-east-1",
              accountId: "123456789012",
              profile: "us",
              models: [{ modelId: "anthropic.claude-sonnet-4-6", geos: ["us"] }],
            }),
          ),
        }),
      ]),
      pass("a policy without Bedrock may use wildcards its own rules judge", [
        res("aws:iam/rolePolicy:RolePolicy", {
          policy: {
            Statement: [{ Effect: "Allow", Action: ["logs:PutLogEvents"], Resource: "*" }],
          },
        }),
      ]),
    ],
    fail: [
      fail(
        "every model",
        [
          res("aws:iam/rolePolicy:RolePolicy", {
            policy: JSON.stringify({
              Statement: [
                {
                  Effect: "Allow",
                  Action: ["bedrock:InvokeModel"],
                  Resource: "arn:aws:bedrock:*::foundation-model/*",
                },
              ],
            }),
          }),
        ],
        [
          /Bedrock invoke on arn:aws:bedrock:\*::foundation-model\/\*: name the foundation-model and inference-profile ARNs/,
        ],
      ),
      fail(
        "bedrock:* on *",
        [
          res("aws:iam/policy:Policy", {
            policy: { Statement: { Effect: "Allow", Action: "bedrock:*", Resource: "*" } },
          }),
        ],
        [/Actions bedrock:\* grant every Bedrock operation/, /Bedrock invoke on \*/],
      ),
    ],
    unknown: [pass("unknown", [res("aws:iam/rolePolicy:RolePolicy", { policy: UNKNOWN })])],
  },
  "cloudrun-max-instances": {
    pass: [pass("20 in prod", [gcp.cloudRun()])],
    fail: [
      fail(
        "unbounded",
        [gcp.cloudRun({ template: { scaling: { maxInstanceCount: undefined } } })],
        [/No maximum instance count.*maxInstanceCount to at most 100/],
      ),
      fail(
        "too many for dev",
        [gcp.cloudRun()],
        [/maximum instance count is 20: lower it to at most 10/],
        { env: "dev" },
      ),
    ],
    unknown: [
      pass("unknown", [gcp.cloudRun({ template: { scaling: { maxInstanceCount: UNKNOWN } } })]),
    ],
  },
  "autoscaling-bounded": {
    pass: [pass("groups within prod limits", [aws.asg(), gcp.autoscaler(), aws.nodeGroup()])],
    fail: [
      fail(
        "ASG of 1000",
        [aws.asg({ maxSize: 1000 })],
        [/maxSize is 1000: lower it to at most 50/],
      ),
      fail("MIG in dev", [gcp.autoscaler()], [/maxReplicas is 10: lower it to at most 5/], {
        env: "dev",
      }),
      fail(
        "min above max",
        [aws.nodeGroup({ scalingConfig: { minSize: 5, maxSize: 3 } })],
        [/scalingConfig.minSize \(5\) is above scalingConfig.maxSize \(3\)/],
      ),
    ],
    unknown: [pass("unknown", [aws.asg({ maxSize: UNKNOWN })])],
  },
  "prod-min-capacity": {
    pass: [
      pass("two or more", [aws.asg(), gcp.autoscaler(), aws.nodeGroup()]),
      pass("one is fine in dev", [aws.asg({ minSize: 1 })], { env: "dev" }),
    ],
    fail: [
      fail(
        "single instance in prod",
        [aws.asg({ minSize: 1 })],
        [/minSize is 1: set it to at least 2/],
      ),
      fail(
        "MIG",
        [gcp.autoscaler({ autoscalingPolicy: { minReplicas: 1 } })],
        [/autoscalingPolicy.minReplicas is 1/],
      ),
    ],
    unknown: [pass("unknown", [aws.asg({ minSize: UNKNOWN })])],
  },
  // --- kubernetes
  "k8s-container-resources": {
    pass: [pass("requests and limits", [k8s.deployment()])],
    fail: [
      fail(
        "no limits",
        [k8s.deployment({ resources: { limits: undefined } })],
        [/containers\[0\] "agent" has no resources.limits.cpu, resources.limits.memory/],
      ),
      fail(
        "no resources at all",
        [k8s.deployment({ resources: undefined })],
        [/requests.cpu, resources.requests.memory, resources.limits.cpu, resources.limits.memory/],
      ),
    ],
    unknown: [
      pass("containers unknown", [
        k8s.deployment({}, { spec: { template: { spec: { containers: UNKNOWN } } } }),
      ]),
    ],
  },
  "k8s-non-root": {
    pass: [
      pass("non-root", [k8s.deployment()]),
      pass("non-root set on the pod only", [
        k8s.deployment({ securityContext: { runAsNonRoot: undefined } }),
      ]),
    ],
    fail: [
      fail(
        "root",
        [k8s.deployment({ securityContext: { runAsNonRoot: false, runAsUser: 0 } })],
        [/runAsNonRoot: true.*runAsUser is 0/],
      ),
      fail(
        "privileged and escalating",
        [k8s.deployment({ securityContext: { privileged: true, allowPrivilegeEscalation: true } })],
        [/remove securityContext.privileged.*allowPrivilegeEscalation: false/],
      ),
    ],
    unknown: [
      pass("unknown", [
        k8s.deployment(
          { securityContext: UNKNOWN },
          { spec: { template: { spec: { securityContext: UNKNOWN } } } },
        ),
      ]),
    ],
  },
  "k8s-read-only-root-filesystem": {
    pass: [pass("read-only", [k8s.deployment()])],
    fail: [
      fail(
        "writable",
        [k8s.deployment({ securityContext: { readOnlyRootFilesystem: false } })],
        [/readOnlyRootFilesystem: true and mount an emptyDir/],
      ),
    ],
    unknown: [
      pass("unknown", [k8s.deployment({ securityContext: { readOnlyRootFilesystem: UNKNOWN } })]),
    ],
  },
  "k8s-hpa-min-replicas": {
    pass: [
      pass("2 in prod", [k8s.hpa()]),
      pass("1 in dev", [k8s.hpa({ spec: { minReplicas: 1 } })], { env: "dev" }),
    ],
    fail: [
      fail(
        "1 in prod",
        [k8s.hpa({ spec: { minReplicas: 1 } })],
        [/spec.minReplicas is 1: set it to at least 2/],
      ),
      fail("default", [k8s.hpa({ spec: { minReplicas: undefined } })], [/unset \(1\)/]),
    ],
    unknown: [pass("unknown", [k8s.hpa({ spec: { minReplicas: UNKNOWN } })])],
  },
  "k8s-hpa-bounded": {
    pass: [pass("2..20", [k8s.hpa()])],
    fail: [
      fail(
        "unbounded",
        [k8s.hpa({ spec: { maxReplicas: 1000 } })],
        [/spec.maxReplicas is 1000: lower it to at most 100/],
      ),
      fail(
        "min above max",
        [k8s.hpa({ spec: { minReplicas: 5, maxReplicas: 3 } })],
        [/minReplicas \(5\) is above spec.maxReplicas \(3\)/],
      ),
    ],
    unknown: [pass("unknown", [k8s.hpa({ spec: { maxReplicas: UNKNOWN } })])],
  },
  "k8s-pdb-in-prod": {
    pass: [
      pass("deployment with PDB", [k8s.deployment(), k8s.pdb()]),
      pass("dev needs none", [k8s.deployment()], { env: "dev" }),
    ],
    fail: [
      fail(
        "no PDB",
        [k8s.deployment()],
        [/Deployment "agent" in namespace "agent" has no PodDisruptionBudget/],
      ),
      fail(
        "PDB in another namespace",
        [k8s.deployment(), k8s.pdb({ metadata: { namespace: "other" } })],
        [/has no PodDisruptionBudget/],
      ),
      fail(
        "PDB allowing every pod to go",
        [k8s.deployment(), k8s.pdb({ spec: { maxUnavailable: "100%" } })],
        [/lets every pod of Deployment "agent"/],
      ),
    ],
    unknown: [
      pass("labels unknown", [
        k8s.deployment({}, { spec: { template: { metadata: { labels: UNKNOWN } } } }),
      ]),
    ],
  },
  "eks-secrets-encrypted": {
    pass: [pass("KMS", [aws.eks()])],
    fail: [
      fail(
        "no encryption config",
        [aws.eks({ encryptionConfig: undefined })],
        [/encryptionConfig is missing/],
      ),
    ],
    unknown: [
      pass("key unknown", [aws.eks({ encryptionConfig: { provider: { keyArn: UNKNOWN } } })]),
    ],
  },
  "eks-api-endpoint-restricted": {
    pass: [
      pass("listed CIDRs", [aws.eks()]),
      pass("private only", [
        aws.eks({ vpcConfig: { endpointPublicAccess: false, publicAccessCidrs: undefined } }),
      ]),
    ],
    fail: [
      fail(
        "open to the world",
        [aws.eks({ vpcConfig: { publicAccessCidrs: ["0.0.0.0/0"] } })],
        [/admits 0.0.0.0\/0: set vpcConfig.publicAccessCidrs/],
      ),
      fail(
        "default list",
        [aws.eks({ vpcConfig: { publicAccessCidrs: undefined } })],
        [/admits 0.0.0.0\/0/],
      ),
    ],
    unknown: [pass("unknown", [aws.eks({ vpcConfig: { publicAccessCidrs: UNKNOWN } })])],
  },
  // --- secrets
  "lambda-env-no-plaintext-secrets": {
    pass: [pass("references only", [aws.lambda()])],
    fail: [
      fail(
        "API key by name",
        [
          aws.lambda({
            environment: { variables: { ANTHROPIC_API_KEY: "not-a-reference-value" } },
          }),
        ],
        [
          /environment.variables: ANTHROPIC_API_KEY looks like a secret and holds a literal value. Remove it and store it in Secrets Manager/,
        ],
      ),
      fail(
        "API key by format",
        [aws.lambda({ environment: { variables: { LLM: "sk-ant-api03-abcdefghijklmnop" } } })],
        [/LLM holds an Anthropic API key/],
      ),
      fail(
        "password in a URL",
        [
          aws.lambda({
            environment: { variables: { DATABASE_URL: "postgres://agent:hunter2@db:5432/agent" } },
          }),
        ],
        [/DATABASE_URL holds a URL with a password/],
      ),
    ],
    unknown: [
      pass("values unknown", [
        aws.lambda({ environment: { variables: { DATABASE_PASSWORD_SECRET: UNKNOWN } } }),
      ]),
    ],
  },
  "cloudrun-env-no-plaintext-secrets": {
    pass: [pass("secretKeyRef and a CA certificate", [gcp.cloudRun()])],
    fail: [
      fail(
        "literal password",
        [
          gcp.cloudRun({
            template: {
              containers: [{ envs: [{ name: "REDIS_PASSWORD", value: "s3cr3t-value" }] }],
            },
          }),
        ],
        [/containers\[0\].envs: REDIS_PASSWORD looks like a secret.*valueSource: \{ secretKeyRef/],
      ),
    ],
    unknown: [
      pass("unknown", [
        gcp.cloudRun({
          template: { containers: [{ envs: [{ name: "REDIS_PASSWORD", value: UNKNOWN }] }] },
        }),
      ]),
    ],
  },
  "k8s-env-no-plaintext-secrets": {
    pass: [pass("references, token file and secretKeyRef", [k8s.deployment()])],
    fail: [
      fail(
        "private key in env",
        [
          k8s.deployment({
            env: [{ name: "TLS_KEY_PEM", value: "-----BEGIN RSA PRIVATE KEY-----\nMII..." }],
          }),
        ],
        [/containers\[0\] "agent" env: TLS_KEY_PEM holds a private key.*valueFrom.secretKeyRef/],
      ),
    ],
    unknown: [pass("unknown", [k8s.deployment({ env: [{ name: "API_TOKEN", value: UNKNOWN }] })])],
  },
  "vm-user-data-no-plaintext-secrets": {
    pass: [
      pass("references in base64 user data", [aws.launchTemplate()]),
      pass("GCP metadata with references", [gcp.template()]),
    ],
    fail: [
      fail(
        "password in cloud-config",
        [
          aws.launchTemplate({
            userData: Buffer.from(
              "#cloud-config\nwrite_files:\n  - content: |\n      DATABASE_PASSWORD=hunter2hunter2\n",
            ).toString("base64"),
          }),
        ],
        [/userData: DATABASE_PASSWORD looks like a secret and holds a literal value/],
      ),
      fail(
        "AWS key in a GCP startup script",
        [
          gcp.template({
            metadata: { "startup-script": "export AWS_ACCESS_KEY_ID=AKIAABCDEFGHIJKLMNOP\n" },
          }),
        ],
        [/metadata\["startup-script"\]: it contains an AWS access key id/],
      ),
    ],
    unknown: [pass("unknown", [aws.launchTemplate({ userData: UNKNOWN })])],
  },
  "secrets-only-from-secret-stores": {
    pass: [
      pass("Secret without inline data", [k8s.secret()]),
      pass("SecureString", [
        res("aws:ssm/parameter:Parameter", {
          name: "/agent/db-password",
          type: "SecureString",
          value: "x",
        }),
      ]),
    ],
    fail: [
      fail(
        "inline Secret data",
        [k8s.secret({ stringData: { password: "hunter2" } })],
        [/carries password inline.*External Secrets/],
      ),
      fail(
        "plain String parameter",
        [
          res("aws:ssm/parameter:Parameter", {
            name: "/agent/db-password",
            type: "String",
            value: "x",
          }),
        ],
        [/Parameter "\/agent\/db-password" looks like a secret but is a plain String/],
      ),
    ],
    unknown: [pass("unknown", [k8s.secret({ stringData: UNKNOWN })])],
  },
  // --- supply chain
  "images-pinned-by-digest": {
    pass: [
      pass("digests everywhere", [
        k8s.deployment(),
        gcp.cloudRun(),
        aws.launchTemplate(),
        gcp.template(),
      ]),
    ],
    fail: [
      fail(
        "tag in k8s",
        [k8s.deployment({ image: "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent:v1.2.3" })],
        [
          /containers\[0\] "agent" image ".*agent:v1.2.3" is not pinned by digest: deploy by digest/,
        ],
      ),
      fail(
        "latest in Cloud Run",
        [
          gcp.cloudRun({
            template: { containers: [{ image: "us-central1-docker.pkg.dev/p/r/agent:latest" }] },
          }),
        ],
        [/containers\[0\].image .* is not pinned by digest/],
      ),
      fail(
        "tag in user data",
        [
          gcp.template({
            metadata: {
              "user-data": "runcmd:\n  - docker pull us-central1-docker.pkg.dev/p/r/agent:main\n",
            },
          }),
        ],
        [/user data image "us-central1-docker.pkg.dev\/p\/r\/agent:main"/],
      ),
    ],
    unknown: [pass("image unknown (built in this update)", [k8s.deployment({ image: UNKNOWN })])],
  },
  "ecr-scan-on-push": {
    pass: [pass("scans", [aws.ecr()])],
    fail: [
      fail("no scan", [aws.ecr({ imageScanningConfiguration: undefined })], [/scanOnPush: true/]),
    ],
    unknown: [pass("unknown", [aws.ecr({ imageScanningConfiguration: { scanOnPush: UNKNOWN } })])],
  },
  "ecr-immutable-tags": {
    pass: [pass("immutable", [aws.ecr()])],
    fail: [
      fail(
        "mutable",
        [aws.ecr({ imageTagMutability: "MUTABLE" })],
        [/imageTagMutability is MUTABLE: set it to "IMMUTABLE"/],
      ),
    ],
    unknown: [pass("unknown", [aws.ecr({ imageTagMutability: UNKNOWN })])],
  },
  // --- operations
  "required-tags": {
    pass: [
      pass("tagged and labelled", [
        aws.rds(),
        gcp.redis(),
        gcp.sql(),
        res("aws:iam/rolePolicy:RolePolicy", { policy: "{}" }),
      ]),
    ],
    fail: [
      fail(
        "missing owner and cost-center",
        [aws.lambda({ tags: { owner: undefined, "cost-center": undefined } })],
        [/tags lack owner, cost-center: add them/],
      ),
      fail(
        "cost-bearing without tags",
        [aws.rds({ tags: undefined })],
        [/No tags: add app, environment, owner, cost-center/],
      ),
      fail(
        "Cloud SQL without user labels",
        [
          gcp.sql({
            settings: {
              userLabels: { environment: undefined, owner: undefined, "cost-center": undefined },
            },
          }),
        ],
        [/settings.userLabels lack environment, owner, cost-center/],
      ),
      fail("empty value", [gcp.redis({ labels: { ...TAGS, owner: " " } })], [/labels lack owner/]),
    ],
    unknown: [
      pass("tags unknown", [aws.rds({ tags: UNKNOWN })]),
      pass("one value unknown", [aws.rds({ tags: { ...TAGS, owner: UNKNOWN } })]),
    ],
  },
  "instance-tags-propagated": {
    pass: [pass("instance and volume tagged", [aws.launchTemplate()])],
    fail: [
      fail(
        "no tag specifications",
        [aws.launchTemplate({ tagSpecifications: undefined })],
        [/No tagSpecifications for "instance"/, /No tagSpecifications for "volume"/],
      ),
      fail(
        "partial",
        [
          aws.launchTemplate({
            tagSpecifications: ["instance", "volume"].map((resourceType) => ({
              resourceType,
              tags: { Name: "agent", environment: "prod" },
            })),
          }),
        ],
        [
          /tagSpecifications for "instance" lack app, owner, cost-center, pulumi-stack/,
          /"volume" lack/,
        ],
      ),
    ],
    unknown: [pass("unknown", [aws.launchTemplate({ tagSpecifications: UNKNOWN })])],
  },
  "log-retention": {
    pass: [
      pass("90 days in prod", [aws.logGroup(), gcp.logBucket()]),
      pass("7 days in dev", [aws.logGroup({ retentionInDays: 7 })], { env: "dev" }),
    ],
    fail: [
      fail(
        "forever",
        [aws.logGroup({ retentionInDays: undefined })],
        [/retentionInDays is unset, so logs are kept forever: set it between 30 and 3653/],
      ),
      fail(
        "too short for prod",
        [gcp.logBucket({ retentionDays: 7 })],
        [/retentionDays is 7: set it between 30 and 3653/],
      ),
      fail("too long for dev", [aws.logGroup({ retentionInDays: 365 })], [/between 3 and 30/], {
        env: "dev",
      }),
    ],
    unknown: [pass("unknown", [aws.logGroup({ retentionInDays: UNKNOWN })])],
  },
  "alarms-present": {
    pass: [
      pass("AWS stores and service watched", awsStack()),
      pass("GCP", [
        gcp.sql(),
        gcp.redis(),
        gcp.cloudRun(),
        gcp.alert("cloudsql_database"),
        gcp.alert("redis_instance"),
        gcp.alert("cloud_run_revision"),
      ]),
    ],
    fail: [
      fail(
        "no cache or service alarm",
        [aws.rds(), aws.redis(), aws.lambda(), aws.alarm()],
        [
          /Nothing alarms on the cache: add a CloudWatch alarm on AWS\/ElastiCache/,
          /Nothing alarms on the service/,
        ],
      ),
      fail(
        "alarm without action",
        [aws.rds(), aws.alarm({ alarmActions: [] })],
        [/notifies nobody: set alarmActions/, /Nothing alarms on the database/],
      ),
      fail(
        "GCP database unwatched",
        [gcp.sql(), gcp.alert("redis_instance")],
        [/Nothing alarms on the database: add an alert policy on cloudsql_database/],
      ),
    ],
    unknown: [pass("actions unknown", [aws.rds(), aws.alarm({ alarmActions: UNKNOWN })])],
  },
  "budget-alerts": {
    pass: [
      pass("AWS 50/80/100", [aws.rds(), aws.budget()]),
      pass("GCP 0.5/0.8/1", [gcp.sql(), gcp.budget()]),
    ],
    fail: [
      fail("no budget", [aws.rds()], [/No AWS cost budget: add an aws.budgets.Budget/]),
      fail(
        "only 100 %",
        [aws.rds(), aws.budget([100])],
        [/does not alert on actual spend at 50, 80 %/],
      ),
      fail(
        "forecast only",
        [
          aws.rds(),
          aws.budget([50, 80, 100], {
            notifications: [
              {
                notificationType: "FORECASTED",
                thresholdType: "PERCENTAGE",
                threshold: 100,
                subscriberEmailAddresses: ["a@b.c"],
              },
            ],
          }),
        ],
        [/at 50, 80, 100 %/],
      ),
      fail(
        "only 100 % to a topic not created yet",
        [
          aws.rds(),
          aws.budget([100], {
            notifications: [
              {
                notificationType: "ACTUAL",
                thresholdType: "PERCENTAGE",
                threshold: 100,
                subscriberSnsTopicArns: [UNKNOWN],
              },
            ],
          }),
        ],
        [/at 50, 80 %/],
      ),
      fail(
        "GCP missing 80 %",
        [gcp.sql(), gcp.budget([0.5, 1])],
        [/GCP budget does not alert at 80 %/],
      ),
      fail(
        "GCP notifying nobody",
        [
          gcp.sql(),
          gcp.budget([0.5, 0.8, 1], {
            allUpdatesRule: {
              monitoringNotificationChannels: [],
              disableDefaultIamRecipients: true,
            },
          }),
        ],
        [/notifies nobody/],
      ),
    ],
    unknown: [
      pass("notifications unknown", [
        aws.rds(),
        aws.budget([50, 80, 100], { notifications: UNKNOWN }),
      ]),
      pass("a threshold unknown", [
        aws.rds(),
        aws.budget([50, 80, 100], {
          notifications: [
            { notificationType: "ACTUAL", thresholdType: "PERCENTAGE", threshold: UNKNOWN },
          ],
        }),
      ]),
      pass("GCP channels unknown", [
        gcp.sql(),
        gcp.budget([0.5, 0.8, 1], {
          allUpdatesRule: {
            monitoringNotificationChannels: UNKNOWN,
            disableDefaultIamRecipients: true,
          },
        }),
      ]),
    ],
  },
  "environment-consistent": {
    pass: [pass("all prod", [aws.rds(), gcp.redis()])],
    fail: [
      fail(
        "dev-tagged resource in prod",
        [aws.rds(), aws.lambda({ tags: { ...TAGS, environment: "dev" } })],
        [/1 resource\(s\) are tagged environment=dev in a prod stack/],
      ),
      fail(
        "config file for another environment",
        [aws.rds()],
        [
          /policy config is for dev but this stack is prod: pass --policy-pack-config infra\/policy\/config\/prod.json/,
        ],
        { config: { environment: "dev" } },
      ),
      fail(
        "stack named for another environment",
        [{ ...aws.rds(), urn: "urn:pulumi:lambda-dev::agent::aws:rds/instance:Instance::db" }],
        [/named "lambda-dev" \(dev\) but is configured as prod/],
      ),
    ],
  },
  // --- cost
  "allowed-instance-sizes": {
    pass: [
      pass("prod sizes", [aws.launchTemplate(), aws.nodeGroup(), gcp.template()]),
      pass(
        "dev sizes",
        [
          aws.launchTemplate({ instanceType: "t4g.small" }),
          gcp.template({ machineType: "zones/us-central1-a/machineTypes/e2-small" }),
        ],
        { env: "dev" },
      ),
    ],
    fail: [
      fail(
        "m7g.large in dev",
        [aws.launchTemplate()],
        [/instanceType "m7g.large" is not allowed in this environment: pick one of t3.micro/],
        { env: "dev" },
      ),
      fail(
        "huge node group in prod",
        [aws.nodeGroup({ instanceTypes: ["p4d.24xlarge"] })],
        [/instanceTypes\[0\] "p4d.24xlarge" is not allowed/],
      ),
      fail(
        "n2-highmem in prod",
        [gcp.template({ machineType: "n2-highmem-32" })],
        [/machineType "n2-highmem-32"/],
      ),
      fail("config narrows the list", [aws.launchTemplate()], [/pick one of t4g.\*/], {
        config: { awsInstanceTypes: ["t4g.*"] },
      }),
    ],
    unknown: [pass("unknown", [aws.launchTemplate({ instanceType: UNKNOWN })])],
  },
  "allowed-database-sizes": {
    pass: [pass("prod sizes", [aws.rds(), aws.redis(), gcp.sql(), gcp.redis()])],
    fail: [
      fail(
        "prod classes in dev",
        [aws.rds(), aws.redis(), gcp.sql()],
        [
          /instanceClass "db.m7g.large" is not allowed/,
          /nodeType "cache.m7g.large"/,
          /settings.tier "db-custom-2-7680"/,
        ],
        { env: "dev" },
      ),
      fail(
        "Memorystore too big",
        [gcp.redis({ memorySizeGb: 100 })],
        [/memorySizeGb is 100: use at most 20 GB/],
      ),
    ],
    unknown: [pass("unknown", [aws.rds({ instanceClass: UNKNOWN })])],
  },
  "warm-capacity-bounded": {
    pass: [
      pass("prod", [aws.provisioned(10), gcp.cloudRun()]),
      pass(
        "scale to zero in dev",
        [gcp.cloudRun({ template: { scaling: { minInstanceCount: 0, maxInstanceCount: 5 } } })],
        { env: "dev" },
      ),
    ],
    fail: [
      fail(
        "provisioned in dev",
        [aws.provisioned(2)],
        [/this environment allows no provisioned concurrency/],
        { env: "dev" },
      ),
      fail(
        "too many warm instances",
        [gcp.cloudRun({ template: { scaling: { minInstanceCount: 50 } } })],
        [/minInstanceCount is 50: keep at most 10 warm instances/],
      ),
    ],
    unknown: [pass("unknown", [aws.provisioned(UNKNOWN as unknown as number)])],
  },
  "monthly-cost-limit": {
    pass: [pass("a small prod stack", [aws.rds(), aws.redis()])],
    fail: [
      fail(
        "a big dev stack",
        [
          aws.rds(),
          aws.redis(),
          aws.nodeGroup({ instanceTypes: ["m6i.2xlarge"], scalingConfig: { desiredSize: 10 } }),
        ],
        [
          /Estimated \$\d+\/month \(built-in conservative estimate\) is over the dev limit of \$500; largest: aws:eks\/nodeGroup:NodeGroup/,
        ],
        { env: "dev" },
      ),
      fail("limit from config", [aws.rds()], [/over the prod limit of \$100/], {
        config: { monthlyLimitUsd: 100 },
      }),
    ],
  },
};

describe("every rule has a passing and a failing case", () => {
  test.each(RULES.map((r) => [r.name]))("%s", (name) => {
    const cases = CASES[name];
    expect(cases).toBeDefined();
    expect(cases!.pass.length).toBeGreaterThan(0);
    expect(cases!.fail.length).toBeGreaterThan(0);
  });

  test("no case is written for a rule that does not exist", () => {
    expect(Object.keys(CASES).filter((n) => !RULES.some((r) => r.name === n))).toEqual([]);
  });
});

const rows = (kind: "pass" | "unknown") =>
  Object.entries(CASES).flatMap(([rule, c]) =>
    (c[kind] ?? []).map((x) => [rule, x.title, x] as const),
  );

describe("compliant resources pass", () => {
  test.each(rows("pass"))("%s: %s", (rule, _title, c) => {
    expect(messagesOf(rule, c.resources, c.env ?? "prod", c.config)).toEqual([]);
  });
});

describe("unknown values (preview) are never violations", () => {
  test.each(rows("unknown"))("%s: %s", (rule, _title, c) => {
    expect(messagesOf(rule, c.resources, c.env ?? "prod", c.config)).toEqual([]);
  });
});

describe("non-compliant resources fail with a message that says what to change", () => {
  const failRows = Object.entries(CASES).flatMap(([rule, c]) =>
    c.fail.map((x) => [rule, x.title, x] as const),
  );
  test.each(failRows)("%s: %s", (rule, _title, c) => {
    const messages = messagesOf(rule, c.resources, c.env ?? "prod", c.config);
    expect(messages.length).toBeGreaterThan(0);
    for (const re of c.expect)
      expect(messages.some((m) => re.test(m)) ? re : { unmatched: re, messages }).toBe(re);
    for (const m of messages)
      expect(c.expect.some((re) => re.test(m)) ? m : { unexpected: m }).toBe(m);
  });
});

test("container fixture is compliant on its own (guards the fixtures)", () => {
  expect(container()).toMatchObject({ securityContext: { runAsNonRoot: true } });
});
