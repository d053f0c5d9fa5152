/**
 * POST /v1/messages/count_tokens: the input tokens of a Messages request, counted by the
 * upstream (the SDK's `messages.countTokens` finds it here), and the client headers every model
 * route forwards.
 *
 * A count generates nothing and costs nothing upstream, so it is outside the budgets and the
 * tokens-per-minute limit; it is inside the API key and the requests-per-minute limit like any
 * other request (chains.plain()). Counted by the Anthropic API, by Vertex AI's
 * count-tokens:rawPredict, or by Bedrock's CountTokens API (which refuses some models: a 400 that
 * says so); the offline model estimates with budget/estimate.ts, the service's one estimator.
 *
 * Registered from routes/messages.ts, whose schema and error mapping it uses: the two modules
 * import each other, so neither reads the other at load time, only when a request runs.
 */
import type { Hono } from "hono";
import type { AppDeps } from "../deps";
import type { AppContext, AppEnv } from "../http";
import { readJson, setHeader } from "../http";
import { badRequest } from "../errors";
import { estimateInputTokens } from "../budget/estimate";
import { checkModel } from "../llm/known-models";
import { unsupportedFeature } from "../llm/features";
import type { ModelCatalog } from "../llm/models";
import { routeModel } from "../llm/router";
import type { CountTokensRequest, ForwardedHeaders, LlmProvider } from "../llm/types";
import type { RouteChains } from "./chain";
import { asApiError, failureLog, messagesRequestSchema } from "./messages";

export const COUNT_TOKENS_PATH = "/v1/messages/count_tokens";

/**
 * The client's `anthropic-beta` and `anthropic-version`, forwarded upstream unchanged (Claude Code
 * and the Agent SDK send betas the upstream must see; a gateway that drops them changes answers).
 */
export function forwardedHeaders(c: AppContext): ForwardedHeaders {
  const beta = c.req.header("anthropic-beta");
  const version = c.req.header("anthropic-version");
  return { ...(beta ? { beta } : {}), ...(version ? { version } : {}) };
}

/** Why the configured upstream cannot serve this request (a 400), if it cannot. */
export function refuseUnsupported(
  deps: Pick<AppDeps, "config" | "llm">,
  body: Record<string, unknown>,
  forward: ForwardedHeaders,
): void {
  // The offline model is not an upstream: it serves whatever it can.
  if (deps.llm.synthetic) return;
  const why = unsupportedFeature(deps.config.LLM_UPSTREAM, body, forward);
  if (why) throw badRequest(why);
}

export function registerCountTokensRoute(
  app: Hono<AppEnv>,
  deps: AppDeps,
  catalog: ModelCatalog,
  chains: RouteChains,
) {
  // The Messages request without what only a generation takes.
  const schema = messagesRequestSchema.omit({ max_tokens: true, stream: true });
  // The telemetry wrapper of deps.llm carries calls only: the counter is the provider it wraps.
  const counter: Pick<LlmProvider, "countTokens"> | undefined = deps.llm.countTokens
    ? deps.llm
    : deps.resilience;

  app.post(COUNT_TOKENS_PATH, chains.plain(), async (c) => {
    const body = await readJson(c, schema);
    checkModel(catalog, body.model);
    const forward = forwardedHeaders(c);
    if (deps.llm.synthetic || !counter?.countTokens) {
      if (deps.llm.synthetic) setHeader(c, "x-agent-synthetic", "true");
      return c.json({ input_tokens: estimateInputTokens(body) });
    }
    refuseUnsupported(deps, body, forward);
    const model = routeModel(body, catalog).model;
    const request = { ...body, model } as unknown as CountTokensRequest;
    try {
      const inputTokens = await counter.countTokens(request, {
        signal: c.req.raw.signal,
        timeoutMs: deps.config.UPSTREAM_TIMEOUT_MS,
        requestId: c.get("requestId"),
        forward,
      });
      return c.json({ input_tokens: inputTokens });
    } catch (err) {
      throw asApiError(err, failureLog(c, deps));
    }
  });
}
