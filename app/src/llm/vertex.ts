/**
 * The Vertex AI upstream (LLM_UPSTREAM=vertex) through @anthropic-ai/vertex-sdk, with the
 * workload's service account (Application Default Credentials) and no Anthropic key.
 *
 * What the SDK does on the wire (node_modules/@anthropic-ai/vertex-sdk/src/client.ts, 1.1.5):
 * `POST /v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model}:rawPredict`,
 * or `:streamRawPredict` for a stream (SSE, as the Anthropic API sends it); `model` taken out of
 * the body; the `anthropic-version` header moved into the body as `anthropic_version` and the
 * header dropped; `anthropic-beta` kept as a header; an OAuth access token from google-auth-library
 * as `Authorization: Bearer`. Token counting is `.../models/count-tokens:rawPredict`, with the
 * model in the body.
 *
 * The version: Vertex takes `anthropic_version: "vertex-2023-10-16"` and nothing else
 * (platform.claude.com/docs/en/build-with-claude/claude-on-vertex-ai, read 2026-12-06), while the
 * SDK would put its own default, `2026-10-21`, there: every call sends the Vertex value.
 *
 * Credentials: the SDK starts resolving ADC in its constructor and only awaits it on the first
 * call; a host without credentials would then fail on that call (or, before it, with an unhandled
 * rejection). `vertexAuthClient` resolves them at boot instead, so a missing service account is a
 * start-up error that names the upstream.
 */
import { AnthropicVertex } from "@anthropic-ai/vertex-sdk";
import { GoogleAuth, type AuthClient } from "google-auth-library";
import type { ModelCatalog } from "./models";
import { createNodeFetch } from "./node-fetch";
import { SdkProvider } from "./sdk-provider";
import { errorMessage } from "../errors";

/** The `anthropic_version` Vertex AI takes in the body. */
export const VERTEX_VERSION = "vertex-2023-10-16";

export interface VertexProviderOptions {
  catalog: ModelCatalog;
  /** CLOUD_ML_REGION: `global`, `us`, `eu` or a region. */
  region: string;
  /** ANTHROPIC_VERTEX_PROJECT_ID; else the credentials' project. */
  projectId?: string;
  /** ANTHROPIC_VERTEX_BASE_URL. @default the region's aiplatform.googleapis.com endpoint */
  baseURL?: string;
  /** The credentials calls are made with (vertexAuthClient, or a stub in tests). */
  authClient: AuthClient;
  timeoutMs: number;
  /** As AnthropicProviderOptions.http. @default "node" */
  http?: "node" | "global";
}

/** The id Vertex AI knows a table model by; other ids go as they are. */
export function vertexModelId(catalog: ModelCatalog, model: string): string {
  return catalog.get(model)?.vertex?.modelId ?? model;
}

/** Application Default Credentials, resolved now (the metadata server on Cloud Run and GCE). */
export async function vertexAuthClient(): Promise<AuthClient> {
  try {
    return await new GoogleAuth({
      scopes: "https://www.googleapis.com/auth/cloud-platform",
    }).getClient();
  } catch (err) {
    throw new Error(
      `LLM_UPSTREAM=vertex: no Google Application Default Credentials (${errorMessage(err)}); ` +
        "run on Google Cloud with a service account, or set GOOGLE_APPLICATION_CREDENTIALS",
    );
  }
}

export class VertexProvider extends SdkProvider {
  constructor(o: VertexProviderOptions) {
    const client = new AnthropicVertex({
      region: o.region,
      projectId: o.projectId ?? null,
      baseURL: o.baseURL,
      authClient: o.authClient,
      timeout: o.timeoutMs,
      maxRetries: 0,
      ...(o.http === "global" ? {} : { fetch: createNodeFetch() }),
    });
    super({
      upstream: "vertex",
      messages: client.messages,
      modelId: (model) => vertexModelId(o.catalog, model),
      platformVersion: VERTEX_VERSION,
    });
  }
}
