/**
 * The policy pack's entry point, run by `pulumi preview --policy-pack infra/policy`. It only
 * constructs the pack: constructing a `PolicyPack` starts the gRPC server the Pulumi CLI talks
 * to, so nothing else may import this file. The rules live in `rules/`, the adapter in `pack.ts`.
 */
import { PolicyPack } from "@pulumi/policy";
import { buildPolicies } from "./pack";

new PolicyPack("agent-policies", { policies: buildPolicies() });
