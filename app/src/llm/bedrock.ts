/**
 * The Amazon Bedrock upstream (LLM_UPSTREAM=bedrock) through @anthropic-ai/bedrock-sdk, with the
 * workload's own AWS identity and no Anthropic key.
 *
 * What the SDK does on the wire (read in node_modules/@anthropic-ai/bedrock-sdk/src/client.ts,
 * version 1.2.1): `POST /model/{model id}/invoke`, or `/invoke-with-response-stream` for a stream,
 * the id path-encoded; `model` and `stream` taken out of the body; the `anthropic-version` header
 * moved into the body as `anthropic_version` and `anthropic-beta` as the `anthropic_beta` array;
 * SigV4 (service `bedrock`) over the final request, or `Authorization: Bearer` with a Bedrock API
 * key; the binary AWS event stream turned back into SSE (src/core/streaming.ts).
 *
 * The version: the SDK would put its own default header in the body, `2026-10-21` since
 * @anthropic-ai/sdk 1.0, and the ARN-versioned models do not accept it (the warning on
 * platform.claude.com/docs/en/build-with-claude/claude-on-amazon-bedrock-legacy, read 2026-12-06):
 * every call sends `bedrock-2023-05-31`, the value Bedrock's InvokeModel documents for Claude
 * (docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-anthropic-claude-messages-request-response.html),
 * whatever the client's `anthropic-version` says.
 *
 * Credentials: the SDK would build a new default credential chain for every request (its
 * DEFAULT_PROVIDER_CHAIN_RESOLVER in src/core/auth.ts), so on EKS (web identity) or a VM (IMDS)
 * each call would fetch credentials again. Here the chain is built once: environment variables
 * first, as the SDK and the AWS CLI order them, then the Node default chain, which caches its
 * credentials until they are about to expire.
 *
 * Token counting: the SDK has no countTokens for Bedrock; Bedrock's own CountTokens API
 * (`POST /model/{id}/count-tokens`, CountTokensCommand of @aws-sdk/client-bedrock-runtime) takes the
 * InvokeModel body and the base model id: inference-profile ids are refused, and some models that
 * launched as cross-Region only have no CountTokens on bedrock-runtime
 * (docs.aws.amazon.com/bedrock/latest/userguide/count-tokens.html): those get a 400 saying so.
 */
import { AnthropicBedrock } from "@anthropic-ai/bedrock-sdk";
import {
  createCredentialChain,
  fromEnv,
  fromNodeProviderChain,
} from "@aws-sdk/credential-providers";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import type { ModelCatalog } from "./models";
import { createNodeFetch } from "./node-fetch";
import { SdkProvider, type TokenCounter } from "./sdk-provider";
import type { CallOptions, CountTokensRequest } from "./types";
import { UpstreamError } from "./types";
import type { BedrockProfile } from "./upstream-kinds";
import { errorMessage } from "../errors";

/** The `anthropic_version` Bedrock takes in an InvokeModel body for Claude. */
export const BEDROCK_VERSION = "bedrock-2023-05-31";

/** AWS credentials as the SDKs resolve them. */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}
export type AwsCredentialProvider = () => Promise<AwsCredentials>;

export interface BedrockProviderOptions {
  catalog: ModelCatalog;
  /** AWS_REGION. */
  region: string;
  /** BEDROCK_INFERENCE_PROFILE. */
  profile: BedrockProfile;
  /** ANTHROPIC_BEDROCK_BASE_URL. @default https://bedrock-runtime.<region>.amazonaws.com */
  baseURL?: string;
  /** AWS_BEARER_TOKEN_BEDROCK: a Bedrock API key instead of SigV4. */
  bearerToken?: string;
  /** Credentials other than the default chain (tests). */
  credentials?: AwsCredentialProvider;
  timeoutMs: number;
  /** As AnthropicProviderOptions.http. @default "node" */
  http?: "node" | "global";
}

/** The id Bedrock is called with: `<geo>.<base id>` through a profile, the base id with `none`. */
export function bedrockModelId(
  catalog: ModelCatalog,
  model: string,
  profile: BedrockProfile,
): string {
  const entry = catalog.get(model)?.bedrock;
  // An id the table does not list (passThroughUnknownModels): already Bedrock's.
  if (!entry) return model;
  return profile === "none" ? entry.modelId : `${profile}.${entry.modelId}`;
}

/**
 * HTTP statuses of the exceptions Bedrock sends inside a stream, which the SDK turns into SSE
 * `error` events typed by the camel-cased exception name (InvokeModelWithResponseStream's errors,
 * docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModelWithResponseStream.html).
 */
const STREAM_EXCEPTION_STATUS: Record<string, number> = {
  throttlingException: 429,
  serviceUnavailableException: 503,
  internalServerException: 500,
  modelStreamErrorException: 502,
  modelTimeoutException: 408,
  validationException: 400,
};

/** Environment credentials first, then the Node default chain (cached by the SDK), built once. */
export function defaultCredentials(): AwsCredentialProvider {
  return createCredentialChain(fromEnv(), fromNodeProviderChain());
}

export class BedrockProvider extends SdkProvider {
  constructor(o: BedrockProviderOptions) {
    const credentials = o.credentials ?? defaultCredentials();
    const client = new AnthropicBedrock({
      awsRegion: o.region,
      baseURL: o.baseURL,
      // null, not undefined: the SDK would read AWS_BEARER_TOKEN_BEDROCK itself, around the config.
      apiKey: o.bearerToken ?? null,
      providerChainResolver: () => Promise.resolve(credentials),
      timeout: o.timeoutMs,
      maxRetries: 0,
      ...(o.http === "global" ? {} : { fetch: createNodeFetch() }),
    });
    super({
      upstream: "bedrock",
      messages: client.messages,
      modelId: (model) => bedrockModelId(o.catalog, model, o.profile),
      platformVersion: BEDROCK_VERSION,
      countTokens: bedrockTokenCounter(o, credentials),
      streamErrorStatus: (type) => STREAM_EXCEPTION_STATUS[type],
    });
  }
}

/** Bedrock's CountTokens, through the AWS SDK's client (loaded on the first count). */
function bedrockTokenCounter(
  o: BedrockProviderOptions,
  credentials: AwsCredentialProvider,
): TokenCounter {
  type Runtime = typeof import("@aws-sdk/client-bedrock-runtime");
  let loading: Promise<{ runtime: Runtime; client: InstanceType<Runtime["BedrockRuntimeClient"]> }>;
  const load = () =>
    (loading ??= import("@aws-sdk/client-bedrock-runtime").then((runtime) => ({
      runtime,
      client: new runtime.BedrockRuntimeClient({
        region: o.region,
        ...(o.baseURL ? { endpoint: o.baseURL } : {}),
        maxAttempts: 1,
        // HTTP/1.1: the client's default handler is HTTP/2 (for its bidirectional streams), which
        // a VPC endpoint proxy or a local fake may not speak; a count needs neither.
        requestHandler: new NodeHttpHandler({ requestTimeout: o.timeoutMs }),
        ...(o.bearerToken
          ? { token: { token: o.bearerToken }, authSchemePreference: ["httpBearerAuth"] }
          : { credentials }),
      }),
    })));
  return async (request: CountTokensRequest, options: CallOptions) => {
    const { model, ...rest } = request;
    const modelId = o.catalog.get(model)?.bedrock?.modelId ?? model;
    const beta = options.forward?.beta;
    const body = JSON.stringify({
      anthropic_version: BEDROCK_VERSION,
      ...(beta ? { anthropic_beta: beta.split(",").map((b) => b.trim()) } : {}),
      ...rest,
    });
    const { runtime, client } = await load();
    try {
      const counted = await client.send(
        new runtime.CountTokensCommand({
          modelId,
          input: { invokeModel: { body: new TextEncoder().encode(body) } },
        }),
        { abortSignal: options.signal },
      );
      return counted.inputTokens ?? 0;
    } catch (err) {
      throw countError(err, model, modelId);
    }
  };
}

function countError(err: unknown, model: string, modelId: string): UpstreamError {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  if (e.name === "AbortError") return new UpstreamError(499, "aborted", "request aborted");
  const status = e.$metadata?.httpStatusCode ?? 502;
  if (e.name === "ValidationException" || status === 400) {
    return new UpstreamError(
      400,
      "invalid_request_error",
      `count_tokens on the bedrock upstream: Bedrock's CountTokens refused the request for ${model} ` +
        `(${modelId}); models that launched as cross-Region only have no CountTokens on bedrock-runtime`,
    );
  }
  return new UpstreamError(status, e.name ?? "api_error", errorMessage(err), {}, true);
}
