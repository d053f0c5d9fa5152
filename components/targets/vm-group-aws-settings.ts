/**
 * The AWS VM group's arguments and everything resolved from them before a resource exists:
 * settings, checks, the instance role's runtime policy, the target-health alarms. Pure.
 */
import * as pulumi from "@pulumi/pulumi";
import { type AlarmSpec } from "../aws/alarms";
import { checkAutonamedIdentifier, checkLogRetention } from "../aws/checks";
import type { PolicyDocument } from "../aws/secrets";
import { type ServiceAlarmThresholds } from "../aws/service-alarms";
import type { DataPlaneOutputs, ImageArtifact, NetworkAttachment } from "../contracts";
import { environmentProfile } from "../environment";
import { ecrImage } from "./cloud-init";
import { type ServiceEnvArgs, hostNameProblem } from "./service";

import { problemsOf, secretsProblem, wholeNumberProblem, natProblem } from "./problems";
import { resolveVmScaling } from "./vm-service";
import type { VmScaling } from "./scaling";
import { SERVICE_CONTRACT } from "../../app/src/contract";
import type { RolloutGates, RolloutStep } from "../release/rollout-plan";

export type AwsNetwork = NetworkAttachment<"aws">;

export interface VmRollout {
  steps: RolloutStep[];
  /** @default defaultGates with the p99 alarm's threshold */
  gates?: RolloutGates;
  /** Runs the rollout driver (which waits for the refresh). @default the repository's */
  driverCommand?: string;
}

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
  /**
   * Progressive delivery: an instance refresh with checkpoints at the steps' percentages, the
   * gate alarms, and automatic rollback. Needs the data plane's alarm topic.
   * @default no steps: the refresh replaces every instance without pausing
   */
  rollout?: VmRollout;
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
export const HEALTH_CHECK_PATH = SERVICE_CONTRACT.probes.readiness;
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
