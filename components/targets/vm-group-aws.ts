/**
 * The agent service on EC2: an Auto Scaling Group of Amazon Linux 2023 instances in the data
 * plane's private subnets, each running the container image under systemd (user data from
 * `cloud-init.ts`), behind an internet-facing Application Load Balancer.
 *
 * Secrets never reach the instance's configuration: user data carries `<NAME>_SECRET=aws-sm://`
 * references, which the app resolves at start-up with the instance role, allowed to read exactly
 * the data plane's secrets.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { type AlarmSpec, checkAlarmSpec, createAlarms } from "../aws/alarms";
import { checkAutonamedIdentifier, checkLogRetention } from "../aws/checks";
import type { PolicyDocument } from "../aws/secrets";
import { ServiceAlarms, type ServiceAlarmThresholds } from "../aws/service-alarms";
import type {
  DataPlaneOutputs,
  ImageArtifact,
  NetworkAttachment,
  TargetOutputs,
} from "../contracts";
import { environmentProfile } from "../environment";
import { CONTAINER_PORT, ecrImage } from "./cloud-init";
import { type ServiceEnvArgs, hostNameProblem, serviceUrl } from "./service";
import { createLogGroup, createServiceRole, grantRuntimeAndSecrets } from "../aws/service-identity";
import {
  failOnProblems,
  problemsOf,
  secretsProblem,
  settingsOrFail,
  wholeNumberProblem,
  natProblem,
} from "./problems";
import { resolveVmScaling, serviceCloudConfig } from "./vm-service";
import type { VmScaling } from "./scaling";

type AwsNetwork = NetworkAttachment<"aws">;

export interface AwsVmGroupTargetArgs extends ServiceEnvArgs {
  /** The AWS data plane's contract: stores, secrets, private network, alarm topic. */
  dataPlane: DataPlaneOutputs<"aws">;
  /** The `image` artifact, pinned by digest (an ECR repository, or any registry the NAT reaches). */
  artifact: ImageArtifact;
  /**
   * EC2 instance type. The architecture (and the AMI) follows it: Graviton families (`t4g`,
   * `m7g`...) run arm64, which is what the image build produces by default.
   * @default "t4g.small"
   */
  instanceType?: string;
  /** @default targetScaling(env).vm.minInstances (dev 1, staging 1, prod 2) */
  minInstances?: number;
  /** Caps cost. @default targetScaling(env).vm.maxInstances (dev 3, staging 4, prod 10) */
  maxInstances?: number;
  /** Target average CPU of the group. @default targetScaling(env).vm.targetCpuPercent (60) */
  targetCpuPercent?: number;
  /**
   * Scale on ALB requests per instance (`ALBRequestCountPerTarget`, per minute) instead of CPU:
   * better when replies wait on the LLM API and CPU stays low.
   * @default undefined (CPU target tracking)
   */
  requestsPerTarget?: number;
  /**
   * Public hostname such as `agent.example.com`. With it, the ALB serves HTTPS on 443 with
   * `certificateArn` and redirects HTTP to HTTPS; point the name at `albDnsName` yourself.
   * @default undefined: HTTP on port 80 only, for dev
   */
  domain?: string;
  /** ACM certificate covering `domain`, in the stack's region. Required with `domain`. */
  certificateArn?: pulumi.Input<string>;
  /**
   * Route 53 hosted zone holding `domain`: an alias record to the ALB is created there.
   * @default none: point the name at `albDnsName` yourself (the stack exports the record)
   */
  hostedZoneId?: pulumi.Input<string>;
  /**
   * The AMI, pinned: an AMI release then changes nothing until the stack bumps it. Stacks always
   * pin (`agent:vmgroup.imageId`).
   * @default the latest Amazon Linux 2023 AMI for the architecture, read from SSM on every run
   *   (every AMI release shows as drift and refreshes the instances: for quick trials only)
   */
  imageId?: pulumi.Input<string>;
  /** Source CIDRs admitted to the load balancer. @default ["0.0.0.0/0"] */
  allowedCidrs?: string[];
  /** ALB access logs to an S3 bucket whose policy admits the region's ELB account. @default undefined (off) */
  accessLogs?: { bucket: pulumi.Input<string>; prefix?: pulumi.Input<string> };
  /** Root volume size in GiB (gp3, encrypted). @default 20 */
  diskGb?: number;
  /** Seconds after launch before ELB health checks can mark an instance unhealthy. @default 300 */
  healthCheckGracePeriodSeconds?: number;
  /** Customer-managed KMS keys of the data plane's secrets, decrypted via Secrets Manager only. @default [] */
  secretKmsKeyArns?: pulumi.Input<string>[];
  /** Tags for instances, volumes and network interfaces (the ASG launches them, not Pulumi). @default {} */
  tags?: Record<string, string>;
  /** @default see ServiceAlarmThresholds (5 % 5xx, p99 60 s) */
  alarmThresholds?: ServiceAlarmThresholds;
}

export type VmScalingMetric =
  { kind: "cpu"; targetPercent: number } | { kind: "requests"; perTarget: number };

/** Everything the constructor needs, resolved from args and defaults. Pure. */
export interface AwsVmGroupSettings {
  scaling: VmScaling;
  scalingMetric: VmScalingMetric;
  instanceType: string;
  architecture: "arm64" | "x86_64";
  diskGb: number;
  /** HTTPS with this host name, or plain HTTP (dev). */
  domain?: string;
  allowedCidrs: string[];
  healthCheckGracePeriodSeconds: number;
  logRetentionDays: number;
  /** Prod: keep logs on destroy, refuse to delete the load balancer. */
  protect: boolean;
}

/** The modern ALB policy: TLS 1.3 and 1.2 with forward-secret ciphers only. */
export const ALB_TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06";
/** Longer than the app's 25 s drain, so streams in flight finish before the target is removed. */
export const DEREGISTRATION_DELAY_SECONDS = 30;
export const HEALTH_CHECK_PATH = "/ready";
/** ALB and target group names: at most 32 characters. */
const LB_NAME_MAX = 32;
const INSTANCE_TYPE = /^[a-z][a-z0-9-]*\d[a-z0-9-]*\.[a-z0-9]+$/;
const CIDR = /^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/;

/** Graviton families (`t4g`, `m7g`, `c7gn`, `r8g`...) have a `g` right after the generation digit. */
export function architectureOf(instanceType: string): "arm64" | "x86_64" {
  return /^[a-z]+\d+g[a-z-]*\./.test(instanceType) ? "arm64" : "x86_64";
}

/** The SSM parameter AWS publishes the latest Amazon Linux 2023 AMI under. */
export function al2023AmiParameter(architecture: "arm64" | "x86_64"): string {
  return `/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${architecture}`;
}

/**
 * Resolves settings and lists every problem with the args, each saying what to change. Returns
 * `settings` only when there are no problems.
 */
export function resolveAwsVmGroupSettings(
  name: string,
  args: AwsVmGroupTargetArgs,
): { settings?: AwsVmGroupSettings; problems: string[] } {
  const dp = args.dataPlane;
  const problems = problemsOf(
    natProblem(dp.network.hasNat, "instances could not pull the image or reach the LLM API"),
    secretsProblem(
      dp.secrets,
      "the instance role must be granted the secrets it reads (Anthropic key, database and Redis passwords)",
    ),
    checkLogRetention(
      environmentProfile(args.dataPlane.environment).logRetentionDays,
      "profile.logRetentionDays",
    ),
    checkAutonamedIdentifier(`${name}-alb`, LB_NAME_MAX, "load balancer"),
    checkAutonamedIdentifier(`${name}-tg`, LB_NAME_MAX, "target group"),
    hostNameProblem(args.domain),
    args.hostedZoneId !== undefined && args.domain === undefined
      ? "hostedZoneId needs domain: set the name to create in the zone."
      : undefined,
  );
  if (args.domain !== undefined && args.certificateArn === undefined) {
    problems.push(
      `domain "${args.domain}" needs certificateArn: pass an ACM certificate covering it (same region), or drop domain for HTTP-only dev.`,
    );
  }
  if (args.domain === undefined && args.certificateArn !== undefined) {
    problems.push(
      "certificateArn is set without domain: set domain to the name the certificate covers, or drop the certificate.",
    );
  }

  const instanceType = args.instanceType ?? "t4g.small";
  const diskGb = args.diskGb ?? 20;
  const grace = args.healthCheckGracePeriodSeconds ?? 300;
  problems.push(
    ...problemsOf(
      INSTANCE_TYPE.test(instanceType)
        ? undefined
        : `instanceType "${instanceType}" is not an EC2 instance type such as "t4g.small".`,
      // The AL2023 AMI's snapshot is 8 GiB; images and Docker layers need room beyond it.
      wholeNumberProblem("diskGb", diskGb, 10, 16384),
      wholeNumberProblem("healthCheckGracePeriodSeconds", grace, 0, 7200),
    ),
  );
  if (
    args.requestsPerTarget !== undefined &&
    (!Number.isInteger(args.requestsPerTarget) || args.requestsPerTarget < 1)
  ) {
    problems.push(
      `requestsPerTarget ${args.requestsPerTarget} must be a whole number of requests per minute, 1 or more.`,
    );
  }
  const allowedCidrs = args.allowedCidrs ?? ["0.0.0.0/0"];
  if (allowedCidrs.length === 0)
    problems.push(
      "allowedCidrs is empty, so nobody could reach the load balancer: list the CIDRs to admit.",
    );
  for (const c of allowedCidrs) {
    if (!CIDR.test(c))
      problems.push(`allowedCidrs entry "${c}" is not an IPv4 CIDR such as "203.0.113.0/24".`);
  }

  problems.push(...alarmThresholdProblems(args.alarmThresholds));

  const scaling: VmScaling | undefined = resolveVmScaling(
    problems,
    environmentProfile(args.dataPlane.environment).environment,
    args,
  );
  if (problems.length > 0 || !scaling) return { problems };
  return {
    problems,
    settings: {
      scaling,
      scalingMetric:
        args.requestsPerTarget !== undefined
          ? { kind: "requests", perTarget: args.requestsPerTarget }
          : { kind: "cpu", targetPercent: scaling.targetCpuPercent },
      instanceType,
      architecture: architectureOf(instanceType),
      diskGb,
      domain: args.domain,
      allowedCidrs: [...allowedCidrs],
      healthCheckGracePeriodSeconds: grace,
      logRetentionDays: environmentProfile(args.dataPlane.environment).logRetentionDays,
      protect: environmentProfile(args.dataPlane.environment).protectData,
    },
  };
}

/** Problems with alarm thresholds, as `ServiceAlarms` checks them. */
export function alarmThresholdProblems(t: ServiceAlarmThresholds = {}): string[] {
  const problems: string[] = [];
  if (t.errorRatePercent !== undefined && !(t.errorRatePercent > 0 && t.errorRatePercent < 100)) {
    problems.push(
      `alarmThresholds.errorRatePercent is ${t.errorRatePercent}: use a percentage between 0 and 100.`,
    );
  }
  if (t.p99LatencyMs !== undefined && !(t.p99LatencyMs > 0)) {
    problems.push(
      `alarmThresholds.p99LatencyMs is ${t.p99LatencyMs}: use a positive number of milliseconds.`,
    );
  }
  if (t.throttles !== undefined && !(t.throttles >= 1))
    problems.push(`alarmThresholds.throttles is ${t.throttles}: use 1 or more.`);
  if (t.minRequests !== undefined && !(t.minRequests >= 1))
    problems.push(`alarmThresholds.minRequests is ${t.minRequests}: use 1 or more.`);
  return problems;
}

/**
 * What the instance role may do besides reading secrets and being managed by SSM: write its
 * container's logs to its own log group, and pull the image when it lives in ECR (that
 * repository only; `GetAuthorizationToken` takes no resource, hence `*`). Not the managed
 * `AmazonEC2ContainerRegistryReadOnly`, which reads every repository in the account.
 */
export function vmRuntimePolicyDocument(logGroupArn: string, imageRef: string): PolicyDocument {
  const doc: PolicyDocument = {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "WriteOwnLogs",
        Effect: "Allow",
        // The group is created by the component, so the awslogs driver never creates one.
        Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
        Resource: [`${logGroupArn}:*`],
      },
    ],
  };
  const ecr = ecrImage(imageRef);
  if (ecr) {
    doc.Statement.push(
      { Sid: "EcrLogin", Effect: "Allow", Action: ["ecr:GetAuthorizationToken"], Resource: ["*"] },
      {
        Sid: "PullAppImage",
        Effect: "Allow",
        Action: [
          "ecr:BatchGetImage",
          "ecr:GetDownloadUrlForLayer",
          "ecr:BatchCheckLayerAvailability",
        ],
        Resource: [`arn:aws:ecr:${ecr.region}:${ecr.accountId}:repository/${ecr.repository}`],
      },
    );
  }
  return doc;
}

/**
 * The target group's health, beside the ALB's service alarms (`ServiceAlarms`): any unhealthy
 * instance, and no healthy instance at all (an outage).
 */
export function targetHealthAlarmSpecs(
  loadBalancerArnSuffix: pulumi.Input<string>,
  targetGroupArnSuffix: pulumi.Input<string>,
): AlarmSpec[] {
  const dimensions = { LoadBalancer: loadBalancerArnSuffix, TargetGroup: targetGroupArnSuffix };
  return [
    {
      key: "unhealthy-hosts",
      description: `ALB target group: an instance has failed ${HEALTH_CHECK_PATH} in 3 of 5 minutes (the ASG replaces it; repeated alarms mean a bad release or a store outage)`,
      namespace: "AWS/ApplicationELB",
      metricName: "UnHealthyHostCount",
      dimensions,
      statistic: "Maximum",
      threshold: 0,
      comparison: "GreaterThanThreshold",
      period: 60,
      evaluationPeriods: 5,
      datapointsToAlarm: 3,
      treatMissingData: "notBreaching",
    },
    {
      key: "no-healthy-hosts",
      description: "ALB target group: no healthy instance for 2 minutes (the service is down)",
      namespace: "AWS/ApplicationELB",
      metricName: "HealthyHostCount",
      dimensions,
      statistic: "Minimum",
      threshold: 1,
      comparison: "LessThanThreshold",
      period: 60,
      evaluationPeriods: 2,
      datapointsToAlarm: 2,
      // The ALB reports it every minute for an attached target group: silence is not health.
      treatMissingData: "breaching",
    },
  ];
}

/**
 * The agent service on an Auto Scaling Group behind an ALB.
 *
 * Instances have no public IP and no SSH: they sit in private subnets (outbound through the data
 * plane's NAT), require IMDSv2 (hop limit 2, so the container reaches the instance role) and are
 * reached for debugging through SSM Session Manager. The ALB admits 80/443 from `allowedCidrs`;
 * instances admit 8080 from the ALB's security group only, and carry the data plane's compute
 * group, which the stores admit.
 *
 * Without `domain` the ALB listens on plain HTTP (port 80): for dev only, since API keys would
 * cross the internet unencrypted.
 *
 * Deploys: a new image digest changes the user data, hence the launch template's version, which
 * starts a rolling instance refresh (90 % stays healthy; new instances launch before old ones
 * go). The AMI is the latest Amazon Linux 2023 at deploy time, so a deploy after an AMI release
 * also rolls the group (that is how instances get OS patches).
 *
 * Cost (us-east-1): t4g.small $0.0168/hour, about $12/month per instance, plus $1.60/month for
 * its 20 GiB gp3 volume; the ALB about $16/month plus $5.84 per LCU-month. Dev (1 instance) is
 * about $35/month, prod (2 instances minimum, up to 10) about $50/month at rest. Five alarms (with an alarm topic) about
 * $0.70/month; logs $0.50/GB ingested.
 */
export class AwsVmGroupTarget extends pulumi.ComponentResource implements TargetOutputs {
  readonly target = "vmgroup" as const;
  readonly url: pulumi.Output<string>;
  readonly albDnsName: pulumi.Output<string>;
  readonly asgName: pulumi.Output<string>;
  readonly logGroupName: pulumi.Output<string>;

  /** Escape hatches. */
  readonly settings: AwsVmGroupSettings;
  readonly logGroup: aws.cloudwatch.LogGroup;
  readonly role: aws.iam.Role;
  readonly rolePolicies: aws.iam.RolePolicy[];
  readonly ssmPolicy: aws.iam.RolePolicyAttachment;
  readonly instanceProfile: aws.iam.InstanceProfile;
  readonly albSecurityGroup: aws.ec2.SecurityGroup;
  readonly instanceSecurityGroup: aws.ec2.SecurityGroup;
  readonly loadBalancer: aws.lb.LoadBalancer;
  readonly targetGroup: aws.lb.TargetGroup;
  readonly listeners: aws.lb.Listener[];
  readonly launchTemplate: aws.ec2.LaunchTemplate;
  readonly autoScalingGroup: aws.autoscaling.Group;
  readonly scalingPolicy: aws.autoscaling.Policy;
  readonly serviceAlarms?: ServiceAlarms;
  readonly healthAlarms: aws.cloudwatch.MetricAlarm[];
  /** The alias from `domain` to the ALB, when `hostedZoneId` is given. */
  readonly dnsRecord?: aws.route53.Record;
  /** The rendered `#cloud-config` document (before base64). */
  readonly userData: pulumi.Output<string>;

  private readonly name: string;

  constructor(name: string, args: AwsVmGroupTargetArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:targets:AwsVmGroup", name, {}, opts);
    this.name = name;
    this.settings = settingsOrFail(
      resolveAwsVmGroupSettings(name, args),
      `AwsVmGroupTarget "${name}"`,
      this,
    );
    const network = args.dataPlane.network as AwsNetwork;
    const artifact = args.artifact;

    this.logGroup = createLogGroup(
      this,
      name,
      `/agent/vm/${name}-`,
      this.settings.logRetentionDays,
      this.settings.protect,
    );
    this.role = createServiceRole(
      this,
      name,
      "ec2.amazonaws.com",
      `Instance role of the ${name} agent VM group`,
    );
    this.ssmPolicy = this.attachSsm();
    this.rolePolicies = grantRuntimeAndSecrets(
      this,
      name,
      this.role,
      pulumi
        .all([this.logGroup.arn, artifact.imageRef])
        .apply(([arn, image]) => JSON.stringify(vmRuntimePolicyDocument(arn, image))),
      { refs: args.dataPlane.secrets, kmsKeyArns: args.secretKmsKeyArns },
    );
    this.instanceProfile = this.createInstanceProfile();
    this.albSecurityGroup = this.createAlbSecurityGroup(network);
    this.instanceSecurityGroup = this.createInstanceSecurityGroup(network);
    this.loadBalancer = this.createLoadBalancer(args, network);
    this.targetGroup = this.createTargetGroup(network);
    this.listeners = this.createListeners(args);
    this.userData = this.renderUserData(args, artifact);
    this.launchTemplate = this.createLaunchTemplate(args, network);
    this.autoScalingGroup = this.createAutoScalingGroup(network);
    this.scalingPolicy = this.createScalingPolicy();
    const alarms = this.createAlarms(args);
    this.serviceAlarms = alarms.service;
    this.healthAlarms = alarms.health;
    this.dnsRecord = this.createDnsRecord(args);

    this.albDnsName = this.loadBalancer.dnsName;
    this.url = serviceUrl(this.settings.domain, this.loadBalancer.dnsName);
    this.asgName = this.autoScalingGroup.name;
    this.logGroupName = this.logGroup.name;
    this.registerOutputs({
      url: this.url,
      albDnsName: this.albDnsName,
      asgName: this.asgName,
      logGroupName: this.logGroupName,
    });
  }

  /** Session Manager instead of SSH: no key pairs, no port 22, every session in CloudTrail. */
  private attachSsm(): aws.iam.RolePolicyAttachment {
    return new aws.iam.RolePolicyAttachment(
      `${this.name}-ssm`,
      { role: this.role.name, policyArn: "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore" },
      { parent: this },
    );
  }

  private createInstanceProfile(): aws.iam.InstanceProfile {
    return new aws.iam.InstanceProfile(
      `${this.name}-profile`,
      { role: this.role.name },
      { parent: this },
    );
  }

  private createAlbSecurityGroup(network: AwsNetwork): aws.ec2.SecurityGroup {
    const sg = new aws.ec2.SecurityGroup(
      `${this.name}-alb-sg`,
      {
        vpcId: network.vpcId,
        description: `Agent ALB (${this.name}): HTTP(S) from clients, 8080 to its instances`,
      },
      { parent: this },
    );
    const ports = this.settings.domain ? [80, 443] : [80];
    for (const port of ports) {
      this.settings.allowedCidrs.forEach((cidr, i) => {
        new aws.vpc.SecurityGroupIngressRule(
          `${this.name}-alb-in-${port}-${i}`,
          {
            securityGroupId: sg.id,
            cidrIpv4: cidr,
            ipProtocol: "tcp",
            fromPort: port,
            toPort: port,
            description: port === 443 ? "HTTPS" : "HTTP",
          },
          { parent: this },
        );
      });
    }
    return sg;
  }

  private createInstanceSecurityGroup(network: AwsNetwork): aws.ec2.SecurityGroup {
    // No egress rules of its own: the data plane's compute group carries HTTPS and the stores.
    const sg = new aws.ec2.SecurityGroup(
      `${this.name}-instance-sg`,
      {
        vpcId: network.vpcId,
        description: `Agent instances (${this.name}): ${CONTAINER_PORT} from the ALB only`,
      },
      { parent: this },
    );
    new aws.vpc.SecurityGroupIngressRule(
      `${this.name}-instance-from-alb`,
      {
        securityGroupId: sg.id,
        referencedSecurityGroupId: this.albSecurityGroup.id,
        ipProtocol: "tcp",
        fromPort: CONTAINER_PORT,
        toPort: CONTAINER_PORT,
        description: "Service port from the ALB",
      },
      { parent: this },
    );
    new aws.vpc.SecurityGroupEgressRule(
      `${this.name}-alb-to-instances`,
      {
        securityGroupId: this.albSecurityGroup.id,
        referencedSecurityGroupId: sg.id,
        ipProtocol: "tcp",
        fromPort: CONTAINER_PORT,
        toPort: CONTAINER_PORT,
        description: "Service port and health checks to the instances",
      },
      { parent: this },
    );
    return sg;
  }

  private createLoadBalancer(args: AwsVmGroupTargetArgs, network: AwsNetwork): aws.lb.LoadBalancer {
    return new aws.lb.LoadBalancer(
      `${this.name}-alb`,
      {
        loadBalancerType: "application",
        internal: false,
        subnets: network.publicSubnetIds.apply((ids) => {
          if (ids.length < 2) {
            throw new Error(
              `AwsVmGroupTarget "${this.name}": an internet-facing ALB needs public subnets in at least two AZs, the data plane has ${ids.length}: give the network public subnets.`,
            );
          }
          return ids;
        }),
        securityGroups: [this.albSecurityGroup.id],
        // Requests with header names the ALB cannot parse are dropped, not passed to the app.
        dropInvalidHeaderFields: true,
        enableHttp2: true,
        // Shorter than the app's keep-alive (65 s), so the ALB never reuses a connection the
        // app is closing. Streams send data well within it.
        idleTimeout: 60,
        enableDeletionProtection: this.settings.protect,
        accessLogs: args.accessLogs
          ? { bucket: args.accessLogs.bucket, prefix: args.accessLogs.prefix, enabled: true }
          : undefined,
      },
      { parent: this },
    );
  }

  private createTargetGroup(network: AwsNetwork): aws.lb.TargetGroup {
    return new aws.lb.TargetGroup(
      `${this.name}-tg`,
      {
        vpcId: network.vpcId,
        targetType: "instance",
        port: CONTAINER_PORT,
        protocol: "HTTP",
        // Replies take seconds to minutes: send each request to the least busy instance.
        loadBalancingAlgorithmType: "least_outstanding_requests",
        deregistrationDelay: DEREGISTRATION_DELAY_SECONDS,
        healthCheck: {
          enabled: true,
          path: HEALTH_CHECK_PATH,
          protocol: "HTTP",
          port: "traffic-port",
          matcher: "200",
          interval: 10,
          timeout: 5,
          healthyThreshold: 2,
          unhealthyThreshold: 3,
        },
      },
      { parent: this },
    );
  }

  private createListeners(args: AwsVmGroupTargetArgs): aws.lb.Listener[] {
    const listener = (
      suffix: string,
      port: 80 | 443,
      defaultActions: aws.types.input.lb.ListenerDefaultAction[],
      tls: { sslPolicy?: string; certificateArn?: pulumi.Input<string> } = {},
    ) =>
      new aws.lb.Listener(
        `${this.name}-${suffix}`,
        {
          loadBalancerArn: this.loadBalancer.arn,
          port,
          protocol: port === 443 ? "HTTPS" : "HTTP",
          ...tls,
          defaultActions,
        },
        { parent: this },
      );
    const forward = [{ type: "forward", targetGroupArn: this.targetGroup.arn }];
    // Dev only: see the class doc.
    if (!this.settings.domain) return [listener("http", 80, forward)];
    return [
      listener("https", 443, forward, {
        sslPolicy: ALB_TLS_POLICY,
        certificateArn: args.certificateArn,
      }),
      listener("http", 80, [
        { type: "redirect", redirect: { protocol: "HTTPS", port: "443", statusCode: "HTTP_301" } },
      ]),
    ];
  }

  /** An alias A record (free queries, follows the ALB's addresses) from the domain to the ALB. */
  private createDnsRecord(args: AwsVmGroupTargetArgs): aws.route53.Record | undefined {
    if (args.hostedZoneId === undefined || this.settings.domain === undefined) return undefined;
    return new aws.route53.Record(
      `${this.name}-dns`,
      {
        zoneId: args.hostedZoneId,
        name: this.settings.domain,
        type: "A",
        aliases: [
          {
            name: this.loadBalancer.dnsName,
            zoneId: this.loadBalancer.zoneId,
            evaluateTargetHealth: true,
          },
        ],
      },
      { parent: this },
    );
  }

  private renderUserData(
    args: AwsVmGroupTargetArgs,
    artifact: ImageArtifact,
  ): pulumi.Output<string> {
    const dp = args.dataPlane;
    const host = pulumi
      .output(this.logGroup.name)
      .apply((logGroupName) => ({ cloud: "aws" as const, region: dp.region, logGroupName }));
    return serviceCloudConfig(host, artifact.imageRef, dp, args, { AWS_REGION: dp.region });
  }

  private createLaunchTemplate(
    args: AwsVmGroupTargetArgs,
    network: AwsNetwork,
  ): aws.ec2.LaunchTemplate {
    const s = this.settings;
    const imageId =
      args.imageId ??
      // `insecureValue`: the AMI id is public; `value` would be marked secret.
      aws.ssm.getParameterOutput({ name: al2023AmiParameter(s.architecture) }, { parent: this })
        .insecureValue;
    const tags = {
      ...args.tags,
      Name: this.name,
      target: "vmgroup",
      environment: environmentProfile(args.dataPlane.environment).environment,
    };
    return new aws.ec2.LaunchTemplate(
      `${this.name}-lt`,
      {
        description: `Agent service instances (${this.name})`,
        imageId,
        instanceType: s.instanceType,
        iamInstanceProfile: { arn: this.instanceProfile.arn },
        metadataOptions: {
          httpEndpoint: "enabled",
          // IMDSv2 only: a request forgery in the app cannot read the role's credentials.
          httpTokens: "required",
          // One hop for the host, one for Docker's bridge: the container reads the role too.
          httpPutResponseHopLimit: 2,
          instanceMetadataTags: "disabled",
        },
        blockDeviceMappings: [
          {
            deviceName: "/dev/xvda",
            ebs: {
              volumeSize: s.diskGb,
              volumeType: "gp3",
              encrypted: "true",
              deleteOnTermination: "true",
            },
          },
        ],
        networkInterfaces: [
          {
            deviceIndex: 0,
            associatePublicIpAddress: "false",
            deleteOnTermination: "true",
            securityGroups: [network.computeSecurityGroupId, this.instanceSecurityGroup.id],
          },
        ],
        userData: this.userData.apply((doc) => Buffer.from(doc, "utf8").toString("base64")),
        monitoring: { enabled: true },
        updateDefaultVersion: true,
        tagSpecifications: ["instance", "volume", "network-interface"].map((resourceType) => ({
          resourceType,
          tags,
        })),
      },
      { parent: this },
    );
  }

  private createAutoScalingGroup(network: AwsNetwork): aws.autoscaling.Group {
    const s = this.settings;
    return new aws.autoscaling.Group(
      `${this.name}-asg`,
      {
        vpcZoneIdentifiers: network.privateSubnetIds,
        minSize: s.scaling.minInstances,
        maxSize: s.scaling.maxInstances,
        desiredCapacity: s.scaling.minInstances,
        // A version number, not `$Latest`: changing it is what starts an instance refresh.
        launchTemplate: {
          id: this.launchTemplate.id,
          version: this.launchTemplate.latestVersion.apply(String),
        },
        // Replace instances the ALB finds unhealthy, not only those EC2 finds stopped.
        healthCheckType: "ELB",
        healthCheckGracePeriod: s.healthCheckGracePeriodSeconds,
        defaultInstanceWarmup: 180,
        targetGroupArns: [this.targetGroup.arn],
        instanceRefresh: {
          strategy: "Rolling",
          preferences: {
            minHealthyPercentage: 90,
            // Launch before terminating (AWS allows at most 100 points between min and max).
            maxHealthyPercentage: 190,
            skipMatching: true,
            autoRollback: true,
          },
        },
        enabledMetrics: [
          "GroupMinSize",
          "GroupMaxSize",
          "GroupDesiredCapacity",
          "GroupInServiceInstances",
          "GroupPendingInstances",
          "GroupTerminatingInstances",
          "GroupTotalInstances",
        ],
        metricsGranularity: "1Minute",
      },
      // The scaling policy owns the desired capacity after creation: a deploy must not undo a
      // scale-out.
      {
        parent: this,
        ignoreChanges: ["desiredCapacity"],
        dependsOn: [...this.rolePolicies, this.ssmPolicy, ...this.listeners],
      },
    );
  }

  private createScalingPolicy(): aws.autoscaling.Policy {
    const metric = this.settings.scalingMetric;
    return new aws.autoscaling.Policy(
      `${this.name}-scaling`,
      {
        autoscalingGroupName: this.autoScalingGroup.name,
        policyType: "TargetTrackingScaling",
        estimatedInstanceWarmup: 180,
        targetTrackingConfiguration:
          metric.kind === "cpu"
            ? {
                predefinedMetricSpecification: { predefinedMetricType: "ASGAverageCPUUtilization" },
                targetValue: metric.targetPercent,
              }
            : {
                predefinedMetricSpecification: {
                  predefinedMetricType: "ALBRequestCountPerTarget",
                  resourceLabel: pulumi.interpolate`${this.loadBalancer.arnSuffix}/${this.targetGroup.arnSuffix}`,
                },
                targetValue: metric.perTarget,
              },
      },
      { parent: this },
    );
  }

  /**
   * 5xx ratio, target p99 latency and rejected connections on the ALB (`ServiceAlarms`), plus
   * unhealthy and missing healthy instances, to the data plane's alarm topic. None without a topic.
   */
  private createAlarms(args: AwsVmGroupTargetArgs): {
    service?: ServiceAlarms;
    health: aws.cloudwatch.MetricAlarm[];
  } {
    const topic = args.dataPlane.monitoring.alarmTopicArn;
    if (!topic) {
      pulumi.log.info(
        `AwsVmGroupTarget "${this.name}": no alarms (the data plane has no alarm topic).`,
        this,
      );
      return { health: [] };
    }
    const specs = targetHealthAlarmSpecs(this.loadBalancer.arnSuffix, this.targetGroup.arnSuffix);
    failOnProblems(specs.flatMap(checkAlarmSpec), `AwsVmGroupTarget "${this.name}"`, this);
    const service = new ServiceAlarms(
      `${this.name}-alarms`,
      {
        source: {
          kind: "alb",
          loadBalancerArnSuffix: this.loadBalancer.arnSuffix,
          targetGroupArnSuffix: this.targetGroup.arnSuffix,
        },
        alarmTopicArn: topic,
        thresholds: args.alarmThresholds,
      },
      { parent: this },
    );
    return { service, health: createAlarms(this.name, specs, topic, this) };
  }
}
