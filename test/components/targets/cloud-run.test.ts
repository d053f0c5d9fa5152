import * as gcp from "@pulumi/gcp";

import {
  CloudRunTarget,
  cloudRunProbes,
  invokerProblems,
  memberKey,
  requireDigest,
  secretGrantKeys,
  serviceAccountId,
  type CloudRunTargetArgs,
} from "../../../components/targets/cloud-run";
import { plaintextSecretProblems } from "../../../components/targets/lambda";
import {
  FAKE_GCP,
  FAKE_IMAGE_REF,
  fakeAwsDataPlane,
  fakeGcpDataPlane,
  fakeImageArtifact,
  fakeLambdaZipArtifact,
} from "../../support/fake-data-plane";
import { isSecretOutput, outputOf, setupPulumiMocks } from "../../support/pulumi";
import "../../support/pulumi-gcp-outputs";
import "../../support/pulumi-target-outputs";
import {
  expectOwnedAndNamed,
  extraSecret,
  renderAll,
  targetArgs,
  testRejections,
  type RenderArgs as TargetRenderArgs,
  type Rendered as TargetRendered,
} from "./helpers";

setupPulumiMocks({ stack: "dev" });

const PROJECT = FAKE_GCP.project;

type Rendered = TargetRendered<CloudRunTarget>;
type RenderArgs = TargetRenderArgs<CloudRunTargetArgs>;

const baseArgs = (overrides: RenderArgs = {}) =>
  targetArgs<CloudRunTargetArgs>(
    "gcp",
    { project: PROJECT, artifact: fakeImageArtifact() },
    overrides,
  );
const render = (name: string, overrides: RenderArgs = {}) =>
  new CloudRunTarget(name, baseArgs(overrides));

let dev: Rendered;
let prod: Rendered;
let internal: Rendered;
const GATEWAY = "serviceAccount:gateway@agent-test-project.iam.gserviceaccount.com";
const EXTRA_SECRET = "projects/agent-test-project/secrets/agent-otel-headers";

beforeAll(async () => {
  ({ dev, prod, internal } = await renderAll({
    dev: render("agent-dev"),
    prod: render("agent-prod", { env: "prod" }),
    internal: render("agent-int", {
      ingress: "INGRESS_TRAFFIC_INTERNAL_ONLY",
      invoker: [GATEWAY, "group:agent-admins@example.com"],
      minInstances: 1,
      maxInstances: 3,
      concurrency: 20,
      cpu: "2",
      memory: "2Gi",
      dp: fakeGcpDataPlane({
        extraSecrets: [extraSecret("gcp-secretmanager", EXTRA_SECRET, "agent-otel-headers", "3")],
      }),
    }),
  }));
});

type Container = {
  image: string;
  envs: Array<{
    name: string;
    value?: string;
    valueSource?: { secretKeyRef: { secret: string; version: string } };
  }>;
  ports: { containerPort: number };
  resources: { limits: Record<string, string>; cpuIdle: boolean; startupCpuBoost: boolean };
  startupProbe: {
    httpGet: { path: string; port: number };
    periodSeconds: number;
    failureThreshold: number;
    timeoutSeconds: number;
  };
  livenessProbe: {
    httpGet: { path: string; port: number };
    periodSeconds: number;
    failureThreshold: number;
  };
};

const serviceOf = (r: Rendered) => r.q.findOne(gcp.cloudrunv2.Service);
const templateOf = (r: Rendered) =>
  serviceOf(r).inputs.template as unknown as Record<string, unknown> & { containers: Container[] };
const containerOf = (r: Rendered) => templateOf(r).containers[0]!;
const envOf = (r: Rendered) => containerOf(r).envs;

describe("resources", () => {
  test("dev: service account, three secret bindings, service, public invoker, two alerts, uptime check + its alert", () => {
    expect(dev.q.countsByType()).toEqual({
      "agent:gcp:SecretAccessGrant": 1,
      "agent:gcp:ServiceAlerts": 1,
      "agent:gcp:ServiceUptimeCheck": 1,
      // The service agent pulls the image: granted on its repository (cross-project promotion).
      "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": 1,
      "gcp:cloudrunv2/service:Service": 1,
      "gcp:cloudrunv2/serviceIamMember:ServiceIamMember": 1,
      "gcp:monitoring/alertPolicy:AlertPolicy": 3,
      "gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig": 1,
      "gcp:secretmanager/secretIamMember:SecretIamMember": 3,
      "gcp:serviceaccount/account:Account": 1,
    });
    expect(prod.q.countsByType()).toEqual(dev.q.countsByType());
  });

  test("internal + member invokers: no uptime check (checkers cannot reach it), one invoker binding per member", () => {
    expect(internal.q.count(gcp.monitoring.UptimeCheckConfig)).toBe(0);
    expect(internal.q.count(gcp.monitoring.AlertPolicy)).toBe(2);
    expect(internal.q.count(gcp.cloudrunv2.ServiceIamMember)).toBe(2);
  });

  test("every resource is beneath the component and named after it", async () => {
    for (const r of [dev, prod, internal]) await expectOwnedAndNamed(r);
  });
});

describe("service", () => {
  test("scaling per environment, maxInstanceCount always set; concurrency, cpu and memory", () => {
    expect(templateOf(dev).scaling).toEqual({ minInstanceCount: 0, maxInstanceCount: 5 });
    expect(templateOf(prod).scaling).toEqual({ minInstanceCount: 2, maxInstanceCount: 20 });
    expect(templateOf(internal).scaling).toEqual({ minInstanceCount: 1, maxInstanceCount: 3 });
    expect(templateOf(dev).maxInstanceRequestConcurrency).toBe(80);
    expect(templateOf(internal).maxInstanceRequestConcurrency).toBe(20);
    expect(containerOf(dev).resources).toEqual({
      limits: { cpu: "1", memory: "1Gi" },
      cpuIdle: true,
      startupCpuBoost: true,
    });
    expect(containerOf(internal).resources.limits).toEqual({ cpu: "2", memory: "2Gi" });
  });

  test("gen2, one-hour timeout for long streams, the image by digest, its own service account", () => {
    const t = templateOf(dev);
    expect(t.executionEnvironment).toBe("EXECUTION_ENVIRONMENT_GEN2");
    expect(t.timeout).toBe("3600s");
    expect(containerOf(dev).image).toBe(FAKE_IMAGE_REF);
    expect(t.serviceAccount).toBe(dev.q.findOne(gcp.serviceaccount.Account).state.email);
    expect(serviceOf(dev).inputs.location).toBe(FAKE_GCP.region);
    expect(serviceOf(dev).inputs.project).toBe(PROJECT);
  });

  test("startup probe on /ready, liveness on /health, on the container port", () => {
    const c = containerOf(dev);
    expect(c.ports).toEqual({ containerPort: 8080 });
    expect(c.startupProbe).toMatchObject({
      httpGet: { path: "/ready", port: 8080 },
      periodSeconds: 5,
      failureThreshold: 24,
    });
    expect(c.livenessProbe).toMatchObject({
      httpGet: { path: "/health", port: 8080 },
      periodSeconds: 30,
      failureThreshold: 3,
    });
    expect(c.startupProbe.timeoutSeconds).toBeLessThan(c.startupProbe.periodSeconds);
  });

  test("direct VPC egress: private ranges through the data plane's subnet with the compute tag", () => {
    expect(templateOf(dev).vpcAccess).toEqual({
      networkInterfaces: [
        {
          network: FAKE_GCP.networkId,
          subnetwork: FAKE_GCP.subnetworkId,
          tags: [FAKE_GCP.computeTag],
        },
      ],
      egress: "PRIVATE_RANGES_ONLY",
    });
  });

  test("deletion protection in prod only; ingress from config", () => {
    expect(serviceOf(dev).inputs.deletionProtection).toBe(false);
    expect(serviceOf(prod).inputs.deletionProtection).toBe(true);
    expect(serviceOf(dev).inputs.ingress).toBe("INGRESS_TRAFFIC_ALL");
    expect(serviceOf(internal).inputs.ingress).toBe("INGRESS_TRAFFIC_INTERNAL_ONLY");
  });

  test("labels on the service and its revisions", () => {
    expect(serviceOf(prod).inputs.labels).toMatchObject({
      target: "cloudrun",
      environment: "prod",
    });
    expect(templateOf(prod).labels).toMatchObject({ target: "cloudrun", environment: "prod" });
  });

  test("the service is deployed only after its identity can read the secrets", async () => {
    // Depending on the grant component means depending on each of its bindings.
    const deps = serviceOf(dev).options.dependencies;
    const bindings = dev.q.findByType(gcp.secretmanager.SecretIamMember);
    expect(bindings).toHaveLength(3);
    for (const b of bindings) expect(deps).toContain(b.urn);
  });
});

describe("environment and secrets", () => {
  test("the three secrets come from Secret Manager through secretKeyRef", () => {
    const refs = Object.fromEntries(
      envOf(dev)
        .filter((e) => e.valueSource)
        .map((e) => [e.name, e.valueSource!.secretKeyRef]),
    );
    expect(refs).toEqual({
      ANTHROPIC_API_KEY: { secret: FAKE_GCP.secretIds.anthropic, version: "latest" },
      DATABASE_PASSWORD: { secret: FAKE_GCP.secretIds.postgres, version: "latest" },
      REDIS_PASSWORD: { secret: FAKE_GCP.secretIds.redis, version: "latest" },
    });
  });

  test("no plain value carries a secret, and each variable is set once", () => {
    const envs = envOf(dev);
    for (const e of envs) expect(e.value === undefined || e.valueSource === undefined).toBe(true);
    const plain = Object.fromEntries(
      envs.filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]),
    );
    expect(plaintextSecretProblems(plain)).toEqual([]);
    expect(Object.keys(plain).filter((k) => /_SECRET$/.test(k))).toEqual([]);
    expect(new Set(envs.map((e) => e.name)).size).toBe(envs.length);
    expect(serviceOf(dev).secretInputs.has("template")).toBe(false);
  });

  test("plain variables: stores over TLS, the Memorystore CA, no reserved PORT", () => {
    const plain = Object.fromEntries(
      envOf(dev)
        .filter((e) => e.value !== undefined)
        .map((e) => [e.name, e.value!]),
    );
    expect(plain.DATABASE_URL).toBe(
      `postgres://agent@${FAKE_GCP.postgresHost}:5432/agent?sslmode=require&uselibpqcompat=true`,
    );
    expect(plain.REDIS_URL).toBe(`rediss://${FAKE_GCP.redisHost}:6378`);
    expect(plain.REDIS_TLS_CA).toBe(FAKE_GCP.redisCa);
    expect(plain.NODE_ENV).toBe("production");
    expect(plain).not.toHaveProperty("PORT");
  });

  test("secretAccessor for the service account on exactly the data plane's secrets", () => {
    for (const [r, expected] of [
      [dev, Object.values(FAKE_GCP.secretIds)],
      [internal, [...Object.values(FAKE_GCP.secretIds), EXTRA_SECRET]],
    ] as const) {
      const email = r.q.findOne(gcp.serviceaccount.Account).state.email;
      const bindings = r.q.findByType(gcp.secretmanager.SecretIamMember).map((b) => b.inputs);
      expect(bindings.map((b) => b.secretId).sort()).toEqual([...expected].sort());
      for (const b of bindings) {
        expect(b.role).toBe("roles/secretmanager.secretAccessor");
        expect(b.member).toBe(`serviceAccount:${email}`);
      }
    }
    // Nothing project-wide.
    expect(
      dev.q
        .all()
        .filter((r) => /projectIamMember|projectIamBinding|IAMMember|IAMBinding/.test(r.type)),
    ).toEqual([]);
  });
});

describe("invokers", () => {
  test("public: allUsers may invoke (the app authenticates by API key)", async () => {
    const inv = dev.q.findOne(gcp.cloudrunv2.ServiceIamMember).inputs;
    expect(inv).toMatchObject({ role: "roles/run.invoker", member: "allUsers", project: PROJECT });
    expect(inv.name).toBe(serviceOf(dev).state.name);
  });

  test("members: exactly the listed members, never allUsers", () => {
    const members = internal.q.findByType(gcp.cloudrunv2.ServiceIamMember).map((m) => m.inputs);
    expect(members.map((m) => m.member).sort()).toEqual(
      [GATEWAY, "group:agent-admins@example.com"].sort(),
    );
    expect(members.every((m) => m.role === "roles/run.invoker")).toBe(true);
  });
});

describe("monitoring", () => {
  test("5xx ratio and p99 latency alerts on this service, to the notification channels", () => {
    const name = serviceOf(dev).state.name as string;
    const policies = dev.q
      .findByType(gcp.monitoring.AlertPolicy)
      .filter((p) => !p.name.includes("-uptime-"));
    expect(policies).toHaveLength(2);
    const filters = policies.map(
      (p) =>
        (p.inputs.conditions as Array<{ conditionThreshold: { filter: string } }>)[0]!
          .conditionThreshold.filter,
    );
    expect(
      filters.some(
        (f) =>
          f.includes("run.googleapis.com/request_count") &&
          f.includes('response_code_class = "5xx"'),
      ),
    ).toBe(true);
    expect(filters.some((f) => f.includes("run.googleapis.com/request_latencies"))).toBe(true);
    for (const f of filters) expect(f).toContain(`resource.labels.service_name = "${name}"`);
    for (const p of policies)
      expect(p.inputs.notificationChannels).toEqual([...FAKE_GCP.notificationChannelIds]);
  });

  test("uptime check on the service URL's /health over TLS", () => {
    const check = dev.q.findOne(gcp.monitoring.UptimeCheckConfig).inputs;
    const host = new URL(serviceOf(dev).state.uri as string).hostname;
    expect(check.httpCheck).toMatchObject({ path: "/health", useSsl: true, port: 443 });
    expect((check.monitoredResource as { labels: Record<string, string> }).labels.host).toBe(host);
  });
});

describe("outputs", () => {
  test("url, serviceName, serviceAccountEmail", async () => {
    expect(dev.target.target).toBe("cloudrun");
    expect(await outputOf(dev.target.url)).toBe(serviceOf(dev).state.uri);
    expect(await outputOf(dev.target.serviceName)).toBe(serviceOf(dev).state.name);
    expect(await outputOf(dev.target.serviceAccountEmail)).toBe(
      dev.q.findOne(gcp.serviceaccount.Account).state.email,
    );
    expect(await isSecretOutput(dev.target.url)).toBe(false);
  });
});

test("the wrong cloud's data plane or the wrong kind of artifact is a compile error", () => {
  // Never called: `npm run typecheck` proves each line is refused (an unused expect-error
  // directive fails it), so no run-time check is needed.
  const refused = () => [
    // @ts-expect-error: Cloud Run takes the GCP data plane's contract
    new CloudRunTarget("aws", { ...baseArgs(), dataPlane: fakeAwsDataPlane() }),
    // @ts-expect-error: Cloud Run runs an image, not a Lambda zip
    new CloudRunTarget("zip", { ...baseArgs(), artifact: fakeLambdaZipArtifact() }),
  ];
  expect(refused).toBeInstanceOf(Function);
});
describe("validation", () => {
  const cases: Array<[string, () => RenderArgs, RegExp]> = [
    [
      "min above max",
      () => ({ minInstances: 6, maxInstances: 3 }),
      /cloudRun\.minInstances \(6\) is greater than cloudRun\.maxInstances \(3\)/,
    ],
    ["an empty invoker list", () => ({ invoker: [] }), /invoker is an empty list/],
    ["allUsers in the member list", () => ({ invoker: ["allUsers"] }), /use invoker "public"/],
    [
      "a malformed member",
      () => ({ invoker: ["gateway@example.com"] }),
      /not an IAM member: write it as serviceAccount:<email>/,
    ],
    [
      "an unknown ingress",
      () => ({ ingress: "INTERNAL" as never }),
      /ingress "INTERNAL" is unknown/,
    ],
    [
      "a bad project id",
      () => ({ project: "My Project" }),
      /project "My Project" is not a GCP project id/,
    ],
    ["a timeout beyond an hour", () => ({ timeoutSeconds: 4000 }), /timeoutSeconds is 4000/],
    ["PORT in extraEnv", () => ({ extraEnv: { PORT: "9000" } }), /extraEnv sets PORT/],
    [
      "a secret-looking extra variable",
      () => ({ extraEnv: { STRIPE_TOKEN: "x" } }),
      /extraEnv: extra environment variable STRIPE_TOKEN looks like a secret/,
    ],
    [
      "a secret variable in extraEnv",
      () => ({ extraEnv: { ANTHROPIC_API_KEY: "x" } }),
      /extraEnv sets ANTHROPIC_API_KEY/,
    ],
    [
      "memory the cpu cannot have",
      () => ({ memory: "16Gi" }),
      /cloudRun\.memory "16Gi" exceeds 4Gi/,
    ],
  ];

  testRejections(cases, (o) => render("bad", o), /^CloudRunTarget "bad": /);

  test("a name too long for a Cloud Run service", () => {
    expect(() => render("a".repeat(40))).toThrow(/shorten the component name/);
  });
});

describe("pure helpers", () => {
  test("service account ids are 6-30 chars, start with a letter, differ per stack", () => {
    const re = /^[a-z](?:[-a-z0-9]{4,28}[a-z0-9])$/;
    for (const name of [
      "agent",
      "a",
      "Agent_Prod.Service",
      "9lives",
      "x".repeat(60),
      "agent-cloud-run-target-for-production",
    ]) {
      const id = serviceAccountId(name, PROJECT, "dev");
      expect(id).toMatch(re);
    }
    expect(serviceAccountId("agent", PROJECT, "dev")).not.toBe(
      serviceAccountId("agent", PROJECT, "prod"),
    );
    expect(serviceAccountId("agent", PROJECT, "dev")).toBe(
      serviceAccountId("agent", PROJECT, "dev"),
    );
  });

  test("secret grant keys follow the variable each secret feeds", () => {
    const dp = fakeGcpDataPlane();
    expect(Object.keys(secretGrantKeys(dp)).sort()).toEqual([
      "anthropic-api-key",
      "database-password",
      "redis-password",
    ]);
    const extra = extraSecret("gcp-secretmanager", "projects/p/secrets/x", "x", "1");
    expect(Object.keys(secretGrantKeys(fakeGcpDataPlane({ extraSecrets: [extra] })))).toContain(
      "secret-3",
    );
  });

  test("member keys, invoker checks, digest pinning, probes", () => {
    expect(memberKey("serviceAccount:gw@p.iam.gserviceaccount.com")).toBe(
      "serviceaccount-gw-p-iam-gserviceaccount-com",
    );
    expect(invokerProblems("public")).toEqual([]);
    expect(invokerProblems(["user:a@b.c", "user:a@b.c"])).toEqual([expect.stringMatching(/twice/)]);
    expect(requireDigest(FAKE_IMAGE_REF)).toBe(FAKE_IMAGE_REF);
    expect(() => requireDigest("us-docker.pkg.dev/p/r/agent:latest")).toThrow(
      /not pinned by digest/,
    );
    expect(cloudRunProbes(9000).startupProbe.httpGet).toEqual({ path: "/ready", port: 9000 });
  });
});
