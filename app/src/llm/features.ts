/**
 * What each upstream lacks, as data, and the check that turns a request needing it into a 400
 * naming the upstream, before anything is held, cached or sent: a cloud that ignored the feature
 * would answer something else than the client asked for, and one that refused it would spend a
 * retry loop on a request that cannot succeed.
 *
 * Sources (read 2026-12-06):
 * - Files API: "not currently supported on Amazon Bedrock or Google Vertex AI"
 *   (platform.claude.com/docs/en/build-with-claude/files). That covers `file_id` sources in
 *   messages, `container_upload` blocks and the `files-api-*` beta.
 * - Agent Skills: "Claude API (Beta)" only (platform.claude.com/docs/en/build-with-claude/overview,
 *   availability column): the `skills-*` beta.
 * - `inference_geo`: "only available on the Claude API (1P). On third-party platforms (AWS
 *   Bedrock, Google Vertex AI), the inference region is determined by the endpoint URL or inference
 *   profile" (platform.claude.com/docs/en/build-with-claude/data-residency).
 * - Message Batches: neither cloud SDK offers them (`batches` is deleted from the Messages resource
 *   of @anthropic-ai/bedrock-sdk 1.2.1 and @anthropic-ai/vertex-sdk 1.1.5; Bedrock's InvokeModel
 *   has no batch form): the batch routes answer 400 (llm/unsupported.ts).
 * - count_tokens: the Anthropic API and Vertex (count-tokens:rawPredict) count; Bedrock counts with
 *   its own CountTokens API (llm/bedrock.ts), which refuses some models.
 */
import type { ForwardedHeaders } from "./types";
import type { UpstreamKind } from "./upstream-kinds";

export interface UpstreamFeatures {
  /** The Message Batches API. */
  messageBatches: boolean;
  /** Files API references in a request (`source.type: "file"`, `container_upload`). */
  files: boolean;
  /** Betas the upstream does not serve, by name prefix, and what they are. */
  unsupportedBetas: ReadonlyArray<{ prefix: string; what: string }>;
  /** Request fields only the Claude API reads, and what they are. */
  unsupportedFields: ReadonlyArray<{ field: string; what: string }>;
}

const CLOUD: UpstreamFeatures = {
  messageBatches: false,
  files: false,
  unsupportedBetas: [
    { prefix: "files-api-", what: "the Files API" },
    { prefix: "skills-", what: "Agent Skills" },
  ],
  unsupportedFields: [{ field: "inference_geo", what: "inference_geo (data residency)" }],
};

export const UPSTREAM_FEATURES = {
  anthropic: { messageBatches: true, files: true, unsupportedBetas: [], unsupportedFields: [] },
  bedrock: CLOUD,
  vertex: CLOUD,
} satisfies Record<UpstreamKind, UpstreamFeatures>;

/** The betas named in an `anthropic-beta` header (comma-separated, as the API reads it). */
export function betaNames(header: string | undefined): string[] {
  return (header ?? "")
    .split(",")
    .map((b) => b.trim())
    .filter(Boolean);
}

/**
 * Why `upstream` cannot serve this request, or undefined when it can. `body` is a Messages or
 * count_tokens request as the client sent it.
 */
export function unsupportedFeature(
  upstream: UpstreamKind,
  body: Record<string, unknown>,
  forward: ForwardedHeaders = {},
): string | undefined {
  const features: UpstreamFeatures = UPSTREAM_FEATURES[upstream];
  const on = `the ${upstream} upstream (LLM_UPSTREAM=${upstream})`;
  for (const beta of betaNames(forward.beta)) {
    const lacking = features.unsupportedBetas.find((b) => beta.startsWith(b.prefix));
    if (lacking)
      return `anthropic-beta: ${beta} (${lacking.what}) is not available on ${on}; remove it from the anthropic-beta header`;
  }
  for (const { field, what } of features.unsupportedFields) {
    if (body[field] !== undefined)
      return `${field}: ${what} is not available on ${on}; remove the field`;
  }
  if (!features.files) {
    const at = filesReference(body.messages);
    if (at) return `${at}: the Files API is not available on ${on}; send the content inline`;
  }
  return undefined;
}

/** The path of the first Files API reference in `messages`, if any. */
function filesReference(messages: unknown): string | undefined {
  if (!Array.isArray(messages)) return undefined;
  for (let i = 0; i < messages.length; i++) {
    const content = (messages[i] as { content?: unknown } | null)?.content;
    const found = findFile(content, `messages.${i}.content`, 0);
    if (found) return found;
  }
  return undefined;
}

function findFile(value: unknown, path: string, depth: number): string | undefined {
  // Blocks nest (tool results hold blocks): a few levels cover every shape the API accepts.
  if (depth > 4 || !Array.isArray(value)) return undefined;
  for (let j = 0; j < value.length; j++) {
    const block = value[j] as Record<string, unknown> | null;
    if (!block || typeof block !== "object") continue;
    const at = `${path}.${j}`;
    if (block.type === "container_upload") return at;
    const source = block.source as { type?: unknown } | undefined;
    if (source?.type === "file") return `${at}.source`;
    const nested = findFile(block.content, `${at}.content`, depth + 1);
    if (nested) return nested;
  }
  return undefined;
}
