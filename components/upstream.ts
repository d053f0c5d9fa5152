/**
 * Who serves the model calls (`LLM_UPSTREAM`): the Anthropic API with a key, or the cloud's own
 * Claude — Amazon Bedrock with the workload's IAM role, Vertex AI with its service account — with
 * no key to store or rotate. This module holds what infra needs to grant exactly that: the
 * Bedrock geographies and their Regions as data, the invoke policy scoped to the configured
 * models and inference profiles, and the service's environment for each upstream.
 *
 * The model ids come from the service's own table (app/config/models.json: `bedrock.modelId`,
 * `bedrock.geos`, `vertex.modelId`), so the role allows exactly what the service can call.
 */
import {
  BEDROCK_GEOS,
  type BedrockGeo,
  type BedrockProfile,
  type UpstreamKind,
} from "../app/src/llm/upstream-kinds";
import MODEL_TABLE from "../app/config/models.json";

export type { BedrockGeo, BedrockProfile, UpstreamKind };

export interface BedrockModel {
  /** Base model id, e.g. `anthropic.claude-sonnet-4-6`. */
  modelId: string;
  /** Geographies with a cross-Region inference profile for it. */
  geos: readonly BedrockGeo[];
}

export type LlmUpstream =
  | { kind: "anthropic" }
  | { kind: "bedrock"; profile: BedrockProfile; models: readonly BedrockModel[] }
  | { kind: "vertex"; region: string; models: readonly string[] };

/**
 * The Regions of each Bedrock geography: the source Regions a profile may be called from and
 * the destination Regions it routes to (the union over the Anthropic models of each geography).
 * An IAM role needs InvokeModel on the foundation model in every destination Region. Sources:
 * https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-support.html and
 * .../geographic-cross-region-inference.html; global profiles route to every commercial Region
 * and are authorised on the Region-less model ARN (.../global-cross-region-inference.html).
 * Read 2026-12-06.
 */
export const BEDROCK_GEO_REGIONS: Record<Exclude<BedrockGeo, "global">, readonly string[]> = {
  us: ["us-east-1", "us-east-2", "us-west-1", "us-west-2"],
  eu: ["eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-3"],
  jp: ["ap-northeast-1", "ap-northeast-3"],
  apac: [
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-4",
  ],
  au: ["ap-southeast-2", "ap-southeast-4"],
};

/** The geography a stack in `region` calls by default: its own, else global. */
export function defaultBedrockProfile(region: string): BedrockProfile {
  const own = (Object.keys(BEDROCK_GEO_REGIONS) as Exclude<BedrockGeo, "global">[]).find(
    (geo) => geo !== "apac" && geo !== "au" && BEDROCK_GEO_REGIONS[geo].includes(region),
  );
  return own ?? (BEDROCK_GEO_REGIONS.apac.includes(region) ? "apac" : "global");
}

interface ModelTableEntry {
  id: string;
  bedrock?: { modelId: string; geos: string[] };
  vertex?: { modelId: string };
}

const isGeo = (g: string): g is BedrockGeo => (BEDROCK_GEOS as readonly string[]).includes(g);

/** The Bedrock models of the service's table. */
export function bedrockModels(
  table: { models: readonly ModelTableEntry[] } = MODEL_TABLE,
): BedrockModel[] {
  return table.models.flatMap((m) =>
    m.bedrock ? [{ modelId: m.bedrock.modelId, geos: m.bedrock.geos.filter(isGeo) }] : [],
  );
}

/** The Vertex model ids of the service's table. */
export function vertexModels(
  table: { models: readonly ModelTableEntry[] } = MODEL_TABLE,
): string[] {
  return table.models.flatMap((m) => (m.vertex ? [m.vertex.modelId] : []));
}

/** What is wrong with calling these models through `profile` from `region`, each naming `key`. */
export function bedrockProblems(
  region: string,
  profile: BedrockProfile,
  models: readonly BedrockModel[],
  key = "agent:bedrockProfile",
): string[] {
  const problems: string[] = [];
  if (models.length === 0) {
    problems.push(
      "app/config/models.json lists no Bedrock model ids (models[].bedrock.modelId): add them",
    );
  }
  if (
    profile !== "none" &&
    profile !== "global" &&
    !BEDROCK_GEO_REGIONS[profile].includes(region)
  ) {
    problems.push(
      `${key} is ${profile}, whose inference profiles cannot be called from ${region} (its Regions: ${BEDROCK_GEO_REGIONS[profile].join(", ")}): use ${defaultBedrockProfile(region)}, global or none`,
    );
  }
  if (profile !== "none") {
    const missing = models.filter((m) => !m.geos.includes(profile)).map((m) => m.modelId);
    if (missing.length > 0) {
      problems.push(
        `${key} is ${profile}, and ${missing.join(", ")} has no ${profile} inference profile: choose a geography every model has (global covers them all), or none`,
      );
    }
  }
  return problems;
}

/** The model id the service calls: `<geo>.<model>` through a profile, the base id with `none`. */
export function bedrockInvokedId(profile: BedrockProfile, modelId: string): string {
  return profile === "none" ? modelId : `${profile}.${modelId}`;
}

const INVOKE = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"];

/**
 * `POST /v1/messages/count_tokens` on Bedrock: CountTokens takes the base model id in the stack's
 * Region (bedrock-runtime CountTokens; app/src/llm/bedrock.ts).
 */
function countTokensStatement(region: string, models: readonly BedrockModel[]) {
  return {
    Sid: "CountTokens",
    Effect: "Allow",
    Action: ["bedrock:CountTokens"],
    Resource: models.map((m) => `arn:aws:bedrock:${region}::foundation-model/${m.modelId}`),
  };
}

/**
 * The invoke policy: the configured models (and their inference profiles) only, no wildcard.
 * Through a profile, the models in its destination Regions may be invoked only through that
 * profile (`bedrock:InferenceProfileArn`), as the Bedrock user guide's examples grant them.
 */
export function bedrockInvokePolicy(input: {
  region: string;
  accountId: string;
  profile: BedrockProfile;
  models: readonly BedrockModel[];
}): { Version: "2012-10-17"; Statement: Record<string, unknown>[] } {
  const { region, accountId, profile, models } = input;
  const foundation = (r: string, id: string) => `arn:aws:bedrock:${r}::foundation-model/${id}`;
  if (profile === "none") {
    return {
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "InvokeModels",
          Effect: "Allow",
          Action: INVOKE,
          Resource: models.map((m) => foundation(region, m.modelId)),
        },
        countTokensStatement(region, models),
      ],
    };
  }
  const profiles = models.map(
    (m) =>
      `arn:aws:bedrock:${region}:${accountId}:inference-profile/${bedrockInvokedId(profile, m.modelId)}`,
  );
  const regions = profile === "global" ? [region] : [...BEDROCK_GEO_REGIONS[profile]];
  const behind = models.flatMap((m) => [
    ...regions.map((r) => foundation(r, m.modelId)),
    // Global profiles are authorised on the Region-less model ARN.
    ...(profile === "global" ? [`arn:aws:bedrock:::foundation-model/${m.modelId}`] : []),
  ]);
  return {
    Version: "2012-10-17",
    Statement: [
      { Sid: "InvokeProfiles", Effect: "Allow", Action: INVOKE, Resource: profiles },
      {
        Sid: "ModelsBehindProfiles",
        Effect: "Allow",
        Action: INVOKE,
        Resource: [...new Set(behind)],
        Condition: { StringEquals: { "bedrock:InferenceProfileArn": profiles } },
      },
      countTokensStatement(region, models),
    ],
  };
}

/** Vertex AI: the role that lets a service account call models (https://cloud.google.com/vertex-ai/docs/general/access-control). */
export const VERTEX_INVOKER_ROLE = "roles/aiplatform.user";
export const VERTEX_API = "aiplatform.googleapis.com";

/** The service's variables for an upstream (app/src/config.ts reads them). */
export function upstreamEnv(upstream: LlmUpstream, gcpProject?: string): Record<string, string> {
  switch (upstream.kind) {
    case "anthropic":
      return {};
    case "bedrock":
      return { LLM_UPSTREAM: "bedrock", BEDROCK_INFERENCE_PROFILE: upstream.profile };
    case "vertex":
      if (!gcpProject) throw new Error("the vertex upstream needs the GCP project");
      return {
        LLM_UPSTREAM: "vertex",
        ANTHROPIC_VERTEX_PROJECT_ID: gcpProject,
        CLOUD_ML_REGION: upstream.region,
      };
  }
}
