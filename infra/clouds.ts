/**
 * Each cloud's data plane, built from the stack config: the same contract for every target on
 * that cloud (`DataPlaneOutputs<"aws">` / `<"gcp">`), plus what only that cloud has. Target
 * modules call their cloud's function: a target only ever sees its own cloud's types.
 */
import { VERTEX_API } from "../components/upstream";
import { environmentProfile } from "../components/environment";
import {
  costAllocationTag,
  gcpLabelKey,
  AWS_TAG_KEYS,
  type StackTags,
} from "../components/tagging";
import { AwsDataPlane } from "../components/aws/data-plane";
import { GcpDataPlane } from "../components/gcp/data-plane";
import { DATA_PLANE_APIS, ProjectApis } from "../components/gcp/apis";
import type { StackConfigOf } from "./config";
import type { DataPlaneOf } from "./targets/types";

/** The common part of a stack's config that a data plane reads. */
type AwsConfig = StackConfigOf<"lambda" | "eks" | "vmgroup-aws">;
type GcpConfig = StackConfigOf<"cloudrun" | "vmgroup-gcp">;

/** The AWS data plane of a stack. */
export function awsDataPlane(name: string, config: AwsConfig, tags: StackTags): DataPlaneOf["aws"] {
  const component = new AwsDataPlane(name, {
    environment: config.environment,
    region: config.region,
    costAllocationTag: costAllocationTag(tags),
    anthropicApiKey: config.anthropicApiKey,
    upstream: config.upstream.kind,
    alertEmails: config.alertEmails,
    monthlyBudgetUsd: config.monthlyBudgetUsd,
    profile: environmentProfile(config.environment),
  });
  return { component, outputs: component.outputs };
}

/**
 * The GCP data plane of a stack: the APIs it and the target call (`extraApis`), enabled first,
 * then every resource through the provider that waits for them.
 */
export function gcpDataPlane(
  name: string,
  config: GcpConfig,
  labels: Record<string, string>,
  extraApis: string[],
): DataPlaneOf["gcp"] {
  const project = config.gcpProject;
  const apis = new ProjectApis(`${name}-apis`, {
    project,
    region: config.region,
    // Builds push to this project's registry; promoted stacks grant pulls on the source's.
    apis: [
      ...DATA_PLANE_APIS,
      "artifactregistry.googleapis.com",
      ...(config.upstream.kind === "vertex" ? [VERTEX_API] : []),
      ...extraApis,
    ],
  });
  const opts = { provider: apis.provider };
  const stackLabel = gcpLabelKey(AWS_TAG_KEYS.stack);
  const component = new GcpDataPlane(
    name,
    {
      project,
      region: config.region,
      profile: environmentProfile(config.environment),
      anthropicApiKey: config.anthropicApiKey,
      alertEmails: config.alertEmails,
      billingAccount: config.billingAccount,
      monthlyBudgetUsd: config.monthlyBudgetUsd,
      // Stacks may share a project: each budget counts its own stack's labelled spend.
      budgetLabelFilter: { [stackLabel]: labels[stackLabel]! },
      budgetDisplayName: `${name}-${config.stack}`,
      billingProvider: apis.billingProvider,
      labels,
    },
    opts,
  );
  return { component, outputs: component.outputs, project, apis, opts };
}
