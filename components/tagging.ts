/**
 * Stack-wide tags (AWS) and labels (GCP): one mechanism for every resource of the stack.
 *
 * Why a stack transformation rather than provider `defaultTags` / `defaultLabels`:
 * - The provider merges default tags engine-side (into `tagsAll` / `effectiveLabels`), which the
 *   Pulumi mock runtime never runs, so tests could not prove any resource is tagged. A
 *   transformation runs in the SDK, so the very inputs the tests inspect are the ones deployed.
 * - The newer `registerResourceTransform` is run by the engine and refuses to register under
 *   mocks ("does not support transforms"), for the same reason.
 * - One rule covers resources whatever provider instance they use (explicit providers included).
 *
 * The rule for "accepts tags" is read from the generated SDKs: a resource whose inputs carry
 * both `tags` and the provider-computed `tagsAll` uses the AWS key/value tag map. Resources with
 * `tags` but no `tagsAll` use another shape (the Auto Scaling Group's list of
 * `{key, value, propagateAtLaunch}`), and resources without `tags` would be rejected by the
 * provider. GCP is the same with `labels` / `effectiveLabels` (excluding, for instance,
 * `monitoring.MetricDescriptor`, whose `labels` is a list of label descriptors).
 *
 * Call `registerStackTagging(...)` once, first thing in the program (it applies to resources
 * constructed afterwards, and needs the root stack resource, which the CLI creates).
 */
import * as pulumi from "@pulumi/pulumi";
import type { Environment } from "./contracts";

export interface StackTags {
  /** Application name, e.g. "agent". */
  app: string;
  environment: Environment;
  /** Team or person accountable for the stack. */
  owner: string;
  /** Cost centre the spend is charged to. */
  costCenter: string;
  /** Pulumi `<project>-<stack>`: unique per stack, what the cost budget filters on. */
  stack: string;
}

/** AWS tag keys this project sets. Keys are stable API: budgets and policies depend on them. */
export const AWS_TAG_KEYS = {
  app: "app",
  environment: "environment",
  owner: "owner",
  costCenter: "cost-center",
  stack: "pulumi-stack",
} as const satisfies Record<keyof StackTags, string>;

const AWS_TAG_VALUE = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]{0,256}$/u;

/** Problems with tag values (AWS charset, length; nothing empty), as messages saying what to change. */
export function validateStackTags(tags: StackTags): string[] {
  const problems: string[] = [];
  for (const [field, value] of Object.entries(tags) as Array<[keyof StackTags, string]>) {
    if (typeof value !== "string" || value.trim() === "") {
      problems.push(`tag "${field}" is empty: set it in the stack config.`);
    } else if (!AWS_TAG_VALUE.test(value)) {
      problems.push(
        `tag "${field}" value "${value}" has characters AWS rejects: use letters, digits, spaces and _ . : / = + - @ (max 256).`,
      );
    } else if (gcpLabelValue(value) === "") {
      problems.push(
        `tag "${field}" value "${value}" leaves nothing once made a GCP label: include letters or digits.`,
      );
    }
  }
  return problems;
}

/** The AWS tag map for a stack. */
export function awsTags(tags: StackTags): Record<string, string> {
  return {
    [AWS_TAG_KEYS.app]: tags.app,
    [AWS_TAG_KEYS.environment]: tags.environment,
    [AWS_TAG_KEYS.owner]: tags.owner,
    [AWS_TAG_KEYS.costCenter]: tags.costCenter,
    [AWS_TAG_KEYS.stack]: tags.stack,
  };
}

/** The tag an AWS cost budget filters on: unique per stack, so dev spend never counts for prod. */
export function costAllocationTag(tags: StackTags): { key: string; value: string } {
  return { key: AWS_TAG_KEYS.stack, value: tags.stack };
}

/** Auto Scaling Groups take a list, and should propagate tags to the instances they launch. */
export function awsAutoScalingGroupTags(
  tags: StackTags,
): Array<{ key: string; value: string; propagateAtLaunch: boolean }> {
  return Object.entries(awsTags(tags)).map(([key, value]) => ({
    key,
    value,
    propagateAtLaunch: true,
  }));
}

/**
 * GCP label values: lowercase letters, digits, `_` and `-`, at most 63 characters. Anything else
 * becomes `_`, so "Platform Team" -> "platform_team".
 */
export function gcpLabelValue(value: string): string {
  return value
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, "_")
    .replace(/^[_-]+|[_-]+$/g, "")
    .slice(0, 63);
}

/** GCP label keys: like values, but must start with a lowercase letter and cannot be empty. */
export function gcpLabelKey(key: string): string {
  const cleaned = gcpLabelValue(key);
  const startsWithLetter = /^[a-z]/.test(cleaned) ? cleaned : `k_${cleaned}`;
  return startsWithLetter.slice(0, 63);
}

/** The GCP label map for a stack (same keys as AWS, made label-safe: `cost-center`, `pulumi-stack`). */
export function gcpLabels(tags: StackTags): Record<string, string> {
  return Object.fromEntries(
    Object.entries(awsTags(tags)).map(([k, v]) => [gcpLabelKey(k), gcpLabelValue(v)]),
  );
}

/** Whether a resource's inputs take the AWS tag map (see the module comment for the rule). */
export function acceptsAwsTags(type: string, props: Record<string, unknown>): boolean {
  return type.startsWith("aws:") && "tags" in props && "tagsAll" in props;
}

/** Whether a resource's inputs take the GCP label map. */
export function acceptsGcpLabels(type: string, props: Record<string, unknown>): boolean {
  return type.startsWith("gcp:") && "labels" in props && "effectiveLabels" in props;
}

/**
 * Merges stack tags over a resource's own. Stack keys win: cost attribution must not depend on
 * each component getting its tags right. Works when `own` is an Output or holds Outputs.
 */
function mergeOver(
  own: unknown,
  stack: Record<string, string>,
): pulumi.Input<Record<string, pulumi.Input<string>>> {
  if (own === undefined || own === null) return { ...stack };
  return pulumi
    .output(own as pulumi.Input<Record<string, string>>)
    .apply((o) => ({ ...(o ?? {}), ...stack }));
}

const LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate";
/** What a launch template starts; Auto Scaling groups and EKS node groups do not tag these themselves. */
const LAUNCHED_KINDS = ["instance", "volume"] as const;

interface TagSpecification {
  resourceType: string;
  tags?: Record<string, string>;
}

/**
 * A launch template's own tags stay on the template: the instances and volumes it launches are
 * tagged only through `tagSpecifications`. Stack tags are merged into every specification, and
 * instance and volume specifications are added when missing, so EC2 spend is attributed.
 */
export function withLaunchedTags(
  own: unknown,
  stack: Record<string, string>,
): pulumi.Output<TagSpecification[]> {
  return pulumi.output((own ?? []) as pulumi.Input<TagSpecification[]>).apply((specs) => {
    const merged = (specs ?? []).map((spec) => ({
      ...spec,
      tags: { ...(spec.tags ?? {}), ...stack },
    }));
    for (const kind of LAUNCHED_KINDS) {
      if (!merged.some((spec) => spec.resourceType === kind))
        merged.push({ resourceType: kind, tags: { ...stack } });
    }
    return merged;
  });
}

/**
 * The transformation that adds tags (AWS) and labels (GCP). Exported for tests and for programs
 * that want to scope it to one component (`transformations: [...]`) instead of the whole stack.
 */
export function taggingTransformation(tags: StackTags): pulumi.ResourceTransformation {
  const aws = awsTags(tags);
  const gcp = gcpLabels(tags);
  return ({ type, props, opts }) => {
    // Reads (`X.get(...)`) and imports-by-URN describe existing resources: never rewrite their inputs.
    if (opts.id !== undefined || opts.urn !== undefined) return undefined;
    if (acceptsAwsTags(type, props)) {
      const tagged: Record<string, unknown> = { ...props, tags: mergeOver(props.tags, aws) };
      if (type === LAUNCH_TEMPLATE)
        tagged.tagSpecifications = withLaunchedTags(props.tagSpecifications, aws);
      return { props: tagged, opts };
    }
    if (acceptsGcpLabels(type, props)) {
      return { props: { ...props, labels: mergeOver(props.labels, gcp) }, opts };
    }
    return undefined;
  };
}

/**
 * Registers the stack-wide tagging. Call once from the program's entry point, before creating
 * resources. Throws with what to change when a tag value is unusable.
 */
export function registerStackTagging(tags: StackTags): void {
  const problems = validateStackTags(tags);
  if (problems.length > 0) {
    throw new Error(`Invalid stack tags:\n  ${problems.join("\n  ")}`);
  }
  pulumi.runtime.registerStackTransformation(taggingTransformation(tags));
}
