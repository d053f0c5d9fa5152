/**
 * The upstreams the service can call and the names their settings take, in one dependency-free
 * module: the configuration schema (config.ts), the model table (models.ts) and the providers
 * (upstream.ts) all derive from these lists, so a new upstream or geography is one edit here.
 */

/** LLM_UPSTREAM: who serves the model calls. */
export const UPSTREAMS = ["anthropic", "bedrock", "vertex"] as const;
export type UpstreamKind = (typeof UPSTREAMS)[number];

/**
 * OpenTelemetry's `gen_ai.provider.name` for each upstream: the GenAI semantic conventions'
 * well-known values (`anthropic`, `aws.bedrock`, `gcp.vertex_ai`; semantic-conventions
 * gen-ai registry, read 2026-12-06).
 */
export const GEN_AI_PROVIDER_NAMES = {
  anthropic: "anthropic",
  bedrock: "aws.bedrock",
  vertex: "gcp.vertex_ai",
} as const satisfies Record<UpstreamKind, string>;

/**
 * Geographies of Bedrock's cross-region (system-defined) inference profiles: a profile id is
 * `<geo>.<base model id>`. AWS lists US, EU, APAC, JP and AU geographies plus `global` (Bedrock
 * user guide, "Regional availability" and "Supported cross-Region inference profiles"; the CDK's
 * CrossRegionInferenceProfileRegion enum; read 2026-12-06).
 */
export const BEDROCK_GEOS = ["global", "us", "eu", "jp", "apac", "au"] as const;
export type BedrockGeo = (typeof BEDROCK_GEOS)[number];

/** BEDROCK_INFERENCE_PROFILE: a geography's profile, or `none` for the base model id in AWS_REGION. */
export const BEDROCK_PROFILES = [...BEDROCK_GEOS, "none"] as const;
export type BedrockProfile = (typeof BEDROCK_PROFILES)[number];
