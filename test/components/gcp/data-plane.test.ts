/**
 * The GCP data plane rendered for dev and prod under mocks: privacy, encryption, sizing and HA
 * per environment, protection, secrets, IAM and budget, read from what was registered.
 */
import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import {
  invocationsOf,
  isSecretOutput,
  outputOf,
  recordOf,
  resources,
  setupPulumiMocks,
  within,
  type ResourceQuery,
} from "../../support/pulumi";
import { MOCK_GCP_PROJECT_NUMBER } from "../../support/pulumi-gcp-outputs";
import { environmentProfile } from "../../../components/environment";
import type { DataPlaneOutputs } from "../../../components/contracts";
import {
  GcpDataPlane,
  type GcpDataPlaneArgs,
  validateDataPlaneArgs,
} from "../../../components/gcp/data-plane";
import { SECRET_ACCESSOR_ROLE } from "../../../components/gcp/secrets";
import { GOOGLE_HEALTH_CHECK_RANGES } from "../../../components/gcp/network";

setupPulumiMocks({ stack: "test", region: "us-central1" });

const ANTHROPIC_KEY = "sk-ant-test-key-0123456789";
const SA = "agent-run@agent-prod-1.iam.gserviceaccount.com";

function args(env: "dev" | "prod", overrides: Partial<GcpDataPlaneArgs> = {}): GcpDataPlaneArgs {
  return {
    project: `agent-${env}-1`,
    region: "us-central1",
    profile: environmentProfile(env),
    anthropicApiKey: pulumi.secret(ANTHROPIC_KEY),
    alertEmails: ["oncall@example.com", "owner@example.com"],
    billingAccount: "01ABCD-23EF45-6789AB",
    ...overrides,
  };
}

let dev: GcpDataPlane;
let prod: GcpDataPlane;
let devQ: ResourceQuery;
let prodQ: ResourceQuery;
let grant: ReturnType<GcpDataPlane["grantAccess"]>;

beforeAll(async () => {
  dev = new GcpDataPlane("agent-dev", args("dev"));
  prod = new GcpDataPlane("agent-prod", args("prod", { projectNumber: "987654321098" }));
  grant = prod.grantAccess(SA);
  devQ = await within(dev);
  prodQ = await within(prod);
});

const envs = () =>
  [
    ["dev", dev, devQ],
    ["prod", prod, prodQ],
  ] as const;

describe("resources per environment", () => {
  test("dev and prod create the same kinds; counts differ only where sizing says so", () => {
    const devCounts = devQ.countsByType();
    const prodCounts = prodQ.countsByType();
    expect(devCounts).toEqual({
      "agent:gcp:Budget": 1,
      "agent:gcp:Monitoring": 1,
      "agent:gcp:Network": 1,
      "agent:gcp:Postgres": 1,
      "agent:gcp:Redis": 1,
      "agent:gcp:Secret": 3,
      "agent:gcp:Secrets": 1,
      "gcp:billing/budget:Budget": 1,
      "gcp:compute/firewall:Firewall": 3,
      "gcp:compute/globalAddress:GlobalAddress": 1,
      "gcp:compute/network:Network": 1,
      "gcp:compute/router:Router": 1,
      "gcp:compute/routerNat:RouterNat": 1,
      "gcp:compute/subnetwork:Subnetwork": 1,
      "gcp:logging/projectBucketConfig:ProjectBucketConfig": 1,
      "gcp:monitoring/alertPolicy:AlertPolicy": 4,
      "gcp:monitoring/dashboard:Dashboard": 1,
      "gcp:monitoring/notificationChannel:NotificationChannel": 2,
      "gcp:redis/instance:Instance": 1,
      "gcp:secretmanager/secret:Secret": 3,
      "gcp:secretmanager/secretVersion:SecretVersion": 3,
      "gcp:servicenetworking/connection:Connection": 1,
      "gcp:sql/database:Database": 1,
      "gcp:sql/databaseInstance:DatabaseInstance": 1,
      "gcp:sql/user:User": 1,
      "random:index/randomPassword:RandomPassword": 1,
    });
    // The access grant is created on demand (prod only here), as a child of the data plane.
    const {
      "agent:gcp:SecretAccessGrant": grants,
      "gcp:secretmanager/secretIamMember:SecretIamMember": members,
      ...rest
    } = prodCounts;
    expect(grants).toBe(1);
    expect(members).toBe(3);
    expect(rest).toEqual(devCounts);
  });

  test("every resource is named after, and parented under, its data plane", () => {
    for (const [env, , q] of envs()) {
      for (const r of q.all()) {
        expect(r.name.startsWith(`agent-${env}-`)).toBe(true);
      }
    }
    // Nothing escaped the tree: all recorded resources are a data plane or one of its descendants.
    const ours = (r: { name: string }) => /^agent-(dev|prod)(-|$)/.test(r.name);
    const planes = resources.findByType("agent:gcp:DataPlane").filter(ours);
    expect(planes.map((p) => p.name).sort()).toEqual(["agent-dev", "agent-prod"]);
    const inTree = new Set([
      ...planes.map((p) => p.urn),
      ...devQ.all().map((r) => r.urn),
      ...prodQ.all().map((r) => r.urn),
    ]);
    const stray = resources
      .all()
      .filter((r) => ours(r) && !inTree.has(r.urn))
      .map((r) => r.name);
    expect(stray).toEqual([]);
  });
});

describe("nothing is public", () => {
  test("Cloud SQL has a private IP only, on the VPC, after the PSA peering", async () => {
    for (const [, plane, q] of envs()) {
      const sql = q.findOne(gcp.sql.DatabaseInstance);
      const ip = sql.inputs.settings!.ipConfiguration!;
      expect(ip.ipv4Enabled).toBe(false);
      expect(ip.authorizedNetworks ?? []).toEqual([]);
      expect(ip.privateNetwork).toBe(q.findOne(gcp.compute.Network).id);
      expect(ip.privateNetwork).toBe(await outputOf(plane.network.network.id));
      expect(sql.state.publicIpAddress).toBeUndefined();
      const psa = await recordOf(plane.network.privateServiceConnection);
      expect(sql.options.dependencies).toContain(psa.urn);
      expect(await outputOf(plane.outputs.postgres.host)).toBe("10.64.1.3");
    }
  });

  test("Redis is reached through Private Service Access on the VPC, after the peering", async () => {
    for (const [, plane, q] of envs()) {
      const redis = q.findOne(gcp.redis.Instance);
      expect(redis.inputs.connectMode).toBe("PRIVATE_SERVICE_ACCESS");
      expect(redis.inputs.authorizedNetwork).toBe(await outputOf(plane.network.network.id));
      const psa = await recordOf(plane.network.privateServiceConnection);
      expect(redis.options.dependencies).toContain(psa.urn);
    }
  });

  test("the VPC is custom-mode with Private Google Access and a PSA range for VPC peering", () => {
    for (const [, , q] of envs()) {
      expect(q.findOne(gcp.compute.Network).inputs.autoCreateSubnetworks).toBe(false);
      expect(q.findOne(gcp.compute.Subnetwork).inputs.privateIpGoogleAccess).toBe(true);
      const range = q.findOne(gcp.compute.GlobalAddress).inputs;
      expect(range).toMatchObject({
        purpose: "VPC_PEERING",
        addressType: "INTERNAL",
        address: "10.64.0.0",
        prefixLength: 16,
      });
      expect(q.findOne(gcp.servicenetworking.Connection).inputs.service).toBe(
        "servicenetworking.googleapis.com",
      );
    }
  });

  test("ingress is admitted only from Google's health checkers, only to the compute tag", () => {
    for (const [, , q] of envs()) {
      const ingress = q
        .findByType(gcp.compute.Firewall)
        .filter((f) => (f.inputs.direction ?? "INGRESS") === "INGRESS");
      expect(ingress).toHaveLength(1);
      expect(ingress[0]!.inputs.sourceRanges).toEqual(GOOGLE_HEALTH_CHECK_RANGES);
      expect(ingress[0]!.inputs.targetTags).toEqual(["agent-compute"]);
      expect(ingress[0]!.inputs.allows).toEqual([{ protocol: "tcp", ports: ["8080"] }]);
      for (const fw of q.findByType(gcp.compute.Firewall)) {
        expect(fw.inputs.sourceRanges ?? []).not.toContain("0.0.0.0/0");
      }
    }
  });

  test("only tagged compute may open connections to the stores' range", () => {
    for (const [, , q] of envs()) {
      const egress = q
        .findByType(gcp.compute.Firewall)
        .filter((f) => f.inputs.direction === "EGRESS");
      const allow = egress.find((f) => f.inputs.allows !== undefined)!;
      const deny = egress.find((f) => f.inputs.denies !== undefined)!;
      expect(allow.inputs).toMatchObject({
        destinationRanges: ["10.64.0.0/16"],
        targetTags: ["agent-compute"],
        priority: 1000,
      });
      expect(deny.inputs).toMatchObject({
        destinationRanges: ["10.64.0.0/16"],
        denies: [{ protocol: "all" }],
      });
      expect(deny.inputs.targetTags).toBeUndefined();
      expect(deny.inputs.priority!).toBeGreaterThan(allow.inputs.priority!);
    }
  });

  test("Cloud NAT gives the subnet (and only it) egress to the internet, for the LLM API", () => {
    for (const [, plane, q] of envs()) {
      const nat = q.findOne(gcp.compute.RouterNat).inputs;
      expect(nat.sourceSubnetworkIpRangesToNat).toBe("LIST_OF_SUBNETWORKS");
      expect(nat.subnetworks).toEqual([
        {
          name: q.findOne(gcp.compute.Subnetwork).state.selfLink,
          sourceIpRangesToNats: ["ALL_IP_RANGES"],
        },
      ]);
      expect(nat.natIpAllocateOption).toBe("AUTO_ONLY");
      expect(plane.network.directVpcEgress.tags).toEqual(["agent-compute"]);
    }
    expect(prodQ.findOne(gcp.compute.RouterNat).inputs.minPortsPerVm).toBeGreaterThan(
      devQ.findOne(gcp.compute.RouterNat).inputs.minPortsPerVm!,
    );
  });
});

describe("encryption in transit", () => {
  test("Redis: AUTH on, TLS with server authentication, CA certificates exposed", async () => {
    for (const [, plane, q] of envs()) {
      const redis = q.findOne(gcp.redis.Instance).inputs;
      expect(redis.authEnabled).toBe(true);
      expect(redis.transitEncryptionMode).toBe("SERVER_AUTHENTICATION");
      expect(redis.redisVersion).toBe("REDIS_7_2");
      expect(plane.outputs.redis.tls).toBe(true);
      expect(await outputOf(plane.outputs.redis.port)).toBe(6378);
      const certs = await outputOf(plane.redisServerCaCerts);
      expect(certs).toHaveLength(1);
      expect(certs[0]).toMatch(/^-----BEGIN CERTIFICATE-----/);
    }
  });

  test("Cloud SQL: Postgres 16, TLS required", () => {
    for (const [, plane, q] of envs()) {
      const sql = q.findOne(gcp.sql.DatabaseInstance).inputs;
      expect(sql.databaseVersion).toBe("POSTGRES_16");
      expect(sql.settings!.ipConfiguration!.sslMode).toBe("ENCRYPTED_ONLY");
      expect(plane.outputs.postgres.requireTls).toBe(true);
    }
  });
});

describe("sizing and high availability per environment", () => {
  test("Redis: BASIC 1 GB in dev, STANDARD_HA 5 GB with RDB snapshots in prod", () => {
    expect(devQ.findOne(gcp.redis.Instance).inputs).toMatchObject({
      tier: "BASIC",
      memorySizeGb: 1,
      persistenceConfig: { persistenceMode: "DISABLED" },
    });
    expect(prodQ.findOne(gcp.redis.Instance).inputs).toMatchObject({
      tier: "STANDARD_HA",
      memorySizeGb: 5,
      persistenceConfig: { persistenceMode: "RDB", rdbSnapshotPeriod: "ONE_HOUR" },
    });
  });

  test("Cloud SQL: zonal shared-core in dev; REGIONAL with point-in-time recovery in prod", () => {
    const d = devQ.findOne(gcp.sql.DatabaseInstance).inputs.settings!;
    const p = prodQ.findOne(gcp.sql.DatabaseInstance).inputs.settings!;
    expect(d).toMatchObject({
      tier: "db-g1-small",
      edition: "ENTERPRISE",
      availabilityType: "ZONAL",
    });
    expect(p).toMatchObject({
      tier: "db-custom-2-7680",
      edition: "ENTERPRISE",
      availabilityType: "REGIONAL",
    });
    expect(d.backupConfiguration).toMatchObject({
      enabled: true,
      pointInTimeRecoveryEnabled: false,
    });
    expect(p.backupConfiguration).toMatchObject({
      enabled: true,
      pointInTimeRecoveryEnabled: true,
      transactionLogRetentionDays: 7,
      backupRetentionSettings: { retainedBackups: 30 },
    });
    for (const s of [d, p]) {
      expect(s.diskAutoresize).toBe(true);
      expect(s.diskAutoresizeLimit!).toBeGreaterThanOrEqual(s.diskSize!);
      expect(s.databaseFlags).toContainEqual({ name: "log_min_duration_statement", value: "500" });
    }
  });

  test("log retention follows the profile", () => {
    expect(devQ.findOne(gcp.logging.ProjectBucketConfig).inputs).toMatchObject({
      bucketId: "_Default",
      retentionDays: 7,
    });
    expect(prodQ.findOne(gcp.logging.ProjectBucketConfig).inputs.retentionDays).toBe(90);
  });
});

describe("deletion protection", () => {
  test("prod: API deletion protection and Pulumi protect on Cloud SQL, its database and Redis", () => {
    const sql = prodQ.findOne(gcp.sql.DatabaseInstance);
    expect(sql.inputs.deletionProtection).toBe(true);
    expect(sql.inputs.settings!.deletionProtectionEnabled).toBe(true);
    expect(sql.options.protect).toBe(true);
    expect(prodQ.findOne(gcp.sql.Database).options.protect).toBe(true);
    const redis = prodQ.findOne(gcp.redis.Instance);
    expect(redis.inputs.deletionProtection).toBe(true);
    expect(redis.options.protect).toBe(true);
  });

  test("dev: nothing protected, and Redis protection is explicitly off (the provider defaults it on)", () => {
    const sql = devQ.findOne(gcp.sql.DatabaseInstance);
    expect(sql.inputs.deletionProtection).toBe(false);
    expect(sql.inputs.settings!.deletionProtectionEnabled).toBe(false);
    expect(devQ.findOne(gcp.redis.Instance).inputs.deletionProtection).toBe(false);
    expect(
      devQ
        .all()
        .filter((r) => r.options.protect)
        .map((r) => r.name),
    ).toEqual([]);
  });

  test("prod protects exactly the stateful resources", () => {
    expect(
      prodQ
        .all()
        .filter((r) => r.options.protect)
        .map((r) => r.type)
        .sort(),
    ).toEqual([
      "gcp:redis/instance:Instance",
      "gcp:sql/database:Database",
      "gcp:sql/databaseInstance:DatabaseInstance",
    ]);
  });
});

describe("secrets", () => {
  test("three secrets, each replicated in the stack's region, each with one secret version", () => {
    for (const [, , q] of envs()) {
      for (const s of q.findByType(gcp.secretmanager.Secret)) {
        expect(s.inputs.replication).toEqual({
          userManaged: { replicas: [{ location: "us-central1" }] },
        });
      }
      for (const v of q.findByType(gcp.secretmanager.SecretVersion)) {
        expect(v.secretInputs.has("secretData")).toBe(true);
      }
    }
  });

  test("the stored values are the Anthropic key, the Redis AUTH string and the database password", async () => {
    const versions = devQ.findByType(gcp.secretmanager.SecretVersion);
    const byName = (part: string) => versions.find((v) => v.name.includes(part))!.inputs.secretData;
    expect(byName("anthropic-key")).toBe(ANTHROPIC_KEY);
    expect(byName("redis-auth")).toBe(await outputOf(dev.redis.authString));
    expect(byName("postgres-password")).toBe(await outputOf(dev.postgres.password.result));
    expect(devQ.findOne(gcp.sql.User).inputs.password).toBe(
      await outputOf(dev.postgres.password.result),
    );
    expect(devQ.findOne(gcp.sql.User).secretInputs.has("password")).toBe(true);
  });

  test("every secret output is a Pulumi secret", async () => {
    for (const [, plane] of envs()) {
      expect(await isSecretOutput(plane.redis.authString)).toBe(true);
      expect(await isSecretOutput(plane.redis.instance.authString)).toBe(true);
      expect(await isSecretOutput(plane.postgres.password.result)).toBe(true);
      expect(await isSecretOutput(plane.postgres.user.password)).toBe(true);
      for (const s of [
        plane.secrets.anthropicKey!,
        plane.redis.authSecret,
        plane.postgres.passwordSecret,
      ]) {
        expect(await isSecretOutput(s.version.secretData)).toBe(true);
      }
      // The references targets consume carry no secret value (and so are not secret).
      expect(await isSecretOutput(plane.outputs.anthropicKey!.id)).toBe(false);
    }
    expect((await recordOf(dev.postgres.password)).options.additionalSecretOutputs).toContain(
      "result",
    );
    expect((await recordOf(dev.redis.instance)).options.additionalSecretOutputs).toContain(
      "authString",
    );
  });

  test("the contract's secret references point at the three Secret Manager secrets", async () => {
    const o: DataPlaneOutputs = dev.outputs;
    const ids = await Promise.all(o.secrets.map((s) => outputOf(s.id)));
    expect(new Set(ids).size).toBe(3);
    for (const id of ids) expect(id).toMatch(/^projects\/agent-dev-1\/secrets\/agent-dev-/);
    expect(o.secrets.every((s) => s.store === "gcp-secretmanager" && s.version === "latest")).toBe(
      true,
    );
    expect(await outputOf(o.redis.authSecret.id)).toBe(
      await outputOf(dev.redis.authSecret.secret.id),
    );
    expect(await outputOf(o.postgres.passwordSecret.id)).toBe(
      await outputOf(dev.postgres.passwordSecret.secret.id),
    );
    expect(await outputOf(o.anthropicKey!.id)).toContain("anthropic-key");
  });
});

describe("IAM: grantAccess", () => {
  test("binds secretAccessor for exactly the given service account on exactly the data plane's secrets", async () => {
    const g = await within(grant);
    const members = g.findByType(gcp.secretmanager.SecretIamMember);
    expect(members).toHaveLength(3);
    const secretIds = await Promise.all(prod.outputs.secrets.map((s) => outputOf(s.id)));
    expect(members.map((m) => m.inputs.secretId).sort()).toEqual([...secretIds].sort());
    for (const m of members) {
      expect(m.inputs.member).toBe(`serviceAccount:${SA}`);
      expect(m.inputs.role).toBe(SECRET_ACCESSOR_ROLE);
      expect(m.inputs.condition).toBeUndefined();
    }
    // No other IAM of any kind anywhere in the data planes (no project-wide grants).
    const iam = resources.all().filter((r) => /Iam(Member|Binding|Policy)/.test(r.type));
    expect(iam.map((r) => r.type)).toEqual(
      Array(3).fill("gcp:secretmanager/secretIamMember:SecretIamMember"),
    );
  });
});

describe("budget", () => {
  test("alerts at 50/80/100 % of actual spend and 100 % of forecast, to the stack's channels", async () => {
    for (const [, plane, q] of envs()) {
      const b = q.findOne(gcp.billing.Budget).inputs;
      expect(b.thresholdRules).toEqual([
        { thresholdPercent: 0.5, spendBasis: "CURRENT_SPEND" },
        { thresholdPercent: 0.8, spendBasis: "CURRENT_SPEND" },
        { thresholdPercent: 1.0, spendBasis: "CURRENT_SPEND" },
        { thresholdPercent: 1.0, spendBasis: "FORECASTED_SPEND" },
      ]);
      expect(b.billingAccount).toBe("01ABCD-23EF45-6789AB");
      expect(b.allUpdatesRule!.monitoringNotificationChannels).toEqual(
        await outputOf(plane.monitoring.notificationChannelIds),
      );
      expect(b.budgetFilter!.calendarPeriod).toBe("MONTH");
    }
  });

  test("amount from the profile; project filter by number (looked up only when not given)", () => {
    const d = devQ.findOne(gcp.billing.Budget).inputs;
    const p = prodQ.findOne(gcp.billing.Budget).inputs;
    expect(d.amount.specifiedAmount).toEqual({ currencyCode: "USD", units: "200", nanos: 0 });
    expect(p.amount.specifiedAmount!.units).toBe("3000");
    expect(d.budgetFilter!.projects).toEqual([`projects/${MOCK_GCP_PROJECT_NUMBER}`]);
    expect(p.budgetFilter!.projects).toEqual(["projects/987654321098"]);
    expect(
      invocationsOf("gcp:organizations/getProject:getProject").map((i) => i.inputs.projectId),
    ).toEqual(["agent-dev-1"]);
  });
});

describe("monitoring", () => {
  test("store alerts target this stack's Redis and Cloud SQL, and notify the channels", async () => {
    const redisId = await outputOf(dev.redis.instanceId);
    const sqlName = await outputOf(dev.postgres.instance.name);
    const channels = await outputOf(dev.monitoring.notificationChannelIds);
    const policies = devQ.findByType(gcp.monitoring.AlertPolicy);
    const filters = policies.map((p) => p.inputs.conditions[0]!.conditionThreshold!.filter!);
    expect(
      filters.filter((f) => f.includes(`resource.labels.instance_id = "${redisId}"`)),
    ).toHaveLength(1);
    expect(
      filters.filter((f) => f.includes(`resource.labels.database_id = "agent-dev-1:${sqlName}"`)),
    ).toHaveLength(3);
    for (const p of policies) expect(p.inputs.notificationChannels).toEqual(channels);
    expect(devQ.findByType(gcp.monitoring.NotificationChannel).map((c) => c.inputs.labels)).toEqual(
      [{ email_address: "oncall@example.com" }, { email_address: "owner@example.com" }],
    );
  });

  test("the dashboard charts the stores and its console link is exposed", async () => {
    const json = JSON.parse(devQ.findOne(gcp.monitoring.Dashboard).inputs.dashboardJson);
    const text = JSON.stringify(json);
    expect(text).toContain(await outputOf(dev.redis.instanceId));
    expect(json.mosaicLayout.tiles.length).toBeGreaterThanOrEqual(6);
    expect(await outputOf(dev.outputs.monitoring.dashboardUrl)).toMatch(
      /^https:\/\/console\.cloud\.google\.com\/monitoring\/dashboards\/custom\/[0-9a-f-]+\?project=agent-dev-1$/,
    );
  });
});

describe("contract", () => {
  test("outputs describe the GCP network attachment targets join", async () => {
    const n = prod.outputs.network;
    if (n.cloud !== "gcp") throw new Error("expected the gcp attachment");
    expect(n.region).toBe("us-central1");
    expect(n.computeTag).toBe("agent-compute");
    expect(await outputOf(n.subnetworkId)).toMatch(
      /^projects\/agent-prod-1\/regions\/us-central1\/subnetworks\//,
    );
    expect(prod.outputs).toMatchObject({
      cloud: "gcp",
      environment: "prod",
      region: "us-central1",
    });
    expect(prod.outputs.postgres).toMatchObject({ database: "agent", user: "agent" });
    expect(await outputOf(prod.outputs.postgres.port)).toBe(5432);
  });
});

describe("bad arguments", () => {
  const cases: [Partial<GcpDataPlaneArgs>, RegExp][] = [
    [{ alertEmails: [] }, /alertEmails has 0 addresses: give 1 to 5/],
    [{ alertEmails: ["a@x.io", "b@x.io", "c@x.io", "d@x.io", "e@x.io", "f@x.io"] }, /give 1 to 5/],
    [{ project: "Agent_Prod" }, /project "Agent_Prod" is not a GCP project id/],
    [{ region: "central" }, /region "central" is not a GCP region name/],
    [{ monthlyBudgetUsd: -5 }, /monthlyBudgetUsd -5 must be a positive number/],
  ];
  test.each(cases)("%j is rejected with what to change", (override, message) => {
    expect(validateDataPlaneArgs("agent-dev", { ...args("dev"), ...override })).toMatch(message);
  });

  test("a name too long for Memorystore is refused before anything is created", () => {
    const before = resources.count("gcp:redis/instance:Instance");
    let error: unknown;
    try {
      new GcpDataPlane("agent-staging-europe", args("dev"));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(pulumi.ResourceError);
    expect(String((error as Error).message)).toMatch(
      /"agent-staging-europe-redis-instance" is 35 characters.*shorten the component name/,
    );
    expect(resources.count("gcp:redis/instance:Instance")).toBe(before);
  });

  test("errors from child components surface as ResourceErrors too (bad network ranges)", () => {
    expect(
      () =>
        new GcpDataPlane(
          "agent-bad",
          args("dev", {
            network: { subnetCidr: "10.64.0.0/20", privateServiceCidr: "10.64.0.0/16" },
          }),
        ),
    ).toThrow(/overlaps privateServiceCidr "10.64.0.0\/16": pick disjoint ranges/);
  });

  test("a plain empty Anthropic key is refused", () => {
    expect(() => new GcpDataPlane("agent-nokey", args("dev", { anthropicApiKey: "" }))).toThrow(
      /anthropicApiKey is empty: set it/,
    );
  });
});

test("random password: 32 alphanumeric characters (safe in connection strings)", async () => {
  const pw = devQ.findOne(random.RandomPassword).inputs;
  expect(pw).toMatchObject({ length: 32, special: false });
  expect(await outputOf(dev.postgres.password.result)).toMatch(/^[A-Za-z0-9]{32}$/);
});
