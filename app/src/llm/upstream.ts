/**
 * The upstreams, as a registry: one module per LLM_UPSTREAM value (a missing one does not
 * compile), each saying what it needs beyond the schema, what its calls cost, and how its provider
 * is built. The cloud SDKs are loaded only by the upstream that uses them, so an Anthropic-only
 * deployment (and a Lambda cold start) never evaluates the Bedrock or Vertex clients.
 *
 * The retry loop, the circuit breakers and fallback (llm/resilient.ts) wrap whichever provider is
 * built here, so they work per upstream: the breakers are per model, and a model on Bedrock is a
 * Bedrock model id and profile (its breaker opens on Bedrock's 429/503, not on another cloud's).
 */
import type { AuthClient } from "google-auth-library";
import { ConfigError, type AppConfig } from "../config";
import { AnthropicBatchUpstream, type BatchUpstream } from "../batch/upstream";
import { AnthropicProvider } from "./anthropic";
import type { AwsCredentialProvider } from "./bedrock";
import type { ModelCatalog, UpstreamPricing } from "./models";
import type { LlmProvider } from "./types";
import { UnsupportedBatchUpstream } from "./unsupported";
import { BEDROCK_GEOS, type UpstreamKind } from "./upstream-kinds";
import { LAMBDA_HANDLERS } from "../contract";

export type UpstreamConfig = Pick<
  AppConfig,
  | "LLM_UPSTREAM"
  | "ANTHROPIC_API_KEY"
  | "ANTHROPIC_BASE_URL"
  | "UPSTREAM_TIMEOUT_MS"
  | "AWS_REGION"
  | "AWS_BEARER_TOKEN_BEDROCK"
  | "ANTHROPIC_BEDROCK_BASE_URL"
  | "BEDROCK_INFERENCE_PROFILE"
  | "ANTHROPIC_VERTEX_PROJECT_ID"
  | "CLOUD_ML_REGION"
  | "ANTHROPIC_VERTEX_BASE_URL"
>;

/** Credentials that replace the cloud's default chain (tests reach local fakes with these). */
export interface UpstreamOverrides {
  /** Bedrock: instead of the environment and the AWS default credential chain. */
  bedrockCredentials?: AwsCredentialProvider;
  /** Vertex AI: instead of Application Default Credentials. */
  vertexAuthClient?: AuthClient;
}

/** What the rest of the service has decided that changes how calls go out. */
export interface UpstreamContext {
  /**
   * The service traces (telemetry/otel.ts): Anthropic API calls then go through the SDK's request
   * path, whose call span and upstream trace context are part of the trace (anthropic.ts `calls`).
   */
  traced?: boolean;
}

type Issue = { variable: string; message: string };

interface UpstreamModule {
  /** What the schema cannot check alone (variables that depend on the upstream, the model table). */
  check(config: UpstreamConfig, catalog: ModelCatalog): Issue[];
  /** The prices its calls are charged at. */
  pricing(config: UpstreamConfig): UpstreamPricing;
  /** Its provider; null means the offline synthetic model (Anthropic without a key). */
  create(
    config: UpstreamConfig,
    catalog: ModelCatalog,
    overrides: UpstreamOverrides,
    context: UpstreamContext,
  ): Promise<LlmProvider | null>;
  /** Where its calls go, for the start-up log (no secrets). */
  describe(config: UpstreamConfig): Record<string, string | undefined>;
}

const anthropic: UpstreamModule = {
  check: () => [],
  pricing: () => ({ upstream: "anthropic", regional: false }),
  async create(config, _catalog, _overrides, context) {
    if (!config.ANTHROPIC_API_KEY) return null;
    return new AnthropicProvider({
      apiKey: config.ANTHROPIC_API_KEY,
      baseURL: config.ANTHROPIC_BASE_URL,
      timeoutMs: config.UPSTREAM_TIMEOUT_MS,
      maxRetries: 0,
      calls: context.traced ? "sdk" : "wire",
    });
  },
  describe: (config) => ({ baseURL: config.ANTHROPIC_BASE_URL ?? "https://api.anthropic.com" }),
};

const bedrock: UpstreamModule = {
  check(config, catalog) {
    const issues: Issue[] = [];
    if (process.env.AGENT_BUNDLE_WITHOUT_BEDROCK === "1")
      issues.push({
        variable: "LLM_UPSTREAM",
        message: `is bedrock, but this Lambda bundle (index.js) is built without Bedrock, to keep the other upstreams' cold starts small: run ${LAMBDA_HANDLERS.bedrock} from the same zip (the Lambda target sets it for agent:upstream bedrock)`,
      });
    if (!config.AWS_REGION)
      issues.push({
        variable: "AWS_REGION",
        message: "is required with LLM_UPSTREAM=bedrock: set the region of the Bedrock endpoint",
      });
    issues.push(...missingEntries(catalog, "bedrock", "bedrock.modelId and bedrock.geos"));
    const profile = config.BEDROCK_INFERENCE_PROFILE;
    if (profile !== "none") {
      const lacking = catalog.table.models.filter(
        (m) => m.bedrock && !m.bedrock.geos.includes(profile),
      );
      if (lacking.length) {
        // The geographies every model of the table has a profile in.
        const shared = BEDROCK_GEOS.filter((g) =>
          catalog.table.models.every((m) => m.bedrock?.geos.includes(g) ?? true),
        );
        issues.push({
          variable: "BEDROCK_INFERENCE_PROFILE",
          message:
            `is ${profile}, but ${lacking.map((m) => m.id).join(", ")} ha${lacking.length > 1 ? "ve" : "s"} ` +
            `no ${profile} inference profile (app/config/models.json bedrock.geos): use ` +
            `${[...shared, "none"].join(", ")}, or take those models out of the table`,
        });
      }
    }
    return issues;
  },
  pricing: (config) => ({
    upstream: "bedrock",
    regional: config.BEDROCK_INFERENCE_PROFILE !== "global",
  }),
  async create(config, catalog, overrides) {
    const { BedrockProvider } = loadBedrock();
    return new BedrockProvider({
      catalog,
      region: config.AWS_REGION!,
      profile: config.BEDROCK_INFERENCE_PROFILE,
      baseURL: config.ANTHROPIC_BEDROCK_BASE_URL,
      bearerToken: config.AWS_BEARER_TOKEN_BEDROCK,
      credentials: overrides.bedrockCredentials,
      timeoutMs: config.UPSTREAM_TIMEOUT_MS,
    });
  },
  describe: (config) => ({
    region: config.AWS_REGION,
    profile: config.BEDROCK_INFERENCE_PROFILE,
    auth: config.AWS_BEARER_TOKEN_BEDROCK ? "bedrock api key" : "aws credential chain (sigv4)",
    baseURL: config.ANTHROPIC_BEDROCK_BASE_URL,
  }),
};

const vertex: UpstreamModule = {
  check(config, catalog) {
    const issues: Issue[] = [];
    if (!config.CLOUD_ML_REGION)
      issues.push({
        variable: "CLOUD_ML_REGION",
        message:
          "is required with LLM_UPSTREAM=vertex: set global (no regional premium), us, eu or a region such as us-east5",
      });
    issues.push(...missingEntries(catalog, "vertex", "vertex.modelId"));
    return issues;
  },
  pricing: (config) => ({ upstream: "vertex", regional: config.CLOUD_ML_REGION !== "global" }),
  async create(config, catalog, overrides) {
    const { VertexProvider, vertexAuthClient } = loadVertex();
    return new VertexProvider({
      catalog,
      region: config.CLOUD_ML_REGION!,
      projectId: config.ANTHROPIC_VERTEX_PROJECT_ID,
      baseURL: config.ANTHROPIC_VERTEX_BASE_URL,
      authClient: overrides.vertexAuthClient ?? (await vertexAuthClient()),
      timeoutMs: config.UPSTREAM_TIMEOUT_MS,
    });
  },
  describe: (config) => ({
    region: config.CLOUD_ML_REGION,
    project: config.ANTHROPIC_VERTEX_PROJECT_ID ?? "(from the credentials)",
    baseURL: config.ANTHROPIC_VERTEX_BASE_URL,
  }),
};

/*
 * The cloud modules load on first use. A require rather than import(): under `module: node16` a
 * CommonJS file's import() stays an ES module import, which wants the built file's extension; a
 * require stays lazy alike under tsx, jest and the esbuild bundle.
 */
/**
 * The Lambda zip holds two builds (scripts/build.mjs): index.js without the Bedrock SDK (Smithy's
 * SigV4 and event stream, the Anthropic SDK's every resource: ~0.5 MiB that an Anthropic or Vertex
 * cold start would load for nothing), built with this variable defined as "1" so that the require
 * below is dropped (the test is written out in place for esbuild to fold it), and bedrock.js
 * with everything. Unset everywhere else.
 */
/* eslint-disable @typescript-eslint/no-require-imports */
const loadBedrock = () =>
  process.env.AGENT_BUNDLE_WITHOUT_BEDROCK === "1"
    ? missingBedrock()
    : (require("./bedrock") as typeof import("./bedrock"));
const loadVertex = () => require("./vertex") as typeof import("./vertex");
/* eslint-enable @typescript-eslint/no-require-imports */

function missingBedrock(): never {
  throw new ConfigError([
    { variable: "LLM_UPSTREAM", message: "is bedrock, which this bundle lacks" },
  ]);
}

const UPSTREAM_MODULES = { anthropic, bedrock, vertex } satisfies Record<
  UpstreamKind,
  UpstreamModule
>;

function missingEntries(
  catalog: ModelCatalog,
  cloud: "bedrock" | "vertex",
  fields: string,
): Issue[] {
  const missing = catalog.table.models.filter((m) => !m[cloud]).map((m) => m.id);
  if (!missing.length) return [];
  return [
    {
      variable: "LLM_UPSTREAM",
      message: `is ${cloud}, but app/config/models.json gives ${missing.join(", ")} no ${fields}: add them, or choose another upstream`,
    },
  ];
}

/** The prices the configured upstream charges (ModelCatalog.load's `pricing`). */
export function upstreamPricing(config: UpstreamConfig): UpstreamPricing {
  return UPSTREAM_MODULES[config.LLM_UPSTREAM].pricing(config);
}

/** Every problem with the upstream's settings at once, as a ConfigError naming the variables. */
export function checkUpstream(config: UpstreamConfig, catalog: ModelCatalog): void {
  const issues = UPSTREAM_MODULES[config.LLM_UPSTREAM].check(config, catalog);
  if (issues.length) throw new ConfigError(issues);
}

/**
 * The configured upstream's provider (not yet wrapped in the retry loop), or null when the
 * offline synthetic model serves: only LLM_UPSTREAM=anthropic without ANTHROPIC_API_KEY. The cloud
 * upstreams need no key and never fall back to the offline model.
 */
export async function createUpstreamProvider(
  config: UpstreamConfig,
  catalog: ModelCatalog,
  overrides: UpstreamOverrides = {},
  context: UpstreamContext = {},
): Promise<LlmProvider | null> {
  checkUpstream(config, catalog);
  return UPSTREAM_MODULES[config.LLM_UPSTREAM].create(config, catalog, overrides, context);
}

/** Where model calls go, for the start-up log. */
export function describeUpstream(config: UpstreamConfig): Record<string, string | undefined> {
  return {
    upstream: config.LLM_UPSTREAM,
    ...UPSTREAM_MODULES[config.LLM_UPSTREAM].describe(config),
  };
}

/**
 * The Message Batches API behind the batch service: Anthropic's with a key, a refusal on a cloud
 * without one (llm/unsupported.ts), none for the offline model (batches then run locally).
 */
export function batchUpstreamFor(
  config: UpstreamConfig,
  llm: LlmProvider,
): BatchUpstream | undefined {
  if (config.LLM_UPSTREAM !== "anthropic") return new UnsupportedBatchUpstream(config.LLM_UPSTREAM);
  if (!config.ANTHROPIC_API_KEY || llm.synthetic) return undefined;
  return new AnthropicBatchUpstream({
    apiKey: config.ANTHROPIC_API_KEY,
    baseURL: config.ANTHROPIC_BASE_URL,
    timeoutMs: config.UPSTREAM_TIMEOUT_MS,
  });
}
