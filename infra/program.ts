/**
 * The composition: validated stack config -> the cloud's data plane -> the target, from the
 * registry (`infra/targets`). `infra/index.ts` calls it with the running stack's config; the
 * tests and the offline plan call it under the mock runtime.
 */
import { upstreamEnv } from "../components/upstream";
import { execFileSync } from "node:child_process";
import * as pulumi from "@pulumi/pulumi";
import { ReleaseHistory, type ReleaseRecord } from "../components/release/history";
import { registerStackTagging, gcpLabels, type StackTags } from "../components/tagging";
import type { StackConfig, StackConfigOf, TargetKey } from "./config";
import { exportArtifact, REPO_ROOT, type ExportedArtifact } from "./artifact";
import { TARGETS } from "./targets";
import { budgetEnv, NAME } from "./targets/shared";
import type { Deployed } from "./targets/types";

export interface ProgramOutputs {
  url: pulumi.Output<string>;
  target: StackConfig["target"];
  cloud: StackConfig["cloud"];
  environment: StackConfig["environment"];
  /** What later stages promote: exported as the stack output `artifact`. */
  artifact: pulumi.Output<ExportedArtifact>;
  /** Image digest, or the Lambda bundle's SHA-256. */
  artifactDigest: pulumi.Output<string>;
  promotedFrom?: string;
  /** Every release this stack deployed, oldest first (`npm run release -- list`). */
  releases: pulumi.Output<ReleaseRecord[]>;
  dashboardUrl: pulumi.Output<string>;
  /**
   * The DNS records `domain` needs, and whether the stack manages them (`agent:dnsZone`) or you
   * create them (`managed: false`): the certificate is issued only once they resolve.
   */
  dnsRecords: pulumi.Output<DnsRecord[]>;
}

export interface DnsRecord {
  name: string;
  type: "A" | "CNAME";
  value: string;
  managed: boolean;
}

export function stackTags(config: StackConfig): StackTags {
  return {
    app: NAME,
    environment: config.environment,
    owner: config.owner,
    costCenter: config.costCenter,
    stack: `${pulumi.getProject()}-${config.stack}`,
  };
}

export function program(config: StackConfig): ProgramOutputs {
  const tags = stackTags(config);
  registerStackTagging(tags);
  return outputs(config, deploy(config.key, config, tags));
}

/** One target key's deployment, by its module in the registry: no switch, no cast. */
function deploy<K extends TargetKey>(key: K, config: StackConfigOf<K>, tags: StackTags): Deployed {
  return TARGETS[key].deploy(config, {
    name: NAME,
    tags,
    labels: gcpLabels(tags),
    extraEnv: {
      ...budgetEnv(config),
      ...upstreamEnv(config.upstream, "gcpProject" in config ? config.gcpProject : undefined),
    },
  });
}

/**
 * The commit being deployed: the workflow's `GITHUB_SHA`, else the checkout's HEAD, else
 * "unknown" (a program run outside a git checkout).
 */
export function deployCommit(env: NodeJS.ProcessEnv = process.env): string {
  if (env.GITHUB_SHA) return env.GITHUB_SHA;
  try {
    return execFileSync("git", ["rev-parse", "HEAD"], {
      cwd: REPO_ROOT,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return "unknown";
  }
}

/** This deployment's entry in the stack's release history. */
export function releaseRecord(config: StackConfig, release: string, commit: string): ReleaseRecord {
  return {
    release,
    kind: config.release ? "rollback" : config.promoteFrom ? "promotion" : "build",
    source: config.release ? config.stack : (config.promoteFrom ?? config.stack),
    at: new Date().toISOString(),
    commit,
  };
}

function outputs(config: StackConfig, deployed: Deployed): ProgramOutputs {
  const { url, artifact, entry, dashboardUrl } = deployed;
  const domain = config.domain;
  const dnsRecords: pulumi.Output<DnsRecord[]> =
    domain && entry
      ? entry.value.apply((value) => [
          { name: domain, type: entry.recordType, value, managed: Boolean(config.dnsZone) },
        ])
      : pulumi.output([]);
  const artifactDigest = artifact.kind === "image" ? artifact.digest : artifact.sha256;
  const commit = deployCommit();
  const history = new ReleaseHistory(`${NAME}-releases`, {
    record: pulumi.output(artifactDigest).apply((d) => releaseRecord(config, d, commit)),
  });
  return {
    url,
    target: config.target,
    cloud: config.cloud,
    environment: config.environment,
    artifact: exportArtifact(artifact),
    artifactDigest: pulumi.output(artifactDigest),
    promotedFrom: config.promoteFrom,
    releases: history.releases,
    dashboardUrl,
    dnsRecords,
  };
}
