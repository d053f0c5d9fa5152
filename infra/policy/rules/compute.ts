/**
 * Compute: VMs without public IPs, with IMDSv2 and encrypted volumes; Lambda with reserved
 * concurrency and tracing; Cloud Run, instance groups and node groups with a bounded maximum;
 * at least two instances in prod.
 */
import { LEVELS, resourceRule, type ReportResource } from "../types";
import { UNKNOWN, bool, get, list, num, record, str } from "../values";

export const COMPUTE = {
  launchTemplate: "aws:ec2/launchTemplate:LaunchTemplate",
  ec2Instance: "aws:ec2/instance:Instance",
  ebsVolume: "aws:ebs/volume:Volume",
  asg: "aws:autoscaling/group:Group",
  eksNodeGroup: "aws:eks/nodeGroup:NodeGroup",
  lambda: "aws:lambda/function:Function",
  gcpInstanceTemplate: "gcp:compute/instanceTemplate:InstanceTemplate",
  gcpRegionInstanceTemplate: "gcp:compute/regionInstanceTemplate:RegionInstanceTemplate",
  gcpInstance: "gcp:compute/instance:Instance",
  gcpRegionAutoscaler: "gcp:compute/regionAutoscaler:RegionAutoscaler",
  gcpAutoscaler: "gcp:compute/autoscaler:Autoscaler",
  cloudRunV2: "gcp:cloudrunv2/service:Service",
  cloudRunV1: "gcp:cloudrun/service:Service",
} as const;

export const vmNoPublicIp = resourceRule({
  name: "vm-no-public-ip",
  description:
    "VMs get no public IP address: they sit in private subnets behind a load balancer and reach the internet through NAT.",
  domain: "compute",
  enforcement: LEVELS.security,
  types: [
    COMPUTE.launchTemplate,
    COMPUTE.ec2Instance,
    COMPUTE.gcpInstanceTemplate,
    COMPUTE.gcpRegionInstanceTemplate,
    COMPUTE.gcpInstance,
  ],
  validateResource(r, _ctx, report) {
    const p = r.props;
    if (r.type === COMPUTE.ec2Instance) {
      if (bool(p.associatePublicIpAddress) === true)
        report(
          "associatePublicIpAddress is true: set it to false and place the instance in a private subnet.",
        );
      return;
    }
    const nics = list(p.networkInterfaces);
    if (nics === UNKNOWN) return;
    nics.forEach((nic, i) => {
      if (r.type === COMPUTE.launchTemplate) {
        if (bool(get(nic, "associatePublicIpAddress")) === true) {
          report(
            `networkInterfaces[${i}].associatePublicIpAddress is true: set it to "false"; the load balancer is the only public entry.`,
          );
        }
        return;
      }
      const access = list(get(nic, "accessConfigs"));
      if (access !== UNKNOWN && access.length > 0) {
        report(
          `networkInterfaces[${i}].accessConfigs gives the VM an external IP: remove accessConfigs and reach the internet through Cloud NAT.`,
        );
      }
    });
  },
});

export const vmImdsV2 = resourceRule({
  name: "vm-imdsv2-required",
  description:
    "EC2 instances require IMDSv2 session tokens, so an SSRF cannot read the instance role's credentials.",
  domain: "compute",
  enforcement: LEVELS.security,
  types: [COMPUTE.launchTemplate, COMPUTE.ec2Instance],
  validateResource(r, _ctx, report) {
    const tokens = str(get(r.props, "metadataOptions.httpTokens"));
    const endpoint = str(get(r.props, "metadataOptions.httpEndpoint"));
    if (tokens === UNKNOWN || endpoint === UNKNOWN) return;
    if (endpoint === "disabled" || tokens === "required") return;
    report(
      `metadataOptions.httpTokens is ${tokens ?? "unset (optional)"}: set metadataOptions: { httpTokens: "required", httpPutResponseHopLimit: 2 }.`,
    );
  },
});

function checkEbs(report: ReportResource, ebs: unknown, where: string): void {
  const enc = bool(get(ebs, "encrypted"));
  if (enc === UNKNOWN) return;
  if (enc !== true)
    report(
      `${where}.encrypted is ${enc ?? "unset"}: set encrypted: true (optionally with kmsKeyId).`,
    );
}

export const vmVolumesEncrypted = resourceRule({
  name: "vm-volumes-encrypted",
  description: "EBS volumes of VMs and nodes are encrypted (GCP persistent disks always are).",
  domain: "compute",
  enforcement: LEVELS.security,
  types: [COMPUTE.launchTemplate, COMPUTE.ec2Instance, COMPUTE.ebsVolume],
  validateResource(r, _ctx, report) {
    const p = r.props;
    if (r.type === COMPUTE.ebsVolume) {
      checkEbs(report, p, "encrypted volume");
      return;
    }
    if (r.type === COMPUTE.ec2Instance) {
      const root = record(p.rootBlockDevice);
      if (root === UNKNOWN) return;
      if (!root)
        report(
          "rootBlockDevice is not declared, so the root volume follows the AMI (usually unencrypted): declare rootBlockDevice with encrypted: true.",
        );
      else checkEbs(report, root, "rootBlockDevice");
      const extra = list(p.ebsBlockDevices);
      if (extra !== UNKNOWN) extra.forEach((d, i) => checkEbs(report, d, `ebsBlockDevices[${i}]`));
      return;
    }
    const mappings = list(p.blockDeviceMappings);
    if (mappings === UNKNOWN) return;
    const ebs = mappings.filter((m) => get(m, "ebs") !== undefined);
    if (ebs.length === 0) {
      report(
        'No blockDeviceMappings, so the root volume follows the AMI (usually unencrypted): add { deviceName: "/dev/xvda", ebs: { encrypted: "true", volumeType: "gp3" } }.',
      );
      return;
    }
    mappings.forEach((m, i) => {
      if (get(m, "ebs") !== undefined)
        checkEbs(report, get(m, "ebs"), `blockDeviceMappings[${i}].ebs`);
    });
  },
});

interface LambdaConcurrencyConfig {
  maxReservedConcurrency: number;
}

export const lambdaReservedConcurrency = resourceRule<LambdaConcurrencyConfig>({
  name: "lambda-reserved-concurrency",
  description:
    "Lambda functions reserve a bounded concurrency: it caps cost and protects Postgres and Redis from a connection storm.",
  domain: "compute",
  enforcement: LEVELS.security,
  types: [COMPUTE.lambda],
  config: {
    schema: {
      maxReservedConcurrency: {
        type: "integer",
        minimum: 1,
        description: "Largest reserved concurrency allowed.",
      },
    },
    defaults: {
      dev: { maxReservedConcurrency: 50 },
      staging: { maxReservedConcurrency: 200 },
      prod: { maxReservedConcurrency: 1000 },
    },
  },
  validateResource(r, { config }, report) {
    const n = num(r.props.reservedConcurrentExecutions);
    if (n === UNKNOWN) return;
    if (n === undefined || n < 0) {
      report(
        `reservedConcurrentExecutions is ${n ?? "unset"} (unreserved: the function can take the whole account's concurrency): set it between 1 and ${config.maxReservedConcurrency}.`,
      );
    } else if (n === 0) {
      report(
        "reservedConcurrentExecutions is 0, which throttles every invocation: set it between 1 and " +
          config.maxReservedConcurrency +
          ".",
      );
    } else if (n > config.maxReservedConcurrency) {
      report(
        `reservedConcurrentExecutions is ${n}: lower it to at most ${config.maxReservedConcurrency} for this environment, or raise the limit in the policy config.`,
      );
    }
  },
});

export const lambdaTracing = resourceRule({
  name: "lambda-tracing",
  description: "Lambda functions send X-Ray traces (tracingConfig.mode Active).",
  domain: "compute",
  enforcement: LEVELS.security,
  types: [COMPUTE.lambda],
  validateResource(r, _ctx, report) {
    const mode = str(get(r.props, "tracingConfig.mode"));
    if (mode === UNKNOWN) return;
    if (mode !== "Active")
      report(
        `tracingConfig.mode is ${mode ?? "unset (PassThrough)"}: set tracingConfig: { mode: "Active" } and allow xray:PutTraceSegments in the role.`,
      );
  },
});

interface MaxInstancesConfig {
  maxInstances: number;
}

export const cloudRunMaxInstances = resourceRule<MaxInstancesConfig>({
  name: "cloudrun-max-instances",
  description:
    "Cloud Run services set a maximum instance count within the environment's limit: scaling is bounded, and so is the bill.",
  domain: "compute",
  enforcement: LEVELS.security,
  types: [COMPUTE.cloudRunV2, COMPUTE.cloudRunV1],
  config: {
    schema: {
      maxInstances: {
        type: "integer",
        minimum: 1,
        description: "Largest maxInstanceCount allowed.",
      },
    },
    defaults: {
      dev: { maxInstances: 10 },
      staging: { maxInstances: 20 },
      prod: { maxInstances: 100 },
    },
  },
  validateResource(r, { config }, report) {
    const field =
      r.type === COMPUTE.cloudRunV2
        ? "template.scaling.maxInstanceCount"
        : "template.metadata.annotations";
    let max: number | undefined | typeof UNKNOWN;
    if (r.type === COMPUTE.cloudRunV2) {
      max = num(get(r.props, field));
    } else {
      const annotations = record(get(r.props, field));
      max =
        annotations === UNKNOWN ? UNKNOWN : num(annotations?.["autoscaling.knative.dev/maxScale"]);
    }
    if (max === UNKNOWN) return;
    if (max === undefined || max <= 0) {
      report(
        `No maximum instance count (Cloud Run would scale to 100 or the regional quota): set ${r.type === COMPUTE.cloudRunV2 ? "template.scaling.maxInstanceCount" : 'the "autoscaling.knative.dev/maxScale" annotation'} to at most ${config.maxInstances}.`,
      );
    } else if (max > config.maxInstances) {
      report(
        `The maximum instance count is ${max}: lower it to at most ${config.maxInstances} for this environment, or raise maxInstances in the policy config.`,
      );
    }
  },
});

export const autoscalingBounded = resourceRule<MaxInstancesConfig>({
  name: "autoscaling-bounded",
  description:
    "Auto Scaling groups, managed instance group autoscalers and EKS node groups have a maximum within the environment's limit.",
  domain: "compute",
  enforcement: LEVELS.security,
  types: [COMPUTE.asg, COMPUTE.gcpRegionAutoscaler, COMPUTE.gcpAutoscaler, COMPUTE.eksNodeGroup],
  config: {
    schema: {
      maxInstances: {
        type: "integer",
        minimum: 1,
        description: "Largest maximum size of a group.",
      },
    },
    defaults: {
      dev: { maxInstances: 5 },
      staging: { maxInstances: 10 },
      prod: { maxInstances: 50 },
    },
  },
  validateResource(r, { config }, report) {
    const [field, min] =
      r.type === COMPUTE.asg
        ? ["maxSize", "minSize"]
        : r.type === COMPUTE.eksNodeGroup
          ? ["scalingConfig.maxSize", "scalingConfig.minSize"]
          : ["autoscalingPolicy.maxReplicas", "autoscalingPolicy.minReplicas"];
    const max = num(get(r.props, field));
    const lo = num(get(r.props, min));
    if (max === UNKNOWN) return;
    if (max === undefined) {
      report(`${field} is unset: set it to at most ${config.maxInstances}.`);
    } else if (max > config.maxInstances) {
      report(
        `${field} is ${max}: lower it to at most ${config.maxInstances} for this environment, or raise maxInstances in the policy config.`,
      );
    } else if (lo !== UNKNOWN && lo !== undefined && lo > max) {
      report(`${min} (${lo}) is above ${field} (${max}): make the minimum at most the maximum.`);
    }
  },
});

interface MinCapacityConfig {
  minInstances: number;
}

export const prodMinCapacity = resourceRule<MinCapacityConfig>({
  name: "prod-min-capacity",
  description:
    "In prod, instance groups and node groups keep at least two instances, spread over zones, so one failure is not an outage.",
  domain: "compute",
  enforcement: LEVELS.prodOnly,
  types: [COMPUTE.asg, COMPUTE.gcpRegionAutoscaler, COMPUTE.gcpAutoscaler, COMPUTE.eksNodeGroup],
  config: {
    schema: {
      minInstances: { type: "integer", minimum: 1, description: "Fewest instances in a group." },
    },
    defaults: { dev: { minInstances: 1 }, staging: { minInstances: 1 }, prod: { minInstances: 2 } },
  },
  validateResource(r, { config }, report) {
    const field =
      r.type === COMPUTE.asg
        ? "minSize"
        : r.type === COMPUTE.eksNodeGroup
          ? "scalingConfig.minSize"
          : "autoscalingPolicy.minReplicas";
    const min = num(get(r.props, field));
    if (min === UNKNOWN) return;
    if ((min ?? 0) < config.minInstances) {
      report(`${field} is ${min ?? "unset"}: set it to at least ${config.minInstances}.`);
    }
  },
});

const IAM_POLICY_TYPES = ["aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy"];

/** An IAM policy document's Allow statements (from JSON text or an object); UNKNOWN while computed. */
function allowStatements(policy: unknown): Record<string, unknown>[] | typeof UNKNOWN | undefined {
  if (policy === UNKNOWN) return UNKNOWN;
  let doc: unknown = policy;
  if (typeof policy === "string") {
    try {
      doc = JSON.parse(policy);
    } catch {
      return undefined;
    }
  }
  const statements = (doc as { Statement?: unknown })?.Statement;
  const all = Array.isArray(statements) ? statements : statements ? [statements] : [];
  return all.filter(
    (s): s is Record<string, unknown> =>
      typeof s === "object" && s !== null && (s as { Effect?: unknown }).Effect === "Allow",
  );
}

const asList = (v: unknown): string[] =>
  (Array.isArray(v) ? v : v === undefined ? [] : [v]).filter(
    (x): x is string => typeof x === "string",
  );

/**
 * A workload calling Claude on Bedrock may invoke exactly the models and inference profiles it
 * is configured with (components/upstream.ts): no `bedrock:*` or `Invoke*` action, no `*` in a
 * resource. Issue 16: "on the configured foundation models and inference profiles only".
 */
export const bedrockInvokeScoped = resourceRule({
  name: "bedrock-invoke-scoped",
  description:
    "IAM policies that let a workload invoke Bedrock models name the actions and the model and inference-profile ARNs: no wildcard action or resource.",
  domain: "compute",
  enforcement: LEVELS.security,
  types: IAM_POLICY_TYPES,
  validateResource(r, _ctx, report) {
    const statements = allowStatements(r.props.policy);
    if (statements === UNKNOWN || statements === undefined) return;
    for (const s of statements) {
      const actions = asList(s.Action);
      const bedrock = actions.filter((a) => /^bedrock:/i.test(a) || a === "*");
      if (bedrock.length === 0) continue;
      const wild = bedrock.filter((a) => a.includes("*"));
      if (wild.length > 0) {
        report(
          `Actions ${wild.join(", ")} grant every Bedrock operation they match: list bedrock:InvokeModel and bedrock:InvokeModelWithResponseStream.`,
        );
      }
      const invokes = bedrock.some((a) => /^bedrock:invoke/i.test(a) || a.includes("*"));
      const wideResources = asList(s.Resource).filter((res) => res.includes("*"));
      if (invokes && wideResources.length > 0) {
        report(
          `Bedrock invoke on ${wideResources.join(", ")}: name the foundation-model and inference-profile ARNs of the configured models (components/upstream.ts bedrockInvokePolicy).`,
        );
      }
    }
  },
});

export const computeRules = [
  vmNoPublicIp,
  vmImdsV2,
  vmVolumesEncrypted,
  lambdaReservedConcurrency,
  lambdaTracing,
  cloudRunMaxInstances,
  autoscalingBounded,
  prodMinCapacity,
  bedrockInvokeScoped,
];
