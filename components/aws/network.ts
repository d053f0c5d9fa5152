/**
 * The VPC the data plane and compute share: public and private subnets over 2 or 3 AZs, NAT
 * per environment, and security groups that let only compute reach Redis and Postgres.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { NetworkAttachment } from "../contracts";
import { checkLogRetention } from "./checks";

export type NatMode = "none" | "single" | "per-az";

export interface NetworkArgs {
  /** AZs to span. Prod uses 3 so losing one AZ leaves a majority. */
  availabilityZoneCount: 2 | 3;
  /**
   * NAT gateways: `none` (private subnets cannot reach the internet, so not the LLM API either),
   * `single` (one shared gateway: an AZ outage cuts egress), `per-az` (one per AZ).
   */
  natGateways: NatMode;
  /**
   * VPC CIDR, /16 to /22. Private subnets get 1/8 of it each, public ones 1/64.
   * @default "10.0.0.0/16"
   */
  cidrBlock?: string;
  /**
   * AZ names to use instead of asking `getAvailabilityZones` (which skips opt-in zones).
   * @default the first `availabilityZoneCount` available zones of the region
   */
  availabilityZoneNames?: string[];
  /**
   * VPC flow logs of rejected traffic to CloudWatch Logs.
   * @default false
   */
  flowLogs?: boolean;
  /** @default 30 */
  flowLogRetentionDays?: number;
  /** @default 6379 */
  redisPort?: number;
  /** @default 5432 */
  postgresPort?: number;
}

export interface SubnetPlan {
  private: string[];
  public: string[];
}

export function parseCidr(cidr: string): { base: number; prefix: number } | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr);
  if (!m) return undefined;
  const octets = m.slice(1, 5).map(Number);
  const prefix = Number(m[5]);
  if (octets.some((o) => o > 255) || prefix > 32) return undefined;
  const base = octets.reduce((acc, o) => acc * 256 + o, 0);
  if (base % 2 ** (32 - prefix) !== 0) return undefined; // host bits set: ambiguous
  return { base, prefix };
}

function formatCidr(base: number, prefix: number): string {
  const octets = [24, 16, 8, 0].map((shift) => Math.floor(base / 2 ** shift) % 256);
  return `${octets.join(".")}/${prefix}`;
}

/**
 * Carves the VPC CIDR: private subnets are the first `azCount` eighths (room for EKS pod IPs
 * and Lambda ENIs), public subnets are 1/64 each, taken from the last eighth (they only hold
 * NAT gateways and load balancer nodes). The rest stays free for later tiers.
 */
export function planSubnets(vpcCidr: string, azCount: number): SubnetPlan {
  const parsed = parseCidr(vpcCidr);
  if (!parsed)
    throw new Error(`cidrBlock "${vpcCidr}" is not a network CIDR such as "10.0.0.0/16".`);
  const { base, prefix } = parsed;
  if (prefix < 16 || prefix > 22) {
    throw new Error(
      `cidrBlock "${vpcCidr}" must be /16 to /22 (AWS allows /16-/28 VPCs; subnets need /28 or larger).`,
    );
  }
  if (azCount < 1 || azCount > 7)
    throw new Error(`azCount ${azCount} must be 1-7 (one eighth is kept for public subnets).`);
  const privateSize = 2 ** (32 - (prefix + 3));
  const publicSize = 2 ** (32 - (prefix + 6));
  const publicBlock = base + 7 * privateSize;
  return {
    private: Array.from({ length: azCount }, (_, i) =>
      formatCidr(base + i * privateSize, prefix + 3),
    ),
    public: Array.from({ length: azCount }, (_, i) =>
      formatCidr(publicBlock + i * publicSize, prefix + 6),
    ),
  };
}

/** NAT gateways to create. */
export function natGatewayCount(mode: NatMode, azCount: number): number {
  return mode === "none" ? 0 : mode === "single" ? 1 : azCount;
}

/**
 * Which NAT gateway (index) each AZ's private route table uses, or undefined for none. With
 * per-AZ NAT each AZ keeps its egress inside the AZ (no cross-AZ data charge, no shared fate).
 */
export function natIndexForAz(mode: NatMode, azIndex: number): number | undefined {
  return mode === "none" ? undefined : mode === "single" ? 0 : azIndex;
}

/** The first `count` zones, or a message when the region has too few. */
export function pickAvailabilityZones(available: string[], count: number): string[] {
  if (available.length < count) {
    throw new Error(
      `The region offers ${available.length} availability zones (${available.join(", ")}) but ${count} are required: lower availabilityZones or change region.`,
    );
  }
  return available.slice(0, count);
}

/**
 * A VPC with NAT per environment. Costs: NAT gateways about $32/month each plus $0.045/GB;
 * flow logs $0.50/GB ingested; everything else is free. Dev (single NAT) about $33/month,
 * prod (3 NAT) about $97/month before traffic.
 */
export class Network extends pulumi.ComponentResource {
  readonly vpc: aws.ec2.Vpc;
  readonly publicSubnets: aws.ec2.Subnet[];
  readonly privateSubnets: aws.ec2.Subnet[];
  readonly natGateways: aws.ec2.NatGateway[];
  readonly computeSecurityGroup: aws.ec2.SecurityGroup;
  readonly redisSecurityGroup: aws.ec2.SecurityGroup;
  readonly postgresSecurityGroup: aws.ec2.SecurityGroup;
  readonly availabilityZones: pulumi.Output<string[]>;
  readonly hasNat: boolean;
  readonly flowLog?: aws.ec2.FlowLog;
  readonly privateSubnetIds: pulumi.Output<string[]>;
  readonly publicSubnetIds: pulumi.Output<string[]>;
  /** What compute needs, in the cloud-neutral contract's shape. */
  readonly attachment: NetworkAttachment<"aws">;

  private readonly name: string;

  constructor(name: string, args: NetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:aws:Network", name, {}, opts);
    this.name = name;
    const settings = this.validate(args);
    const plan = planSubnets(settings.cidrBlock, args.availabilityZoneCount);

    this.availabilityZones = this.resolveZones(args);
    this.vpc = this.createVpc(settings.cidrBlock);
    this.lockDownDefaultSecurityGroup();
    const igw = new aws.ec2.InternetGateway(
      `${name}-igw`,
      { vpcId: this.vpc.id },
      { parent: this },
    );
    this.publicSubnets = this.createSubnets("public", plan.public);
    this.privateSubnets = this.createSubnets("private", plan.private);
    this.createPublicRouting(igw);
    this.natGateways = this.createNatGateways(args.natGateways);
    const privateRouteTables = this.createPrivateRouting(args.natGateways);
    this.createS3Endpoint(privateRouteTables);
    this.hasNat = this.natGateways.length > 0;

    this.computeSecurityGroup = this.createSecurityGroup(
      "compute",
      "Agent compute: may reach the stores and HTTPS",
    );
    this.redisSecurityGroup = this.createSecurityGroup("redis", "Redis: admits only agent compute");
    this.postgresSecurityGroup = this.createSecurityGroup(
      "postgres",
      "Postgres: admits only agent compute",
    );
    this.admitComputeTo("redis", this.redisSecurityGroup, settings.redisPort);
    this.admitComputeTo("postgres", this.postgresSecurityGroup, settings.postgresPort);
    this.allowComputeEgress(settings.redisPort, settings.postgresPort);

    if (settings.flowLogs) this.flowLog = this.createFlowLogs(settings.flowLogRetentionDays);

    this.privateSubnetIds = pulumi.all(this.privateSubnets.map((s) => s.id));
    this.publicSubnetIds = pulumi.all(this.publicSubnets.map((s) => s.id));
    this.attachment = {
      cloud: "aws",
      vpcId: this.vpc.id,
      privateSubnetIds: this.privateSubnetIds,
      publicSubnetIds: this.publicSubnetIds,
      computeSecurityGroupId: this.computeSecurityGroup.id,
      availabilityZones: this.availabilityZones,
      hasNat: this.hasNat,
    };
    this.registerOutputs({
      vpcId: this.vpc.id,
      privateSubnetIds: this.privateSubnetIds,
      publicSubnetIds: this.publicSubnetIds,
      computeSecurityGroupId: this.computeSecurityGroup.id,
      redisSecurityGroupId: this.redisSecurityGroup.id,
      postgresSecurityGroupId: this.postgresSecurityGroup.id,
    });
  }

  private validate(args: NetworkArgs) {
    const settings = {
      cidrBlock: args.cidrBlock ?? "10.0.0.0/16",
      flowLogs: args.flowLogs ?? false,
      flowLogRetentionDays: args.flowLogRetentionDays ?? 30,
      redisPort: args.redisPort ?? 6379,
      postgresPort: args.postgresPort ?? 5432,
    };
    const fail = (msg: string): never => {
      throw new pulumi.ResourceError(msg, this);
    };
    if (args.availabilityZoneCount !== 2 && args.availabilityZoneCount !== 3) {
      fail(`availabilityZoneCount is ${String(args.availabilityZoneCount)}: use 2 or 3.`);
    }
    if (!["none", "single", "per-az"].includes(args.natGateways)) {
      fail(`natGateways is "${String(args.natGateways)}": use "none", "single" or "per-az".`);
    }
    try {
      planSubnets(settings.cidrBlock, args.availabilityZoneCount);
    } catch (e) {
      fail((e as Error).message);
    }
    if (
      args.availabilityZoneNames &&
      args.availabilityZoneNames.length !== args.availabilityZoneCount
    ) {
      fail(
        `availabilityZoneNames lists ${args.availabilityZoneNames.length} zones but availabilityZoneCount is ${args.availabilityZoneCount}: make them agree.`,
      );
    }
    const retention = checkLogRetention(settings.flowLogRetentionDays, "flowLogRetentionDays");
    if (settings.flowLogs && retention) fail(retention);
    for (const [field, port] of [
      ["redisPort", settings.redisPort],
      ["postgresPort", settings.postgresPort],
    ] as const) {
      if (!Number.isInteger(port) || port < 1024 || port > 65535)
        fail(`${field} is ${port}: use a port from 1024 to 65535.`);
    }
    return settings;
  }

  private resolveZones(args: NetworkArgs): pulumi.Output<string[]> {
    if (args.availabilityZoneNames) return pulumi.output(args.availabilityZoneNames);
    return aws
      .getAvailabilityZonesOutput(
        // Opt-in zones (Local/Wavelength) lack most managed services: never pick them.
        {
          state: "available",
          filters: [{ name: "opt-in-status", values: ["opt-in-not-required"] }],
        },
        { parent: this },
      )
      .names.apply((names) => pickAvailabilityZones(names, args.availabilityZoneCount));
  }

  private createVpc(cidrBlock: string): aws.ec2.Vpc {
    return new aws.ec2.Vpc(
      `${this.name}-vpc`,
      {
        cidrBlock,
        // Private DNS of interface endpoints and RDS/ElastiCache hostnames need both.
        enableDnsHostnames: true,
        enableDnsSupport: true,
        tags: { Name: `${this.name}-vpc` },
      },
      { parent: this },
    );
  }

  /** The default group allows all traffic between its members; strip it so nothing can rely on it. */
  private lockDownDefaultSecurityGroup(): void {
    new aws.ec2.DefaultSecurityGroup(
      `${this.name}-default-sg`,
      {
        vpcId: this.vpc.id,
        ingress: [],
        egress: [],
        tags: { Name: `${this.name}-default-locked` },
      },
      { parent: this },
    );
  }

  private createSubnets(tier: "public" | "private", cidrs: string[]): aws.ec2.Subnet[] {
    return cidrs.map(
      (cidrBlock, i) =>
        new aws.ec2.Subnet(
          `${this.name}-${tier}-${i}`,
          {
            vpcId: this.vpc.id,
            cidrBlock,
            availabilityZone: this.availabilityZones.apply((z) => z[i]!),
            // Public subnets hold NAT gateways and load balancers only; nothing gets a public IP by default.
            mapPublicIpOnLaunch: false,
            tags: { Name: `${this.name}-${tier}-${i}`, tier },
          },
          { parent: this },
        ),
    );
  }

  private createPublicRouting(igw: aws.ec2.InternetGateway): void {
    const table = new aws.ec2.RouteTable(
      `${this.name}-public-rt`,
      { vpcId: this.vpc.id, tags: { Name: `${this.name}-public` } },
      { parent: this },
    );
    new aws.ec2.Route(
      `${this.name}-public-default`,
      { routeTableId: table.id, destinationCidrBlock: "0.0.0.0/0", gatewayId: igw.id },
      { parent: this },
    );
    this.publicSubnets.forEach(
      (subnet, i) =>
        new aws.ec2.RouteTableAssociation(
          `${this.name}-public-${i}-rta`,
          { subnetId: subnet.id, routeTableId: table.id },
          { parent: this },
        ),
    );
  }

  private createNatGateways(mode: NatMode): aws.ec2.NatGateway[] {
    return Array.from({ length: natGatewayCount(mode, this.publicSubnets.length) }, (_, i) => {
      const eip = new aws.ec2.Eip(
        `${this.name}-nat-${i}-eip`,
        { domain: "vpc", tags: { Name: `${this.name}-nat-${i}` } },
        { parent: this },
      );
      return new aws.ec2.NatGateway(
        `${this.name}-nat-${i}`,
        {
          subnetId: this.publicSubnets[i]!.id,
          allocationId: eip.id,
          tags: { Name: `${this.name}-nat-${i}` },
        },
        { parent: this },
      );
    });
  }

  /** One table per AZ with per-AZ NAT; otherwise one shared table. Returns the tables. */
  private createPrivateRouting(mode: NatMode): aws.ec2.RouteTable[] {
    const perAz = mode === "per-az";
    const tables = Array.from(
      { length: perAz ? this.privateSubnets.length : 1 },
      (_, i) =>
        new aws.ec2.RouteTable(
          `${this.name}-private-rt-${i}`,
          { vpcId: this.vpc.id, tags: { Name: `${this.name}-private-${i}` } },
          { parent: this },
        ),
    );
    this.privateSubnets.forEach((subnet, i) => {
      const table = tables[perAz ? i : 0]!;
      new aws.ec2.RouteTableAssociation(
        `${this.name}-private-${i}-rta`,
        { subnetId: subnet.id, routeTableId: table.id },
        { parent: this },
      );
    });
    tables.forEach((table, i) => {
      const nat = natIndexForAz(mode, i);
      if (nat === undefined) return;
      new aws.ec2.Route(
        `${this.name}-private-${i}-default`,
        {
          routeTableId: table.id,
          destinationCidrBlock: "0.0.0.0/0",
          natGatewayId: this.natGateways[nat]!.id,
        },
        { parent: this },
      );
    });
    return tables;
  }

  /** Free gateway endpoint: ECR image layers and S3 bundles bypass NAT (no $0.045/GB). */
  private createS3Endpoint(tables: aws.ec2.RouteTable[]): void {
    const region = aws.getRegionOutput({}, { parent: this }).region;
    new aws.ec2.VpcEndpoint(
      `${this.name}-s3`,
      {
        vpcId: this.vpc.id,
        serviceName: pulumi.interpolate`com.amazonaws.${region}.s3`,
        vpcEndpointType: "Gateway",
        routeTableIds: tables.map((t) => t.id),
        tags: { Name: `${this.name}-s3` },
      },
      { parent: this },
    );
  }

  private createSecurityGroup(role: string, description: string): aws.ec2.SecurityGroup {
    // No inline rules: the provider then removes AWS's default allow-all egress, and rules are
    // separate resources that can be added without replacing the group.
    return new aws.ec2.SecurityGroup(
      `${this.name}-${role}-sg`,
      { vpcId: this.vpc.id, description, tags: { Name: `${this.name}-${role}` } },
      { parent: this },
    );
  }

  private admitComputeTo(role: string, group: aws.ec2.SecurityGroup, port: number): void {
    new aws.vpc.SecurityGroupIngressRule(
      `${this.name}-${role}-from-compute`,
      {
        securityGroupId: group.id,
        referencedSecurityGroupId: this.computeSecurityGroup.id,
        ipProtocol: "tcp",
        fromPort: port,
        toPort: port,
        description: `${role} from agent compute only`,
      },
      { parent: this },
    );
  }

  /**
   * Compute may open HTTPS anywhere (LLM API, AWS APIs through NAT) and the store ports to the
   * store groups only. DNS to the VPC resolver is not subject to security groups. Targets that
   * need more (EKS node traffic, ALB health checks) add rules to their own groups.
   */
  private allowComputeEgress(redisPort: number, postgresPort: number): void {
    const sg = this.computeSecurityGroup.id;
    new aws.vpc.SecurityGroupEgressRule(
      `${this.name}-compute-https`,
      {
        securityGroupId: sg,
        cidrIpv4: "0.0.0.0/0",
        ipProtocol: "tcp",
        fromPort: 443,
        toPort: 443,
        description: "HTTPS",
      },
      { parent: this },
    );
    for (const [role, group, port] of [
      ["redis", this.redisSecurityGroup, redisPort],
      ["postgres", this.postgresSecurityGroup, postgresPort],
    ] as const) {
      new aws.vpc.SecurityGroupEgressRule(
        `${this.name}-compute-to-${role}`,
        {
          securityGroupId: sg,
          referencedSecurityGroupId: group.id,
          ipProtocol: "tcp",
          fromPort: port,
          toPort: port,
          description: `to ${role}`,
        },
        { parent: this },
      );
    }
  }

  private createFlowLogs(retentionDays: number): aws.ec2.FlowLog {
    const logGroup = new aws.cloudwatch.LogGroup(
      `${this.name}-flow-logs`,
      { retentionInDays: retentionDays },
      { parent: this },
    );
    const account = aws.getCallerIdentityOutput({}, { parent: this }).accountId;
    const role = new aws.iam.Role(
      `${this.name}-flow-logs-role`,
      {
        assumeRolePolicy: pulumi.jsonStringify({
          Version: "2012-10-17",
          Statement: [
            {
              Effect: "Allow",
              Principal: { Service: "vpc-flow-logs.amazonaws.com" },
              Action: "sts:AssumeRole",
              // Confused-deputy guard: only flow logs of this account may use the role.
              Condition: { StringEquals: { "aws:SourceAccount": account } },
            },
          ],
        }),
      },
      { parent: this },
    );
    new aws.iam.RolePolicy(
      `${this.name}-flow-logs-write`,
      {
        role: role.id,
        policy: pulumi.jsonStringify({
          Version: "2012-10-17",
          Statement: [
            {
              Effect: "Allow",
              Action: ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
              Resource: pulumi.interpolate`${logGroup.arn}:*`,
            },
          ],
        }),
      },
      { parent: this },
    );
    return new aws.ec2.FlowLog(
      `${this.name}-flow-log`,
      {
        vpcId: this.vpc.id,
        // Rejected traffic is what forensics need; ALL would cost roughly 10x the ingestion.
        trafficType: "REJECT",
        logDestinationType: "cloud-watch-logs",
        logDestination: logGroup.arn,
        iamRoleArn: role.arn,
        maxAggregationInterval: 600,
      },
      { parent: this },
    );
  }
}
