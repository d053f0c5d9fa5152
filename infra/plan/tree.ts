/**
 * The resource tree of a rendered stack: every resource with its parent and the few settings a
 * reviewer looks for (sizes, counts, HA, exposure). Pure, and ordered deterministically (the order
 * in which the program registered resources depends on timing; this order does not).
 */
export interface TreeInput {
  type: string;
  name: string;
  urn: string;
  parentUrn?: string;
  custom?: boolean;
  inputs: Record<string, unknown>;
}

export interface PlanResource {
  type: string;
  name: string;
  /** The parent as `type::name`; null for the stack itself. */
  parent: string | null;
  /** Depth in the tree (0 for the stack). */
  depth: number;
  /** Key settings, e.g. "db.m7g.large, Multi-AZ, 100 GB gp3". Empty when nothing stands out. */
  settings: string;
}

export const resourceKey = (r: { type: string; name: string }) => `${r.type}::${r.name}`;

/** Depth-first, components before their siblings' custom resources, then by name and type. */
export function resourceTree(resources: readonly TreeInput[]): PlanResource[] {
  const byUrn = new Map(resources.map((r) => [r.urn, r]));
  const children = new Map<string | undefined, TreeInput[]>();
  for (const r of resources) {
    // A parent that was not recorded (never expected) hangs the resource from the root.
    const parent = r.parentUrn && byUrn.has(r.parentUrn) ? r.parentUrn : undefined;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent)!.push(r);
  }
  const order = (a: TreeInput, b: TreeInput) =>
    Number(a.custom !== false) - Number(b.custom !== false) ||
    a.name.localeCompare(b.name, "en") ||
    a.type.localeCompare(b.type, "en");
  const out: PlanResource[] = [];
  const visit = (r: TreeInput, depth: number) => {
    const parent = r.parentUrn ? byUrn.get(r.parentUrn) : undefined;
    out.push({
      type: r.type,
      name: r.name,
      parent: parent ? resourceKey(parent) : null,
      depth,
      settings: keySettings(r),
    });
    for (const c of [...(children.get(r.urn) ?? [])].sort(order)) visit(c, depth + 1);
  };
  for (const root of [...(children.get(undefined) ?? [])].sort(order)) visit(root, 0);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Key settings per type

const o = (v: unknown) =>
  v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
const a = (v: unknown) => (Array.isArray(v) ? (v as unknown[]) : []);
const join = (...parts: (string | false | undefined | null)[]) =>
  parts.filter((p): p is string => typeof p === "string" && p !== "").join(", ");
const has = (v: unknown) => v !== undefined && v !== null && v !== "";

type Describe = (i: Record<string, unknown>) => string;

const SETTINGS: Record<string, Describe> = {
  "aws:rds/instance:Instance": (i) =>
    join(
      String(i.instanceClass),
      i.multiAz ? "Multi-AZ" : "single-AZ",
      `${String(i.allocatedStorage)} GB ${String(i.storageType ?? "gp2")}`,
      i.storageEncrypted === true && "encrypted",
      i.deletionProtection === true && "deletion protection",
    ),
  "aws:elasticache/replicationGroup:ReplicationGroup": (i) =>
    join(
      `${String(i.engine ?? "redis")} ${String(i.engineVersion ?? "")}`.trim(),
      `${String(i.numCacheClusters ?? 1)} x ${String(i.nodeType)}`,
      i.multiAzEnabled === true && "Multi-AZ",
      i.transitEncryptionEnabled === true && "TLS",
    ),
  "aws:ec2/vpc:Vpc": (i) => String(i.cidrBlock ?? ""),
  "aws:ec2/subnet:Subnet": (i) =>
    join(String(i.cidrBlock ?? ""), has(i.availabilityZone) && String(i.availabilityZone)),
  "aws:ec2/vpcEndpoint:VpcEndpoint": (i) =>
    join(String(i.vpcEndpointType ?? "Gateway"), String(i.serviceName ?? "")),
  "aws:eks/cluster:Cluster": (i) =>
    join(
      `Kubernetes ${String(i.version ?? "")}`,
      o(i.vpcConfig).endpointPublicAccess === true
        ? `public endpoint ${a(o(i.vpcConfig).publicAccessCidrs).join(" ") || "0.0.0.0/0"}`
        : "private endpoint",
      has(i.encryptionConfig) && "secrets encrypted",
    ),
  "aws:eks/nodeGroup:NodeGroup": (i) => {
    const s = o(i.scalingConfig);
    return join(
      a(i.instanceTypes).join("/"),
      `desired ${String(s.desiredSize)} (${String(s.minSize)}-${String(s.maxSize)})`,
      String(i.capacityType ?? "ON_DEMAND"),
      has(i.amiType) && String(i.amiType),
    );
  },
  "aws:eks/addon:Addon": (i) => String(i.addonName ?? ""),
  "aws:ec2/launchTemplate:LaunchTemplate": (i) =>
    join(
      has(i.instanceType) && String(i.instanceType),
      ...a(i.blockDeviceMappings).map((m) =>
        `${String(o(o(m).ebs).volumeSize)} GB ${String(o(o(m).ebs).volumeType ?? "")}`.trim(),
      ),
      o(i.metadataOptions).httpTokens === "required" && "IMDSv2",
    ),
  "aws:autoscaling/group:Group": (i) =>
    `min ${String(i.minSize)}, max ${String(i.maxSize)}${has(i.desiredCapacity) ? `, desired ${String(i.desiredCapacity)}` : ""}`,
  "aws:lb/loadBalancer:LoadBalancer": (i) =>
    join(
      String(i.loadBalancerType ?? "application"),
      i.internal === true ? "internal" : "internet-facing",
      `${a(i.subnets).length} subnets`,
    ),
  "aws:lb/listener:Listener": (i) =>
    join(
      `${String(i.protocol ?? "")} ${String(i.port ?? "")}`.trim(),
      has(i.sslPolicy) && String(i.sslPolicy),
    ),
  "aws:lambda/function:Function": (i) =>
    join(
      String(i.runtime ?? "image"),
      a(i.architectures).join("/") || "x86_64",
      `${String(i.memorySize ?? 128)} MB`,
      `timeout ${String(i.timeout ?? 3)} s`,
      has(i.reservedConcurrentExecutions) && `reserved ${String(i.reservedConcurrentExecutions)}`,
      has(o(i.vpcConfig).subnetIds) && "in VPC",
    ),
  "aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig": (i) =>
    `${String(i.provisionedConcurrentExecutions)} provisioned on ${String(i.qualifier)}`,
  "aws:lambda/functionUrl:FunctionUrl": (i) =>
    join(`auth ${String(i.authorizationType)}`, has(i.invokeMode) && String(i.invokeMode)),
  "aws:apigatewayv2/api:Api": (i) => String(i.protocolType ?? ""),
  "aws:cloudwatch/logGroup:LogGroup": (i) =>
    join(
      has(i.name) && String(i.name),
      `retention ${String(i.retentionInDays ?? "never expires")} d`,
      has(i.kmsKeyId) && "KMS",
    ),
  "aws:cloudwatch/metricAlarm:MetricAlarm": (i) =>
    has(i.metricName)
      ? `${String(i.namespace)}/${String(i.metricName)} ${String(i.comparisonOperator ?? "")} ${String(i.threshold ?? "")}`.trim()
      : "metric math",
  "aws:kms/key:Key": (i) =>
    join(
      i.enableKeyRotation === true && "rotation on",
      has(i.deletionWindowInDays) && `deletion window ${String(i.deletionWindowInDays)} d`,
    ),
  "aws:budgets/budget:Budget": (i) =>
    `${String(i.limitAmount)} ${String(i.limitUnit)} / ${String(i.timeUnit ?? "MONTHLY").toLowerCase()}, alerts at ${a(
      i.notifications,
    )
      .map((n) => `${String(o(n).threshold)}%`)
      .join(" ")}`,
  "aws:ecr/repository:Repository": (i) =>
    join(
      String(i.imageTagMutability ?? "MUTABLE").toLowerCase() + " tags",
      o(i.imageScanningConfiguration).scanOnPush === true && "scan on push",
    ),
  "gcp:sql/databaseInstance:DatabaseInstance": (i) => {
    const s = o(i.settings);
    return join(
      String(i.databaseVersion ?? ""),
      String(s.tier),
      String(s.availabilityType ?? "ZONAL"),
      `${String(s.diskSize ?? 10)} GB ${String(s.diskType ?? "PD_SSD")}`,
      o(s.ipConfiguration).ipv4Enabled === false && "private IP only",
    );
  },
  "gcp:redis/instance:Instance": (i) =>
    join(
      String(i.tier),
      `${String(i.memorySizeGb)} GB`,
      String(i.redisVersion ?? ""),
      i.authEnabled === true && "AUTH",
      has(i.transitEncryptionMode) && String(i.transitEncryptionMode),
    ),
  "gcp:compute/routerNat:RouterNat": (i) =>
    join(
      String(i.natIpAllocateOption ?? ""),
      `${String(i.minPortsPerVm ?? "")}-${String(i.maxPortsPerVm ?? "")} ports/VM`,
    ),
  "gcp:compute/subnetwork:Subnetwork": (i) =>
    join(String(i.ipCidrRange ?? ""), i.privateIpGoogleAccess === true && "private Google access"),
  "gcp:cloudrunv2/service:Service": (i) => {
    const t = o(i.template);
    const s = { ...o(i.scaling), ...o(t.scaling) };
    const limits = o(o(o(a(t.containers)[0]).resources).limits);
    return join(
      `instances ${String(s.minInstanceCount ?? 0)}-${String(s.maxInstanceCount ?? "?")}`,
      `${String(limits.cpu ?? "1")} vCPU / ${String(limits.memory ?? "512Mi")}`,
      has(t.maxInstanceRequestConcurrency) &&
        `concurrency ${String(t.maxInstanceRequestConcurrency)}`,
      String(i.ingress ?? ""),
    );
  },
  "gcp:cloudrunv2/serviceIamMember:ServiceIamMember": (i) =>
    `${String(i.role)} ${String(i.member)}`,
  "gcp:compute/instanceTemplate:InstanceTemplate": (i) =>
    join(
      String(i.machineType ?? ""),
      ...a(i.disks).map((d) =>
        `${String(o(d).diskSizeGb)} GB ${String(o(d).diskType ?? "")}`.trim(),
      ),
      o(i.shieldedInstanceConfig).enableSecureBoot === true && "secure boot",
    ),
  "gcp:compute/regionAutoscaler:RegionAutoscaler": (i) => {
    const p = o(i.autoscalingPolicy);
    return join(
      `${String(p.minReplicas)}-${String(p.maxReplicas)} instances`,
      has(o(p.cpuUtilization).target) &&
        `CPU ${Math.round(Number(o(p.cpuUtilization).target) * 100)}%`,
    );
  },
  "gcp:compute/globalForwardingRule:GlobalForwardingRule": (i) =>
    join(String(i.loadBalancingScheme ?? ""), `port ${String(i.portRange ?? "")}`),
  "gcp:compute/globalAddress:GlobalAddress": (i) =>
    join(String(i.addressType ?? "EXTERNAL"), has(i.purpose) && String(i.purpose)),
  "gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig": (i) =>
    join(
      `every ${String(i.period ?? "60s")}`,
      has(o(i.httpCheck).path) && String(o(i.httpCheck).path),
    ),
  "gcp:logging/projectBucketConfig:ProjectBucketConfig": (i) =>
    `${String(i.bucketId)} retention ${String(i.retentionDays)} d`,
  "gcp:billing/budget:Budget": (i) => {
    const units = o(o(i.amount).specifiedAmount).units;
    return `${String(units)} USD / month, alerts at ${a(i.thresholdRules)
      .map((t) => `${Math.round(Number(o(t).thresholdPercent) * 100)}%`)
      .join(" ")}`;
  },
  "kubernetes:apps/v1:Deployment": (i) => {
    const c = o(a(o(o(o(i.spec).template).spec).containers)[0]);
    const req = o(o(c.resources).requests);
    return join(
      has(o(i.spec).replicas) && `${String(o(i.spec).replicas)} replicas`,
      has(req.cpu) && `requests ${String(req.cpu)} CPU / ${String(req.memory)}`,
    );
  },
  "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": (i) =>
    `${String(o(i.spec).minReplicas)}-${String(o(i.spec).maxReplicas)} replicas`,
  "kubernetes:core/v1:Service": (i) => String(o(i.spec).type ?? "ClusterIP"),
  "kubernetes:policy/v1:PodDisruptionBudget": (i) =>
    has(o(i.spec).minAvailable)
      ? `minAvailable ${String(o(i.spec).minAvailable)}`
      : `maxUnavailable ${String(o(i.spec).maxUnavailable)}`,
  "pulumi:pulumi:StackReference": (i) => String(i.name ?? ""),
};

/** A short summary of what matters in a resource's inputs; "" when nothing stands out. */
export function keySettings(r: { type: string; inputs: Record<string, unknown> }): string {
  const describe = SETTINGS[r.type];
  if (!describe) return "";
  try {
    return describe(r.inputs).replace(/\s+/g, " ").trim();
  } catch {
    return "";
  }
}
