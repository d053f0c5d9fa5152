/**
 * The composition: validated stack config -> the cloud's data plane -> the target, from the
 * registry (`infra/targets`). `infra/index.ts` calls it with the running stack's config; the
 * tests and the offline plan call it under the mock runtime.
 */
import * as pulumi from "@pulumi/pulumi";
import { registerStackTagging, gcpLabels, type StackTags } from "../components/tagging";
import type { StackConfig, StackConfigOf, TargetKey } from "./config";
import { exportArtifact, type ExportedArtifact } from "./artifact";
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
    extraEnv: budgetEnv(config),
  });
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
  return {
    url,
    target: config.target,
    cloud: config.cloud,
    environment: config.environment,
    artifact: exportArtifact(artifact),
    artifactDigest: artifact.kind === "image" ? artifact.digest : artifact.sha256,
    promotedFrom: config.promoteFrom,
    dashboardUrl,
    dnsRecords,
  };
}
