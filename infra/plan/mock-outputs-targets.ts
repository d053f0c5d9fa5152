/**
 * Provider-computed outputs and invokes for the resources the deployment targets create
 * (Lambda, Cloud Run, Kubernetes, VM groups), registered on the shared mock harness. Import it
 * once, after `setupPulumiMocks`, alongside `mock-outputs-gcp`.
 */
import { registerComputedOutputs, registerInvoke, type MockResourceContext } from "./mock-runtime";

const str = (v: unknown, fallback: string) =>
  typeof v === "string" && v.length > 0 ? v : fallback;
const nameOf = (ctx: MockResourceContext) =>
  str(ctx.plainInputs.name, `${ctx.name}-${ctx.hash(7)}`);
const projectOf = (ctx: MockResourceContext) =>
  str(ctx.plainInputs.project, "mock-provider-project");
const regionOf = (ctx: MockResourceContext) => str(ctx.plainInputs.region, "us-central1");
const link = (id: string) => `https://www.googleapis.com/compute/v1/${id}`;

/** AMI ids `getParameter` answers with for the Amazon Linux 2023 parameters. */
export const MOCK_AMIS = {
  arm64: "ami-0arm64000000000001",
  x86_64: "ami-0x86640000000000001",
} as const;
/** The VPC CIDR `getVpc` answers with. */
export const MOCK_VPC_CIDR = "10.20.0.0/16";
export const MOCK_LB_IP = "34.120.10.20";

// --- AWS ---------------------------------------------------------------------------------------

registerInvoke("aws:ssm/getParameter:getParameter", (ctx) => {
  const name = String(ctx.inputs.name);
  const m =
    /^\/aws\/service\/ami-amazon-linux-latest\/al2023-ami-kernel-default-(arm64|x86_64)$/.exec(
      name,
    );
  if (!m) throw new Error(`unexpected SSM parameter ${name}`);
  const value = MOCK_AMIS[m[1] as keyof typeof MOCK_AMIS];
  return {
    id: name,
    name,
    arn: `arn:aws:ssm:${ctx.region}::parameter${name}`,
    type: "String",
    value,
    insecureValue: value,
    version: 42,
    withDecryption: true,
  };
});

registerInvoke("aws:ec2/getVpc:getVpc", (ctx) => ({
  id: ctx.inputs.id,
  cidrBlock: MOCK_VPC_CIDR,
  arn: "arn:aws:ec2:vpc",
}));

// Aliases are addressed by a qualified function ARN; the harness's generic ARN is not one.
registerComputedOutputs("aws:lambda/alias:Alias", (ctx) => {
  const fn = String(ctx.plainInputs.functionName);
  const arn = `arn:aws:lambda:${ctx.region}:${ctx.accountId}:function:${fn}:${String(ctx.plainInputs.name)}`;
  return {
    id: arn,
    arn,
    invokeArn: `arn:aws:apigateway:${ctx.region}:lambda:path/2015-03-31/functions/${arn}/invocations`,
  };
});
registerComputedOutputs("aws:apigatewayv2/integration:Integration", (ctx) => ({ id: ctx.hash(7) }));

// --- Kubernetes: what the load balancer controllers write back into `status` ---------------------

const lbHostname = (name: string) => `k8s-${name}-0123456789.elb.us-east-1.amazonaws.com`;
registerComputedOutputs("kubernetes:core/v1:Service", (ctx) => {
  const spec = ctx.plainInputs.spec as { type?: string } | undefined;
  return {
    status: {
      loadBalancer:
        spec?.type === "LoadBalancer" ? { ingress: [{ hostname: lbHostname(ctx.name) }] } : {},
    },
  };
});
registerComputedOutputs("kubernetes:networking.k8s.io/v1:Ingress", (ctx) => ({
  status: { loadBalancer: { ingress: [{ hostname: lbHostname(ctx.name) }] } },
}));

// --- GCP compute and serverless ------------------------------------------------------------------

registerComputedOutputs("gcp:cloudrunv2/service:Service", (ctx) => {
  const name = nameOf(ctx);
  const location = String(ctx.plainInputs.location);
  return {
    id: `projects/${projectOf(ctx)}/locations/${location}/services/${name}`,
    name,
    uri: `https://${name}-${ctx.hash(10)}-uc.a.run.app`,
    uid: ctx.hash(32),
    // Cloud Run names revisions <service>-<5-digit generation>-<3 random characters>.
    latestCreatedRevision: `${name}-00002-${ctx.hash(3, "revision")}`,
    latestReadyRevision: `${name}-00002-${ctx.hash(3, "revision")}`,
  };
});

registerComputedOutputs("gcp:serviceaccount/account:Account", (ctx) => {
  const email = `${String(ctx.plainInputs.accountId)}@${String(ctx.plainInputs.project)}.iam.gserviceaccount.com`;
  return {
    id: `projects/${String(ctx.plainInputs.project)}/serviceAccounts/${email}`,
    email,
    name: `projects/${String(ctx.plainInputs.project)}/serviceAccounts/${email}`,
    member: `serviceAccount:${email}`,
    uniqueId: BigInt(`0x${ctx.hash(12)}`).toString(),
  };
});

for (const type of [
  "gcp:cloudrunv2/serviceIamMember:ServiceIamMember",
  "gcp:projects/iAMMember:IAMMember",
  "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember",
]) {
  registerComputedOutputs(type, (ctx) => ({
    id: `${str(ctx.plainInputs.name, "")}/${String(ctx.plainInputs.role)}/${String(ctx.plainInputs.member)}`,
    etag: `BwY${ctx.hash(8)}`,
  }));
}

for (const [type, collection] of [
  ["gcp:compute/healthCheck:HealthCheck", "healthChecks"],
  ["gcp:compute/backendService:BackendService", "backendServices"],
  ["gcp:compute/uRLMap:URLMap", "urlMaps"],
  ["gcp:compute/managedSslCertificate:ManagedSslCertificate", "sslCertificates"],
  ["gcp:compute/targetHttpProxy:TargetHttpProxy", "targetHttpProxies"],
  ["gcp:compute/targetHttpsProxy:TargetHttpsProxy", "targetHttpsProxies"],
  ["gcp:compute/globalForwardingRule:GlobalForwardingRule", "forwardingRules"],
  ["gcp:compute/instanceTemplate:InstanceTemplate", "instanceTemplates"],
] as const) {
  registerComputedOutputs(type, (ctx) => {
    const name = nameOf(ctx);
    const id = `projects/${projectOf(ctx)}/global/${collection}/${name}`;
    return {
      id,
      name,
      selfLink: link(id),
      selfLinkUnique: `${link(id)}?uniqueId=${BigInt(`0x${ctx.hash(12)}`).toString()}`,
    };
  });
}

registerComputedOutputs("gcp:compute/globalAddress:GlobalAddress", (ctx) => {
  const name = nameOf(ctx);
  const id = `projects/${projectOf(ctx)}/global/addresses/${name}`;
  // Private service access ranges are internal; the load balancer's address is external.
  const internal = ctx.plainInputs.purpose === "VPC_PEERING";
  return { id, name, selfLink: link(id), address: internal ? "10.64.0.0" : MOCK_LB_IP };
});

registerComputedOutputs(
  "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager",
  (ctx) => {
    const name = nameOf(ctx);
    const scope = `projects/${projectOf(ctx)}/regions/${regionOf(ctx)}`;
    return {
      id: `${scope}/instanceGroupManagers/${name}`,
      name,
      selfLink: link(`${scope}/instanceGroupManagers/${name}`),
      instanceGroup: link(`${scope}/instanceGroups/${name}`),
    };
  },
);

registerComputedOutputs("gcp:compute/regionAutoscaler:RegionAutoscaler", (ctx) => {
  const name = nameOf(ctx);
  const id = `projects/${projectOf(ctx)}/regions/${regionOf(ctx)}/autoscalers/${name}`;
  return { id, name, selfLink: link(id) };
});

// --- DNS and certificates --------------------------------------------------------------------------

registerInvoke("aws:lb/getLoadBalancer:getLoadBalancer", (ctx) => {
  const name = String(ctx.inputs.name);
  const arn = `arn:aws:elasticloadbalancing:${ctx.region}:${ctx.accountId}:loadbalancer/net/${name}/0123456789abcdef`;
  return {
    id: arn,
    arn,
    arnSuffix: `net/${name}/0123456789abcdef`,
    name,
    loadBalancerType: "network",
    dnsName: `${name}-0123456789.elb.${ctx.region}.amazonaws.com`,
    zoneId: "Z26RNL4JYFTOTI",
  };
});

registerComputedOutputs("aws:acm/certificate:Certificate", (ctx) => {
  const domain = String(ctx.plainInputs.domainName);
  const arn = `arn:aws:acm:${ctx.region}:${ctx.accountId}:certificate/${ctx.hash(8)}-0000-4000-8000-${ctx.hash(12, "c")}`;
  return {
    id: arn,
    arn,
    status: "PENDING_VALIDATION",
    domainValidationOptions: [
      {
        domainName: domain,
        resourceRecordName: `_${ctx.hash(32, "n")}.${domain}.`,
        resourceRecordType: "CNAME",
        resourceRecordValue: `_${ctx.hash(32, "v")}.acm-validations.aws.`,
      },
    ],
  };
});

registerComputedOutputs("aws:acm/certificateValidation:CertificateValidation", (ctx) => ({
  id: String(ctx.plainInputs.certificateArn),
}));

registerComputedOutputs("aws:route53/record:Record", (ctx) => {
  const name = String(ctx.plainInputs.name).replace(/\.$/, "");
  return {
    id: `${String(ctx.plainInputs.zoneId)}_${name}_${String(ctx.plainInputs.type)}`,
    fqdn: name,
  };
});

registerComputedOutputs("gcp:dns/recordSet:RecordSet", (ctx) => ({
  id: `projects/${projectOf(ctx)}/managedZones/${String(ctx.plainInputs.managedZone)}/rrsets/${String(ctx.plainInputs.name)}/${String(ctx.plainInputs.type)}`,
}));

registerComputedOutputs("gcp:projects/service:Service", (ctx) => ({
  id: `${projectOf(ctx)}/${String(ctx.plainInputs.service)}`,
}));
