/**
 * Pulumi entry point (Pulumi.yaml `main: infra/`). Reads and validates the stack's config,
 * builds the data plane and the target, and exports what operators and later stages need.
 */
import { loadStackConfig } from "./config";
import { program } from "./program";

const out = program(loadStackConfig());

export const url = out.url;
export const target = out.target;
export const cloud = out.cloud;
export const environment = out.environment;
/** Read by stacks that set `promoteFrom` to this stack. */
export const artifact = out.artifact;
export const artifactDigest = out.artifactDigest;
export const promotedFrom = out.promotedFrom;
/** Release, kind, source stack, when and commit of every deployment: `npm run release -- list`. */
export const releases = out.releases;
export const dashboardUrl = out.dashboardUrl;
/** The records `agent:domain` needs; `managed: false` ones are yours to create. */
export const dnsRecords = out.dnsRecords;
