/**
 * POST /v1/messages: the Anthropic Messages API, compatible with the official SDK for
 * `messages.create` and `messages.stream`, with an exact-match response cache in front.
 * The client's `anthropic-beta` and `anthropic-version` go upstream unchanged, and every event of
 * an upstream stream (pings included) reaches the client. POST /v1/messages/count_tokens is
 * routes/count-tokens.ts.
 */
import type { Hono } from "hono";
import * as z from "zod";
import type { AppDeps } from "../deps";
import type { AppContext, AppEnv } from "../http";
import { clientLeft, readJson, respond, setHeader } from "../http";
import { ApiError, errorBody } from "../errors";
import { responseCacheKey } from "../cache/key";
import { jsonEntryText, type CachedResponse } from "../cache/types";
import { fullUsage, StreamTracker, type FullUsage } from "../llm/stream-usage";
import type { MessageRequest, StreamEvent } from "../llm/types";
import { UpstreamError } from "../llm/types";
import type { ModelCatalog } from "../llm/models";
import type { UsageStatus } from "../store/types";
import { routeModel } from "../llm/router";
import { applyPromptCaching } from "../llm/prompt-cache";
import { reserveRequestFor, type Reservation, type ReserveResult } from "../budget/budgets";
import { admitted, claimTokenReservation, usageTokens } from "../ratelimit/middleware";
import { messageFacts } from "../request-facts";
import { boundUsage } from "../llm/usage-bounds";
import { requestFacts, type RouteChains } from "./chain";
import { StallGuard } from "./stall";
import { SSE_CONTENT_TYPE, streamResponse } from "./stream-out";
import { endsRead, sseFrame } from "../llm/sse";
import { completionText, logPrompt } from "../telemetry/prompt-log";
import { checkModel } from "../llm/known-models";
import { clientErrorFor, redactSecrets } from "../llm/upstream-errors";
import type { Logger } from "pino";
import type { Admission } from "../ratelimit/limiter";
import { forwardedHeaders, refuseUnsupported, registerCountTokensRoute } from "./count-tokens";

const block = z.looseObject({ type: z.string().min(1) });
const content = z.union([
  z.string(),
  z.array(block).min(1, "must hold at least one content block"),
]);

export const messagesRequestSchema = z.looseObject({
  model: z.string().min(1).max(256),
  max_tokens: z.number().int().positive().max(200_000),
  messages: z
    .array(z.object({ role: z.enum(["user", "assistant"]), content }))
    .min(1, "must hold at least one message"),
  system: z.union([z.string(), z.array(block)]).optional(),
  stream: z.boolean().optional(),
  temperature: z.number().min(0).max(1).optional(),
  top_p: z.number().min(0).max(1).optional(),
  top_k: z.number().int().min(0).optional(),
  stop_sequences: z.array(z.string()).max(8).optional(),
  tools: z.array(z.looseObject({ name: z.string().min(1) })).optional(),
  metadata: z.looseObject({}).optional(),
});

export type MessagesRequestBody = z.infer<typeof messagesRequestSchema>;

export function registerMessageRoutes(
  app: Hono<AppEnv>,
  deps: AppDeps,
  catalog: ModelCatalog,
  chains: RouteChains,
) {
  const holdTiming = new HoldTiming();
  const chain = chains.model(messageFacts, { idempotent: true, lazy: true });
  registerCountTokensRoute(app, deps, catalog, chains);
  app.post("/v1/messages", chain, async (c) => {
    const body = await readJson(c, messagesRequestSchema);
    checkModel(catalog, body.model);
    // Before any work: a stream past what the process relays is refused at once (overload.ts).
    if (body.stream === true) deps.overload?.admitStream(c);
    // A feature the upstream lacks is a 400 naming it, before anything is held or sent.
    const forward = forwardedHeaders(c);
    refuseUnsupported(deps, body, forward);
    const asked = await requestFacts(c);
    const { stream: wantsStream, ...rest } = body;
    // Route first ("auto" and tier aliases), then cache: the cacheable minimum depends on the model.
    const route = routeModel(rest, catalog, { inputTokens: asked.inputTokens });
    const routed = { ...(rest as unknown as MessageRequest), model: route.model };
    let request = applyPromptCaching(routed, catalog, { enabled: deps.config.PROMPT_CACHING });
    // Breakpoints placed here may write to the cache too: the hold is priced at the write price.
    const facts = { ...asked, promptCaching: asked.promptCaching || request !== routed };
    setHeader(c, "x-agent-route-reason", route.reason);
    const userId = c.get("userId");
    const requestId = c.get("requestId");
    const cacheable = deps.config.CACHE_TTL_SECONDS > 0 && !bypassesCache(c);
    // Betas and the API version change answers: each combination is cached apart.
    const cacheKey = responseCacheKey(userId, request.model, {
      ...request,
      stream: wantsStream === true,
      // Streams are cached as text since 2026-12 (cache/types.ts): a key of their own, so that a
      // replica still running the version before never reads an entry it cannot replay.
      ...(wantsStream === true ? { cached_as: "sse-text" } : {}),
      ...(forward.beta ? { anthropic_beta: forward.beta } : {}),
      ...(forward.version ? { anthropic_version: forward.version } : {}),
    });

    // The cache lookup leaves with the rate-limit admission (one round trip), and so does the
    // budget hold while most lookups miss (see HoldTiming). An early hold is speculative: a 429
    // from the rate limiter or a cache hit gives it back, and its refusal counts only once no
    // cached answer exists. A refused request gets its 429 whatever the cache holds.
    const lookup = cacheable ? deps.cache.get(cacheKey) : undefined;
    const hold = (speculative: boolean) =>
      deps.budgets?.reserve(
        reserveRequestFor(
          request,
          facts,
          { requestId, userId, sessionId: null },
          deps.config.BUDGET_MIN_OUTPUT_TOKENS,
        ),
        { speculative },
      );
    let holding = !cacheable || holdTiming.early() ? hold(true) : undefined;
    const admission = admitted(c);
    if (admission) {
      try {
        await admission;
      } catch (err) {
        releaseHold(deps, holding);
        throw err;
      }
    }
    const hit = lookup && (await lookup);
    if (lookup) holdTiming.looked(Boolean(hit));
    if (hit) {
      releaseHold(deps, holding);
      // What the call this hit spares would cost at today's prices (the operator console).
      deps.activity?.cacheHit(cachedCostUsd(catalog, hit, request.model));
      return replay(c, deps, hit, request.model);
    }
    setHeader(c, "x-cache", cacheable ? "MISS" : "BYPASS");

    // The worst case is held against every budget before anything is spent (settled to the real cost).
    holding ??= hold(false);
    let reservation: Reservation | undefined;
    if (holding) {
      const held = await holding;
      if (!held.ok) {
        held.report();
        throw held.error;
      }
      reservation = held.reservation;
      if (held.maxTokens < request.max_tokens) {
        request = { ...request, max_tokens: held.maxTokens };
        capped(c, held.maxTokens, held.cappedBy);
      }
    }
    // A capped answer is not what the same request gets with budget to spare: never cached.
    const storeAs = cacheable && request.max_tokens === body.max_tokens ? cacheKey : null;
    const meter = new Meter(
      deps,
      catalog,
      requestId,
      userId,
      { inputTokens: facts.inputTokens, maxTokens: request.max_tokens },
      reservation,
      claimTokenReservation(c),
    );
    const admitModel = reservation && topUp(deps, reservation);
    c.get("dispatching")?.();
    return wantsStream
      ? streamFromUpstream(c, deps, request, meter, storeAs, admitModel)
      : jsonFromUpstream(c, deps, request, meter, storeAs, admitModel);
  });
}

/** Response headers saying max_tokens was lowered to fit a budget, and which one. */
export function capped(c: AppContext, maxTokens: number, by: string | null) {
  setHeader(c, "x-agent-max-tokens-capped", String(maxTokens));
  if (by) setHeader(c, "x-agent-max-tokens-capped-by", by);
}

/** A fallback to a dearer model first raises the hold to its price, or is skipped. */
export function topUp(deps: AppDeps, reservation: Reservation) {
  return (model: string) => deps.budgets?.topUp(reservation, model) ?? Promise.resolve(true);
}

/**
 * When to send a request's budget hold: with the admission and the cache lookup (early), or after
 * the lookup missed. Early saves a round trip on every miss (0.3–1 ms against a managed Redis in
 * another zone) and costs a hold and its release on every hit (~0.1 ms of CPU): it pays while
 * most lookups miss. The route keeps a running hit ratio of its lookups (an exponential moving
 * average over about the last 50) and holds early while it is below one half.
 */
export class HoldTiming {
  private hitRatio = 0;
  constructor(private readonly weight = 0.02) {}
  looked(hit: boolean): void {
    this.hitRatio += ((hit ? 1 : 0) - this.hitRatio) * this.weight;
  }
  early(): boolean {
    return this.hitRatio < 0.5;
  }
}

/**
 * A speculative hold the request will not use goes back to the budgets, after the response has
 * been handed to the socket (the release is not the client's wait).
 */
function releaseHold(deps: AppDeps, holding: Promise<ReserveResult> | undefined) {
  holding?.then(
    (held) => {
      if (held.ok) setImmediate(() => void deps.budgets?.release(held.reservation));
    },
    // Reserve degrades rather than fail; whatever it did not hold needs no release.
    () => {},
  );
}

function bypassesCache(c: AppContext): boolean {
  const cc = c.req.header("cache-control");
  return cc !== undefined && /\b(no-cache|no-store)\b/i.test(cc);
}

const NO_USAGE: FullUsage = {
  input_tokens: 0,
  output_tokens: 0,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: 0,
};

/**
 * Records one upstream call in the usage ledger and settles its budget hold and its rate-limit
 * token reservation, whatever way it ends. Usage beyond what was admitted (max_tokens, the
 * model's context window) is clamped to it and logged.
 */
class Meter {
  private readonly started = performance.now();
  private settled = false;
  /** Shutdown waits for this meter to settle. */
  private readonly done: (() => void) | undefined;
  constructor(
    private readonly deps: AppDeps,
    private readonly catalog: ModelCatalog,
    private readonly requestId: string,
    private readonly userId: string,
    /** What was admitted: the input estimate and max_tokens the hold covers. */
    private readonly admitted: { inputTokens: number; maxTokens: number },
    private readonly reservation?: Reservation,
    private readonly tokens?: Admission,
  ) {
    this.done = deps.lifecycle.track?.();
  }

  /**
   * A JSON call cut by shutdown reports no usage: charge its worst case (what was held), since
   * the model may have generated all of it.
   */
  chargeHeld(model: string) {
    this.settle(
      model,
      {
        ...NO_USAGE,
        input_tokens: this.admitted.inputTokens,
        output_tokens: this.admitted.maxTokens,
      },
      "aborted",
    );
  }

  settle(model: string, reported: FullUsage, status: UsageStatus) {
    if (this.settled) return;
    this.settled = true;
    try {
      this.record(model, reported, status);
    } finally {
      this.done?.();
    }
  }

  private record(model: string, reported: FullUsage, status: UsageStatus) {
    const bounded = boundUsage(reported, {
      maxTokens: this.admitted.maxTokens,
      contextWindow: this.catalog.prices(model).contextWindow,
    });
    const usage = bounded.usage;
    if (bounded.reported)
      this.deps.logger.warn(
        { requestId: this.requestId, model, reported: bounded.reported, charged: usage },
        "upstream reported usage beyond what was admitted; charging the admitted bounds",
      );
    const costUsd = status === "cached" ? 0 : this.catalog.costUsd(model, usage);
    if (this.reservation) void this.deps.budgets?.settle(this.reservation, costUsd);
    void this.tokens?.settle(usageTokens(usage) ?? 0);
    this.deps.usage.record({
      requestId: this.requestId,
      userId: this.userId,
      sessionId: null,
      model,
      inputTokens: usage.input_tokens,
      outputTokens: usage.output_tokens,
      cacheCreationInputTokens: usage.cache_creation_input_tokens,
      cacheReadInputTokens: usage.cache_read_input_tokens,
      costUsd,
      status,
      kind: "messages",
      latencyMs: Math.round(performance.now() - this.started),
    });
  }
}

async function jsonFromUpstream(
  c: AppContext,
  deps: AppDeps,
  request: MessageRequest,
  meter: Meter,
  cacheKey: string | null,
  admitModel?: (model: string) => Promise<boolean>,
): Promise<Response> {
  // Not cancelled when the client leaves: the model bills what it generated either way, and a
  // JSON answer reports usage only once it is complete. The call finishes, its real usage is
  // recorded (status "aborted") and the answer nobody received is not cached.
  // The end of the shutdown grace period does cut it.
  const stopping = deps.lifecycle.stopping;
  const message = await deps.llm
    .createMessage(request, {
      signal: stopping,
      timeoutMs: deps.config.UPSTREAM_TIMEOUT_MS,
      requestId: c.get("requestId"),
      admitModel,
      forward: forwardedHeaders(c),
    })
    .catch((err: unknown) => {
      if (stopping?.aborted) meter.chargeHeld(request.model);
      // Nothing was generated: release the hold and keep a ledger line of the failure.
      else meter.settle(request.model, NO_USAGE, "error");
      throw asApiError(err, failureLog(c, deps));
    });
  const usage = fullUsage(message.usage);
  const left = clientLeft(c);
  meter.settle(message.model, usage, left ? "aborted" : "ok");
  if (deps.config.LOG_PROMPTS)
    logMessagePrompt(c, request, message.model, completionText(message.content as never));
  // Serialized once: for the client, and inside the cache entry.
  const text = JSON.stringify(message);
  if (cacheKey && !left)
    void deps.cache.set(
      cacheKey,
      { kind: "json", message },
      deps.config.CACHE_TTL_SECONDS,
      jsonEntryText(text),
    );
  setHeader(c, "x-agent-model", message.model);
  if (deps.llm.synthetic) setHeader(c, "x-agent-synthetic", "true");
  return respond(c, text, 200, "application/json");
}

async function streamFromUpstream(
  c: AppContext,
  deps: AppDeps,
  request: MessageRequest,
  meter: Meter,
  cacheKey: string | null,
  admitModel?: (model: string) => Promise<boolean>,
): Promise<Response> {
  const controller = new AbortController();
  const iterator = deps.llm
    .streamMessage(request, {
      signal: controller.signal,
      timeoutMs: deps.config.UPSTREAM_TIMEOUT_MS,
      requestId: c.get("requestId"),
      admitModel,
      forward: forwardedHeaders(c),
    })
    [Symbol.asyncIterator]();
  // Wait for the first event before committing to a 200: an upstream refusal (429, 529, 400)
  // then reaches the client as a proper HTTP error, as it would from the real API.
  let first: IteratorResult<StreamEvent>;
  try {
    first = await iterator.next();
  } catch (err) {
    meter.settle(request.model, NO_USAGE, "error");
    throw asApiError(err, failureLog(c, deps));
  }
  const tracker = new StreamTracker();
  // The frames as sent, for the cache (cache/types.ts says why not the events).
  const recorded: string[] | null = cacheKey ? [] : null;
  sseHeaders(c, deps);
  // Fallback can change the model: say which one serves, from the stream's own first event.
  if (!first.done && first.value.type === "message_start")
    setHeader(c, "x-agent-model", first.value.message.model);
  return streamResponse(c, async (out) => {
    let status: UsageStatus = "ok";
    out.onAbort(() => {
      status = "aborted";
      controller.abort();
    });
    // Each write waits until the client has taken it (no upstream read meanwhile), at most
    // STREAM_STALL_TIMEOUT_MS: a client that stops reading ends its request.
    const guard = new StallGuard(c, out, deps.config.STREAM_STALL_TIMEOUT_MS);
    // Events parsed from one upstream read arrive within one turn of the event loop: they go to
    // the client in one write (one syscall, one wake-up of the reader) instead of one each. An
    // event that arrives later waits for nothing: the buffer is written before awaiting it.
    let unsent = "";
    // LOG_PROMPTS: the answer's text, gathered as it streams.
    let said: string | null = deps.config.LOG_PROMPTS ? "" : null;
    try {
      let next = first;
      while (!next.done) {
        tracker.observe(next.value);
        if (said !== null && next.value.type === "content_block_delta") {
          const delta = next.value.delta as { text?: string };
          if (delta.text) said += delta.text;
        }
        const frame = sseFrame(next.value);
        recorded?.push(frame);
        unsent += frame;
        // The upstream reader says whether more of this read follows (sse.ts): the write waits for
        // it, or goes now. Where the reader cannot tell, an event that does not arrive within this
        // turn of the event loop ends the write.
        const ends = endsRead(next.value);
        const pending = ends === true ? undefined : iterator.next();
        let ready = pending && (ends === false ? await pending : await withinThisTurn(pending));
        if (ready === undefined || ready === LATER) {
          const taken = await guard.write(unsent);
          unsent = "";
          if (!taken) break;
          ready = await (pending ?? iterator.next());
        }
        next = ready;
      }
      if (unsent && !out.aborted) await guard.write(unsent);
    } catch (err) {
      if (!out.aborted) {
        status = "error";
        const e = asApiError(err, failureLog(c, deps));
        await guard.write(
          `${unsent}event: error\ndata: ${JSON.stringify(errorBody(e.type, e.message, c.get("requestId")))}\n\n`,
        );
      }
    } finally {
      guard.close();
      if (guard.stalled)
        c.get("logger").warn(
          { requestId: c.get("requestId"), stallMs: deps.config.STREAM_STALL_TIMEOUT_MS },
          "client stopped reading the stream; request ended and settled",
        );
      if (out.aborted || guard.stalled) {
        status = "aborted";
        await iterator.return?.();
      }
      meter.settle(tracker.model ?? request.model, tracker.finalUsage(), status);
      if (said !== null) logMessagePrompt(c, request, tracker.model ?? request.model, said);
      // Only a stream that ran to message_stop is cached: never a cut or failed one.
      if (recorded && status === "ok" && tracker.completed) {
        void deps.cache.set(
          cacheKey!,
          {
            kind: "sse-text",
            text: recorded.join(""),
            model: tracker.model ?? request.model,
            usage: tracker.usage,
          },
          deps.config.CACHE_TTL_SECONDS,
        );
      }
    }
  });
}

function logMessagePrompt(c: AppContext, request: MessageRequest, model: string, said: string) {
  logPrompt(c.get("logger"), {
    requestId: c.get("requestId"),
    userId: c.get("userId"),
    model,
    route: "messages",
    system: request.system,
    messages: request.messages,
    completion: said,
  });
}

const LATER: unique symbol = Symbol("later");

/** `p`'s value if it settles before the event loop's next turn (it rejects if `p` does), else LATER. */
function withinThisTurn<T>(p: Promise<T>): Promise<T | typeof LATER> {
  return Promise.race([p, new Promise<typeof LATER>((resolve) => setImmediate(resolve, LATER))]);
}

function sseHeaders(c: AppContext, deps: AppDeps) {
  setHeader(c, "cache-control", "no-cache");
  setHeader(c, "x-accel-buffering", "no");
  if (deps.llm.synthetic) setHeader(c, "x-agent-synthetic", "true");
}

async function replay(
  c: AppContext,
  deps: AppDeps,
  hit: CachedResponse,
  model: string,
): Promise<Response> {
  setHeader(c, "x-cache", "HIT");
  deps.usage.record({
    requestId: c.get("requestId"),
    userId: c.get("userId"),
    model,
    ...toEntryTokens(NO_USAGE),
    costUsd: 0,
    status: "cached",
    kind: "messages",
    latencyMs: 0,
  });
  if (hit.kind === "json") {
    setHeader(c, "x-agent-model", hit.message.model);
    return respond(c, JSON.stringify(hit.message), 200, "application/json");
  }
  sseHeaders(c, deps);
  setHeader(c, "x-agent-model", hit.model);
  // One write: a cached stream has no pacing to preserve, and one chunk is cheapest.
  return respond(c, hit.text, 200, SSE_CONTENT_TYPE);
}

/** The cost of the model call a cached answer stands for: its usage at the answering model's prices. */
function cachedCostUsd(catalog: ModelCatalog, hit: CachedResponse, model: string): number {
  if (hit.kind === "json")
    return catalog.costUsd(hit.message.model || model, fullUsage(hit.message.usage));
  return catalog.costUsd(hit.model || model, hit.usage);
}

function toEntryTokens(u: FullUsage) {
  return {
    inputTokens: u.input_tokens,
    outputTokens: u.output_tokens,
    cacheCreationInputTokens: u.cache_creation_input_tokens,
    cacheReadInputTokens: u.cache_read_input_tokens,
  };
}

/**
 * An error for the client. Upstream failures become a fixed message (llm/upstream-errors.ts); what
 * the upstream said is logged, redacted, with the request id. Anything else is a 502.
 */
export function asApiError(
  err: unknown,
  log?: {
    logger: Pick<Logger, "warn">;
    requestId: string;
    secrets?: ReadonlyArray<string | undefined>;
  },
): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof UpstreamError) {
    if (err.remote) {
      log?.logger.warn(
        {
          requestId: log.requestId,
          upstreamStatus: err.status,
          upstreamType: redactSecrets(err.type, log.secrets).slice(0, 64),
          upstreamMessage: redactSecrets(err.message, log.secrets),
        },
        "model API call failed",
      );
      return clientErrorFor(err);
    }
    const status =
      err.status === 499 ? 499 : err.status >= 400 && err.status <= 599 ? err.status : 502;
    return new ApiError(status as ApiError["status"], err.type, err.message, err.headers);
  }
  return new ApiError(502, "api_error", "upstream model API call failed");
}

/** asApiError's log context for a request. */
export function failureLog(c: AppContext, deps: Pick<AppDeps, "config">) {
  return {
    logger: c.get("logger"),
    requestId: c.get("requestId"),
    secrets: [deps.config.ANTHROPIC_API_KEY, deps.config.AWS_BEARER_TOKEN_BEDROCK],
  };
}
