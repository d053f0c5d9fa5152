/**
 * Agent sessions: a conversation history kept on the server, and turns that run the tool loop.
 *
 *   POST /v1/sessions                  create a session
 *   GET  /v1/sessions/{id}             the session with its full history
 *   POST /v1/sessions/{id}/messages    run one agent turn (JSON, or SSE with "stream": true)
 *
 * A session belongs to the user who created it. An unknown id, another user's session and a
 * malformed id all get the same 404, so ids cannot be probed. All messages of a turn are stored
 * in one append at its end, conditional on the history being where it was when the turn began:
 * a concurrent turn on the same session gets 409 conflict_error, and a failed or abandoned turn
 * stores nothing.
 */
import type { Hono } from "hono";
import { streamResponse } from "./stream-out";
import * as z from "zod";
import type { AppDeps } from "../deps";
import type { AppContext, AppEnv } from "../http";
import { describeIssues, readJson, setHeader } from "../http";
import { ApiError, badRequest, errorBody, errorMessage, notFound } from "../errors";
import type { ModelCatalog } from "../llm/models";
import { UpstreamError, type MessageRequest } from "../llm/types";
import { reserveRequestFor } from "../budget/budgets";
import { ConcurrentAppendError, type ContentBlock, type Session } from "../store/types";
import {
  runAgentTurn,
  type Admission,
  type ModelCallRecord,
  type ProducedMessage,
  type TurnEvent,
  type TurnResult,
} from "../agent/loop";
import { userContentBlocks } from "../agent/history";
import { prepareSessionTurn } from "../agent/model-choice";
import { createBuiltinToolRegistry } from "../agent/tools";
import { asApiError, capped, failureLog, topUp } from "./messages";
import { StallGuard } from "./stall";
import { completionText, logPrompt } from "../telemetry/prompt-log";
import {
  MAX_JSON_DEPTH,
  nestsDeeperThan,
  NUL_REFUSED,
  nulPath,
  TOO_DEEP,
  withoutNul,
} from "../json-limits";
import { checkModel } from "../llm/known-models";
import { messageFacts, NO_FACTS, type RequestFacts } from "../request-facts";
import type { RouteChains } from "./chain";

const SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_SYSTEM_CHARS = 100_000;
const MAX_METADATA_BYTES = 16 * 1024;
const MAX_CONTENT_BLOCKS = 100;
/** Output budget of each model call in a turn when the request names none. */
export const DEFAULT_TURN_MAX_TOKENS = 4096;
/** Block types a client may send; tool_use and tool_result blocks come only from the agent itself. */
const CLIENT_BLOCK_TYPES = ["text", "image", "document"];

export const createSessionSchema = z.strictObject({
  model: z
    .string()
    .min(1, "must not be empty")
    .max(256, "must be at most 256 characters")
    .nullish(),
  system: z
    .string()
    .max(MAX_SYSTEM_CHARS, `must be at most ${MAX_SYSTEM_CHARS} characters`)
    .refine((s) => !s.includes("\u0000"), NUL_REFUSED)
    .nullish(),
  metadata: z
    .record(z.string(), z.unknown())
    .refine(
      (m) => Buffer.byteLength(JSON.stringify(m)) <= MAX_METADATA_BYTES,
      `must be at most ${MAX_METADATA_BYTES} bytes as JSON`,
    )
    .refine((m) => nulPath(m) === null, NUL_REFUSED)
    .nullish(),
});

/**
 * A user message: a non-empty string, or content blocks of the client-facing types. Checked by
 * hand because a zod union reports only "Invalid input", and the 400 must name what is wrong.
 */
const userContent = z.unknown().transform((value, ctx): ContentBlock[] => {
  const fail = (message: string, path: PropertyKey[] = []) => {
    ctx.addIssue({ code: "custom", message, path });
    return z.NEVER;
  };
  if (value === undefined) return fail("required: a string or an array of content blocks");
  // Checked before anything else: a turn whose input cannot be stored must not reach the model.
  const nul = nulPath(value);
  if (nul !== null) return fail(NUL_REFUSED, nul);
  if (typeof value === "string") {
    return value.trim() === ""
      ? fail("must contain non-whitespace text")
      : userContentBlocks(value);
  }
  if (!Array.isArray(value)) return fail("must be a string or an array of content blocks");
  if (value.length === 0) return fail("must hold at least one content block");
  if (value.length > MAX_CONTENT_BLOCKS)
    return fail(`must hold at most ${MAX_CONTENT_BLOCKS} content blocks`);
  for (const [i, block] of value.entries()) {
    if (typeof block !== "object" || block === null || Array.isArray(block))
      return fail("must be an object", [i]);
    const b = block as Record<string, unknown>;
    if (typeof b.type !== "string" || !CLIENT_BLOCK_TYPES.includes(b.type)) {
      return fail(`must be one of ${CLIENT_BLOCK_TYPES.map((t) => `"${t}"`).join(", ")}`, [
        i,
        "type",
      ]);
    }
    if (b.type === "text" && (typeof b.text !== "string" || b.text.trim() === "")) {
      return fail("must be a string with non-whitespace text", [i, "text"]);
    }
    if (
      b.type !== "text" &&
      (typeof b.source !== "object" || b.source === null || Array.isArray(b.source))
    ) {
      return fail("must be an object", [i, "source"]);
    }
  }
  return userContentBlocks(value as ContentBlock[]);
});

export const turnRequestSchema = z.strictObject({
  content: userContent,
  stream: z.boolean().optional(),
  max_tokens: z.number().int().positive().max(200_000).optional(),
});

/**
 * A turn asks for its new message plus each model call's output: its history (read later) is not
 * counted here, and the settlement afterwards charges the difference.
 */
export function turnFacts(body: unknown): RequestFacts {
  if (typeof body !== "object" || body === null) return NO_FACTS;
  const content = "content" in body ? body.content : undefined;
  const maxTokens = "max_tokens" in body ? body.max_tokens : undefined;
  const stream = "stream" in body ? body.stream : undefined;
  const facts = messageFacts({
    messages: [{ role: "user", content }],
    max_tokens: maxTokens,
    stream,
  });
  return { ...facts, maxTokens: facts.maxTokens || DEFAULT_TURN_MAX_TOKENS };
}

export function registerSessionRoutes(
  app: Hono<AppEnv>,
  deps: AppDeps,
  catalog: ModelCatalog,
  chains: RouteChains,
) {
  const tools = createBuiltinToolRegistry();
  // Sessions with a turn running in this process. A second turn is refused at once instead of
  // being paid for and then rejected at the append; across replicas the append still decides.
  const busy = new Set<string>();

  app.post("/v1/sessions", chains.plain(), async (c) => {
    const body = await readOptionalJson(c, createSessionSchema);
    if (body.model) checkModel(catalog, body.model);
    const session = await deps.store.createSession({
      userId: c.get("userId"),
      model: body.model ?? null,
      system: body.system ?? null,
      metadata: body.metadata ?? {},
    });
    return c.json(sessionJson(session), 201);
  });

  app.get("/v1/sessions/:id", chains.plain(), async (c) => {
    const session = await findSession(c, deps);
    const messages = await deps.store.listMessages(session.id);
    return c.json({
      ...sessionJson(session),
      updated_at: session.updatedAt,
      messages: messages.map((m) => ({
        role: m.role,
        content: m.content,
        model: m.model,
        created_at: m.createdAt,
      })),
    });
  });

  const turnChain = chains.model(turnFacts, { idempotent: true });
  app.post("/v1/sessions/:id/messages", turnChain, async (c) => {
    const body = await readJson(c, turnRequestSchema);
    // Before any work: a stream past what the process relays is refused at once (overload.ts).
    if (body.stream === true) deps.overload?.admitStream(c);
    const session = await findSession(c, deps);
    if (busy.has(session.id)) {
      throw new ApiError(
        409,
        "conflict_error",
        `session ${session.id} already has a turn in progress; send the next message when it completes`,
      );
    }
    busy.add(session.id);
    // Shutdown waits until the turn has settled what it spent.
    const settled = deps.lifecycle.track?.();
    let releasedByStream = false;
    try {
      const history = await deps.store.listMessages(session.id);
      const expectedNextSeq = history.length === 0 ? 0 : history[history.length - 1]!.seq + 1;
      const userMessage: ProducedMessage = { role: "user", content: body.content, model: null };
      const requestId = c.get("requestId");
      const userId = c.get("userId");
      const controller = new AbortController();
      const meter = (call: ModelCallRecord) =>
        deps.usage.record({
          requestId,
          userId,
          sessionId: session.id,
          model: call.model,
          inputTokens: call.usage.input_tokens,
          outputTokens: call.usage.output_tokens,
          cacheCreationInputTokens: call.usage.cache_creation_input_tokens,
          cacheReadInputTokens: call.usage.cache_read_input_tokens,
          costUsd: call.costUsd,
          status: call.status,
          kind: "session",
          latencyMs: call.latencyMs,
        });
      // Sticky routing (the first turn pins "auto"/tier sessions) and history trimming.
      const plan = await prepareSessionTurn(
        session,
        [...history.map((m) => ({ role: m.role, content: m.content })), userMessage],
        { config: deps.config, catalog, store: deps.store },
        { maxTokens: body.max_tokens ?? DEFAULT_TURN_MAX_TOKENS, tools: tools.definitions() },
      );
      setHeader(c, "x-agent-route-reason", plan.reason);
      c.get("dispatching")?.();
      const turn = runAgentTurn({
        llm: deps.llm,
        tools,
        model: plan.model,
        system: session.system,
        conversation: plan.conversation,
        maxTokens: body.max_tokens ?? DEFAULT_TURN_MAX_TOKENS,
        maxToolIterations: deps.config.AGENT_MAX_TOOL_ITERATIONS,
        stream: body.stream === true,
        // The request's own signal covers a client that leaves before the stream starts.
        signal: AbortSignal.any([c.req.raw.signal, controller.signal]),
        callSignal: deps.lifecycle.stopping,
        timeoutMs: deps.config.UPSTREAM_TIMEOUT_MS,
        requestId,
        costUsd: (model, usage) => catalog.costUsd(model, usage),
        contextWindow: (model) => catalog.prices(model).contextWindow,
        onUsageBounded: (model, reported, charged) =>
          deps.logger.warn(
            { requestId, model, reported, charged },
            "upstream reported usage beyond what was admitted; charging the admitted bounds",
          ),
        onModelCall: meter,
        admit: budgetAdmission(c, deps, session.id),
      });
      const save = async (result: TurnResult) => {
        await appendTurn(deps, session.id, expectedNextSeq, [userMessage, ...result.produced]);
        if (deps.config.LOG_PROMPTS)
          logPrompt(c.get("logger"), {
            requestId,
            userId,
            model: result.message.model,
            route: "session",
            system: session.system ?? undefined,
            messages: plan.conversation,
            completion: result.produced
              .filter((m) => m.role === "assistant")
              .map((m) => completionText(m.content))
              .join("\n"),
          });
      };

      if (!body.stream) {
        let result: TurnResult;
        try {
          for (let next = await turn.next(); ; next = await turn.next()) {
            if (next.done) {
              result = next.value;
              break;
            }
          }
        } catch (err) {
          throw turnError(c, deps, err);
        }
        await save(result);
        setHeader(c, "x-agent-model", result.message.model);
        if (deps.llm.synthetic) setHeader(c, "x-agent-synthetic", "true");
        return c.json(turnSummary(session.id, result));
      }

      // As in /v1/messages: wait for the first event before committing to a 200, so a refused
      // first call (429, 529, 400) reaches the client as a real HTTP error.
      let first: IteratorResult<TurnEvent, TurnResult>;
      try {
        first = await turn.next();
      } catch (err) {
        throw turnError(c, deps, err);
      }
      setHeader(c, "cache-control", "no-cache");
      setHeader(c, "x-accel-buffering", "no");
      if (deps.llm.synthetic) setHeader(c, "x-agent-synthetic", "true");
      releasedByStream = true;
      return streamResponse(c, async (out) => {
        out.onAbort(() => controller.abort());
        // A client that stops reading ends its turn after STREAM_STALL_TIMEOUT_MS (routes/stall.ts).
        const guard = new StallGuard(c, out, deps.config.STREAM_STALL_TIMEOUT_MS);
        let next = first;
        try {
          while (!next.done) {
            if (!(await guard.write(eventFrame(next.value)))) return;
            next = await turn.next();
          }
          await save(next.value);
          await guard.write(
            frame("turn_complete", {
              type: "turn_complete",
              ...turnSummary(session.id, next.value),
            }),
          );
        } catch (err) {
          if (out.aborted || guard.stalled) return;
          const e = err instanceof ApiError ? err : turnError(c, deps, err);
          await guard.write(frame("error", errorBody(e.type, e.message, requestId, e.details)));
        } finally {
          guard.close();
          // Client gone mid-turn: returning the generator stops the model call in flight, which
          // is metered as aborted; nothing of the turn is stored.
          if (!next.done)
            await turn.return(undefined as unknown as TurnResult).catch(() => undefined);
          busy.delete(session.id);
          settled?.();
        }
      });
    } finally {
      if (!releasedByStream) {
        busy.delete(session.id);
        settled?.();
      }
    }
  });
}

/** The session, or the same 404 whether it is unknown, another user's, or the id is malformed. */
async function findSession(c: AppContext, deps: AppDeps): Promise<Session> {
  const id = c.req.param("id") ?? "";
  const session = SESSION_ID.test(id) ? await deps.store.getSession(id, c.get("userId")) : null;
  if (!session) throw notFound(`session ${JSON.stringify(id.slice(0, 100))} not found`);
  return session;
}

async function appendTurn(
  deps: AppDeps,
  sessionId: string,
  expectedNextSeq: number,
  messages: ProducedMessage[],
) {
  try {
    // Model output is stored as it came, but for NUL characters, which Postgres cannot hold.
    await deps.store.appendMessages(sessionId, expectedNextSeq, withoutNul(messages));
  } catch (err) {
    if (err instanceof ConcurrentAppendError) {
      throw new ApiError(
        409,
        "conflict_error",
        `session ${sessionId} changed while this turn ran (another turn finished first); nothing from this turn was stored: reload the session and retry`,
      );
    }
    deps.logger.error({ err: errorMessage(err), sessionId }, "could not store a session turn");
    throw new ApiError(500, "api_error", "internal error: the turn could not be stored");
  }
}

/** Upstream failures keep their status and type; anything else is our bug, logged and a 500. */
function turnError(c: AppContext, deps: AppDeps, err: unknown): ApiError {
  if (err instanceof ApiError || err instanceof UpstreamError)
    return asApiError(err, failureLog(c, deps));
  c.get("logger").error(
    {
      err: errorMessage(err),
      stack: err instanceof Error ? err.stack : undefined,
      requestId: c.get("requestId"),
    },
    "agent turn failed",
  );
  return new ApiError(500, "api_error", "internal error");
}

function turnSummary(sessionId: string, result: TurnResult) {
  return {
    session_id: sessionId,
    message: result.message,
    iterations: result.iterations,
    stop_reason: result.stopReason,
    usage: result.usage,
  };
}

function sessionJson(s: Session) {
  return {
    id: s.id,
    model: s.model,
    system: s.system,
    metadata: s.metadata,
    created_at: s.createdAt,
  };
}

function eventFrame(e: TurnEvent): string {
  return e.type === "upstream" ? frame(e.event.type, e.event) : frame("tool_result", e);
}

function frame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** Like readJson, but an empty body means `{}`: every field of a new session is optional. */
async function readOptionalJson<S extends z.ZodType>(
  c: AppContext,
  schema: S,
): Promise<z.infer<S>> {
  let raw: unknown = {};
  let text: string;
  try {
    text = await c.req.text();
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw badRequest("request body could not be read");
  }
  if (text.trim() !== "") {
    try {
      raw = JSON.parse(text);
    } catch {
      throw badRequest("request body is not valid JSON");
    }
  }
  if (nestsDeeperThan(raw, MAX_JSON_DEPTH)) throw badRequest(TOO_DEEP);
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw badRequest(describeIssues(parsed.error.issues));
  return parsed.data;
}

/**
 * Each model call of a turn holds its worst case against the budgets, like /v1/messages; the
 * per-request budget covers the whole turn, so each call may use only what the calls before it
 * left of it.
 */
function budgetAdmission(
  c: AppContext,
  deps: AppDeps,
  sessionId: string,
): ((request: MessageRequest) => Promise<Admission>) | undefined {
  const budgets = deps.budgets;
  if (!budgets) return undefined;
  const requestId = c.get("requestId");
  const userId = c.get("userId");
  let call = 0;
  let spentUsd = 0;
  return async (request) => {
    const held = await budgets.reserve({
      ...reserveRequestFor(
        request,
        messageFacts(request),
        { requestId: `${requestId}:${++call}`, userId, sessionId },
        deps.config.BUDGET_MIN_OUTPUT_TOKENS,
      ),
      requestSpentUsd: spentUsd,
    });
    if (!held.ok) throw held.error;
    let admitted = request;
    if (held.maxTokens < request.max_tokens) {
      admitted = { ...request, max_tokens: held.maxTokens };
      // Seen by the client when headers are still to be sent (JSON turns, a stream's first call).
      capped(c, held.maxTokens, held.cappedBy);
    }
    return {
      request: admitted,
      admitModel: topUp(deps, held.reservation),
      settle: (costUsd) => {
        spentUsd += costUsd;
        void budgets.settle(held.reservation, costUsd);
      },
    };
  };
}
