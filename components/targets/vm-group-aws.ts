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
import { checkAlarmSpec, createAlarms } from "../aws/alarms";

import { ServiceAlarms } from "../aws/service-alarms";
import { createGateAlarms, instanceRefreshPreferences } from "../release/rollout-aws";
import { RolloutDriver } from "../release/rollout-driver";
import { defaultGates, type RolloutStep } from "../release/rollout-plan";
import type { ImageArtifact, TargetOutputs } from "../contracts";
import { environmentProfile } from "../environment";
import { CONTAINER_PORT } from "./cloud-init";
import { serviceUrl } from "./service";
import { createLogGroup, createServiceRole, grantRuntimeAndSecrets } from "../aws/service-identity";
import { failOnProblems, settingsOrFail } from "./problems";
import { serviceCloudConfig } from "./vm-service";

import {
  ALB_TLS_POLICY,
  AwsNetwork,
  AwsVmGroupSettings,
  AwsVmGroupTargetArgs,
  DEREGISTRATION_DELAY_SECONDS,
  HEALTH_CHECK_PATH,
  al2023AmiParameter,
  resolveAwsVmGroupSettings,
  targetHealthAlarmSpecs,
  vmRuntimePolicyDocument,
} from "./vm-group-aws-settings";
export * from "./vm-group-aws-settings";

/**
 * The agent service on an Auto Scaling Group behind an ALB.
 *
 * Instances have no public IP and no SSH: they sit in private subnets (outbound through the data
 * plane's NAT), require IMDSv2 (hop limit 2, so the container reaches the instance role) and are
 * reached for debugging through SSM Session Manager. The ALB admits 80/443 from `allowedCidrs`;
 * instances admit the service port from the ALB's security group only, and carry the data plane's compute
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
  /** With rollout steps: the one-minute alarms the instance refresh watches. */
  readonly gateAlarms: aws.cloudwatch.MetricAlarm[];
  /** With rollout steps: waits for each instance refresh, failing `pulumi up` on a rollback. */
  readonly rolloutDriver?: RolloutDriver;
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
    const steps = args.rollout?.steps ?? [];
    this.gateAlarms = steps.length ? this.createGateAlarms(args) : [];
    this.autoScalingGroup = this.createAutoScalingGroup(network, steps, this.gateAlarms);
    this.rolloutDriver = steps.length ? this.createRolloutDriver(args) : undefined;
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
        description: `Agent ALB (${this.name}): HTTP(S) from clients, ${CONTAINER_PORT} to its instances`,
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

  private createAutoScalingGroup(
    network: AwsNetwork,
    steps: RolloutStep[],
    gateAlarms: aws.cloudwatch.MetricAlarm[],
  ): aws.autoscaling.Group {
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
            // Progressive delivery: pause at each step's percentage, watch the gates.
            ...(steps.length
              ? instanceRefreshPreferences(
                  steps,
                  gateAlarms.map((a) => a.name),
                )
              : {}),
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
        dependsOn: [...this.rolePolicies, this.ssmPolicy, ...this.listeners, ...gateAlarms],
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

  /** The gates: one-minute 5xx ratio and p99 on the ALB (the service alarms' thresholds). */
  private createGateAlarms(args: AwsVmGroupTargetArgs): aws.cloudwatch.MetricAlarm[] {
    const topic = args.dataPlane.monitoring.alarmTopicArn;
    if (!topic) {
      throw new pulumi.ResourceError(
        `AwsVmGroupTarget "${this.name}": rollout steps need the data plane's alarm topic (the gates notify it).`,
        this,
      );
    }
    const gates = args.rollout?.gates ?? defaultGates(args.alarmThresholds?.p99LatencyMs ?? 60_000);
    return createGateAlarms(
      `${this.name}-rollout`,
      {
        kind: "alb",
        loadBalancerArnSuffix: this.loadBalancer.arnSuffix,
        targetGroupArnSuffix: this.targetGroup.arnSuffix,
      },
      gates,
      topic,
      this,
    );
  }

  /**
   * Waits for the instance refresh a new launch template version starts (the provider starts it
   * and returns), so `pulumi up` fails when Auto Scaling rolled the release back.
   */
  private createRolloutDriver(args: AwsVmGroupTargetArgs): RolloutDriver {
    return new RolloutDriver(
      `${this.name}-rollout`,
      {
        plan: pulumi
          .all([aws.getRegionOutput({}, { parent: this }).name, this.autoScalingGroup.name])
          .apply(([region, autoScalingGroupName]) => ({
            kind: "aws-instance-refresh" as const,
            region,
            autoScalingGroupName,
          })),
        trigger: this.launchTemplate.latestVersion.apply(String),
        command: args.rollout?.driverCommand,
      },
      { parent: this, dependsOn: [this.autoScalingGroup] },
    );
  }
}
