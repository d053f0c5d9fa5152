/**
 * Provider-computed outputs and invokes for the GCP resources this project creates, registered on
 * the shared mock runtime (`infra/plan/mock-runtime.ts`). Import it once, after `setupPulumiMocks`.
 *
 * Values follow the formats the Google provider returns (ids such as
 * `projects/<p>/locations/<r>/instances/<name>`), because components build monitoring filters,
 * console links and secret references out of them. Names that Pulumi auto-names are produced the
 * way the engine does: the logical name, a hyphen and seven random characters.
 */
import { registerComputedOutputs, registerInvoke, type MockResourceContext } from "./mock-runtime";

/** The number `getProject` answers with. */
export const MOCK_GCP_PROJECT_NUMBER = "123456789012";
/** The token `getClientConfig` answers with. */
export const MOCK_GCP_ACCESS_TOKEN = "ya29.mock-access-token";

function str(v: unknown, fallback: string): string {
  return typeof v === "string" && v.length > 0 ? v : fallback;
}

/** The physical name: the explicit `name` input, or Pulumi's auto-name. */
function autoname(ctx: MockResourceContext, key = "name"): string {
  return str(ctx.plainInputs[key], `${ctx.name}-${ctx.hash(7)}`);
}

function projectOf(ctx: MockResourceContext): string {
  return str(ctx.plainInputs.project, "mock-provider-project");
}

function regionOf(ctx: MockResourceContext): string {
  return str(ctx.plainInputs.region, "us-central1");
}

function pem(label: string): string {
  return `-----BEGIN CERTIFICATE-----\nMIIB${Buffer.from(label).toString("base64")}\n-----END CERTIFICATE-----\n`;
}

registerComputedOutputs("gcp:compute/network:Network", (ctx) => {
  const name = autoname(ctx);
  const id = `projects/${projectOf(ctx)}/global/networks/${name}`;
  return {
    id,
    name,
    selfLink: `https://www.googleapis.com/compute/v1/${id}`,
    numericId: ctx.hash(10),
  };
});

registerComputedOutputs("gcp:compute/subnetwork:Subnetwork", (ctx) => {
  const name = autoname(ctx);
  const id = `projects/${projectOf(ctx)}/regions/${regionOf(ctx)}/subnetworks/${name}`;
  return {
    id,
    name,
    selfLink: `https://www.googleapis.com/compute/v1/${id}`,
    gatewayAddress: "10.10.0.1",
  };
});

registerComputedOutputs("gcp:compute/globalAddress:GlobalAddress", (ctx) => {
  const name = autoname(ctx);
  const id = `projects/${projectOf(ctx)}/global/addresses/${name}`;
  return { id, name, selfLink: `https://www.googleapis.com/compute/v1/${id}` };
});

registerComputedOutputs("gcp:servicenetworking/connection:Connection", (ctx) => ({
  id: `${str(ctx.plainInputs.network, "network")}:${str(ctx.plainInputs.service, "service")}`,
  peering: "servicenetworking-googleapis-com",
}));

for (const [type, collection] of [
  ["gcp:compute/router:Router", "routers"],
  ["gcp:compute/firewall:Firewall", "firewalls"],
] as const) {
  registerComputedOutputs(type, (ctx) => {
    const name = autoname(ctx);
    const scope = type.endsWith("Router") ? `regions/${regionOf(ctx)}` : "global";
    const id = `projects/${projectOf(ctx)}/${scope}/${collection}/${name}`;
    return { id, name, selfLink: `https://www.googleapis.com/compute/v1/${id}` };
  });
}

registerComputedOutputs("gcp:compute/routerNat:RouterNat", (ctx) => {
  const name = autoname(ctx);
  return {
    id: `${projectOf(ctx)}/${regionOf(ctx)}/${str(ctx.plainInputs.router, "router")}/${name}`,
    name,
  };
});

registerComputedOutputs("gcp:redis/instance:Instance", (ctx) => {
  const name = autoname(ctx);
  const tls = ctx.plainInputs.transitEncryptionMode === "SERVER_AUTHENTICATION";
  return {
    id: `projects/${projectOf(ctx)}/locations/${regionOf(ctx)}/instances/${name}`,
    name,
    host: "10.64.0.4",
    port: tls ? 6378 : 6379,
    // Memorystore generates the AUTH string only when AUTH is enabled.
    authString: ctx.plainInputs.authEnabled === true ? `auth-${ctx.hash(32)}` : undefined,
    serverCaCerts: tls
      ? [{ cert: pem(`${name}-ca`), serialNumber: "1", sha1Fingerprint: ctx.hash(40) }]
      : [],
    currentLocationId: `${regionOf(ctx)}-a`,
    readEndpoint: "",
  };
});

registerComputedOutputs("gcp:sql/databaseInstance:DatabaseInstance", (ctx) => {
  const name = autoname(ctx);
  const project = projectOf(ctx);
  const settings = (ctx.plainInputs.settings ?? {}) as {
    ipConfiguration?: { ipv4Enabled?: boolean };
  };
  const publicIp = settings.ipConfiguration?.ipv4Enabled === false ? undefined : "203.0.113.30";
  const ipAddresses = [
    { ipAddress: "10.64.1.3", type: "PRIVATE" },
    ...(publicIp ? [{ ipAddress: publicIp, type: "PRIMARY" }] : []),
  ];
  return {
    id: name,
    name,
    connectionName: `${project}:${regionOf(ctx)}:${name}`,
    privateIpAddress: "10.64.1.3",
    publicIpAddress: publicIp,
    ipAddresses,
    selfLink: `https://sqladmin.googleapis.com/sql/v1beta4/projects/${project}/instances/${name}`,
    serverCaCerts: [
      { cert: pem(`${name}-sql-ca`), commonName: name, sha1Fingerprint: ctx.hash(40) },
    ],
    dnsName: `${ctx.hash(12)}.${regionOf(ctx)}.sql.goog.`,
  };
});

registerComputedOutputs("gcp:sql/database:Database", (ctx) => {
  const name = autoname(ctx);
  return {
    id: `projects/${projectOf(ctx)}/instances/${str(ctx.plainInputs.instance, "instance")}/databases/${name}`,
    name,
  };
});

registerComputedOutputs("gcp:sql/user:User", (ctx) => ({
  id: `${autoname(ctx)}//${str(ctx.plainInputs.instance, "instance")}`,
}));

registerComputedOutputs("gcp:secretmanager/secret:Secret", (ctx) => {
  const secretId = autoname(ctx, "secretId");
  return {
    id: `projects/${projectOf(ctx)}/secrets/${secretId}`,
    secretId,
    name: `projects/${MOCK_GCP_PROJECT_NUMBER}/secrets/${secretId}`,
  };
});

registerComputedOutputs("gcp:secretmanager/secretVersion:SecretVersion", (ctx) => {
  const secret = str(ctx.plainInputs.secret, "projects/p/secrets/s");
  return {
    id: `${secret}/versions/1`,
    name: `${secret}/versions/1`,
    version: "1",
    createTime: "2025-01-01T00:00:00Z",
  };
});

registerComputedOutputs("gcp:secretmanager/secretIamMember:SecretIamMember", (ctx) => ({
  id: `${str(ctx.plainInputs.secretId, "secret")}/${str(ctx.plainInputs.role, "role")}/${str(ctx.plainInputs.member, "member")}`,
  etag: `BwY${ctx.hash(8)}`,
}));

for (const [type, collection] of [
  ["gcp:monitoring/notificationChannel:NotificationChannel", "notificationChannels"],
  ["gcp:monitoring/alertPolicy:AlertPolicy", "alertPolicies"],
] as const) {
  registerComputedOutputs(type, (ctx) => {
    const id = `projects/${projectOf(ctx)}/${collection}/${BigInt(`0x${ctx.hash(12)}`).toString()}`;
    return { id, name: id };
  });
}

registerComputedOutputs("gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig", (ctx) => {
  const uptimeCheckId = `${ctx.name}-${ctx.hash(10)}`.slice(0, 60);
  const id = `projects/${projectOf(ctx)}/uptimeCheckConfigs/${uptimeCheckId}`;
  return { id, name: id, uptimeCheckId };
});

registerComputedOutputs("gcp:monitoring/dashboard:Dashboard", (ctx) => ({
  id: `projects/${MOCK_GCP_PROJECT_NUMBER}/dashboards/${ctx.hash(8)}-${ctx.hash(4, "a")}-${ctx.hash(4, "b")}`,
}));

registerComputedOutputs("gcp:logging/projectBucketConfig:ProjectBucketConfig", (ctx) => {
  const id = `projects/${str(ctx.plainInputs.project, "p")}/locations/${str(ctx.plainInputs.location, "global")}/buckets/${str(ctx.plainInputs.bucketId, "_Default")}`;
  return { id, name: id, lifecycleState: "ACTIVE" };
});

registerComputedOutputs("gcp:billing/budget:Budget", (ctx) => {
  const name = `billingAccounts/${str(ctx.plainInputs.billingAccount, "000000-000000-000000")}/budgets/${ctx.hash(8)}-${ctx.hash(4, "b")}`;
  return { id: name, name };
});

registerComputedOutputs("gcp:artifactregistry/repository:Repository", (ctx) => {
  const repositoryId = str(ctx.plainInputs.repositoryId, ctx.name);
  const location = str(ctx.plainInputs.location, "us-central1");
  const project = projectOf(ctx);
  return {
    id: `projects/${project}/locations/${location}/repositories/${repositoryId}`,
    name: repositoryId,
    registryUri: `${location}-docker.pkg.dev/${project}/${repositoryId}`,
  };
});

registerInvoke("gcp:organizations/getProject:getProject", (ctx) => {
  const projectId = str(ctx.inputs.projectId, "mock-provider-project");
  return {
    id: `projects/${projectId}`,
    projectId,
    number: MOCK_GCP_PROJECT_NUMBER,
    name: projectId,
  };
});

registerInvoke("gcp:organizations/getClientConfig:getClientConfig", () => ({
  id: "client-config",
  accessToken: MOCK_GCP_ACCESS_TOKEN,
  project: "mock-provider-project",
  region: "us-central1",
  zone: "us-central1-a",
}));
