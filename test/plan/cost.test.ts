/**
 * The cost model against figures computed by hand from prices.json (730 hours a month, the
 * environment's usage assumptions). Each expectation shows its arithmetic.
 */
import {
  alwaysOnUsage,
  estimateCost,
  estimateMonthlyUsd,
  PRICED_TYPES,
  roundCents,
  usageFor,
  DEFAULT_PRICES,
  type CostResource,
} from "../../infra/plan/cost";
import type { Environment } from "../../components/contracts";

const res = (
  type: string,
  name: string,
  inputs: Record<string, unknown>,
  extra: Partial<CostResource> = {},
): CostResource => ({ type, name, inputs, ...extra });

function priceOf(resources: CostResource[], name: string, environment: Environment = "prod") {
  const item = estimateCost(resources, { environment }).items.find((i) => i.name === name);
  if (!item) throw new Error(`no item ${name}`);
  return item;
}
const usdOf = (resources: CostResource[], name: string, environment: Environment = "prod") =>
  priceOf(resources, name, environment).monthlyUsd;

describe("roundCents", () => {
  test("rounds half away from zero, despite binary fractions", () => {
    expect(roundCents(1.005)).toBe(1.01);
    expect(roundCents(33.075)).toBe(33.08);
    expect(roundCents(33.215)).toBe(33.22);
    expect(roundCents(2.674999)).toBe(2.67);
    expect(roundCents(-1.005)).toBe(-1.01);
    expect(roundCents(0)).toBe(0);
  });
});

describe("AWS", () => {
  test("RDS: instance hours (x2 Multi-AZ) plus storage (x2 Multi-AZ)", () => {
    const multi = res("aws:rds/instance:Instance", "db", {
      engine: "postgres",
      instanceClass: "db.m7g.large",
      multiAz: true,
      allocatedStorage: 100,
      storageType: "gp3",
    });
    // 0.168 x 2 x 730 = 245.28; 100 x 0.115 x 2 = 23.00
    expect(usdOf([multi], "db")).toBe(268.28);
    const single = res("aws:rds/instance:Instance", "small", {
      engine: "postgres",
      instanceClass: "db.t4g.micro",
      multiAz: false,
      allocatedStorage: 20,
      storageType: "gp3",
    });
    // 0.016 x 730 = 11.68; 20 x 0.115 = 2.30
    expect(usdOf([single], "small")).toBe(13.98);
  });

  test("an instance class missing from the table is not priced, and says which", () => {
    const item = priceOf(
      [
        res("aws:rds/instance:Instance", "db", {
          engine: "postgres",
          instanceClass: "db.x99.huge",
          allocatedStorage: 20,
        }),
      ],
      "db",
    );
    expect(item).toMatchObject({ pricing: "not-priced", monthlyUsd: 0 });
    expect(item.detail).toContain("db.x99.huge");
  });

  test("ElastiCache: nodes x node price, Valkey 20% below Redis OSS", () => {
    // 0.158 x 0.8 x 2 nodes x 730 = 184.544
    expect(
      usdOf(
        [
          res("aws:elasticache/replicationGroup:ReplicationGroup", "v", {
            engine: "valkey",
            nodeType: "cache.m7g.large",
            numCacheClusters: 2,
          }),
        ],
        "v",
      ),
    ).toBe(184.54);
    // 0.032 x 1 x 730 = 23.36
    expect(
      usdOf(
        [
          res("aws:elasticache/replicationGroup:ReplicationGroup", "r", {
            engine: "redis",
            nodeType: "cache.t4g.small",
            numCacheClusters: 1,
          }),
        ],
        "r",
      ),
    ).toBe(23.36);
  });

  test("NAT gateways share the environment's NAT data; each EIP is a public IPv4", () => {
    const set = [0, 1, 2].flatMap((i) => [
      res("aws:ec2/natGateway:NatGateway", `nat-${i}`, {}),
      res("aws:ec2/eip:Eip", `eip-${i}`, { domain: "vpc" }),
    ]);
    // prod: 0.045 x 730 = 32.85; 100 GB / 3 x 0.045 = 1.50
    expect(usdOf(set, "nat-1")).toBe(34.35);
    // 0.005 x 730
    expect(usdOf(set, "eip-2")).toBe(3.65);
  });

  test("EKS: control plane, and node group = desired x (instance + its launch template's disk)", () => {
    const set = [
      res("aws:eks/cluster:Cluster", "cluster", { version: "1.31" }),
      res(
        "aws:ec2/launchTemplate:LaunchTemplate",
        "nodes-lt",
        { blockDeviceMappings: [{ ebs: { volumeSize: 50, volumeType: "gp3" } }] },
        { id: "lt-0nodes" },
      ),
      res("aws:eks/nodeGroup:NodeGroup", "nodes", {
        instanceTypes: ["m6i.large"],
        scalingConfig: { desiredSize: 3, minSize: 3, maxSize: 6 },
        launchTemplate: { id: "lt-0nodes", version: "1" },
      }),
    ];
    const cluster = (today: string) =>
      estimateCost(set, { environment: "prod", today }).items.find((i) => i.name === "cluster")!;
    // 1.31 was in standard support until 2025-11-26 (components/versions.ts).
    expect(cluster("2025-06-01").monthlyUsd).toBe(73); // 0.10 x 730
    // 3 x (0.096 x 730 + 50 x 0.08) = 3 x (70.08 + 4.00)
    expect(usdOf(set, "nodes")).toBe(222.24);
    expect(priceOf(set, "nodes-lt").pricing).toBe("free");
  });

  test("EKS: a version past standard support is priced at the extended-support rate ($0.60/h)", () => {
    const cluster = (version: string, today: string) =>
      estimateCost([res("aws:eks/cluster:Cluster", "cluster", { version })], {
        environment: "prod",
        today,
      }).items[0]!;
    // AWS's calendar: 1.34 left standard support on 2026-12-02.
    expect(cluster("1.34", "2026-12-02").monthlyUsd).toBe(73); // 0.10 x 730
    const extended = cluster("1.34", "2026-12-06");
    expect(extended.monthlyUsd).toBe(438); // 0.60 x 730
    expect(extended.detail).toContain("extended support");
    expect(cluster("1.35", "2026-12-06").monthlyUsd).toBe(73);
  });

  test("Auto Scaling group: min size x (launch template's instance, disk, detailed monitoring)", () => {
    const set = [
      res(
        "aws:ec2/launchTemplate:LaunchTemplate",
        "lt",
        {
          instanceType: "m7g.large",
          monitoring: { enabled: true },
          blockDeviceMappings: [{ ebs: { volumeSize: 30, volumeType: "gp3" } }],
        },
        { id: "lt-0asg" },
      ),
      res("aws:autoscaling/group:Group", "asg", {
        minSize: 2,
        maxSize: 10,
        desiredCapacity: 2,
        launchTemplate: { id: "lt-0asg", version: "1" },
      }),
    ];
    // 2 x (0.0816 x 730 + 30 x 0.08 + 2.10) = 2 x (59.568 + 2.40 + 2.10) = 128.136
    expect(usdOf(set, "asg")).toBe(128.14);
  });

  test("load balancers: hours + LCUs + a public IPv4 per AZ when internet-facing", () => {
    const alb = res("aws:lb/loadBalancer:LoadBalancer", "alb", {
      loadBalancerType: "application",
      internal: false,
      subnets: ["a", "b", "c"],
    });
    // prod: 0.0225 x 730 + 1 LCU x 0.008 x 730 + 3 x 0.005 x 730 = 16.425 + 5.84 + 10.95
    expect(usdOf([alb], "alb")).toBe(33.22);
    const internal = res("aws:lb/loadBalancer:LoadBalancer", "int", {
      loadBalancerType: "application",
      internal: true,
      subnets: ["a", "b"],
    });
    // dev: 16.425 + 0.1 x 0.008 x 730 = 17.009
    expect(usdOf([internal], "int", "dev")).toBe(17.01);
    const svc = res("kubernetes:core/v1:Service", "lb", {
      spec: { type: "LoadBalancer" },
      metadata: {
        annotations: {
          "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
          "service.beta.kubernetes.io/aws-load-balancer-subnets": "s1,s2,s3",
        },
      },
    });
    // NLB the controller creates: 16.425 + 1 NLCU x 0.006 x 730 + 3 x 3.65 = 16.425 + 4.38 + 10.95
    expect(usdOf([svc], "lb")).toBe(31.76);
    expect(
      priceOf([res("kubernetes:core/v1:Service", "svc", { spec: { type: "ClusterIP" } })], "svc")
        .pricing,
    ).toBe("free");
  });

  test("Lambda: requests + GB-seconds at the arm64 price; provisioned concurrency billed on its config", () => {
    const set = [
      res(
        "aws:lambda/function:Function",
        "fn",
        { memorySize: 2048, architectures: ["arm64"] },
        { state: { name: "agent-function-1" } },
      ),
      res("aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig", "pc", {
        functionName: "agent-function-1",
        provisionedConcurrentExecutions: 10,
        qualifier: "live",
      }),
    ];
    // prod: 2,000,000 x 3 s x 2 GB = 12,000,000 GB-s; average concurrency 2.28 fits in 10 provisioned,
    // so all of it at the provisioned duration rate: 12e6 x 0.0000077778 = 93.3336; + 2 x 0.20
    expect(usdOf(set, "fn")).toBe(93.73);
    // 10 x 2 GB x 2,628,000 s x 0.0000033334 = 175.2035
    expect(usdOf(set, "pc")).toBe(175.2);
    // dev, no provisioned concurrency, x86: 50,000 x 3 s x 0.5 GB = 75,000 GB-s x 0.0000166667 = 1.25; + 0.01
    expect(
      usdOf([res("aws:lambda/function:Function", "x86", { memorySize: 512 })], "x86", "dev"),
    ).toBe(1.26);
  });

  test("Lambda: traffic beyond provisioned concurrency is billed at the on-demand rate", () => {
    const set = [
      res(
        "aws:lambda/function:Function",
        "fn",
        { memorySize: 1024, architectures: ["arm64"] },
        { state: { name: "f" } },
      ),
      res("aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig", "pc", {
        functionName: "f",
        provisionedConcurrentExecutions: 5,
      }),
    ];
    // 8,760,000 requests x 3 s / 2,628,000 s = 10 concurrent on average; 5 provisioned serve half.
    const usage = { ...usageFor("prod"), requestsPerMonth: 8_760_000 };
    const fn = estimateCost(set, { environment: "prod", usage }).items.find(
      (i) => i.name === "fn",
    )!;
    // 26,280,000 GB-s x (0.5 x 0.0000077778 + 0.5 x 0.0000133334) = 277.401168; + 8.76 x 0.20 = 1.752
    expect(fn.monthlyUsd).toBe(279.15);
  });

  test("per-unit charges: secrets, keys, alarms per metric, dashboards, HTTP API requests, ECR storage", () => {
    const set = [
      res("aws:secretsmanager/secret:Secret", "secret", {}),
      res("aws:kms/key:Key", "key", {}),
      res("aws:cloudwatch/metricAlarm:MetricAlarm", "plain", {
        metricName: "CPUUtilization",
        period: 300,
      }),
      res("aws:cloudwatch/metricAlarm:MetricAlarm", "math", {
        metricQueries: [
          { id: "e", expression: "a/b" },
          { id: "a", metric: { period: 60 } },
          { id: "b", metric: { period: 60 } },
        ],
      }),
      res("aws:cloudwatch/metricAlarm:MetricAlarm", "fast", { metricName: "Errors", period: 10 }),
      res("aws:cloudwatch/dashboard:Dashboard", "dash", {}),
      res("aws:apigatewayv2/api:Api", "api", { protocolType: "HTTP" }),
      res("aws:ecr/repository:Repository", "repo", {}),
    ];
    expect(usdOf(set, "secret")).toBe(0.4);
    expect(usdOf(set, "key")).toBe(1);
    expect(usdOf(set, "plain")).toBe(0.1);
    expect(usdOf(set, "math")).toBe(0.2); // two metrics
    expect(usdOf(set, "fast")).toBe(0.3); // high resolution
    expect(usdOf(set, "dash")).toBe(3);
    expect(usdOf(set, "api", "dev")).toBe(0.05); // 50,000 x $1/M
    expect(usdOf(set, "repo")).toBe(0.2); // 2 GB x 0.10
  });

  test("log groups: app volume split over app groups; EKS control-plane and flow logs on their own", () => {
    const set = [
      res(
        "aws:cloudwatch/logGroup:LogGroup",
        "agent-logs",
        { retentionInDays: 90 },
        { state: { name: "agent-logs-1" } },
      ),
      res(
        "aws:cloudwatch/logGroup:LogGroup",
        "mon-app-logs",
        { retentionInDays: 90 },
        { state: { name: "mon-app-logs-2" } },
      ),
      res("aws:cloudwatch/logGroup:LogGroup", "cp", {
        name: "/aws/eks/c/cluster",
        retentionInDays: 90,
      }),
      res(
        "aws:cloudwatch/logGroup:LogGroup",
        "net-logs",
        { retentionInDays: 90 },
        { state: { name: "net-logs-3" } },
      ),
      res("aws:ec2/flowLog:FlowLog", "flow", {
        logDestination: "arn:aws:logs:us-east-1:123456789012:log-group:net-logs-3",
      }),
    ];
    // 30 GB / 2 groups = 15 GB x 0.50 + 15 x 90/30 = 45 GB stored x 0.03
    expect(usdOf(set, "agent-logs")).toBe(8.85);
    // 10 GB x 0.50 + 30 GB x 0.03
    expect(usdOf(set, "cp")).toBe(5.9);
    // 5 GB x 0.50 + 15 GB x 0.03
    expect(usdOf(set, "net-logs")).toBe(2.95);
    expect(priceOf(set, "flow").pricing).toBe("free");
  });
});

describe("GCP", () => {
  test("Cloud SQL: custom tiers per vCPU and GB, shared-core tiers by the hour, HA doubles", () => {
    const ha = res("gcp:sql/databaseInstance:DatabaseInstance", "ha", {
      settings: {
        tier: "db-custom-2-7680",
        availabilityType: "REGIONAL",
        diskSize: 50,
        diskType: "PD_SSD",
      },
    });
    // (2 x 0.0413 + 7.5 x 0.007) x 2 x 730 = 0.1351 x 1460 = 197.246; 50 x 0.17 x 2 = 17
    expect(usdOf([ha], "ha")).toBe(214.25);
    const small = res("gcp:sql/databaseInstance:DatabaseInstance", "small", {
      settings: {
        tier: "db-g1-small",
        availabilityType: "ZONAL",
        diskSize: 10,
        diskType: "PD_SSD",
      },
    });
    // 0.035 x 730 = 25.55; 10 x 0.17 = 1.70
    expect(usdOf([small], "small")).toBe(27.25);
  });

  test("Memorystore: the whole instance at its capacity band's GB-hour price", () => {
    // STANDARD_HA M2 (5-10 GB): 5 x 0.054 x 730
    expect(
      usdOf(
        [res("gcp:redis/instance:Instance", "ha", { tier: "STANDARD_HA", memorySizeGb: 5 })],
        "ha",
      ),
    ).toBe(197.1);
    // BASIC M1: 1 x 0.049 x 730 = 35.77
    expect(
      usdOf(
        [res("gcp:redis/instance:Instance", "basic", { tier: "BASIC", memorySizeGb: 1 })],
        "basic",
      ),
    ).toBe(35.77);
  });

  test("Cloud Run: idle minimum instances, busy time and requests (request-based billing)", () => {
    const service = (name: string, min: number, cpu: string, memory: string, cpuIdle = true) =>
      res("gcp:cloudrunv2/service:Service", name, {
        template: {
          scaling: { minInstanceCount: min },
          containers: [{ resources: { cpuIdle, limits: { cpu, memory } } }],
        },
      });
    // prod: 2 x 2,628,000 s x (2 x 0.0000025 + 2 x 0.0000025) = 52.56
    //     + 730 h busy = 2,628,000 s x (2 x 0.000024 + 2 x 0.0000025) = 139.284
    //     + 2,000,000 x 0.40/M = 0.80
    expect(usdOf([service("prod", 2, "2", "2Gi")], "prod")).toBe(192.64);
    // dev: 20 h = 72,000 s x (0.000024 + 0.0000025) = 1.908; + 50,000 x 0.40/M = 0.02
    expect(usdOf([service("dev", 0, "1", "1Gi")], "dev", "dev")).toBe(1.93);
    // instance-based: max(2 x 2,628,000, 2,628,000) s x (1 x 0.000018 + 0.5 x 0.000002) = 5,256,000 x 0.000019
    expect(usdOf([service("always", 2, "1", "512Mi", false)], "always")).toBe(99.86);
  });

  test("managed instance group: autoscaler minimum x (machine type + disks); Cloud NAT counts those VMs", () => {
    const template =
      "https://www.googleapis.com/compute/v1/projects/p/global/instanceTemplates/tpl-1";
    const set = [
      res(
        "gcp:compute/instanceTemplate:InstanceTemplate",
        "tpl",
        {
          machineType: "e2-standard-2",
          disks: [{ diskSizeGb: 30, diskType: "pd-balanced", boot: true }],
        },
        { state: { selfLinkUnique: `${template}?uniqueId=42` } },
      ),
      res(
        "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager",
        "mig",
        { versions: [{ instanceTemplate: `${template}?uniqueId=42` }] },
        { id: "projects/p/regions/r/instanceGroupManagers/mig-1" },
      ),
      res("gcp:compute/regionAutoscaler:RegionAutoscaler", "as", {
        target: "projects/p/regions/r/instanceGroupManagers/mig-1",
        autoscalingPolicy: { minReplicas: 2, maxReplicas: 10 },
      }),
      res("gcp:compute/routerNat:RouterNat", "nat", { natIpAllocateOption: "AUTO_ONLY" }),
    ];
    // 2 x (0.067006 x 730 + 30 x 0.10) = 2 x 51.91438
    expect(usdOf(set, "mig")).toBe(103.83);
    // 2 VMs x 0.0014 x 730 = 2.044; 100 GB x 0.045 = 4.50; 1 IP x 0.005 x 730 = 3.65
    expect(usdOf(set, "nat")).toBe(10.19);
  });

  test("forwarding rules: one hourly charge covers the first five; secrets per version and location; logs; registry", () => {
    const set = [
      res("gcp:compute/globalForwardingRule:GlobalForwardingRule", "agent-http", {
        loadBalancingScheme: "EXTERNAL_MANAGED",
      }),
      res("gcp:compute/globalForwardingRule:GlobalForwardingRule", "agent-https", {
        loadBalancingScheme: "EXTERNAL_MANAGED",
      }),
      res(
        "gcp:secretmanager/secret:Secret",
        "two-regions",
        {
          replication: {
            userManaged: { replicas: [{ location: "us-central1" }, { location: "us-east1" }] },
          },
        },
        { id: "projects/p/secrets/s2" },
      ),
      res("gcp:secretmanager/secretVersion:SecretVersion", "v2", {
        secret: "projects/p/secrets/s2",
      }),
      res("gcp:logging/projectBucketConfig:ProjectBucketConfig", "logs", {
        bucketId: "_Default",
        retentionDays: 90,
      }),
      res("gcp:artifactregistry/repository:Repository", "images", {}),
    ];
    // 0.025 x 730 = 18.25; + 100 GB x 0.008 = 0.80
    expect(usdOf(set, "agent-http")).toBe(19.05);
    expect(priceOf(set, "agent-https")).toMatchObject({ pricing: "priced", monthlyUsd: 0 });
    expect(usdOf(set, "v2")).toBe(0.12); // 2 locations x 0.06
    // 30 GB x 0.50 = 15; kept beyond 30 days: 30 x 60/30 = 60 GB x 0.01 = 0.60
    expect(usdOf(set, "logs")).toBe(15.6);
    expect(usdOf(set, "images")).toBe(0.2);
  });

  test("uptime checks: free within a project's million executions, billed beyond", () => {
    const check = (name: string) =>
      res("gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig", name, { period: "60s" });
    // one check: 2,628,000 / 60 x 6 locations = 262,800 runs, within the allowance
    expect(usdOf([check("one")], "one")).toBe(0);
    // four: 1,051,200 runs, 51,200 billable x 0.30/1000 = 15.36, a quarter each
    expect(usdOf([check("a"), check("b"), check("c"), check("d")], "c")).toBe(3.84);
  });
});

describe("classification and totals", () => {
  test("components get no item; free kinds are free; unknown kinds are listed as not priced", () => {
    const { items } = estimateCost(
      [
        res("agent:aws:Postgres", "component", {}, { custom: false }),
        res("aws:iam/role:Role", "role", {}),
        res("aws:sagemaker/endpoint:Endpoint", "mystery", {}),
        res("gcp:monitoring/alertPolicy:AlertPolicy", "alert", {}),
      ],
      { environment: "dev" },
    );
    expect(items.map((i) => [i.name, i.pricing])).toEqual([
      ["role", "free"],
      ["mystery", "not-priced"],
      ["alert", "not-priced"],
    ]);
    expect(items.find((i) => i.name === "mystery")!.detail).toContain(
      "no price rule for aws:sagemaker/endpoint:Endpoint",
    );
  });

  // A small dev Lambda stack, by hand:
  //   RDS db.t4g.micro 20 GB gp3       11.68 + 2.30          = 13.98
  //   Valkey 1 x cache.t4g.micro       0.016 x 0.8 x 730     =  9.34 (9.344)
  //   NAT gateway, 5 GB                32.85 + 0.225         = 33.08 (33.075)
  //   EIP                                                      =  3.65
  //   3 secrets                                                =  1.20
  //   KMS key                                                  =  1.00
  //   dashboard                                                =  3.00
  //   2 alarms                                                 =  0.20
  //   Lambda 1 GB arm64                150,000 GB-s x 0.0000133334 + 0.01 = 2.01
  //   app log group, 7 days            0.50 + 0.233 GB x 0.03 = 0.51 (0.507)
  //   IAM role, VPC, component          free / no item
  //                                                    total  = 67.97
  const smallStack = (): CostResource[] => [
    res("agent:aws:DataPlane", "agent", {}, { custom: false }),
    res("aws:rds/instance:Instance", "db", {
      engine: "postgres",
      instanceClass: "db.t4g.micro",
      allocatedStorage: 20,
      storageType: "gp3",
      multiAz: false,
    }),
    res("aws:elasticache/replicationGroup:ReplicationGroup", "cache", {
      engine: "valkey",
      nodeType: "cache.t4g.micro",
      numCacheClusters: 1,
    }),
    res("aws:ec2/natGateway:NatGateway", "nat", {}),
    res("aws:ec2/eip:Eip", "eip", {}),
    ...["a", "b", "c"].map((n) => res("aws:secretsmanager/secret:Secret", `secret-${n}`, {})),
    res("aws:kms/key:Key", "key", {}),
    res("aws:cloudwatch/dashboard:Dashboard", "dash", {}),
    res("aws:cloudwatch/metricAlarm:MetricAlarm", "alarm-1", { period: 300 }),
    res("aws:cloudwatch/metricAlarm:MetricAlarm", "alarm-2", { period: 300 }),
    res("aws:lambda/function:Function", "fn", { memorySize: 1024, architectures: ["arm64"] }),
    res("aws:cloudwatch/logGroup:LogGroup", "logs", { retentionInDays: 7 }),
    res("aws:iam/role:Role", "role", {}),
    res("aws:ec2/vpc:Vpc", "vpc", {}),
  ];

  test("a whole small stack adds up to the hand-computed total, item by item", () => {
    const estimate = estimateCost(smallStack(), { environment: "dev" });
    expect(estimate.monthlyUsd).toBe(67.97);
    const byName = Object.fromEntries(estimate.items.map((i) => [i.name, i.monthlyUsd]));
    expect(byName).toEqual({
      db: 13.98,
      cache: 9.34,
      nat: 33.08,
      eip: 3.65,
      "secret-a": 0.4,
      "secret-b": 0.4,
      "secret-c": 0.4,
      key: 1,
      dash: 3,
      "alarm-1": 0.1,
      "alarm-2": 0.1,
      fn: 2.01,
      logs: 0.51,
      role: 0,
      vpc: 0,
    });
    // The total is the sum of the rounded items, and items come sorted by type and name.
    expect(roundCents(estimate.items.reduce((n, i) => n + i.monthlyUsd, 0))).toBe(
      estimate.monthlyUsd,
    );
    const keys = estimate.items.map((i) => `${i.type}::${i.name}`);
    expect(keys).toEqual([...keys].sort((a, b) => a.localeCompare(b, "en")));
  });

  test("the same resources in another order give the same estimate", () => {
    const forward = estimateCost(smallStack(), { environment: "dev" });
    const reversed = estimateCost(smallStack().reverse(), { environment: "dev" });
    expect(reversed).toEqual(forward);
  });

  test("the policy pack's estimator: always-on capacity only, from resources as the rules see them", () => {
    // Usage-driven parts drop out: NAT data, Lambda requests and duration, log ingestion.
    // 13.98 + 9.34 + 32.85 + 3.65 + 1.20 + 1.00 + 3.00 + 0.20 = 65.22
    const asRulesSeeThem = smallStack().map((r) => ({
      type: r.type,
      name: r.name,
      props: r.inputs,
    }));
    expect(estimateMonthlyUsd(asRulesSeeThem, "dev")).toBe(65.22);
    expect(alwaysOnUsage(usageFor("prod")).requestsPerMonth).toBe(0);
    // A value unknown during `pulumi preview` (the pack's UNKNOWN symbol) leaves that resource unpriced, no crash.
    const unknown = [
      {
        type: "aws:rds/instance:Instance",
        name: "db",
        props: { instanceClass: Symbol.for("agent-policy.unknown") },
      },
    ];
    expect(estimateMonthlyUsd(unknown, "prod")).toBe(0);
  });
});

describe("price table", () => {
  test("is dated, names its regions and sources, and states every usage assumption per environment", () => {
    expect(DEFAULT_PRICES.takenOn).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(DEFAULT_PRICES.aws.region).toBe("us-east-1");
    expect(DEFAULT_PRICES.gcp.region).toBe("us-central1");
    expect(DEFAULT_PRICES.aws.sources.length).toBeGreaterThan(5);
    expect(DEFAULT_PRICES.gcp.sources.length).toBeGreaterThan(5);
    const described = Object.keys(DEFAULT_PRICES.usage.descriptions).sort();
    for (const env of ["dev", "staging", "prod"] as const) {
      expect(Object.keys(DEFAULT_PRICES.usage[env]).sort()).toEqual(described);
      for (const v of Object.values(DEFAULT_PRICES.usage[env])) expect(v).toBeGreaterThanOrEqual(0);
    }
  });

  test("free and not-priced entries are type-token prefixes, and no priced kind is also listed as free", () => {
    const prefixes = [
      ...Object.keys(DEFAULT_PRICES.free),
      ...Object.keys(DEFAULT_PRICES.notPriced),
    ].filter((k) => !k.startsWith("$"));
    for (const p of prefixes) expect(p).toMatch(/^[a-z0-9-]+:/);
    const shadowed = PRICED_TYPES.filter(
      (t) =>
        Object.keys(DEFAULT_PRICES.free).some((p) => t.startsWith(p)) &&
        !t.startsWith("kubernetes:") &&
        t !== "aws:ec2/vpcEndpoint:VpcEndpoint",
    );
    expect(shadowed).toEqual([]);
  });
});
