/**
 * The stack config's upstream keys: `agent:upstream` (anthropic, bedrock on AWS, vertex on GCP),
 * `agent:bedrockProfile` (the inference profile geography, default the stack Region's own) and
 * `agent:vertexRegion` (default `global`), and the Anthropic key they make required or refused.
 * Problems name the key and say what to change, like every stack-config check (infra/config.ts).
 */
import type { Cloud } from "../components/contracts";
import {
  bedrockModels,
  bedrockProblems,
  defaultBedrockProfile,
  vertexModels,
  type BedrockProfile,
  type LlmUpstream,
  type UpstreamKind,
} from "../components/upstream";

const NS = "agent";

/**
 * Vertex AI locations that serve Claude, and `global` (https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/use-claude,
 * "Regional availability"; read 2026-12-06). Models differ by location: the preflight warns.
 */
export const VERTEX_CLAUDE_LOCATIONS = [
  "global",
  "us-east5",
  "europe-west1",
  "asia-southeast1",
] as const;

interface UpstreamKeys {
  upstream?: UpstreamKind;
  bedrockProfile?: BedrockProfile;
  vertexRegion?: string;
  anthropicApiKey?: string;
}

export function upstreamSettings(
  c: UpstreamKeys,
  cloud: Cloud,
  region: string | undefined,
  problems: string[],
  requireKey: (key: string, why: string, secret?: boolean) => void,
): LlmUpstream {
  const kind = c.upstream ?? "anthropic";
  if (kind === "anthropic") {
    if (c.bedrockProfile !== undefined || c.vertexRegion !== undefined) {
      problems.push(
        `${NS}:bedrockProfile and ${NS}:vertexRegion apply to ${NS}:upstream bedrock or vertex: remove them, or set ${NS}:upstream`,
      );
    }
    if (c.anthropicApiKey === undefined) {
      requireKey(
        `${NS}:anthropicApiKey`,
        `with ${NS}:upstream anthropic (the default; bedrock on AWS or vertex on GCP need no key)`,
        true,
      );
    }
    return { kind: "anthropic" };
  }
  if (c.anthropicApiKey !== undefined) {
    problems.push(
      `${NS}:anthropicApiKey is set, but ${NS}:upstream ${kind} calls Claude with the workload's own identity: remove it (pulumi config rm ${NS}:anthropicApiKey) so no key is stored`,
    );
  }
  const expected: Record<"bedrock" | "vertex", Cloud> = { bedrock: "aws", vertex: "gcp" };
  if (expected[kind] !== cloud) {
    problems.push(
      `${NS}:upstream ${kind} runs on ${expected[kind]}, and this stack is on ${cloud}: use ${cloud === "aws" ? "bedrock" : "vertex"} or anthropic`,
    );
    return { kind: "anthropic" };
  }
  if (kind === "bedrock") {
    if (c.vertexRegion !== undefined)
      problems.push(`${NS}:vertexRegion applies to vertex: remove it`);
    const profile = c.bedrockProfile ?? (region ? defaultBedrockProfile(region) : "global");
    const models = bedrockModels();
    if (region) problems.push(...bedrockProblems(region, profile, models, `${NS}:bedrockProfile`));
    return { kind: "bedrock", profile, models };
  }
  if (c.bedrockProfile !== undefined)
    problems.push(`${NS}:bedrockProfile applies to bedrock: remove it`);
  const vertexRegion = c.vertexRegion ?? "global";
  if (!(VERTEX_CLAUDE_LOCATIONS as readonly string[]).includes(vertexRegion)) {
    problems.push(
      `${NS}:vertexRegion is ${vertexRegion}, where Vertex AI serves no Claude model: use one of ${VERTEX_CLAUDE_LOCATIONS.join(", ")}`,
    );
  }
  return { kind: "vertex", region: vertexRegion, models: vertexModels() };
}
