/**
 * What a deployment target module is: the stack-config section it reads, the cloud it runs on,
 * and how it deploys onto that cloud's data plane. The registry (`./index.ts`) lists one module
 * per target key, typed so that a key without a module is a compile error, and each module sees
 * only its own cloud's types.
 */
import type * as pulumi from "@pulumi/pulumi";
import type { Artifact, DataPlaneOutputs } from "../../components/contracts";
import type { AwsDataPlane } from "../../components/aws/data-plane";
import type { GcpDataPlane } from "../../components/gcp/data-plane";
import type { ProjectApis } from "../../components/gcp/apis";
import type { z } from "zod";
import type { StackConfigOf } from "../config";
import type { LambdaSection } from "./lambda";
import type { CloudRunSection } from "./cloud-run";
import type { EksSection } from "./eks";
import type { VmGroupSection } from "./vm-group";
import type { StackTags } from "../../components/tagging";

/**
 * The type-level registry: one line per target key, with its cloud, its `agent:target` kind and
 * the type of its `agent:<kind>` section. `vmgroup` runs on either cloud, so it has a key per cloud.
 */
export interface TargetDefs {
  lambda: { cloud: "aws"; kind: "lambda"; section: LambdaSection };
  cloudrun: { cloud: "gcp"; kind: "cloudrun"; section: CloudRunSection };
  eks: { cloud: "aws"; kind: "eks"; section: EksSection };
  "vmgroup-aws": { cloud: "aws"; kind: "vmgroup"; section: VmGroupSection };
  "vmgroup-gcp": { cloud: "gcp"; kind: "vmgroup"; section: VmGroupSection };
}
export type TargetKey = keyof TargetDefs;
export type CloudOf<K extends TargetKey> = TargetDefs[K]["cloud"];

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
  kind: TargetDefs[K]["kind"];
  cloud: CloudOf<K>;
  /** The schema of the target's `agent:<kind>` section: the only check of its settings. */
  section: z.ZodType<TargetDefs[K]["section"]>;
  /** Builds the cloud's data plane (infra/clouds.ts), then the target on it. */
  deploy(config: StackConfigOf<K>, ctx: DeployContext): Deployed;
}

/** The registry's type: every key has its module. */
export type TargetRegistry = { [K in TargetKey]: TargetModule<K> };
