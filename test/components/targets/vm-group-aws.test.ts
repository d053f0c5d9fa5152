import * as aws from "@pulumi/aws";
import { parse } from "yaml";

import {
  ALB_TLS_POLICY,
  AwsVmGroupTarget,
  al2023AmiParameter,
  architectureOf,
  resolveAwsVmGroupSettings,
  targetHealthAlarmSpecs,
  vmRuntimePolicyDocument,
  type AwsVmGroupTargetArgs,
} from "../../../components/targets/vm-group-aws";
import {
  FAKE_AWS,
  FAKE_IMAGE_DIGEST,
  fakeAwsDataPlane,
  fakeGcpDataPlane,
  fakeImageArtifact,
  fakeLambdaZipArtifact,
} from "../../support/fake-data-plane";
import {
  invocationsOf,
  outputOf,
  setupPulumiMocks,
  type RecordedResource,
} from "../../support/pulumi";
import { MOCK_AMIS as AMI } from "../../support/pulumi-target-outputs";
import {
  expectOwnedAndNamed,
  expectValidCloudConfig,
  extraSecret,
  renderAll,
  targetArgs,
  testRejections,
  validatorTest,
  type RenderArgs as TargetRenderArgs,
  type Rendered as TargetRendered,
} from "./helpers";

setupPulumiMocks({ stack: "dev" });

const ECR_IMAGE = `${FAKE_AWS.account}.dkr.ecr.${FAKE_AWS.region}.amazonaws.com/agent@${FAKE_IMAGE_DIGEST}`;
const DOMAIN = "agent.example.com";
const CERT = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555";
const EXTRA_SECRET =
  "arn:aws:secretsmanager:us-east-1:123456789012:secret:agent/otel-headers-StUvWx";
const KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-0000-1111-2222-333344445555";

type Rendered = TargetRendered<AwsVmGroupTarget>;
type RenderArgs = TargetRenderArgs<AwsVmGroupTargetArgs>;

const args = (overrides: RenderArgs = {}) =>
  targetArgs<AwsVmGroupTargetArgs>("aws", { artifact: fakeImageArtifact(ECR_IMAGE) }, overrides);

const render = (name: string, overrides: RenderArgs = {}) =>
  new AwsVmGroupTarget(name, args(overrides));

let dev: Rendered;
let prod: Rendered;
let custom: Rendered;
let quiet: Rendered;

beforeAll(async () => {
  ({ dev, prod, custom, quiet } = await renderAll({
    dev: render("agent-dev"),
    prod: render("agent-prod", {
      env: "prod",
      domain: DOMAIN,
      certificateArn: CERT,
      accessLogs: { bucket: "agent-alb-logs", prefix: "prod" },
    }),
    custom: render("agent-x86", {
      instanceType: "m7i.large",
      minInstances: 2,
      maxInstances: 4,
      requestsPerTarget: 120,
      diskGb: 40,
      allowedCidrs: ["203.0.113.0/24", "198.51.100.0/24"],
      secretKmsKeyArns: [KMS_KEY],
      tags: { team: "agents" },
      dp: fakeAwsDataPlane({
        extraSecrets: [
          extraSecret("aws-secretsmanager", EXTRA_SECRET, "agent/otel-headers", "AWSCURRENT"),
        ],
      }),
    }),
    quiet: render("agent-quiet", { dp: fakeAwsDataPlane({ withoutAlerting: true }) }),
  }));
});

type Inputs = Record<string, unknown>;
const lt = (r: Rendered) =>
  r.q.findOne(aws.ec2.LaunchTemplate).inputs as unknown as Inputs & {
    metadataOptions: Inputs;
    blockDeviceMappings: Array<{ deviceName: string; ebs: Inputs }>;
    networkInterfaces: Array<Inputs & { securityGroups: string[] }>;
    tagSpecifications: Array<{ resourceType: string; tags: Record<string, string> }>;
    userData: string;
  };
const asg = (r: Rendered) => r.q.findOne(aws.autoscaling.Group);
const sg = (r: Rendered, suffix: string) => r.q.findOne(aws.ec2.SecurityGroup, suffix);
const policyOf = (r: Rendered, suffix: string) =>
  JSON.parse(r.q.findOne(aws.iam.RolePolicy, suffix).inputs.policy as string);
const userDataOf = (r: Rendered) => Buffer.from(lt(r).userData, "base64").toString("utf8");
const listener = (r: Rendered, suffix: string) => {
  const found = r.q.findByType(aws.lb.Listener).filter((l) => l.name.endsWith(suffix));
  if (found.length !== 1)
    throw new Error(
      `expected one listener ending in ${suffix}, found ${found.map((l) => l.name).join(", ")}`,
    );
  return found[0]!.inputs as unknown as Inputs & { defaultActions: Inputs[] };
};
const ingressOf = (r: Rendered, group: RecordedResource) =>
  r.q
    .findByType(aws.vpc.SecurityGroupIngressRule)
    .filter((x) => x.inputs.securityGroupId === group.id);
const egressOf = (r: Rendered, group: RecordedResource) =>
  r.q
    .findByType(aws.vpc.SecurityGroupEgressRule)
    .filter((x) => x.inputs.securityGroupId === group.id);

describe("resources", () => {
  const common = {
    "agent:aws:ServiceAlarms": 1,
    "aws:autoscaling/group:Group": 1,
    "aws:autoscaling/policy:Policy": 1,
    "aws:cloudwatch/logGroup:LogGroup": 1,
    "aws:cloudwatch/metricAlarm:MetricAlarm": 5,
    "aws:ec2/launchTemplate:LaunchTemplate": 1,
    "aws:ec2/securityGroup:SecurityGroup": 2,
    "aws:iam/instanceProfile:InstanceProfile": 1,
    "aws:iam/role:Role": 1,
    "aws:iam/rolePolicy:RolePolicy": 2,
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": 1,
    "aws:lb/loadBalancer:LoadBalancer": 1,
    "aws:lb/targetGroup:TargetGroup": 1,
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": 1,
  };

  test("dev: HTTP listener only, 80 open on the ALB", () => {
    expect(dev.q.countsByType()).toEqual({
      ...common,
      "aws:lb/listener:Listener": 1,
      "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": 2,
    });
    expect(dev.q.count()).toBe(23);
  });

  test("prod (domain): HTTPS and redirect listeners, 80 and 443 open on the ALB", () => {
    expect(prod.q.countsByType()).toEqual({
      ...common,
      "aws:lb/listener:Listener": 2,
      "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": 3,
    });
    expect(prod.q.count()).toBe(25);
  });

  test("without an alarm topic: no alarms", () => {
    expect(quiet.q.count(aws.cloudwatch.MetricAlarm)).toBe(0);
    expect(quiet.q.count("agent:aws:ServiceAlarms")).toBe(0);
  });

  test("every resource is beneath the component and named after it", async () => {
    for (const r of [dev, prod, custom, quiet])
      await expectOwnedAndNamed(r, "agent:targets:AwsVmGroup");
  });

  test("outputs", async () => {
    const alb = dev.q.findOne(aws.lb.LoadBalancer).state;
    expect(dev.target.target).toBe("vmgroup");
    expect(await outputOf(dev.target.url)).toBe(`http://${String(alb.dnsName)}`);
    expect(await outputOf(dev.target.albDnsName)).toBe(alb.dnsName);
    expect(await outputOf(prod.target.url)).toBe(`https://${DOMAIN}`);
    expect(await outputOf(dev.target.asgName)).toBe(asg(dev).state.name);
    expect(await outputOf(dev.target.logGroupName)).toBe(
      dev.q.findOne(aws.cloudwatch.LogGroup).state.name,
    );
  });
});

describe("launch template", () => {
  test("IMDSv2 required, hop limit 2 (the container reads the role)", () => {
    for (const r of [dev, prod]) {
      expect(lt(r).metadataOptions).toEqual({
        httpEndpoint: "enabled",
        httpTokens: "required",
        httpPutResponseHopLimit: 2,
        instanceMetadataTags: "disabled",
      });
    }
  });

  test("encrypted gp3 root volume", () => {
    expect(lt(dev).blockDeviceMappings).toEqual([
      {
        deviceName: "/dev/xvda",
        ebs: { volumeSize: 20, volumeType: "gp3", encrypted: "true", deleteOnTermination: "true" },
      },
    ]);
    expect(lt(custom).blockDeviceMappings[0]!.ebs.volumeSize).toBe(40);
  });

  test("no public IP; the data plane's compute group plus the instance group", () => {
    const nics = lt(dev).networkInterfaces;
    expect(nics).toHaveLength(1);
    expect(nics[0]!.associatePublicIpAddress).toBe("false");
    expect(nics[0]!.securityGroups).toEqual([
      FAKE_AWS.computeSecurityGroupId,
      sg(dev, "instance-sg").id,
    ]);
  });

  test("latest Amazon Linux 2023 for the instance type's architecture", () => {
    expect(lt(dev).imageId).toBe(AMI.arm64);
    expect(lt(dev).instanceType).toBe("t4g.small");
    expect(lt(custom).imageId).toBe(AMI.x86_64);
    expect(lt(custom).instanceType).toBe("m7i.large");
    expect(invocationsOf("aws:ssm/getParameter:getParameter").map((i) => i.inputs.name)).toEqual(
      expect.arrayContaining([al2023AmiParameter("arm64"), al2023AmiParameter("x86_64")]),
    );
  });

  test("instance profile of the component's role; detailed monitoring; tags on what the ASG launches", () => {
    const inputs = lt(custom);
    expect(inputs.iamInstanceProfile).toEqual({
      arn: custom.q.findOne(aws.iam.InstanceProfile).state.arn,
    });
    expect(inputs.monitoring).toEqual({ enabled: true });
    expect(inputs.tagSpecifications.map((t) => t.resourceType)).toEqual([
      "instance",
      "volume",
      "network-interface",
    ]);
    for (const t of inputs.tagSpecifications) {
      expect(t.tags).toEqual({
        team: "agents",
        Name: "agent-x86",
        target: "vmgroup",
        environment: "dev",
      });
    }
  });
});

describe("user data", () => {
  validatorTest("decodes to a document the real validator accepts (dev and prod)", () => {
    for (const r of [dev, prod]) expectValidCloudConfig(userDataOf(r));
  });

  test("runs the image by digest, logs to the component's group, ECR login", () => {
    const doc = userDataOf(dev);
    const script = (
      parse(doc) as { write_files: Array<{ path: string; content: string }> }
    ).write_files.find((f) => f.path === "/etc/agent/start.sh")!.content;
    expect(script).toContain(`docker pull ${ECR_IMAGE}`);
    expect(script).toContain(
      `--log-opt awslogs-group=${String(dev.q.findOne(aws.cloudwatch.LogGroup).state.name)}`,
    );
    expect(script).toContain("--log-opt awslogs-region=us-east-1");
    expect(script).toContain(
      `--password-stdin ${FAKE_AWS.account}.dkr.ecr.${FAKE_AWS.region}.amazonaws.com`,
    );
    expect(script).toContain("--read-only");
    expect(script).toContain("--publish 8080:8080");
  });

  test("holds secret references, never secret values", async () => {
    const doc = userDataOf(dev);
    const env = (
      parse(doc) as { write_files: Array<{ path: string; content: string; permissions: string }> }
    ).write_files.find((f) => f.path === "/etc/agent/agent.env")!;
    expect(env.permissions).toBe("0600");
    expect(env.content).toContain(
      `ANTHROPIC_API_KEY_SECRET=aws-sm://${FAKE_AWS.secretArns.anthropic}`,
    );
    expect(env.content).toContain(
      `DATABASE_PASSWORD_SECRET=aws-sm://${FAKE_AWS.secretArns.postgres}`,
    );
    expect(env.content).toContain(`REDIS_PASSWORD_SECRET=aws-sm://${FAKE_AWS.secretArns.redis}`);
    expect(env.content).toContain(
      `DATABASE_URL=postgres://agent@${FAKE_AWS.postgresHost}:5432/agent?sslmode=require`,
    );
    expect(env.content).toContain("AWS_REGION=us-east-1");
    expect(doc).not.toMatch(/^\s*(ANTHROPIC_API_KEY|DATABASE_PASSWORD|REDIS_PASSWORD)=/m);
    expect(doc).not.toMatch(/:\/\/[^/@\s]*:[^/@\s]*@/);
    // Nor is the user data (or anything on the template) a Pulumi secret: it holds none.
    expect(dev.q.findOne(aws.ec2.LaunchTemplate).secretInputs.size).toBe(0);
    expect(await outputOf(dev.target.userData)).toBe(doc);
  });
});

describe("security groups", () => {
  test("instances admit 8080 from the ALB's group only, and nothing else", () => {
    for (const r of [dev, prod]) {
      const instance = sg(r, "instance-sg");
      const rules = ingressOf(r, instance);
      expect(rules).toHaveLength(1);
      expect(rules[0]!.inputs).toMatchObject({
        referencedSecurityGroupId: sg(r, "alb-sg").id,
        ipProtocol: "tcp",
        fromPort: 8080,
        toPort: 8080,
      });
      expect(rules[0]!.inputs.cidrIpv4).toBeUndefined();
      expect(instance.inputs.ingress).toBeUndefined();
      expect(instance.inputs.vpcId).toBe(FAKE_AWS.vpcId);
    }
  });

  test("the ALB admits 80 (dev) or 80 and 443 (HTTPS) from the allowed CIDRs, and reaches only the instances on 8080", () => {
    const ports = (r: Rendered) =>
      ingressOf(r, sg(r, "alb-sg")).map((x) => [x.inputs.fromPort, x.inputs.cidrIpv4]);
    expect(ports(dev)).toEqual([[80, "0.0.0.0/0"]]);
    expect(ports(prod)).toEqual([
      [80, "0.0.0.0/0"],
      [443, "0.0.0.0/0"],
    ]);
    expect(ports(custom)).toEqual([
      [80, "203.0.113.0/24"],
      [80, "198.51.100.0/24"],
    ]);
    for (const r of [dev, prod]) {
      const egress = egressOf(r, sg(r, "alb-sg"));
      expect(egress).toHaveLength(1);
      expect(egress[0]!.inputs).toMatchObject({
        referencedSecurityGroupId: sg(r, "instance-sg").id,
        fromPort: 8080,
        toPort: 8080,
      });
    }
  });
});

describe("auto scaling group", () => {
  test("private subnets; min/max/desired from the environment; ELB health checks with a grace period", () => {
    expect(asg(dev).inputs).toMatchObject({
      vpcZoneIdentifiers: [...FAKE_AWS.privateSubnetIds],
      minSize: 1,
      maxSize: 3,
      desiredCapacity: 1,
      healthCheckType: "ELB",
      healthCheckGracePeriod: 300,
    });
    expect(asg(prod).inputs).toMatchObject({ minSize: 2, maxSize: 10, desiredCapacity: 2 });
    expect(asg(custom).inputs).toMatchObject({ minSize: 2, maxSize: 4 });
  });

  test("the scaling policy owns desiredCapacity after creation", () => {
    expect(asg(dev).options.ignoreChanges).toEqual(["desiredCapacity"]);
  });

  test("attached to the target group; a pinned launch template version so changes start a refresh", () => {
    const inputs = asg(dev).inputs as unknown as Inputs & {
      launchTemplate: Inputs;
      targetGroupArns: string[];
    };
    expect(inputs.targetGroupArns).toEqual([dev.q.findOne(aws.lb.TargetGroup).state.arn]);
    expect(inputs.launchTemplate).toEqual({
      id: dev.q.findOne(aws.ec2.LaunchTemplate).id,
      version: "1",
    });
    expect(inputs.launchTemplate.version).not.toBe("$Latest");
  });

  test("rolling instance refresh keeping 90 % healthy, launching before terminating", () => {
    expect(asg(prod).inputs.instanceRefresh).toEqual({
      strategy: "Rolling",
      preferences: {
        minHealthyPercentage: 90,
        maxHealthyPercentage: 190,
        skipMatching: true,
        autoRollback: true,
      },
    });
  });

  test("target tracking on CPU by default, on ALB requests per target when asked", () => {
    const cpu = dev.q.findOne(aws.autoscaling.Policy).inputs;
    expect(cpu).toMatchObject({
      autoscalingGroupName: asg(dev).state.name,
      policyType: "TargetTrackingScaling",
      targetTrackingConfiguration: {
        predefinedMetricSpecification: { predefinedMetricType: "ASGAverageCPUUtilization" },
        targetValue: 60,
      },
    });
    const req = custom.q.findOne(aws.autoscaling.Policy).inputs.targetTrackingConfiguration as {
      predefinedMetricSpecification: { predefinedMetricType: string; resourceLabel: string };
      targetValue: number;
    };
    expect(req.predefinedMetricSpecification.predefinedMetricType).toBe("ALBRequestCountPerTarget");
    expect(req.predefinedMetricSpecification.resourceLabel).toBe(
      `${String(custom.q.findOne(aws.lb.LoadBalancer).state.arnSuffix)}/${String(custom.q.findOne(aws.lb.TargetGroup).state.arnSuffix)}`,
    );
    expect(req.targetValue).toBe(120);
  });
});

describe("load balancer", () => {
  test("internet-facing in the public subnets, its own group, invalid headers dropped", () => {
    const alb = dev.q.findOne(aws.lb.LoadBalancer).inputs;
    expect(alb).toMatchObject({
      loadBalancerType: "application",
      internal: false,
      subnets: [...FAKE_AWS.publicSubnetIds],
      securityGroups: [sg(dev, "alb-sg").id],
      dropInvalidHeaderFields: true,
      enableDeletionProtection: false,
    });
    expect(alb.accessLogs).toBeUndefined();
    expect(prod.q.findOne(aws.lb.LoadBalancer).inputs).toMatchObject({
      enableDeletionProtection: true,
      accessLogs: { bucket: "agent-alb-logs", prefix: "prod", enabled: true },
    });
  });

  test("target group: health check on /ready, matcher 200, 30 s deregistration delay for draining streams", () => {
    expect(dev.q.findOne(aws.lb.TargetGroup).inputs).toMatchObject({
      port: 8080,
      protocol: "HTTP",
      targetType: "instance",
      vpcId: FAKE_AWS.vpcId,
      deregistrationDelay: 30,
      loadBalancingAlgorithmType: "least_outstanding_requests",
      healthCheck: {
        path: "/ready",
        matcher: "200",
        protocol: "HTTP",
        healthyThreshold: 2,
        unhealthyThreshold: 3,
        interval: 10,
        timeout: 5,
      },
    });
  });

  test("without a domain: HTTP 80 forwards (dev)", () => {
    const http = listener(dev, "-http");
    expect(http).toMatchObject({ port: 80, protocol: "HTTP" });
    expect(http.defaultActions).toEqual([
      { type: "forward", targetGroupArn: dev.q.findOne(aws.lb.TargetGroup).state.arn },
    ]);
  });

  test("with a domain: HTTPS 443 with the certificate and a modern TLS policy; HTTP 80 redirects with 301", () => {
    const https = listener(prod, "-https");
    expect(https).toMatchObject({
      port: 443,
      protocol: "HTTPS",
      sslPolicy: ALB_TLS_POLICY,
      certificateArn: CERT,
    });
    expect(ALB_TLS_POLICY).toBe("ELBSecurityPolicy-TLS13-1-2-2021-06");
    expect(https.defaultActions).toEqual([
      { type: "forward", targetGroupArn: prod.q.findOne(aws.lb.TargetGroup).state.arn },
    ]);
    const http = listener(prod, "-http");
    expect(http).toMatchObject({ port: 80, protocol: "HTTP" });
    expect(http.defaultActions).toEqual([
      { type: "redirect", redirect: { protocol: "HTTPS", port: "443", statusCode: "HTTP_301" } },
    ]);
  });
});

describe("IAM", () => {
  test("the role is for EC2; the profile carries it; SSM core for Session Manager", () => {
    const role = dev.q.findOne(aws.iam.Role);
    expect(JSON.parse(role.inputs.assumeRolePolicy as string).Statement).toEqual([
      { Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" },
    ]);
    expect(dev.q.findOne(aws.iam.InstanceProfile).inputs.role).toBe(role.state.name);
    expect(dev.q.findOne(aws.iam.RolePolicyAttachment).inputs).toEqual({
      role: role.state.name,
      policyArn: "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
    });
  });

  test("secrets: GetSecretValue on exactly the data plane's secret ARNs", () => {
    const doc = policyOf(dev, "-secrets");
    expect(doc.Statement).toEqual([
      {
        Sid: "ReadAppSecrets",
        Effect: "Allow",
        Action: ["secretsmanager:GetSecretValue"],
        Resource: Object.values(FAKE_AWS.secretArns).sort(),
      },
    ]);
    const extra = policyOf(custom, "-secrets");
    expect(extra.Statement[0].Resource).toEqual(
      [...Object.values(FAKE_AWS.secretArns), EXTRA_SECRET].sort(),
    );
    expect(extra.Statement[1]).toMatchObject({ Action: ["kms:Decrypt"], Resource: [KMS_KEY] });
    for (const s of [...doc.Statement, ...extra.Statement])
      for (const res of s.Resource) expect(res).not.toContain("*");
  });

  test("runtime: own log group's streams, pull from the image's ECR repository only", () => {
    const logArn = String(dev.q.findOne(aws.cloudwatch.LogGroup).state.arn);
    expect(policyOf(dev, "-runtime")).toEqual(vmRuntimePolicyDocument(logArn, ECR_IMAGE));
    expect(vmRuntimePolicyDocument(logArn, ECR_IMAGE).Statement).toEqual([
      {
        Sid: "WriteOwnLogs",
        Effect: "Allow",
        Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
        Resource: [`${logArn}:*`],
      },
      { Sid: "EcrLogin", Effect: "Allow", Action: ["ecr:GetAuthorizationToken"], Resource: ["*"] },
      {
        Sid: "PullAppImage",
        Effect: "Allow",
        Action: [
          "ecr:BatchGetImage",
          "ecr:GetDownloadUrlForLayer",
          "ecr:BatchCheckLayerAvailability",
        ],
        Resource: ["arn:aws:ecr:us-east-1:123456789012:repository/agent"],
      },
    ]);
    // A public image needs no ECR access at all.
    expect(
      vmRuntimePolicyDocument(logArn, `ghcr.io/x/agent@${FAKE_IMAGE_DIGEST}`).Statement,
    ).toHaveLength(1);
  });

  test("log group: retention from the profile, kept on destroy in prod", () => {
    expect(dev.q.findOne(aws.cloudwatch.LogGroup).inputs.retentionInDays).toBe(7);
    expect(prod.q.findOne(aws.cloudwatch.LogGroup).inputs.retentionInDays).toBe(90);
    expect(dev.q.findOne(aws.cloudwatch.LogGroup).options.retainOnDelete).toBe(false);
    expect(prod.q.findOne(aws.cloudwatch.LogGroup).options.retainOnDelete).toBe(true);
  });
});

describe("alarms", () => {
  test("5xx ratio, p99 latency, rejected connections, unhealthy and no healthy hosts, to the alarm topic", () => {
    const alarms = dev.q.findByType(aws.cloudwatch.MetricAlarm);
    expect(alarms.map((a) => a.name).sort()).toEqual(
      [
        "agent-dev-alarms-error-rate",
        "agent-dev-alarms-p99-latency",
        "agent-dev-alarms-throttles",
        "agent-dev-no-healthy-hosts",
        "agent-dev-unhealthy-hosts",
      ].sort(),
    );
    for (const a of alarms) {
      expect(a.inputs.alarmActions).toEqual([FAKE_AWS.alarmTopicArn]);
      expect(a.inputs.okActions).toEqual([FAKE_AWS.alarmTopicArn]);
    }
    const tgSuffix = dev.q.findOne(aws.lb.TargetGroup).state.arnSuffix;
    const lbSuffix = dev.q.findOne(aws.lb.LoadBalancer).state.arnSuffix;
    const unhealthy = dev.q.findOne(aws.cloudwatch.MetricAlarm, "unhealthy-hosts").inputs;
    expect(unhealthy).toMatchObject({
      metricName: "UnHealthyHostCount",
      threshold: 0,
      comparisonOperator: "GreaterThanThreshold",
      dimensions: { LoadBalancer: lbSuffix, TargetGroup: tgSuffix },
    });
    const latency = dev.q.findOne(aws.cloudwatch.MetricAlarm, "p99-latency").inputs;
    expect(latency).toMatchObject({
      metricName: "TargetResponseTime",
      extendedStatistic: "p99",
      dimensions: { TargetGroup: tgSuffix },
    });
    const errors = dev.q.findOne(aws.cloudwatch.MetricAlarm, "error-rate").inputs as unknown as {
      metricQueries: Array<{ metric?: { metricName: string } }>;
    };
    expect(errors.metricQueries.map((m) => m.metric?.metricName).filter(Boolean)).toEqual([
      "HTTPCode_Target_5XX_Count",
      "HTTPCode_ELB_5XX_Count",
      "RequestCount",
    ]);
  });

  test("health alarm specs are well-formed", () => {
    expect(targetHealthAlarmSpecs("app/x/1", "targetgroup/y/2").map((s) => s.key)).toEqual([
      "unhealthy-hosts",
      "no-healthy-hosts",
    ]);
  });
});

describe("bad args", () => {
  test("the wrong cloud's data plane or the wrong kind of artifact is a compile error", () => {
    // Never called: `npm run typecheck` proves each line is refused (an unused expect-error
    // directive fails it), so no run-time check is needed.
    const refused = () => [
      // @ts-expect-error: an AWS VM group takes the AWS data plane's contract
      new AwsVmGroupTarget("gcp", { ...args(), dataPlane: fakeGcpDataPlane() }),
      // @ts-expect-error: a VM group runs an image, not a Lambda zip
      new AwsVmGroupTarget("zip", { ...args(), artifact: fakeLambdaZipArtifact() }),
    ];
    expect(refused).toBeInstanceOf(Function);
  });
  const cases: Array<[string, () => RenderArgs, RegExp]> = [
    [
      "min above max",
      () => ({ minInstances: 5, maxInstances: 2 }),
      /vm.minInstances \(5\) is greater than vm.maxInstances \(2\)/,
    ],
    [
      "a domain without a certificate",
      () => ({ domain: DOMAIN }),
      /domain "agent.example.com" needs certificateArn/,
    ],
    [
      "a certificate without a domain",
      () => ({ certificateArn: CERT }),
      /certificateArn is set without domain/,
    ],
    ["no NAT", () => ({ dp: fakeAwsDataPlane({ hasNat: false }) }), /no NAT route/],
    ["a bad instance type", () => ({ instanceType: "huge" }), /instanceType "huge"/],
    ["a bad CIDR", () => ({ allowedCidrs: ["everyone"] }), /allowedCidrs entry "everyone"/],
    [
      "a bad alarm threshold",
      () => ({ alarmThresholds: { errorRatePercent: 150 } }),
      /alarmThresholds.errorRatePercent is 150/,
    ],
  ];

  testRejections(cases, (o) => render("bad", o), /^AwsVmGroupTarget "bad": /);

  test("a name too long for the ALB", () => {
    expect(() => render("agent-production-vm-group")).toThrow(
      /load balancer name "agent-production-vm-group-alb" is 29 characters/,
    );
  });

  test("all problems are reported at once", () => {
    const { problems, settings } = resolveAwsVmGroupSettings(
      "bad",
      args({
        dp: fakeAwsDataPlane({ hasNat: false }),
        minInstances: 5,
        maxInstances: 2,
        domain: DOMAIN,
      }),
    );
    expect(settings).toBeUndefined();
    expect(problems.length).toBeGreaterThanOrEqual(3);
  });
});

describe("pure helpers", () => {
  test("architecture follows the instance family", () => {
    expect(architectureOf("t4g.small")).toBe("arm64");
    expect(architectureOf("c7gn.large")).toBe("arm64");
    expect(architectureOf("m7i.large")).toBe("x86_64");
    expect(architectureOf("t3.micro")).toBe("x86_64");
  });

  test("settings per environment", () => {
    const d = resolveAwsVmGroupSettings("agent", args()).settings!;
    const p = resolveAwsVmGroupSettings(
      "agent",
      args({ env: "prod", domain: DOMAIN, certificateArn: CERT }),
    ).settings!;
    expect(d).toMatchObject({
      scaling: { minInstances: 1, maxInstances: 3, targetCpuPercent: 60 },
      protect: false,
      scalingMetric: { kind: "cpu", targetPercent: 60 },
    });
    expect(p).toMatchObject({
      scaling: { minInstances: 2, maxInstances: 10 },
      protect: true,
      domain: DOMAIN,
      logRetentionDays: 90,
    });
  });
});
