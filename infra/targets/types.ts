/**
 * What a deployment target module is: the stack-config section it reads, the cloud it runs on,
 * and how it deploys onto that cloud's data plane. The registry (`./index.ts`) lists one module
 * per target key, typed so that a key without a module is a compile error, and each module sees
 * only its own cloud's types.
 */
import type * as pulumi from "@pulumi/pulumi";
import type { Artifact, Cloud, DataPlaneOutputs, TargetKind } from "../../components/contracts";
import type { AwsDataPlane } from "../../components/aws/data-plane";
import type { GcpDataPlane } from "../../components/gcp/data-plane";
import type { ProjectApis } from "../../components/gcp/apis";
import type { StackConfigOf, TargetKey } from "../config";
import type { StackTags } from "../../components/tagging";

export type { TargetKey };

/** The cloud of each target key: `vmgroup` runs on either, so it has a key per cloud. */
export const TARGET_CLOUD = {
  lambda: "aws",
  cloudrun: "gcp",
  eks: "aws",
  "vmgroup-aws": "aws",
  "vmgroup-gcp": "gcp",
} as const satisfies Record<TargetKey, Cloud>;
export type CloudOf<K extends TargetKey> = (typeof TARGET_CLOUD)[K];

/** A cloud's data plane as a target sees it: the contract, plus what only that cloud has. */
export interface DataPlaneOf {
  aws: { outputs: DataPlaneOutputs<"aws">; component: AwsDataPlane };
  gcp: {
    outputs: DataPlaneOutputs<"gcp">;
    component: GcpDataPlane;
    project: string;
    /** The APIs the stack enables; resources go through `opts` (its provider waits for them). */
    apis: ProjectApis;
    opts: pulumi.ComponentResourceOptions;
  };
}

/** What every target gets besides its own config. */
export interface DeployContext {
  /** The name every stack's resources hang from. */
  name: string;
  tags: StackTags;
  /** The stack's GCP labels (the same keys as the AWS tags). */
  labels: Record<string, string>;
  /** Budgets and other plain settings for the service's environment. */
  extraEnv: Record<string, string>;
}

/** What a deployed target gives the program's outputs. */
export interface Deployed {
  url: pulumi.Output<string>;
  artifact: Artifact;
  dashboardUrl: pulumi.Output<string>;
  /** The load balancer a domain's record points at, when the target has one. */
  entry?: { value: pulumi.Output<string>; recordType: "A" | "CNAME" };
}

export interface TargetModule<K extends TargetKey> {
  key: K;
  /** `agent:target` */
  kind: TargetKind;
  cloud: CloudOf<K>;
  /** Builds the cloud's data plane (infra/clouds.ts), then the target on it. */
  deploy(config: StackConfigOf<K>, ctx: DeployContext): Deployed;
}

/** The registry's type: every key has its module. */
export type TargetRegistry = { [K in TargetKey]: TargetModule<K> };
