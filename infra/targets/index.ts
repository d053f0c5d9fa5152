/**
 * The registry of deployment targets: one module per target key. Typed as `TargetRegistry`, so a
 * key without a module (or a module for the wrong cloud) does not compile. Adding a target: a
 * module beside these, its line here and in `TargetKey`/`TARGET_CLOUD`, and a stack file
 * (CONTRIBUTING.md walks through it).
 */
import { cloudRunTarget, cloudRunSection } from "./cloud-run";
import { eksTarget, eksSection } from "./eks";
import { lambdaTarget, lambdaSection } from "./lambda";
import { awsVmGroupTarget, gcpVmGroupTarget, vmGroupSection } from "./vm-group";
import type { TargetRegistry } from "./types";

export const TARGETS: TargetRegistry = {
  lambda: lambdaTarget,
  cloudrun: cloudRunTarget,
  eks: eksTarget,
  "vmgroup-aws": awsVmGroupTarget,
  "vmgroup-gcp": gcpVmGroupTarget,
};

/** Each target's `agent:<section>` schema, by the section's key. */
export const SECTIONS = {
  lambda: lambdaSection,
  cloudrun: cloudRunSection,
  eks: eksSection,
  vmgroup: vmGroupSection,
} as const;
