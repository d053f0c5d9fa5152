/**
 * EksCluster under mocks: a dev and a prod cluster created from `@pulumi/aws` resources, and an
 * adopted existing cluster. Every piece (encryption, endpoint access, node group, OIDC, add-ons,
 * kubeconfig) is asserted on the inputs the engine would receive.
 */
import * as aws from "@pulumi/aws";
import { DEFAULT_EKS_VERSION } from "../../../components/versions";
import * as pulumi from "@pulumi/pulumi";
import {
  amiTypeFor,
  checkEksClusterArgs,
  EKS_OIDC_THUMBPRINT,
  eksAddonPlan,
  EksCluster,
  eksClusterSizing,
  kubeconfigFor,
} from "../../../components/targets/eks/cluster";
import { fakeAwsDataPlane, fakeGcpDataPlane, FAKE_AWS } from "../../support/fake-data-plane";
import {
  isSecretOutput,
  outputOf,
  type RecordedResource,
  recordOf,
  resources,
  type ResourceQuery,
  setupPulumiMocks,
  within,
} from "../../support/pulumi";

setupPulumiMocks({ stack: "dev" });

const PROVIDER_TYPE = "pulumi:providers:kubernetes";
const ADMIN_ROLE = "arn:aws:iam::123456789012:role/ci-deploy";
const EXISTING = {
  kubeconfig: '{"apiVersion":"v1","kind":"Config","clusters":[]}',
  oidcProviderArn:
    "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXISTING",
  oidcProviderUrl: "https://oidc.eks.us-east-1.amazonaws.com/id/EXISTING",
};

let dev: EksCluster;
let prod: EksCluster;
let existing: EksCluster;
let devQ: ResourceQuery;
let prodQ: ResourceQuery;
let existingQ: ResourceQuery;

beforeAll(async () => {
  dev = new EksCluster("agent-dev", { environment: "dev", network: fakeAwsDataPlane().network });
  prod = new EksCluster("agent-prod", {
    environment: "prod",
    network: fakeAwsDataPlane({ environment: "prod" }).network,
    clusterName: "agent-prod",
    version: "1.32",
    publicAccessCidrs: ["203.0.113.0/24"],
    adminPrincipalArns: [ADMIN_ROLE],
    kubeconfigRoleArn: ADMIN_ROLE,
  });
  existing = new EksCluster("agent-existing", {
    environment: "dev",
    existing: { ...EXISTING, clusterName: "shared" },
  });
  devQ = await within(dev);
  prodQ = await within(prod);
  existingQ = await within(existing);
});

const parse = (json: unknown) => JSON.parse(json as string) as Record<string, unknown>;
const depends = (r: RecordedResource, on: RecordedResource) =>
  r.options.dependencies.includes(on.urn);

describe("resources", () => {
  test("dev creates the cluster, its roles, key, logs, OIDC, four add-ons, launch template, node group and provider", () => {
    expect(devQ.countsByType()).toEqual({
      "aws:cloudwatch/logGroup:LogGroup": 1,
      "aws:ec2/launchTemplate:LaunchTemplate": 1,
      "aws:eks/addon:Addon": 4,
      "aws:eks/cluster:Cluster": 1,
      "aws:eks/nodeGroup:NodeGroup": 1,
      "aws:iam/openIdConnectProvider:OpenIdConnectProvider": 1,
      "aws:iam/role:Role": 2,
      "aws:iam/rolePolicy:RolePolicy": 1,
      "aws:iam/rolePolicyAttachment:RolePolicyAttachment": 4,
      "aws:kms/key:Key": 1,
      [PROVIDER_TYPE]: 1,
    });
  });

  test("prod adds Container Insights (add-on, IRSA role, policy) and the admin access entry", () => {
    expect(prodQ.count(aws.eks.Addon)).toBe(5);
    expect(prodQ.count(aws.iam.Role)).toBe(3);
    expect(prodQ.count(aws.iam.RolePolicyAttachment)).toBe(5);
    expect(prodQ.count(aws.eks.AccessEntry)).toBe(1);
    expect(prodQ.count(aws.eks.AccessPolicyAssociation)).toBe(1);
    expect(prodQ.count()).toBe(23);
  });

  test("an existing cluster gets only the Kubernetes provider", () => {
    expect(existingQ.countsByType()).toEqual({ [PROVIDER_TYPE]: 1 });
    expect(existing.cluster).toBeUndefined();
    expect(existing.nodeGroup).toBeUndefined();
  });

  test("every child is parented to its component and named after it", () => {
    for (const [q, prefix] of [
      [devQ, "agent-dev-"],
      [prodQ, "agent-prod-"],
      [existingQ, "agent-existing-"],
    ] as const) {
      for (const r of q.all()) expect(r.name.startsWith(prefix)).toBe(true);
    }
  });
});

describe("control plane", () => {
  test("version, private endpoint, public endpoint with an allow-list", () => {
    const d = devQ.findOne(aws.eks.Cluster).inputs;
    expect(d.name).toBe("agent-dev-dev");
    // The newest version of the dated support table (components/versions.ts).
    expect(d.version).toBe(DEFAULT_EKS_VERSION);
    expect(d.vpcConfig.endpointPrivateAccess).toBe(true);
    expect(d.vpcConfig.endpointPublicAccess).toBe(true);
    expect(d.vpcConfig.publicAccessCidrs).toEqual(["0.0.0.0/0"]);
    expect(d.vpcConfig.subnetIds).toEqual([...FAKE_AWS.privateSubnetIds]);

    const p = prodQ.findOne(aws.eks.Cluster).inputs;
    expect(p.name).toBe("agent-prod");
    expect(p.version).toBe("1.32");
    expect(p.vpcConfig.publicAccessCidrs).toEqual(["203.0.113.0/24"]);
  });

  test("secrets are envelope-encrypted with the KMS key, which the cluster role may use", () => {
    const key = devQ.findOne(aws.kms.Key);
    expect(key.inputs.enableKeyRotation).toBe(true);
    const cluster = devQ.findOne(aws.eks.Cluster);
    expect(cluster.inputs.encryptionConfig).toEqual({
      resources: ["secrets"],
      provider: { keyArn: key.state.arn },
    });
    const kmsPolicy = parse(devQ.findOne(aws.iam.RolePolicy, "cluster-kms").inputs.policy);
    expect(kmsPolicy.Statement).toEqual([
      expect.objectContaining({
        Action: ["kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"],
        Resource: [key.state.arn],
      }),
    ]);
  });

  test("control-plane logs go to a pre-created group with retention; prod keeps all five types", () => {
    expect(devQ.findOne(aws.eks.Cluster).inputs.enabledClusterLogTypes).toEqual([
      "api",
      "audit",
      "authenticator",
    ]);
    expect(prodQ.findOne(aws.eks.Cluster).inputs.enabledClusterLogTypes).toEqual([
      "api",
      "audit",
      "authenticator",
      "controllerManager",
      "scheduler",
    ]);
    const devLogs = devQ.findOne(aws.cloudwatch.LogGroup);
    expect(devLogs.inputs).toMatchObject({
      name: "/aws/eks/agent-dev-dev/cluster",
      retentionInDays: 7,
    });
    expect(prodQ.findOne(aws.cloudwatch.LogGroup).inputs).toMatchObject({
      name: "/aws/eks/agent-prod/cluster",
      retentionInDays: 90,
    });
    expect(depends(devQ.findOne(aws.eks.Cluster), devLogs)).toBe(true);
  });

  test("access entries, standard support, managed add-ons only, deletion protection in prod", () => {
    const d = devQ.findOne(aws.eks.Cluster).inputs;
    expect(d.accessConfig).toEqual({
      authenticationMode: "API",
      bootstrapClusterCreatorAdminPermissions: true,
    });
    expect(d.upgradePolicy).toEqual({ supportType: "STANDARD" });
    expect(d.bootstrapSelfManagedAddons).toBe(false);
    expect(d.deletionProtection).toBe(false);
    expect(prodQ.findOne(aws.eks.Cluster).inputs.deletionProtection).toBe(true);
  });

  test("the cluster role trusts EKS and has the cluster policy before the cluster is created", () => {
    const role = devQ.findOne(aws.iam.Role, "cluster-role");
    expect(parse(role.inputs.assumeRolePolicy).Statement).toEqual([
      expect.objectContaining({
        Principal: { Service: "eks.amazonaws.com" },
        Action: "sts:AssumeRole",
      }),
    ]);
    const attachment = devQ.findOne(aws.iam.RolePolicyAttachment, "cluster-policy");
    expect(attachment.inputs.policyArn).toBe("arn:aws:iam::aws:policy/AmazonEKSClusterPolicy");
    expect(depends(devQ.findOne(aws.eks.Cluster), attachment)).toBe(true);
  });

  test("prod grants the listed admin principal cluster-admin through an access entry", () => {
    expect(prodQ.findOne(aws.eks.AccessEntry).inputs).toMatchObject({
      principalArn: ADMIN_ROLE,
      type: "STANDARD",
    });
    expect(prodQ.findOne(aws.eks.AccessPolicyAssociation).inputs).toMatchObject({
      principalArn: ADMIN_ROLE,
      policyArn: "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
      accessScope: { type: "cluster" },
    });
  });
});

describe("nodes", () => {
  test("a managed node group in the private subnets, AL2023, sized per environment", () => {
    const d = devQ.findOne(aws.eks.NodeGroup).inputs;
    expect(d.subnetIds).toEqual([...FAKE_AWS.privateSubnetIds]);
    expect(d.amiType).toBe("AL2023_x86_64_STANDARD");
    expect(d.instanceTypes).toEqual(["t3.medium"]);
    expect(d.capacityType).toBe("ON_DEMAND");
    expect(d.scalingConfig).toEqual({ minSize: 1, maxSize: 3, desiredSize: 2 });
    expect(d.updateConfig).toEqual({ maxUnavailable: 1 });
    expect(d.nodeRepairConfig).toEqual({ enabled: true });
    const p = prodQ.findOne(aws.eks.NodeGroup).inputs;
    expect(p.instanceTypes).toEqual(["m7i.large"]);
    expect(p.scalingConfig).toEqual({ minSize: 3, maxSize: 10, desiredSize: 3 });
  });

  test("the node role trusts EC2 and has exactly the three worker policies", () => {
    const role = devQ.findOne(aws.iam.Role, "node-role");
    expect(parse(role.inputs.assumeRolePolicy).Statement).toEqual([
      expect.objectContaining({ Principal: { Service: "ec2.amazonaws.com" } }),
    ]);
    const arns = devQ
      .findByType(aws.iam.RolePolicyAttachment)
      .filter((a) => a.inputs.role === role.state.name)
      .map((a) => a.inputs.policyArn)
      .sort();
    expect(arns).toEqual([
      "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
      "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
      "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    ]);
    expect(devQ.findOne(aws.eks.NodeGroup).inputs.nodeRoleArn).toBe(role.state.arn);
  });

  test("the launch template adds the compute security group, requires IMDSv2 and encrypts the disk", () => {
    const cluster = devQ.findOne(aws.eks.Cluster);
    const lt = devQ.findOne(aws.ec2.LaunchTemplate);
    expect(lt.inputs.vpcSecurityGroupIds).toEqual([
      (cluster.state.vpcConfig as { clusterSecurityGroupId: string }).clusterSecurityGroupId,
      FAKE_AWS.computeSecurityGroupId,
    ]);
    expect(lt.inputs.metadataOptions).toEqual({
      httpEndpoint: "enabled",
      httpTokens: "required",
      httpPutResponseHopLimit: 1,
    });
    expect(
      prodQ.findOne(aws.ec2.LaunchTemplate).inputs.metadataOptions?.httpPutResponseHopLimit,
    ).toBe(2);
    expect(lt.inputs.blockDeviceMappings).toEqual([
      {
        deviceName: "/dev/xvda",
        ebs: { volumeSize: 20, volumeType: "gp3", encrypted: "true", deleteOnTermination: "true" },
      },
    ]);
    expect(devQ.findOne(aws.eks.NodeGroup).inputs.launchTemplate).toEqual({
      id: lt.id,
      version: "1",
    });
  });
});

describe("OIDC and add-ons", () => {
  test("the OIDC provider uses the cluster's issuer, the STS audience and the thumbprint", async () => {
    const cluster = devQ.findOne(aws.eks.Cluster);
    const issuer = (cluster.state.identities as Array<{ oidcs: Array<{ issuer: string }> }>)[0]!
      .oidcs[0]!.issuer;
    const oidc = devQ.findOne(aws.iam.OpenIdConnectProvider);
    expect(oidc.inputs).toEqual({
      url: issuer,
      clientIdLists: ["sts.amazonaws.com"],
      thumbprintLists: [EKS_OIDC_THUMBPRINT],
    });
    expect(await outputOf(dev.oidcProviderArn)).toBe(oidc.state.arn);
    expect(await outputOf(dev.oidcProviderUrl)).toBe(issuer);
  });

  test("vpc-cni (with network policy) and kube-proxy come before nodes; coredns and metrics-server after", () => {
    const addon = (n: string) =>
      devQ.findByType(aws.eks.Addon).find((a) => a.inputs.addonName === n)!;
    expect(
      devQ
        .findByType(aws.eks.Addon)
        .map((a) => a.inputs.addonName)
        .sort(),
    ).toEqual(["coredns", "kube-proxy", "metrics-server", "vpc-cni"]);
    expect(parse(addon("vpc-cni").inputs.configurationValues)).toEqual({
      enableNetworkPolicy: "true",
    });
    const nodes = devQ.findOne(aws.eks.NodeGroup);
    for (const early of ["vpc-cni", "kube-proxy"]) expect(depends(nodes, addon(early))).toBe(true);
    for (const late of ["coredns", "metrics-server"])
      expect(depends(addon(late), nodes)).toBe(true);
    for (const a of devQ.findByType(aws.eks.Addon)) {
      expect(a.inputs).toMatchObject({
        resolveConflictsOnCreate: "OVERWRITE",
        resolveConflictsOnUpdate: "OVERWRITE",
      });
    }
  });

  test("prod's CloudWatch observability add-on runs with its own IRSA role", () => {
    const addon = prodQ
      .findByType(aws.eks.Addon)
      .find((a) => a.inputs.addonName === "amazon-cloudwatch-observability")!;
    const role = prodQ.findOne(aws.iam.Role, "amazon-cloudwatch-observability-role");
    expect(addon.inputs.serviceAccountRoleArn).toBe(role.state.arn);
    const oidc = prodQ.findOne(aws.iam.OpenIdConnectProvider);
    const host = (oidc.inputs.url as string).replace("https://", "");
    expect(parse(role.inputs.assumeRolePolicy).Statement).toEqual([
      expect.objectContaining({
        Principal: { Federated: oidc.state.arn },
        Action: "sts:AssumeRoleWithWebIdentity",
        Condition: {
          StringEquals: {
            [`${host}:sub`]: "system:serviceaccount:amazon-cloudwatch:cloudwatch-agent",
            [`${host}:aud`]: "sts.amazonaws.com",
          },
        },
      }),
    ]);
    expect(
      prodQ.findOne(aws.iam.RolePolicyAttachment, "cloudwatchagentserverpolicy").inputs.policyArn,
    ).toBe("arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy");
    expect(prod.info.containerInsights).toBe(true);
    expect(dev.info.containerInsights).toBe(false);
  });
});

describe("kubeconfig and provider", () => {
  test("the kubeconfig is secret and authenticates with `aws eks get-token`", async () => {
    expect(await isSecretOutput(dev.kubeconfig)).toBe(true);
    const cluster = devQ.findOne(aws.eks.Cluster);
    const config = JSON.parse(await outputOf(dev.kubeconfig)) as {
      clusters: Array<{ cluster: { server: string; "certificate-authority-data": string } }>;
      users: Array<{ user: { exec: { command: string; args: string[]; apiVersion: string } } }>;
    };
    expect(config.clusters[0]!.cluster.server).toBe(cluster.state.endpoint);
    expect(config.clusters[0]!.cluster["certificate-authority-data"]).toBe(
      (cluster.state.certificateAuthority as { data: string }).data,
    );
    expect(config.users[0]!.user.exec).toMatchObject({
      command: "aws",
      apiVersion: "client.authentication.k8s.io/v1beta1",
      args: [
        "eks",
        "get-token",
        "--cluster-name",
        "agent-dev-dev",
        "--region",
        "us-east-1",
        "--output",
        "json",
      ],
    });
    const prodConfig = JSON.parse(await outputOf(prod.kubeconfig)) as typeof config;
    expect(prodConfig.users[0]!.user.exec.args.slice(-2)).toEqual(["--role-arn", ADMIN_ROLE]);
  });

  test("the provider is built from the kubeconfig and waits for the nodes and add-ons", async () => {
    const provider = devQ.findOne(PROVIDER_TYPE);
    expect(provider.secretInputs.has("kubeconfig")).toBe(true);
    expect(provider.inputs.kubeconfig).toBe(await outputOf(dev.kubeconfig));
    expect(depends(provider, devQ.findOne(aws.eks.NodeGroup))).toBe(true);
    for (const a of devQ.findByType(aws.eks.Addon)) expect(depends(provider, a)).toBe(true);
    expect((await recordOf(dev.info.provider)).urn).toBe(provider.urn);
  });

  test("an existing cluster's kubeconfig is kept secret and its OIDC details pass through", async () => {
    expect(await isSecretOutput(existing.kubeconfig)).toBe(true);
    expect(existingQ.findOne(PROVIDER_TYPE).inputs.kubeconfig).toBe(EXISTING.kubeconfig);
    expect(await outputOf(existing.info.oidcProviderArn)).toBe(EXISTING.oidcProviderArn);
    expect(await outputOf(existing.info.oidcProviderUrl)).toBe(EXISTING.oidcProviderUrl);
    expect(await outputOf(existing.info.clusterName!)).toBe("shared");
    expect(existing.info.containerInsights).toBe(false);
  });
});

describe("pure functions", () => {
  test("sizing per environment", () => {
    expect(eksClusterSizing("dev")).toMatchObject({
      containerInsights: false,
      deletionProtection: false,
      logRetentionDays: 7,
    });
    expect(eksClusterSizing("prod")).toMatchObject({
      containerInsights: true,
      deletionProtection: true,
      logRetentionDays: 90,
    });
    expect(eksClusterSizing("staging").nodeGroup.instanceTypes).toEqual(["t3.large"]);
  });

  test("AMI type follows the architecture and refuses a mix", () => {
    expect(amiTypeFor(["m7g.large", "c7gn.xlarge", "t4g.medium"])).toBe("AL2023_ARM_64_STANDARD");
    expect(amiTypeFor(["m7i.large", "t3.medium", "g5.xlarge"])).toBe("AL2023_x86_64_STANDARD");
    expect(() => amiTypeFor(["m7g.large", "m7i.large"])).toThrow(
      /mix arm64 \(m7g.large\) and x86_64/,
    );
  });

  test("add-on plan: metrics-server always, Container Insights only when asked", () => {
    expect(eksAddonPlan({ containerInsights: false }).map((a) => a.name)).toEqual([
      "vpc-cni",
      "kube-proxy",
      "coredns",
      "metrics-server",
    ]);
    expect(eksAddonPlan({ containerInsights: true }).map((a) => a.name)).toContain(
      "amazon-cloudwatch-observability",
    );
  });

  test("kubeconfig holds no credential", () => {
    const config = kubeconfigFor({
      clusterName: "c",
      endpoint: "https://x",
      certificateAuthorityData: "Y2E=",
      region: "eu-west-1",
    });
    const users = config.users as Array<{ user: Record<string, unknown> }>;
    // No token, client certificate/key or password: only the exec plugin.
    expect(Object.keys(users[0]!.user)).toEqual(["exec"]);
    expect(JSON.stringify(config)).toContain('"--region","eu-west-1"');
  });

  test("argument problems say what to change", () => {
    const network = fakeAwsDataPlane().network;
    const sizing = eksClusterSizing("dev");
    const check = (args: Partial<Parameters<typeof checkEksClusterArgs>[1]>, s = sizing) =>
      checkEksClusterArgs("c", { environment: "dev", network, ...args }, s);
    expect(check({})).toEqual([]);
    // Never called: `npm run typecheck` proves it is refused (an unused expect-error directive
    // fails it), so no run-time check is needed.
    // @ts-expect-error: EKS takes the AWS data plane's network
    const refused = () => check({ network: fakeGcpDataPlane().network });
    expect(refused).toBeInstanceOf(Function);
    expect(check({ network: undefined })).toEqual([expect.stringMatching(/`network` is required/)]);
    expect(check({ existing: EXISTING })).toEqual([
      expect.stringMatching(/either `existing`.*or `network`/),
    ]);
    expect(check({ version: "1.29" })).toEqual([
      expect.stringMatching(/version 1.29 is too old: use 1.30 or later/),
    ]);
    expect(check({ version: "latest" })).toEqual([
      expect.stringMatching(/not a Kubernetes minor version/),
    ]);
    expect(check({ clusterName: "bad name!" })).toEqual([
      expect.stringMatching(/cluster name "bad name!"/),
    ]);
    expect(check({ publicAccessCidrs: ["10.0.0.0/33"] })).toEqual([
      expect.stringMatching(/"10.0.0.0\/33" is not an IPv4 CIDR/),
    ]);
    expect(check({ publicAccessCidrs: [] })).toEqual([
      expect.stringMatching(/publicAccessCidrs is empty/),
    ]);
    const bad = {
      ...sizing,
      nodeGroup: { ...sizing.nodeGroup, minSize: 4, maxSize: 2, desiredSize: 3 },
    };
    expect(check({}, bad)).toEqual([
      expect.stringMatching(/minSize \(4\) is greater than nodeGroup.maxSize \(2\)/),
      expect.stringMatching(/desiredSize \(3\) must be between/),
    ]);
    const mixed = {
      ...sizing,
      nodeGroup: { ...sizing.nodeGroup, instanceTypes: ["t4g.large", "t3.large"] },
    };
    expect(check({}, mixed)).toEqual([expect.stringMatching(/one node group runs one AMI/)]);
    expect(check({}, eksClusterSizing("prod"))).toEqual([
      expect.stringMatching(/sizing is for "prod" but environment is "dev"/),
    ]);
    expect(check({}, { ...sizing, logRetentionDays: 10 })).toEqual([
      expect.stringMatching(/logRetentionDays is 10/),
    ]);
  });

  test("the component refuses bad arguments before creating anything", () => {
    const before = resources.count();
    expect(
      () =>
        new EksCluster("bad", {
          environment: "dev",
          network: fakeAwsDataPlane().network,
          version: "1.29",
        }),
    ).toThrow(pulumi.ResourceError);
    expect(
      () =>
        new EksCluster("bad2", {
          environment: "dev",
          network: fakeAwsDataPlane().network,
          version: "1.28",
        }),
    ).toThrow(/EksCluster "bad2": version 1.28 is too old/);
    expect(resources.findByType(aws.eks.Cluster).filter((r) => r.name.startsWith("bad"))).toEqual(
      [],
    );
    expect(resources.count()).toBeGreaterThanOrEqual(before);
  });
});
