/**
 * The registry of deployment targets: one module per target key. Typed as `TargetRegistry`, so a
 * key of `TargetDefs` (./types.ts) without its module, or a module for the wrong cloud, does not
 * compile. Adding a target: a module beside these, its line in `TargetDefs` and here, and a stack
 * file (CONTRIBUTING.md walks through it).
 */
import { cloudRunTarget } from "./cloud-run";
import { eksTarget } from "./eks";
import { lambdaTarget } from "./lambda";
import { awsVmGroupTarget, gcpVmGroupTarget } from "./vm-group";
import type { TargetRegistry } from "./types";

export const TARGETS: TargetRegistry = {
  lambda: lambdaTarget,
  cloudrun: cloudRunTarget,
  eks: eksTarget,
  "vmgroup-aws": awsVmGroupTarget,
  "vmgroup-gcp": gcpVmGroupTarget,
};
