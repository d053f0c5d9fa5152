/**
 * One agent turn: call the model with the conversation and the tools; while it asks for tools,
 * run them, add the assistant's request and the results to the conversation, and call again.
 *
 * The turn is an async generator, so one implementation serves JSON and streaming clients: it
 * yields upstream events (streaming only) and tool results as they happen, and returns the
 * messages the turn produced for the caller to store in one atomic append. It stores nothing
 * itself, so a turn that fails or is abandoned leaves the session's history untouched. Calling
 * `return()` on it (client gone) stops the model call in flight and still meters it.
 */
import type Anthropic from "@anthropic-ai/sdk";
import { assembleMessage, fullUsage, StreamTracker, type FullUsage } from "../llm/stream-usage";
import type {
  CallOptions,
  LlmProvider,
  MessageRequest,
  MessageResponse,
  StreamEvent,
} from "../llm/types";
import { UpstreamError } from "../llm/types";
import type { ContentBlock, UsageStatus } from "../store/types";
import { toRequestMessages, withCacheBreakpoint, type HistoryMessage } from "./history";
import type { ToolRegistry } from "./tools";
import { boundUsage } from "../llm/usage-bounds";
import { estimateInputTokens } from "../budget/estimate";

/**
 * The turn's stop_reason when the model still wanted tools after AGENT_MAX_TOOL_ITERATIONS rounds.
 * The tools of that last request are not run: each gets an error result saying why, which keeps
 * the stored history valid for the next turn.
 */
export const MAX_TOOL_ITERATIONS_STOP = "max_tool_iterations";

/**
 * The turn's stop_reason when a budget (the per-request budget covers the whole turn) could not
 * cover another model call after the first: the calls already paid for and the tools' results
 * are kept, and the next turn carries on from them.
 */
export const BUDGET_STOP = "budget_exceeded";

export type TurnStopReason =
  MessageResponse["stop_reason"] | typeof MAX_TOOL_ITERATIONS_STOP | typeof BUDGET_STOP;

export interface ProducedMessage extends HistoryMessage {
  /** The model that wrote an assistant message; null for tool results. */
  model: string | null;
}

export interface TurnUsage extends FullUsage {
  cost_usd: number;
}

export interface ModelCallRecord {
  /** 1 for the turn's first model call. */
  iteration: number;
  model: string;
  usage: FullUsage;
  costUsd: number;
  status: UsageStatus;
  latencyMs: number;
}

export type TurnEvent =
  | { type: "upstream"; event: StreamEvent }
  | { type: "tool_result"; tool_use_id: string; name: string; is_error: boolean; content: string };

export interface TurnResult {
  /** Everything the turn added after the user's message, in order: assistant messages and tool results. */
  produced: ProducedMessage[];
  /** The last assistant message. */
  message: MessageResponse;
  /** Model calls made. */
  iterations: number;
  stopReason: TurnStopReason;
  usage: TurnUsage;
}

export interface AgentTurnOptions {
  llm: LlmProvider;
  tools: ToolRegistry;
  model: string;
  system: string | null;
  /** The stored history followed by the user's new message. */
  conversation: readonly HistoryMessage[];
  maxTokens: number;
  /** Most tool rounds (tools run, model called again) in one turn: AGENT_MAX_TOOL_ITERATIONS. */
  maxToolIterations: number;
  /** Stream each model call, yielding its events as they arrive, or make plain JSON calls. */
  stream: boolean;
  /** The turn is cancelled (client gone): no further model call or tool starts, a stream stops. */
  signal: AbortSignal;
  /**
   * Aborts a JSON model call in flight (shutdown). The turn's `signal` does not: a JSON call is
   * billed either way and reports its usage only once complete, so it is left to finish.
   */
  callSignal?: AbortSignal;
  /** The model's context window, bounding the input usage charged (default 200,000 tokens). */
  contextWindow?(model: string): number;
  /** Told when the upstream reported usage beyond max_tokens or the context window (then clamped). */
  onUsageBounded?(model: string, reported: FullUsage, charged: FullUsage): void;
  timeoutMs?: number;
  requestId?: string;
  costUsd(model: string, usage: FullUsage): number;
  /** Called exactly once per model call, however it ended. */
  onModelCall?(call: ModelCallRecord): void;
  /**
   * Admission before each model call (budgets): may cap `max_tokens`, or throw to refuse the call
   * (an error whose `type` is "budget_exceeded" after the first call ends the turn with
   * BUDGET_STOP instead of failing it). `settle` receives the call's real cost once it ends,
   * however it ends.
   */
  admit?(request: MessageRequest): Promise<Admission>;
}

export interface Admission {
  request: MessageRequest;
  settle(costUsd: number): void;
  /** Asked before a fallback to another model (CallOptions.admitModel). */
  admitModel?(model: string): Promise<boolean>;
}

interface CallResult {
  message: MessageResponse;
  usage: FullUsage;
  costUsd: number;
}

type ToolUse = Anthropic.ToolUseBlock;

export async function* runAgentTurn(
  o: AgentTurnOptions,
): AsyncGenerator<TurnEvent, TurnResult, void> {
  const conversation: HistoryMessage[] = [...o.conversation];
  const produced: ProducedMessage[] = [];
  const total: TurnUsage = { ...zeroUsage(), cost_usd: 0 };
  let toolRounds = 0;
  let last: MessageResponse | undefined;

  for (let iteration = 1; ; iteration++) {
    // Tools ignore cancellation once running; stop here rather than start another paid call.
    if (o.signal.aborted) throw new UpstreamError(499, "aborted", "request aborted");
    const request: MessageRequest = {
      model: o.model,
      max_tokens: o.maxTokens,
      messages: withCacheBreakpoint(toRequestMessages(conversation)),
      tools: o.tools.definitions(),
      ...(o.system ? { system: o.system } : {}),
    };
    let admission: Admission | undefined;
    try {
      admission = o.admit ? await o.admit(request) : undefined;
    } catch (err) {
      if (last && (err as { type?: unknown })?.type === BUDGET_STOP)
        return finish(last, BUDGET_STOP);
      throw err;
    }
    const report = (record: ModelCallRecord) => {
      admission?.settle(record.costUsd);
      o.onModelCall?.(record);
    };
    const admitted = admission?.request ?? request;
    const call = o.stream
      ? yield* streamedCall(o, admitted, iteration, report, admission?.admitModel)
      : await jsonCall(o, admitted, iteration, report, admission?.admitModel);
    addUsage(total, call);
    const { message } = call;
    last = message;
    const assistant: ProducedMessage = {
      role: "assistant",
      content: message.content as unknown as ContentBlock[],
      model: message.model,
    };
    conversation.push(assistant);
    produced.push(assistant);

    const uses = message.content.filter((b): b is ToolUse => b.type === "tool_use");
    if (uses.length === 0) return finish(message, message.stop_reason);

    // A tool_use without a matching tool_result makes every later request invalid, so requests
    // that are not run still get a result: an error that tells the model why.
    const refusal =
      message.stop_reason !== "tool_use"
        ? `not run: the response stopped (stop_reason "${message.stop_reason}") before the tool call was complete`
        : toolRounds >= o.maxToolIterations
          ? `not run: this turn reached its limit of ${o.maxToolIterations} tool iterations; tell the user what you have so far and that you can continue in the next turn`
          : null;
    // Started together (they are independent), reported in the order the model asked.
    const pending = uses.map((use) =>
      refusal === null
        ? o.tools.execute(use.name, use.input, o.signal)
        : Promise.resolve({ content: refusal, isError: true }),
    );
    const results: ContentBlock[] = [];
    for (const [i, use] of uses.entries()) {
      const outcome = await pending[i]!;
      results.push({
        type: "tool_result",
        tool_use_id: use.id,
        content: outcome.content,
        is_error: outcome.isError,
      });
      yield {
        type: "tool_result",
        tool_use_id: use.id,
        name: use.name,
        is_error: outcome.isError,
        content: outcome.content,
      };
    }
    const toolMessage: ProducedMessage = { role: "user", content: results, model: null };
    conversation.push(toolMessage);
    produced.push(toolMessage);
    if (refusal !== null)
      return finish(
        message,
        message.stop_reason === "tool_use" ? MAX_TOOL_ITERATIONS_STOP : message.stop_reason,
      );
    toolRounds++;
  }

  function finish(message: MessageResponse, stopReason: TurnStopReason): TurnResult {
    // One assistant message per model call.
    const iterations = produced.filter((m) => m.role === "assistant").length;
    // Sums of float prices drift in the last digits; the ledger keeps 10 decimals.
    return {
      produced,
      message,
      iterations,
      stopReason,
      usage: { ...total, cost_usd: roundUsd(total.cost_usd) },
    };
  }
}

async function jsonCall(
  o: AgentTurnOptions,
  request: MessageRequest,
  iteration: number,
  report: (call: ModelCallRecord) => void,
  admitModel?: CallOptions["admitModel"],
): Promise<CallResult> {
  const started = performance.now();
  let message: MessageResponse;
  try {
    message = await o.llm.createMessage(request, {
      ...callOptions(o),
      signal: o.callSignal,
      admitModel,
    });
  } catch (err) {
    // A failed JSON call reports no usage; it is metered at zero so the attempt is still on
    // record. One cut by shutdown may have generated everything it was allowed: its worst case.
    const cut = o.callSignal?.aborted === true;
    const usage = cut
      ? {
          ...zeroUsage(),
          input_tokens: estimateInputTokens(request),
          output_tokens: request.max_tokens,
        }
      : zeroUsage();
    report({
      iteration,
      model: request.model,
      usage,
      costUsd: cut ? o.costUsd(request.model, usage) : 0,
      status: cut || o.signal.aborted ? "aborted" : "error",
      latencyMs: elapsed(started),
    });
    throw err;
  }
  const usage = bounded(o, message.model, fullUsage(message.usage), request);
  const costUsd = o.costUsd(message.model, usage);
  report({
    iteration,
    model: message.model,
    usage,
    costUsd,
    status: "ok",
    latencyMs: elapsed(started),
  });
  return { message, usage, costUsd };
}

async function* streamedCall(
  o: AgentTurnOptions,
  request: MessageRequest,
  iteration: number,
  report: (call: ModelCallRecord) => void,
  admitModel?: CallOptions["admitModel"],
): AsyncGenerator<TurnEvent, CallResult, void> {
  const started = performance.now();
  const tracker = new StreamTracker();
  const events: StreamEvent[] = [];
  const upstream = o.llm
    .streamMessage(request, { ...callOptions(o), admitModel })
    [Symbol.asyncIterator]();
  let result: CallResult | undefined;
  let failed = false;
  try {
    for (;;) {
      const next = await upstream.next();
      if (next.done) break;
      tracker.observe(next.value);
      events.push(next.value);
      yield { type: "upstream", event: next.value };
    }
    if (!tracker.completed)
      throw new UpstreamError(502, "api_error", "the model's stream ended before message_stop");
    const message = assemble(events);
    const usage = bounded(o, message.model, tracker.finalUsage(), request);
    result = { message, usage, costUsd: o.costUsd(message.model, usage) };
    return result;
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    // Neither finished nor failed: the consumer returned the turn (client gone). Close the
    // upstream stream so the model stops generating tokens nobody will read.
    if (!result && !failed) await upstream.return?.().catch(() => undefined);
    const model = tracker.model ?? request.model;
    const usage = result?.usage ?? bounded(o, model, tracker.finalUsage(), request);
    report({
      iteration,
      model,
      usage,
      costUsd: result?.costUsd ?? o.costUsd(model, usage),
      status: result ? "ok" : o.signal.aborted || !failed ? "aborted" : "error",
      latencyMs: elapsed(started),
    });
  }
}

function assemble(events: StreamEvent[]): MessageResponse {
  let message: MessageResponse | null;
  try {
    message = assembleMessage(events);
  } catch {
    // assembleMessage parses each tool call's streamed JSON; a malformed one is the upstream's fault.
    throw new UpstreamError(502, "api_error", "the model's stream carried malformed tool input");
  }
  if (!message)
    throw new UpstreamError(502, "api_error", "the model's stream had no message_start");
  return message;
}

/** Usage within max_tokens and the context window (see llm/usage-bounds.ts). */
function bounded(
  o: AgentTurnOptions,
  model: string,
  usage: FullUsage,
  request: MessageRequest,
): FullUsage {
  const b = boundUsage(usage, {
    maxTokens: request.max_tokens,
    contextWindow: o.contextWindow?.(model) ?? DEFAULT_CONTEXT_WINDOW,
  });
  if (b.reported) o.onUsageBounded?.(model, b.reported, b.usage);
  return b.usage;
}

const DEFAULT_CONTEXT_WINDOW = 200_000;

function callOptions(o: AgentTurnOptions): CallOptions {
  return { signal: o.signal, timeoutMs: o.timeoutMs, requestId: o.requestId };
}

function zeroUsage(): FullUsage {
  return {
    input_tokens: 0,
    output_tokens: 0,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
  };
}

function addUsage(total: TurnUsage, call: CallResult) {
  total.input_tokens += call.usage.input_tokens;
  total.output_tokens += call.usage.output_tokens;
  total.cache_creation_input_tokens += call.usage.cache_creation_input_tokens;
  total.cache_read_input_tokens += call.usage.cache_read_input_tokens;
  total.cost_usd += call.costUsd;
}

export function roundUsd(usd: number): number {
  return Math.round(usd * 1e10) / 1e10;
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}
