import * as gcp from "@pulumi/gcp";
import { parse } from "yaml";

import {
  COS_IMAGE,
  GOOGLE_LB_RANGES,
  GcpVmGroupTarget,
  artifactRepository,
  requireArtifactRepository,
  resolveGcpVmGroupSettings,
  type GcpVmGroupTargetArgs,
} from "../../../components/targets/vm-group-gcp";
import {
  FAKE_GCP,
  FAKE_IMAGE_DIGEST,
  FAKE_IMAGE_REF,
  fakeAwsDataPlane,
  fakeGcpDataPlane,
  fakeImageArtifact,
  fakeLambdaZipArtifact,
} from "../../support/fake-data-plane";
import { outputOf, setupPulumiMocks } from "../../support/pulumi";
import "../../support/pulumi-gcp-outputs";
import { MOCK_LB_IP as IP } from "../../support/pulumi-target-outputs";
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

const PROJECT = FAKE_GCP.project;

const DOMAIN = "agent.example.com";
const EXTRA_SECRET = "projects/agent-test-project/secrets/agent-otel-headers";
const SHARED_IMAGE = `europe-west4-docker.pkg.dev/agent-artifacts/releases/agent@${FAKE_IMAGE_DIGEST}`;

type Rendered = TargetRendered<GcpVmGroupTarget>;
type RenderArgs = TargetRenderArgs<GcpVmGroupTargetArgs>;

const args = (overrides: RenderArgs = {}) =>
  targetArgs<GcpVmGroupTargetArgs>(
    "gcp",
    { project: PROJECT, artifact: fakeImageArtifact() },
    overrides,
  );

const render = (name: string, overrides: RenderArgs = {}) =>
  new GcpVmGroupTarget(name, args(overrides));

let dev: Rendered;
let prod: Rendered;
let custom: Rendered;

beforeAll(async () => {
  ({ dev, prod, custom } = await renderAll({
    dev: render("agent-dev"),
    prod: render("agent-prod", { env: "prod", domain: DOMAIN }),
    custom: render("agent-custom", {
      machineType: "e2-standard-2",
      zones: ["us-central1-a", "us-central1-b", "us-central1-c"],
      minInstances: 2,
      maxInstances: 6,
      targetCpuPercent: 70,
      artifact: fakeImageArtifact(SHARED_IMAGE),
      labels: { team: "agents" },
      dp: fakeGcpDataPlane({
        extraSecrets: [extraSecret("gcp-secretmanager", EXTRA_SECRET, "agent-otel-headers", "3")],
      }),
    }),
  }));
});

type Inputs = Record<string, unknown>;
const template = (r: Rendered) =>
  r.q.findOne(gcp.compute.InstanceTemplate).inputs as unknown as Inputs & {
    networkInterfaces: Array<Inputs>;
    metadata: Record<string, string>;
    disks: Array<Inputs>;
    tags: string[];
    shieldedInstanceConfig: Inputs;
    serviceAccount: { email: string; scopes: string[] };
    labels: Record<string, string>;
  };
const mig = (r: Rendered) => r.q.findOne(gcp.compute.RegionInstanceGroupManager);
const sa = (r: Rendered) =>
  r.q.findOne(gcp.serviceaccount.Account).state as { email: string; member: string };
const exact = <T extends { name: string }>(items: T[], name: string): T => {
  const found = items.filter((i) => i.name === name);
  if (found.length !== 1)
    throw new Error(`expected one ${name}, found ${items.map((i) => i.name).join(", ")}`);
  return found[0]!;
};
const userDataOf = (r: Rendered) => template(r).metadata["user-data"]!;
const filesOf = (doc: string) =>
  (parse(doc) as { write_files: Array<{ path: string; content: string; permissions: string }> })
    .write_files;

describe("resources", () => {
  const common = {
    "agent:gcp:SecretAccessGrant": 1,
    "agent:gcp:ServiceAlerts": 1,
    // Every target has an uptime check on its entry point (issue 12: vm-gcp had none).
    "agent:gcp:ServiceUptimeCheck": 1,
    "gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig": 1,
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": 1,
    "gcp:compute/backendService:BackendService": 1,
    "gcp:compute/firewall:Firewall": 1,
    "gcp:compute/globalAddress:GlobalAddress": 1,
    "gcp:compute/healthCheck:HealthCheck": 2,
    "gcp:compute/instanceTemplate:InstanceTemplate": 1,
    "gcp:compute/regionAutoscaler:RegionAutoscaler": 1,
    "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager": 1,
    "gcp:compute/targetHttpProxy:TargetHttpProxy": 1,
    "gcp:monitoring/alertPolicy:AlertPolicy": 3,
    "gcp:projects/iAMMember:IAMMember": 2,
    "gcp:secretmanager/secretIamMember:SecretIamMember": 3,
    "gcp:serviceaccount/account:Account": 1,
  };

  test("dev: HTTP proxy and one forwarding rule on port 80", () => {
    expect(dev.q.countsByType()).toEqual({
      ...common,
      "gcp:compute/globalForwardingRule:GlobalForwardingRule": 1,
      "gcp:compute/uRLMap:URLMap": 1,
    });
    expect(dev.q.count()).toBe(25);
  });

  test("prod (domain): managed certificate, TLS policy, HTTPS proxy, redirect URL map, two forwarding rules", () => {
    expect(prod.q.countsByType()).toEqual({
      ...common,
      "gcp:compute/globalForwardingRule:GlobalForwardingRule": 2,
      "gcp:compute/managedSslCertificate:ManagedSslCertificate": 1,
      "gcp:compute/sSLPolicy:SSLPolicy": 1,
      "gcp:compute/targetHttpsProxy:TargetHttpsProxy": 1,
      "gcp:compute/uRLMap:URLMap": 2,
    });
    expect(prod.q.count()).toBe(30);
  });

  test("every resource is beneath the component and named after it", async () => {
    for (const r of [dev, prod, custom]) await expectOwnedAndNamed(r, "agent:targets:GcpVmGroup");
  });

  test("outputs", async () => {
    expect(dev.target.target).toBe("vmgroup");
    expect(await outputOf(dev.target.url)).toBe(`http://${IP}`);
    expect(await outputOf(prod.target.url)).toBe(`https://${DOMAIN}`);
    expect(await outputOf(dev.target.ipAddress)).toBe(IP);
    expect(await outputOf(dev.target.instanceGroupManager)).toBe(mig(dev).state.name);
    expect(await outputOf(dev.target.serviceAccountEmail)).toBe(sa(dev).email);
  });
});

describe("instance template", () => {
  test("no external IP: the data plane's subnet, no access config", () => {
    for (const r of [dev, prod]) {
      expect(template(r).networkInterfaces).toEqual([
        { network: FAKE_GCP.networkId, subnetwork: FAKE_GCP.subnetworkId },
      ]);
      expect(template(r).networkInterfaces[0]!.accessConfigs).toBeUndefined();
    }
  });

  test("shielded VM: secure boot, vTPM, integrity monitoring", () => {
    expect(template(dev).shieldedInstanceConfig).toEqual({
      enableSecureBoot: true,
      enableVtpm: true,
      enableIntegrityMonitoring: true,
    });
  });

  test("Container-Optimized OS from the cos-stable family; pd-balanced boot disk", () => {
    expect(COS_IMAGE).toBe("projects/cos-cloud/global/images/family/cos-stable");
    expect(template(dev).disks).toEqual([
      {
        boot: true,
        autoDelete: true,
        sourceImage: COS_IMAGE,
        diskType: "pd-balanced",
        diskSizeGb: 20,
      },
    ]);
  });

  test("no project SSH keys, OS Login, the compute tag, its own service account", () => {
    const t = template(dev);
    expect(t.metadata).toMatchObject({
      "block-project-ssh-keys": "true",
      "enable-oslogin": "TRUE",
    });
    expect(t.tags).toEqual([FAKE_GCP.computeTag]);
    expect(t.serviceAccount).toEqual({
      email: sa(dev).email,
      scopes: ["https://www.googleapis.com/auth/cloud-platform"],
    });
    expect(t.machineType).toBe("e2-small");
    expect(template(custom).machineType).toBe("e2-standard-2");
    expect(template(custom).labels).toEqual({
      team: "agents",
      target: "vmgroup",
      environment: "dev",
    });
  });

  test("no secret among the template's inputs", () => {
    expect(dev.q.findOne(gcp.compute.InstanceTemplate).secretInputs.size).toBe(0);
  });
});

describe("user data", () => {
  validatorTest("the metadata's user-data passes the real validator (dev and prod)", () => {
    for (const r of [dev, prod]) expectValidCloudConfig(userDataOf(r));
  });

  test("runs the image by digest with Artifact Registry credentials and gcplogs", async () => {
    const doc = userDataOf(dev);
    const script = filesOf(doc).find((f) => f.path === "/etc/agent/start.sh")!.content;
    expect(script).toContain(`docker pull ${FAKE_IMAGE_REF}`);
    expect(script).toContain(
      "docker-credential-gcr configure-docker --registries us-central1-docker.pkg.dev",
    );
    expect(script).toContain("--log-driver gcplogs");
    expect(script).toContain("--publish 8080:8080");
    expect(script).toContain("--read-only");
    expect(await outputOf(dev.target.userData)).toBe(doc);
    // A shared registry elsewhere is logged in to where it is.
    expect(userDataOf(custom)).toContain("--registries europe-west4-docker.pkg.dev");
  });

  test("secret references only; the Memorystore CA in its own file", () => {
    const files = filesOf(userDataOf(dev));
    const env = files.find((f) => f.path === "/etc/agent/agent.env")!;
    expect(env.permissions).toBe("0600");
    expect(env.content).toContain(
      `ANTHROPIC_API_KEY_SECRET=gcp-sm://${FAKE_GCP.secretIds.anthropic}/versions/latest`,
    );
    expect(env.content).toContain(
      `DATABASE_PASSWORD_SECRET=gcp-sm://${FAKE_GCP.secretIds.postgres}/versions/latest`,
    );
    expect(env.content).toContain(
      `REDIS_PASSWORD_SECRET=gcp-sm://${FAKE_GCP.secretIds.redis}/versions/latest`,
    );
    expect(env.content).toContain(`REDIS_URL=rediss://${FAKE_GCP.redisHost}:6378`);
    expect(env.content).not.toContain("REDIS_TLS_CA");
    expect(files.find((f) => f.path === "/etc/agent/env.d/REDIS_TLS_CA")!.content).toBe(
      FAKE_GCP.redisCa,
    );
    const doc = userDataOf(dev);
    expect(doc).not.toMatch(/^\s*(ANTHROPIC_API_KEY|DATABASE_PASSWORD|REDIS_PASSWORD)=/m);
    expect(doc).not.toMatch(/:\/\/[^/@\s]*:[^/@\s]*@/);
  });
});

describe("service account", () => {
  test("secretAccessor on exactly the data plane's secrets, per secret", () => {
    const bindings = (r: Rendered) =>
      r.q.findByType(gcp.secretmanager.SecretIamMember).map((b) => b.inputs);
    for (const b of bindings(dev)) {
      expect(b.role).toBe("roles/secretmanager.secretAccessor");
      expect(b.member).toBe(`serviceAccount:${sa(dev).email}`);
    }
    expect(
      bindings(dev)
        .map((b) => b.secretId)
        .sort(),
    ).toEqual(Object.values(FAKE_GCP.secretIds).sort());
    expect(
      bindings(custom)
        .map((b) => b.secretId)
        .sort(),
    ).toEqual([...Object.values(FAKE_GCP.secretIds), EXTRA_SECRET].sort());
  });

  test("artifactregistry.reader on the image's repository, wherever it lives", () => {
    expect(dev.q.findOne(gcp.artifactregistry.RepositoryIamMember).inputs).toEqual({
      project: "agent-test-project",
      location: "us-central1",
      repository: "agent",
      role: "roles/artifactregistry.reader",
      member: sa(dev).member,
    });
    expect(custom.q.findOne(gcp.artifactregistry.RepositoryIamMember).inputs).toMatchObject({
      project: "agent-artifacts",
      location: "europe-west4",
      repository: "releases",
    });
  });

  test("project roles: log writer and metric writer, nothing else", () => {
    const roles = dev.q.findByType(gcp.projects.IAMMember).map((m) => m.inputs);
    expect(roles.map((r) => r.role).sort()).toEqual([
      "roles/logging.logWriter",
      "roles/monitoring.metricWriter",
    ]);
    for (const r of roles) {
      expect(r.project).toBe(PROJECT);
      expect(r.member).toBe(sa(dev).member);
    }
  });

  test("the template waits for the grants (a component dependency expands to its children)", () => {
    const deps = dev.q.findOne(gcp.compute.InstanceTemplate).options.dependencies;
    const grantUrns = [
      ...dev.q.findByType(gcp.secretmanager.SecretIamMember),
      ...dev.q.findByType(gcp.artifactregistry.RepositoryIamMember),
      ...dev.q.findByType(gcp.projects.IAMMember),
    ].map((r) => r.urn);
    for (const urn of grantUrns) expect(deps).toContain(urn);
  });
});

describe("managed instance group", () => {
  test("regional, named port http:8080, the template's unique self link", () => {
    const m = mig(dev).inputs as unknown as Inputs & { versions: Inputs[]; namedPorts: Inputs[] };
    expect(m.region).toBe(FAKE_GCP.region);
    expect(m.namedPorts).toEqual([{ name: "http", port: 8080 }]);
    expect(m.versions).toEqual([
      {
        name: "primary",
        instanceTemplate: dev.q.findOne(gcp.compute.InstanceTemplate).state.selfLinkUnique,
      },
    ]);
    expect(m.baseInstanceName).toBe("agent-dev");
    expect(m.targetSize).toBeUndefined();
  });

  test("auto-healing on /ready after an initial delay", () => {
    const autoheal = exact(dev.q.findByType(gcp.compute.HealthCheck), "agent-dev-autoheal-hc");
    expect(mig(dev).inputs.autoHealingPolicies).toEqual({
      healthCheck: autoheal.id,
      initialDelaySec: 300,
    });
    expect(autoheal.inputs.httpHealthCheck).toEqual({ port: 8080, requestPath: "/ready" });
    expect(autoheal.inputs.unhealthyThreshold).toBeGreaterThan(2);
  });

  test("proactive rolling updates that never go below the target size", () => {
    expect(mig(dev).inputs.updatePolicy).toMatchObject({
      type: "PROACTIVE",
      minimalAction: "REPLACE",
      maxUnavailableFixed: 0,
      maxSurgeFixed: 4,
    });
    // With zones given, the surge is their count (a regional group needs 0 or at least that many).
    expect(mig(custom).inputs.updatePolicy).toMatchObject({
      maxUnavailableFixed: 0,
      maxSurgeFixed: 3,
    });
    expect(mig(custom).inputs.distributionPolicyZones).toEqual([
      "us-central1-a",
      "us-central1-b",
      "us-central1-c",
    ]);
    expect(mig(dev).inputs.distributionPolicyZones).toBeUndefined();
  });

  test("autoscaler bounds and CPU target per environment", () => {
    const a = (r: Rendered) =>
      r.q.findOne(gcp.compute.RegionAutoscaler).inputs as unknown as Inputs & {
        autoscalingPolicy: Inputs;
      };
    expect(a(dev).target).toBe(mig(dev).id);
    expect(a(dev).autoscalingPolicy).toMatchObject({
      minReplicas: 1,
      maxReplicas: 3,
      cpuUtilization: { target: 0.6 },
      mode: "ON",
    });
    expect(a(prod).autoscalingPolicy).toMatchObject({ minReplicas: 2, maxReplicas: 10 });
    expect(a(custom).autoscalingPolicy).toMatchObject({
      minReplicas: 2,
      maxReplicas: 6,
      cpuUtilization: { target: 0.7 },
    });
  });

  test("firewall: only Google's health-check and proxy ranges, only 8080, only the compute tag", () => {
    const fw = dev.q.findOne(gcp.compute.Firewall).inputs;
    expect(fw).toMatchObject({
      network: FAKE_GCP.networkId,
      direction: "INGRESS",
      sourceRanges: ["35.191.0.0/16", "130.211.0.0/22"],
      targetTags: [FAKE_GCP.computeTag],
      allows: [{ protocol: "tcp", ports: ["8080"] }],
    });
    expect([...GOOGLE_LB_RANGES]).toEqual(fw.sourceRanges);
    expect(fw.sourceTags).toBeUndefined();
  });
});

describe("load balancer", () => {
  test("backend: the group on the named port, /ready health check, 30 s draining, request logs", () => {
    const lbHc = exact(dev.q.findByType(gcp.compute.HealthCheck), "agent-dev-lb-hc");
    expect(lbHc.inputs.httpHealthCheck).toEqual({ port: 8080, requestPath: "/ready" });
    expect(dev.q.findOne(gcp.compute.BackendService).inputs).toMatchObject({
      loadBalancingScheme: "EXTERNAL_MANAGED",
      protocol: "HTTP",
      portName: "http",
      healthChecks: lbHc.id,
      connectionDrainingTimeoutSec: 30,
      timeoutSec: 3600,
      logConfig: { enable: true, sampleRate: 1 },
      backends: [
        {
          group: mig(dev).state.instanceGroup,
          balancingMode: "UTILIZATION",
          maxUtilization: 0.8,
          capacityScaler: 1,
        },
      ],
    });
  });

  test("a global static IP carries every forwarding rule", () => {
    for (const r of [dev, prod]) {
      for (const fr of r.q.findByType(gcp.compute.GlobalForwardingRule)) {
        expect(fr.inputs).toMatchObject({
          ipAddress: IP,
          loadBalancingScheme: "EXTERNAL_MANAGED",
          ipProtocol: "TCP",
        });
      }
    }
  });

  test("without a domain: an HTTP proxy on port 80 to the service (dev)", () => {
    const urlMap = dev.q.findOne(gcp.compute.URLMap);
    expect(urlMap.inputs.defaultService).toBe(dev.q.findOne(gcp.compute.BackendService).id);
    const proxy = dev.q.findOne(gcp.compute.TargetHttpProxy);
    expect(proxy.inputs.urlMap).toBe(urlMap.id);
    expect(dev.q.findOne(gcp.compute.GlobalForwardingRule).inputs).toMatchObject({
      portRange: "80",
      target: proxy.id,
    });
  });

  test("with a domain: managed certificate and modern TLS on 443; port 80 redirects to HTTPS", () => {
    const cert = prod.q.findOne(gcp.compute.ManagedSslCertificate);
    expect(cert.inputs).toMatchObject({ type: "MANAGED", managed: { domains: [DOMAIN] } });
    const tls = prod.q.findOne(gcp.compute.SSLPolicy);
    expect(tls.inputs).toMatchObject({ profile: "MODERN", minTlsVersion: "TLS_1_2" });
    const main = exact(prod.q.findByType(gcp.compute.URLMap), "agent-prod-urlmap");
    const https = prod.q.findOne(gcp.compute.TargetHttpsProxy);
    expect(https.inputs).toMatchObject({
      urlMap: main.id,
      sslCertificates: [cert.id],
      sslPolicy: tls.id,
    });
    const redirect = exact(prod.q.findByType(gcp.compute.URLMap), "agent-prod-redirect");
    expect(redirect.inputs.defaultUrlRedirect).toEqual({
      httpsRedirect: true,
      redirectResponseCode: "MOVED_PERMANENTLY_DEFAULT",
      stripQuery: false,
    });
    expect(redirect.inputs.defaultService).toBeUndefined();
    const http = prod.q.findOne(gcp.compute.TargetHttpProxy);
    expect(http.inputs.urlMap).toBe(redirect.id);
    const rules = prod.q.findByType(gcp.compute.GlobalForwardingRule);
    expect(exact(rules, "agent-prod-https").inputs).toMatchObject({
      portRange: "443",
      target: https.id,
    });
    expect(exact(rules, "agent-prod-http").inputs).toMatchObject({
      portRange: "80",
      target: http.id,
    });
  });
});

describe("alerts", () => {
  test("5xx ratio and p99 latency on the load balancer's URL map, to the data plane's channels", () => {
    const policies = dev.q.findByType(gcp.monitoring.AlertPolicy);
    expect(policies.map((p) => p.name).sort()).toEqual([
      "agent-dev-alerts-error-ratio",
      "agent-dev-alerts-latency",
      "agent-dev-uptime-failing",
    ]);
    const urlMapName = String(dev.q.findOne(gcp.compute.URLMap).state.name);
    for (const p of policies) {
      expect(p.inputs.notificationChannels).toEqual([...FAKE_GCP.notificationChannelIds]);
      if (p.name.endsWith("-uptime-failing")) continue;
      const filter = (p.inputs.conditions as Array<{ conditionThreshold: { filter: string } }>)[0]!
        .conditionThreshold.filter;
      expect(filter).toContain('resource.type = "https_lb_rule"');
      expect(filter).toContain(`resource.labels.url_map_name = "${urlMapName}"`);
    }
  });
});

describe("bad args", () => {
  test("the wrong cloud's data plane or the wrong kind of artifact is a compile error", () => {
    // Never called: `npm run typecheck` proves each line is refused (an unused expect-error
    // directive fails it), so no run-time check is needed.
    const refused = () => [
      // @ts-expect-error: a GCP VM group takes the GCP data plane's contract
      new GcpVmGroupTarget("aws", { ...args(), dataPlane: fakeAwsDataPlane() }),
      // @ts-expect-error: a VM group runs an image, not a Lambda zip
      new GcpVmGroupTarget("zip", { ...args(), artifact: fakeLambdaZipArtifact() }),
    ];
    expect(refused).toBeInstanceOf(Function);
  });
  const cases: Array<[string, () => RenderArgs, RegExp]> = [
    [
      "min above max",
      () => ({ minInstances: 4, maxInstances: 2 }),
      /vm.minInstances \(4\) is greater than vm.maxInstances \(2\)/,
    ],
    [
      "a bad domain",
      () => ({ domain: "https://agent.example.com" }),
      /domain "https:\/\/agent.example.com" is not a lowercase host name/,
    ],
    [
      "a zone of another region",
      () => ({ zones: ["europe-west4-a"] }),
      /zone "europe-west4-a" is not a zone of us-central1/,
    ],
    ["a bad project", () => ({ project: "Agent" }), /project "Agent" is not a GCP project id/],
    [
      "a bad alert threshold",
      () => ({ alertThresholds: { errorRatio: 5 } }),
      /alertThresholds.errorRatio 5 must be a ratio/,
    ],
    ["a bad sample rate", () => ({ logSampleRate: 2 }), /logSampleRate 2 must be between 0 and 1/],
  ];

  testRejections(cases, (o) => render("bad-vm", o), /^GcpVmGroupTarget "bad-vm": /);

  test("a name that cannot prefix GCP names", () => {
    expect(() => render("Agent_VM")).toThrow(
      /"Agent_VM-autoheal-hc" is not a valid GCP resource name/,
    );
  });

  test("an image outside Artifact Registry is refused with what to change", () => {
    expect(() => requireArtifactRepository(`ghcr.io/example/agent@${FAKE_IMAGE_DIGEST}`)).toThrow(
      /not in Artifact Registry by digest/,
    );
    expect(() =>
      requireArtifactRepository("us-central1-docker.pkg.dev/p1-project/agent/agent:latest"),
    ).toThrow(/by digest/);
    expect(artifactRepository(FAKE_IMAGE_REF)).toEqual({
      location: "us-central1",
      project: "agent-test-project",
      repository: "agent",
    });
  });

  test("settings per environment", () => {
    expect(resolveGcpVmGroupSettings("agent", args()).settings).toMatchObject({
      scaling: { minInstances: 1, maxInstances: 3, targetCpuPercent: 60 },
      maxSurge: 4,
      labels: { target: "vmgroup", environment: "dev" },
    });
    expect(
      resolveGcpVmGroupSettings("agent", args({ env: "prod", domain: DOMAIN })).settings,
    ).toMatchObject({
      scaling: { minInstances: 2, maxInstances: 10 },
      domain: DOMAIN,
    });
  });
});
