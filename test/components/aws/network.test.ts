import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import {
  Network,
  natGatewayCount,
  natIndexForAz,
  parseCidr,
  pickAvailabilityZones,
  planSubnets,
} from "../../../components/aws/network";
import {
  invocationsOf,
  outputOf,
  resources,
  type ResourceQuery,
  settle,
  setupPulumiMocks,
  within,
} from "../../support/pulumi";

setupPulumiMocks({ stack: "test" });

describe("pure functions", () => {
  test("planSubnets carves private eighths and public sixty-fourths from the last eighth", () => {
    expect(planSubnets("10.0.0.0/16", 3)).toEqual({
      private: ["10.0.0.0/19", "10.0.32.0/19", "10.0.64.0/19"],
      public: ["10.0.224.0/22", "10.0.228.0/22", "10.0.232.0/22"],
    });
    expect(planSubnets("172.16.16.0/20", 2)).toEqual({
      private: ["172.16.16.0/23", "172.16.18.0/23"],
      public: ["172.16.30.0/26", "172.16.30.64/26"],
    });
  });

  test("planSubnets never overlaps, for every allowed prefix", () => {
    for (let prefix = 16; prefix <= 22; prefix++) {
      const plan = planSubnets(`10.0.0.0/${prefix}`, 3);
      const ranges = [...plan.private, ...plan.public].map((c) => {
        const p = parseCidr(c)!;
        return [p.base, p.base + 2 ** (32 - p.prefix)] as const;
      });
      for (let i = 0; i < ranges.length; i++) {
        for (let j = i + 1; j < ranges.length; j++) {
          expect(ranges[i]![1] <= ranges[j]![0] || ranges[j]![1] <= ranges[i]![0]).toBe(true);
        }
      }
    }
  });

  test("planSubnets refuses what AWS would", () => {
    expect(() => planSubnets("10.0.0.0/8", 2)).toThrow(/must be \/16 to \/22/);
    expect(() => planSubnets("10.0.0.0/24", 2)).toThrow(/must be \/16 to \/22/);
    expect(() => planSubnets("10.0.0.1/16", 2)).toThrow(/not a network CIDR/);
    expect(() => planSubnets("10.0.0.0", 2)).toThrow(/not a network CIDR/);
  });

  test("NAT layout per mode", () => {
    expect([
      natGatewayCount("none", 3),
      natGatewayCount("single", 3),
      natGatewayCount("per-az", 3),
    ]).toEqual([0, 1, 3]);
    expect([0, 1, 2].map((i) => natIndexForAz("per-az", i))).toEqual([0, 1, 2]);
    expect([0, 1, 2].map((i) => natIndexForAz("single", i))).toEqual([0, 0, 0]);
    expect(natIndexForAz("none", 0)).toBeUndefined();
  });

  test("pickAvailabilityZones explains a region with too few zones", () => {
    expect(pickAvailabilityZones(["a", "b", "c"], 2)).toEqual(["a", "b"]);
    expect(() => pickAvailabilityZones(["a", "b"], 3)).toThrow(
      /offers 2 availability zones .* but 3 are required/,
    );
  });
});

let single: Network;
let perAz: Network;
let none: Network;
let singleQ: ResourceQuery;
let perAzQ: ResourceQuery;
let noneQ: ResourceQuery;

beforeAll(async () => {
  single = new Network("single", { availabilityZoneCount: 2, natGateways: "single" });
  perAz = new Network("perz", {
    availabilityZoneCount: 3,
    natGateways: "per-az",
    flowLogs: true,
    flowLogRetentionDays: 90,
  });
  none = new Network("none", {
    availabilityZoneCount: 2,
    natGateways: "none",
    availabilityZoneNames: ["us-east-1d", "us-east-1f"],
    cidrBlock: "10.1.0.0/20",
  });
  await settle();
  [singleQ, perAzQ, noneQ] = await Promise.all([within(single), within(perAz), within(none)]);
});

describe("subnets and zones", () => {
  test("one public and one private subnet per AZ, in distinct AZs from the region's list", async () => {
    const subnets = perAzQ.findByType(aws.ec2.Subnet);
    expect(subnets).toHaveLength(6);
    const privateAzs = subnets
      .filter((s) => s.name.includes("private"))
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((s) => s.inputs.availabilityZone);
    expect(privateAzs).toEqual(["us-east-1a", "us-east-1b", "us-east-1c"]);
    expect(await outputOf(perAz.availabilityZones)).toEqual(privateAzs);
    // Opt-in zones (Local Zones) lack RDS/ElastiCache: the query must exclude them.
    expect(invocationsOf("aws:index/getAvailabilityZones:getAvailabilityZones")[0]?.inputs).toEqual(
      {
        state: "available",
        filters: [{ name: "opt-in-status", values: ["opt-in-not-required"] }],
      },
    );
  });

  test("explicit zone names and CIDR are honoured", async () => {
    const byName = noneQ.findByType(aws.ec2.Subnet).sort((a, b) => a.name.localeCompare(b.name));
    expect(byName.map((s) => [s.inputs.availabilityZone, s.inputs.cidrBlock])).toEqual([
      ["us-east-1d", "10.1.0.0/23"],
      ["us-east-1f", "10.1.2.0/23"],
      ["us-east-1d", "10.1.14.0/26"],
      ["us-east-1f", "10.1.14.64/26"],
    ]);
    expect(noneQ.findOne(aws.ec2.Vpc).inputs).toMatchObject({
      cidrBlock: "10.1.0.0/20",
      enableDnsHostnames: true,
    });
  });

  test("no subnet hands out public IPs", () => {
    for (const s of resources.findByType(aws.ec2.Subnet))
      expect(s.inputs.mapPublicIpOnLaunch).toBe(false);
  });
});

describe("routing", () => {
  test("public subnets route to the internet gateway", async () => {
    const table = singleQ.findOne(aws.ec2.RouteTable, "public-rt");
    const route = singleQ.findOne(aws.ec2.Route, "public-default");
    expect(route.inputs.routeTableId).toBe(table.id);
    expect(route.inputs.gatewayId).toBe(singleQ.findOne(aws.ec2.InternetGateway).id);
    const assoc = singleQ
      .findByType(aws.ec2.RouteTableAssociation)
      .filter((a) => a.inputs.routeTableId === table.id);
    const publicIds = await outputOf(single.publicSubnetIds);
    expect(assoc.map((a) => a.inputs.subnetId).sort()).toEqual([...publicIds].sort());
  });

  test("single NAT: one shared private table whose default route uses the one gateway", async () => {
    const nat = singleQ.findOne(aws.ec2.NatGateway);
    expect(nat.inputs.subnetId).toBe(await outputOf(single.publicSubnets[0]!.id));
    const table = singleQ.findOne(aws.ec2.RouteTable, "private-rt");
    const privateIds = await outputOf(single.privateSubnetIds);
    const assoc = singleQ
      .findByType(aws.ec2.RouteTableAssociation)
      .filter((a) => a.inputs.routeTableId === table.id);
    expect(assoc.map((a) => a.inputs.subnetId).sort()).toEqual([...privateIds].sort());
    expect(singleQ.findOne(aws.ec2.Route, "private-0-default").inputs).toMatchObject({
      routeTableId: table.id,
      natGatewayId: nat.id,
      destinationCidrBlock: "0.0.0.0/0",
    });
    expect(single.hasNat).toBe(true);
  });

  test("per-AZ NAT: each AZ's private subnet leaves through the NAT gateway in its own AZ", async () => {
    for (let i = 0; i < 3; i++) {
      const privateSubnet = await outputOf(perAz.privateSubnets[i]!.id);
      const assoc = perAzQ
        .findByType(aws.ec2.RouteTableAssociation)
        .find((a) => a.inputs.subnetId === privateSubnet)!;
      const route = perAzQ
        .findByType(aws.ec2.Route)
        .find((r) => r.inputs.routeTableId === assoc.inputs.routeTableId)!;
      const nat = perAzQ
        .findByType(aws.ec2.NatGateway)
        .find((n) => n.id === route.inputs.natGatewayId)!;
      const natSubnet = perAzQ
        .findByType(aws.ec2.Subnet)
        .find((s) => s.id === nat.inputs.subnetId)!;
      const privateRecord = perAzQ.findByType(aws.ec2.Subnet).find((s) => s.id === privateSubnet)!;
      expect(natSubnet.name).toContain("public");
      expect(natSubnet.inputs.availabilityZone).toBe(privateRecord.inputs.availabilityZone);
    }
    expect(perAzQ.count(aws.ec2.Eip)).toBe(3);
  });

  test("no NAT: private subnets have no default route, and the attachment says so", () => {
    expect(noneQ.count(aws.ec2.NatGateway)).toBe(0);
    expect(noneQ.count(aws.ec2.Eip)).toBe(0);
    expect(noneQ.findByType(aws.ec2.Route).map((r) => r.name)).toEqual(["none-public-default"]);
    expect(none.attachment.hasNat).toBe(false);
  });

  test("the free S3 gateway endpoint serves every private route table", () => {
    const endpoint = perAzQ.findOne(aws.ec2.VpcEndpoint).inputs;
    expect(endpoint).toMatchObject({
      vpcEndpointType: "Gateway",
      serviceName: "com.amazonaws.us-east-1.s3",
    });
    const privateTables = perAzQ
      .findByType(aws.ec2.RouteTable)
      .filter((t) => t.name.includes("private"))
      .map((t) => t.id);
    expect([...(endpoint.routeTableIds ?? [])].sort()).toEqual(privateTables.sort());
  });
});

describe("security groups", () => {
  test("stores admit only the compute group; nothing admits a CIDR", async () => {
    const compute = await outputOf(single.computeSecurityGroup.id);
    const ingress = singleQ.findByType(aws.vpc.SecurityGroupIngressRule).map((r) => r.inputs);
    expect(ingress).toHaveLength(2);
    const redisSg = await outputOf(single.redisSecurityGroup.id);
    const pgSg = await outputOf(single.postgresSecurityGroup.id);
    expect(ingress).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          securityGroupId: redisSg,
          referencedSecurityGroupId: compute,
          fromPort: 6379,
          toPort: 6379,
        }),
        expect.objectContaining({
          securityGroupId: pgSg,
          referencedSecurityGroupId: compute,
          fromPort: 5432,
          toPort: 5432,
        }),
      ]),
    );
    for (const rule of ingress) expect(rule.cidrIpv4).toBeUndefined();
  });

  test("compute egress: HTTPS anywhere, store ports to the store groups only", async () => {
    const egress = singleQ.findByType(aws.vpc.SecurityGroupEgressRule).map((r) => r.inputs);
    expect(egress).toHaveLength(3);
    expect(egress).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          cidrIpv4: "0.0.0.0/0",
          fromPort: 443,
          toPort: 443,
          ipProtocol: "tcp",
        }),
        expect.objectContaining({
          referencedSecurityGroupId: await outputOf(single.redisSecurityGroup.id),
          fromPort: 6379,
        }),
        expect.objectContaining({
          referencedSecurityGroupId: await outputOf(single.postgresSecurityGroup.id),
          fromPort: 5432,
        }),
      ]),
    );
    const compute = await outputOf(single.computeSecurityGroup.id);
    for (const rule of egress) expect(rule.securityGroupId).toBe(compute);
  });

  test("groups have no inline rules (so AWS's default allow-all egress is removed) and the default group is emptied", () => {
    for (const sg of singleQ.findByType(aws.ec2.SecurityGroup)) {
      expect([sg.inputs.ingress, sg.inputs.egress]).toEqual([undefined, undefined]);
    }
    expect(singleQ.findOne(aws.ec2.DefaultSecurityGroup).inputs).toMatchObject({
      ingress: [],
      egress: [],
    });
  });
});

describe("flow logs", () => {
  test("only when asked: rejected traffic into a log group with the given retention", async () => {
    expect(singleQ.count(aws.ec2.FlowLog)).toBe(0);
    const flow = perAzQ.findOne(aws.ec2.FlowLog).inputs;
    const logGroup = perAzQ.findOne(aws.cloudwatch.LogGroup);
    expect(flow).toMatchObject({
      trafficType: "REJECT",
      logDestinationType: "cloud-watch-logs",
      vpcId: await outputOf(perAz.vpc.id),
    });
    expect(flow.logDestination).toBe(logGroup.state.arn);
    expect(logGroup.inputs.retentionInDays).toBe(90);
  });

  test("the flow-log role can be assumed only by VPC flow logs of this account, and only writes its group", () => {
    const trust = JSON.parse(perAzQ.findOne(aws.iam.Role).inputs.assumeRolePolicy as string);
    expect(trust.Statement).toEqual([
      expect.objectContaining({
        Principal: { Service: "vpc-flow-logs.amazonaws.com" },
        Condition: { StringEquals: { "aws:SourceAccount": "123456789012" } },
      }),
    ]);
    const policy = JSON.parse(perAzQ.findOne(aws.iam.RolePolicy).inputs.policy as string);
    expect(policy.Statement[0].Resource).toBe(
      `${perAzQ.findOne(aws.cloudwatch.LogGroup).state.arn}:*`,
    );
  });
});

describe("structure", () => {
  test("children are prefixed and parented to the component", () => {
    for (const [name, q, c] of [
      ["single", singleQ, single],
      ["perz", perAzQ, perAz],
    ] as const) {
      for (const r of q.all()) {
        expect(r.name.startsWith(`${name}-`)).toBe(true);
        expect(resources.parentOf(r)?.name).toBe(name);
      }
      expect(c.attachment.cloud).toBe("aws");
    }
  });
});

describe("validation", () => {
  test.each([
    [{ availabilityZoneCount: 4 }, /availabilityZoneCount is 4: use 2 or 3/],
    [{ natGateways: "two" }, /natGateways is "two"/],
    [{ cidrBlock: "10.0.0.0/12" }, /must be \/16 to \/22/],
    [{ availabilityZoneNames: ["us-east-1a"] }, /lists 1 zones but availabilityZoneCount is 2/],
    [
      { flowLogs: true, flowLogRetentionDays: 10 },
      /flowLogRetentionDays is 10: CloudWatch Logs accepts only/,
    ],
    [{ redisPort: 80 }, /redisPort is 80/],
  ])("%j is refused", (override, message) => {
    const args = {
      availabilityZoneCount: 2 as const,
      natGateways: "single" as const,
      ...override,
    } as never;
    expect(() => new Network("bad", args)).toThrow(message);
    expect(() => new Network("bad", args)).toThrow(pulumi.ResourceError);
  });

  test("a retention CloudWatch rejects is fine while flow logs are off", () => {
    expect(
      () =>
        new Network("okay", {
          availabilityZoneCount: 2,
          natGateways: "none",
          flowLogRetentionDays: 10,
        }),
    ).not.toThrow();
  });
});
