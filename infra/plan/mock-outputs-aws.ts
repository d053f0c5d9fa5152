/**
 * Default computed outputs and invokes for the mock runtime: Pulumi's auto-naming, AWS ids and
 * ARNs, Docker and random. GCP types live in mock-outputs-gcp.ts, the targets' in
 * mock-outputs-targets.ts, releases' in mock-outputs-release.ts.
 */
import {
  hashOf,
  registerComputedOutputs,
  registerInvoke,
  type MockResourceContext,
} from "./mock-registry";
// ---------------------------------------------------------------------------------------------
// Default computed outputs (AWS, Docker, random). GCP tests register their own types.

/** `aws:rds/instance:Instance` -> `rds`. */
function awsModule(type: string): string {
  return type.split(":")[1]?.split("/")[0] ?? "unknown";
}

/**
 * Pulumi auto-naming happens in the provider (engine side), so under mocks an omitted `name`
 * stays undefined and everything referring to it by name gets nothing. Emulate it for every
 * custom resource: `<logical name>-<7 chars>`, or `<namePrefix><chars>`. Types without a `name`
 * output ignore the extra state.
 */
export function autoName(ctx: MockResourceContext): Record<string, unknown> {
  const p = ctx.plainInputs;
  if (typeof p.name === "string" && p.name) return {};
  if (typeof p.namePrefix === "string" && p.namePrefix)
    return { name: `${p.namePrefix}${ctx.hash(26, "name")}` };
  return { name: `${ctx.name}-${ctx.hash(7, "name")}` };
}

export function awsGenericOutputs(ctx: MockResourceContext): Record<string, unknown> {
  const service = awsModule(ctx.type);
  const kind = ctx.type.split(":")[2]?.toLowerCase() ?? "resource";
  return { arn: `arn:aws:${service}:${ctx.region}:${ctx.accountId}:${kind}/${ctx.name}` };
}

function str(v: unknown, fallback: string): string {
  return typeof v === "string" && v.length > 0 ? v : fallback;
}

/** A deterministic fake password honouring RandomPassword's length/special/overrideSpecial. */
function fakeRandomString(ctx: MockResourceContext): string {
  const p = ctx.plainInputs;
  const length = typeof p.length === "number" ? p.length : 16;
  let alphabet = "";
  if (p.upper !== false) alphabet += "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  if (p.lower !== false) alphabet += "abcdefghijklmnopqrstuvwxyz";
  if (p.numeric !== false) alphabet += "0123456789";
  if (p.special !== false)
    alphabet += typeof p.overrideSpecial === "string" ? p.overrideSpecial : "!@#$%&*()-_=+[]{}<>:?";
  if (!alphabet) alphabet = "x";
  let out = "";
  let seed = hashOf(ctx.type, ctx.name, "password");
  while (out.length < length) {
    for (let i = 0; i + 2 <= seed.length && out.length < length; i += 2) {
      out += alphabet[parseInt(seed.slice(i, i + 2), 16) % alphabet.length];
    }
    seed = hashOf(seed);
  }
  return out;
}

const AWS_ID_PREFIX: Record<string, string> = {
  "aws:ec2/vpc:Vpc": "vpc",
  "aws:ec2/subnet:Subnet": "subnet",
  "aws:ec2/securityGroup:SecurityGroup": "sg",
  "aws:ec2/internetGateway:InternetGateway": "igw",
  "aws:ec2/natGateway:NatGateway": "nat",
  "aws:ec2/routeTable:RouteTable": "rtb",
  "aws:ec2/eip:Eip": "eipalloc",
  "aws:ec2/flowLog:FlowLog": "fl",
  "aws:ec2/launchTemplate:LaunchTemplate": "lt",
  "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "sgr",
  "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "sgr",
};
for (const [type, prefix] of Object.entries(AWS_ID_PREFIX)) {
  registerComputedOutputs(type, (ctx) => ({
    id: `${prefix}-${ctx.hash(17)}`,
    arn: `arn:aws:ec2:${ctx.region}:${ctx.accountId}:${prefix}/${prefix}-${ctx.hash(17)}`,
    ...(prefix === "vpc"
      ? {
          defaultSecurityGroupId: `sg-${ctx.hash(17, "default")}`,
          mainRouteTableId: `rtb-${ctx.hash(17, "main")}`,
        }
      : {}),
    ...(prefix === "eipalloc"
      ? { publicIp: "203.0.113.10", allocationId: `eipalloc-${ctx.hash(17)}` }
      : {}),
    ...(prefix === "nat" ? { publicIp: "203.0.113.20" } : {}),
    ...(prefix === "lt" ? { latestVersion: 1 } : {}),
  }));
}

registerComputedOutputs("aws:elasticache/replicationGroup:ReplicationGroup", (ctx) => {
  const rgId = str(ctx.plainInputs.replicationGroupId, ctx.name);
  return {
    id: rgId,
    arn: `arn:aws:elasticache:${ctx.region}:${ctx.accountId}:replicationgroup:${rgId}`,
    primaryEndpointAddress: `master.${rgId}.${ctx.hash(6)}.use1.cache.amazonaws.com`,
    readerEndpointAddress: `replica.${rgId}.${ctx.hash(6)}.use1.cache.amazonaws.com`,
    port: ctx.plainInputs.port ?? 6379,
    memberClusters: [`${rgId}-001`],
    engineVersionActual: str(ctx.plainInputs.engineVersion, "7.1"),
  };
});

registerComputedOutputs("aws:rds/instance:Instance", (ctx) => {
  const identifier = str(ctx.plainInputs.identifier, `${ctx.name}-${ctx.hash(6)}`);
  const address = `${identifier}.c${ctx.hash(10)}.${ctx.region}.rds.amazonaws.com`;
  const port = (ctx.plainInputs.port as number | undefined) ?? 5432;
  return {
    id: `db-${ctx.hash(26).toUpperCase()}`,
    identifier,
    arn: `arn:aws:rds:${ctx.region}:${ctx.accountId}:db:${identifier}`,
    address,
    endpoint: `${address}:${port}`,
    port,
    resourceId: `db-${ctx.hash(26).toUpperCase()}`,
    hostedZoneId: "Z2R2ITUGPM61AM",
    engineVersionActual: str(ctx.plainInputs.engineVersion, "16.4"),
  };
});

registerComputedOutputs("aws:secretsmanager/secret:Secret", (ctx) => {
  const name = str(
    ctx.plainInputs.name,
    `${str(ctx.plainInputs.namePrefix, ctx.name)}${ctx.hash(6)}`,
  );
  const arn = `arn:aws:secretsmanager:${ctx.region}:${ctx.accountId}:secret:${name}-${ctx.hash(6)}`;
  return { id: arn, arn, name };
});

registerComputedOutputs("aws:secretsmanager/secretVersion:SecretVersion", (ctx) => ({
  id: `${str(ctx.plainInputs.secretId, "secret")}|${ctx.hash(8)}`,
  versionId: ctx.hash(32),
  versionStages: ["AWSCURRENT"],
  arn: ctx.plainInputs.secretId,
}));

registerComputedOutputs("aws:sns/topic:Topic", (ctx) => {
  const name = str(ctx.plainInputs.name, `${ctx.name}-${ctx.hash(7)}`);
  const arn = `arn:aws:sns:${ctx.region}:${ctx.accountId}:${name}`;
  return { id: arn, arn, name };
});

registerComputedOutputs("aws:cloudwatch/logGroup:LogGroup", (ctx) => {
  const name = str(
    ctx.plainInputs.name,
    `${str(ctx.plainInputs.namePrefix, ctx.name)}${ctx.hash(7)}`,
  );
  return { id: name, name, arn: `arn:aws:logs:${ctx.region}:${ctx.accountId}:log-group:${name}` };
});

registerComputedOutputs("aws:cloudwatch/dashboard:Dashboard", (ctx) => {
  const name = str(ctx.plainInputs.dashboardName, ctx.name);
  return { id: name, dashboardArn: `arn:aws:cloudwatch::${ctx.accountId}:dashboard/${name}` };
});

registerComputedOutputs("aws:cloudwatch/metricAlarm:MetricAlarm", (ctx) => {
  const name = str(ctx.plainInputs.name, `${ctx.name}-${ctx.hash(7)}`);
  return { id: name, name, arn: `arn:aws:cloudwatch:${ctx.region}:${ctx.accountId}:alarm:${name}` };
});

registerComputedOutputs("aws:ecr/repository:Repository", (ctx) => {
  const name = str(ctx.plainInputs.name, `${ctx.name}-${ctx.hash(7)}`);
  return {
    id: name,
    name,
    arn: `arn:aws:ecr:${ctx.region}:${ctx.accountId}:repository/${name}`,
    registryId: ctx.accountId,
    repositoryUrl: `${ctx.accountId}.dkr.ecr.${ctx.region}.amazonaws.com/${name}`,
  };
});

registerComputedOutputs("docker:index/image:Image", (ctx) => {
  const imageName = str(ctx.plainInputs.imageName, `${ctx.name}:latest`);
  // The digest names the repository without its tag, as `docker inspect` reports RepoDigests.
  const repo = imageName.replace(/:[^/:]+$/, "");
  const digest = `sha256:${hashOf(ctx.type, ctx.name, JSON.stringify(ctx.plainInputs.build ?? {}))}`;
  return {
    id: `${imageName}-${ctx.hash(8)}`,
    imageName,
    baseImageName: imageName,
    repoDigest: `${repo}@${digest}`,
  };
});

for (const type of ["aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"]) {
  registerComputedOutputs(type, (ctx) => {
    const bucket = str(
      ctx.plainInputs.bucket,
      `${str(ctx.plainInputs.bucketPrefix, ctx.name)}-${ctx.hash(8)}`,
    );
    return {
      id: bucket,
      bucket,
      arn: `arn:aws:s3:::${bucket}`,
      bucketDomainName: `${bucket}.s3.amazonaws.com`,
      bucketRegionalDomainName: `${bucket}.s3.${ctx.region}.amazonaws.com`,
      region: ctx.region,
    };
  });
}

for (const type of ["aws:s3/bucketObject:BucketObject", "aws:s3/bucketObjectv2:BucketObjectv2"]) {
  registerComputedOutputs(type, (ctx) => ({
    id: str(ctx.plainInputs.key, ctx.name),
    etag: ctx.hash(32),
    versionId: ctx.hash(32, "version"),
  }));
}

registerComputedOutputs("aws:iam/role:Role", (ctx) => {
  const name = str(ctx.plainInputs.name, `${ctx.name}-${ctx.hash(7)}`);
  return {
    id: name,
    name,
    arn: `arn:aws:iam::${ctx.accountId}:role/${name}`,
    uniqueId: `AROA${ctx.hash(16).toUpperCase()}`,
  };
});

registerComputedOutputs("aws:iam/policy:Policy", (ctx) => {
  const name = str(ctx.plainInputs.name, `${ctx.name}-${ctx.hash(7)}`);
  const arn = `arn:aws:iam::${ctx.accountId}:policy/${name}`;
  return { id: arn, arn, name, policyId: `ANPA${ctx.hash(16).toUpperCase()}` };
});

registerComputedOutputs("aws:iam/instanceProfile:InstanceProfile", (ctx) => {
  const name = str(ctx.plainInputs.name, `${ctx.name}-${ctx.hash(7)}`);
  return { id: name, name, arn: `arn:aws:iam::${ctx.accountId}:instance-profile/${name}` };
});

registerComputedOutputs("aws:iam/openIdConnectProvider:OpenIdConnectProvider", (ctx) => {
  const arn = `arn:aws:iam::${ctx.accountId}:oidc-provider/${str(ctx.plainInputs.url, ctx.name).replace(/^https:\/\//, "")}`;
  return { id: arn, arn };
});

registerComputedOutputs("aws:kms/key:Key", (ctx) => {
  const keyId = `${ctx.hash(8)}-${ctx.hash(4, "a")}-${ctx.hash(4, "b")}-${ctx.hash(4, "c")}-${ctx.hash(12, "d")}`;
  return { id: keyId, keyId, arn: `arn:aws:kms:${ctx.region}:${ctx.accountId}:key/${keyId}` };
});

registerComputedOutputs("aws:lambda/function:Function", (ctx) => {
  const name = str(ctx.plainInputs.name, `${ctx.name}-${ctx.hash(7)}`);
  const arn = `arn:aws:lambda:${ctx.region}:${ctx.accountId}:function:${name}`;
  return {
    id: name,
    name,
    arn,
    qualifiedArn: `${arn}:1`,
    version: "1",
    invokeArn: `arn:aws:apigateway:${ctx.region}:lambda:path/2015-03-31/functions/${arn}/invocations`,
  };
});

registerComputedOutputs("aws:lambda/functionUrl:FunctionUrl", (ctx) => ({
  functionUrl: `https://${ctx.hash(32)}.lambda-url.${ctx.region}.on.aws/`,
  urlId: ctx.hash(32),
}));

registerComputedOutputs("aws:apigatewayv2/api:Api", (ctx) => {
  const apiId = ctx.hash(10);
  return {
    id: apiId,
    apiEndpoint: `https://${apiId}.execute-api.${ctx.region}.amazonaws.com`,
    executionArn: `arn:aws:execute-api:${ctx.region}:${ctx.accountId}:${apiId}`,
  };
});

registerComputedOutputs("aws:apigatewayv2/stage:Stage", (ctx) => ({
  invokeUrl: `https://${ctx.hash(10, "api")}.execute-api.${ctx.region}.amazonaws.com/${str(ctx.plainInputs.name, "$default")}`,
}));

registerComputedOutputs("aws:lb/loadBalancer:LoadBalancer", (ctx) => {
  const name = str(ctx.plainInputs.name, ctx.name.slice(0, 24));
  const arn = `arn:aws:elasticloadbalancing:${ctx.region}:${ctx.accountId}:loadbalancer/app/${name}/${ctx.hash(16)}`;
  return {
    id: arn,
    arn,
    arnSuffix: `app/${name}/${ctx.hash(16)}`,
    dnsName: `${name}-${ctx.hash(8)}.${ctx.region}.elb.amazonaws.com`,
    zoneId: "Z35SXDOTRQ7X7K",
  };
});

registerComputedOutputs("aws:lb/targetGroup:TargetGroup", (ctx) => {
  const name = str(ctx.plainInputs.name, ctx.name.slice(0, 24));
  const arn = `arn:aws:elasticloadbalancing:${ctx.region}:${ctx.accountId}:targetgroup/${name}/${ctx.hash(16)}`;
  return { id: arn, arn, arnSuffix: `targetgroup/${name}/${ctx.hash(16)}` };
});

registerComputedOutputs("aws:eks/cluster:Cluster", (ctx) => {
  const name = str(ctx.plainInputs.name, `${ctx.name}-${ctx.hash(7)}`);
  return {
    id: name,
    name,
    arn: `arn:aws:eks:${ctx.region}:${ctx.accountId}:cluster/${name}`,
    endpoint: `https://${ctx.hash(32).toUpperCase()}.gr7.${ctx.region}.eks.amazonaws.com`,
    version: str(ctx.plainInputs.version, "1.31"),
    certificateAuthority: { data: Buffer.from(`fake-ca-${ctx.name}`).toString("base64") },
    identities: [
      {
        oidcs: [
          {
            issuer: `https://oidc.eks.${ctx.region}.amazonaws.com/id/${ctx.hash(32).toUpperCase()}`,
          },
        ],
      },
    ],
    vpcConfig: {
      ...((ctx.plainInputs.vpcConfig as Record<string, unknown> | undefined) ?? {}),
      clusterSecurityGroupId: `sg-${ctx.hash(17, "cluster")}`,
    },
  };
});

registerComputedOutputs("random:index/randomPassword:RandomPassword", (ctx) => {
  const result = fakeRandomString(ctx);
  return { id: "none", result, bcryptHash: `$2a$10$${hashOf(result).slice(0, 53)}` };
});

registerComputedOutputs("random:index/randomString:RandomString", (ctx) => {
  const result = fakeRandomString(ctx);
  return { id: result, result };
});

registerComputedOutputs("random:index/randomId:RandomId", (ctx) => {
  const bytes = typeof ctx.plainInputs.byteLength === "number" ? ctx.plainInputs.byteLength : 8;
  const hex = hashOf(ctx.type, ctx.name, "id").slice(0, bytes * 2);
  const buf = Buffer.from(hex, "hex");
  return {
    id: buf.toString("base64url"),
    hex,
    b64Url: buf.toString("base64url"),
    b64Std: buf.toString("base64"),
    dec: BigInt(`0x${hex}`).toString(),
  };
});

// ---------------------------------------------------------------------------------------------
// Default invokes (AWS). Anything else throws with the token's name.

registerInvoke("aws:index/getAvailabilityZones:getAvailabilityZones", (ctx) => {
  const letters = "abcdefghij".slice(0, ctx.availabilityZoneCount).split("");
  return {
    id: ctx.region,
    names: letters.map((l) => `${ctx.region}${l}`),
    zoneIds: letters.map((_, i) => `use1-az${i + 1}`),
    groupNames: [ctx.region],
    state: (ctx.inputs.state as string | undefined) ?? "available",
  };
});

registerInvoke("aws:index/getCallerIdentity:getCallerIdentity", (ctx) => ({
  id: ctx.accountId,
  accountId: ctx.accountId,
  arn: `arn:aws:iam::${ctx.accountId}:user/ci`,
  userId: "AIDAEXAMPLE",
}));

registerInvoke("aws:index/getRegion:getRegion", (ctx) => ({
  id: ctx.region,
  name: ctx.region,
  region: ctx.region,
  endpoint: `ec2.${ctx.region}.amazonaws.com`,
  description: ctx.region,
}));

registerInvoke("aws:index/getPartition:getPartition", () => ({
  id: "aws",
  partition: "aws",
  dnsSuffix: "amazonaws.com",
  reverseDnsPrefix: "com.amazonaws",
}));

registerInvoke("aws:ecr/getAuthorizationToken:getAuthorizationToken", (ctx) => ({
  id: ctx.region,
  userName: "AWS",
  password: "mock-ecr-password",
  authorizationToken: Buffer.from("AWS:mock-ecr-password").toString("base64"),
  proxyEndpoint: `https://${ctx.accountId}.dkr.ecr.${ctx.region}.amazonaws.com`,
  expiresAt: "2099-01-01T00:00:00Z",
}));
