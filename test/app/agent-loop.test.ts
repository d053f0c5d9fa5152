import { z } from "zod";
import {
  runAgentTurn,
  type AgentTurnOptions,
  type ModelCallRecord,
  type TurnEvent,
  type TurnResult,
} from "../../app/src/agent/loop";
import {
  toRequestMessages,
  userContentBlocks,
  withCacheBreakpoint,
  type HistoryMessage,
} from "../../app/src/agent/history";
import { createBuiltinToolRegistry, defineTool, ToolRegistry } from "../../app/src/agent/tools";
import type {
  CallOptions,
  LlmProvider,
  MessageRequest,
  MessageResponse,
  StreamEvent,
} from "../../app/src/llm/types";
import { UpstreamError } from "../../app/src/llm/types";
import type { ContentBlock } from "../../app/src/store/types";

// ---- a scripted model: each call takes the next step of the script -------------------------

type Block = Record<string, unknown> & { type: string };
type Step = MessageResponse | Error | ((request: MessageRequest) => MessageResponse | Error);

let ids = 0;
function reply(
  content: Block[],
  stop_reason: string,
  usage = { input_tokens: 100, output_tokens: 20 },
): MessageResponse {
  return {
    id: `msg_${++ids}`,
    type: "message",
    role: "assistant",
    model: "claude-sonnet-4-5-20250929",
    content,
    stop_reason,
    stop_sequence: null,
    usage: { ...usage, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
  } as unknown as MessageResponse;
}
const say = (text: string) => reply([{ type: "text", text, citations: null }], "end_turn");
const use = (...calls: Array<[id: string, name: string, input: unknown]>) =>
  reply(
    calls.map(([id, name, input]) => ({ type: "tool_use", id, name, input })),
    "tool_use",
  );

/** The Messages API's event sequence for a complete message. */
function toEvents(m: MessageResponse): StreamEvent[] {
  const events: unknown[] = [
    {
      type: "message_start",
      message: { ...m, content: [], stop_reason: null, usage: { ...m.usage, output_tokens: 1 } },
    },
  ];
  m.content.forEach((block, index) => {
    const b = block as unknown as Block;
    if (b.type === "text") {
      events.push({
        type: "content_block_start",
        index,
        content_block: { type: "text", text: "", citations: null },
      });
      for (const chunk of String(b.text).match(/.{1,5}/gs) ?? [])
        events.push({
          type: "content_block_delta",
          index,
          delta: { type: "text_delta", text: chunk },
        });
    } else {
      events.push({ type: "content_block_start", index, content_block: { ...b, input: {} } });
      for (const chunk of JSON.stringify(b.input).match(/.{1,4}/gs) ?? []) {
        events.push({
          type: "content_block_delta",
          index,
          delta: { type: "input_json_delta", partial_json: chunk },
        });
      }
    }
    events.push({ type: "content_block_stop", index });
  });
  events.push({
    type: "message_delta",
    delta: { stop_reason: m.stop_reason, stop_sequence: null },
    usage: { output_tokens: m.usage.output_tokens },
  });
  events.push({ type: "message_stop" });
  return events as StreamEvent[];
}

class ScriptedLlm implements LlmProvider {
  readonly synthetic = false;
  readonly requests: MessageRequest[] = [];
  /** Streams whose consumer stopped reading early (their generator's finally ran). */
  closedEarly = 0;
  constructor(
    private readonly steps: Step[],
    /** Stream only this many events of a call, then end (no message_stop) or throw. */
    private readonly cut?: { afterEvents: number; error?: Error },
  ) {}

  private take(request: MessageRequest): MessageResponse {
    this.requests.push(structuredClone(request));
    const step = this.steps.shift();
    if (!step) throw new Error("the script has no more steps");
    const out = typeof step === "function" ? step(request) : step;
    if (out instanceof Error) throw out;
    return out;
  }

  async createMessage(
    request: MessageRequest,
    options: CallOptions = {},
  ): Promise<MessageResponse> {
    if (options.signal?.aborted) throw new UpstreamError(499, "aborted", "request aborted");
    return this.take(request);
  }

  async *streamMessage(request: MessageRequest): AsyncIterable<StreamEvent> {
    const events = toEvents(this.take(request));
    let done = false;
    try {
      for (const [i, e] of events.entries()) {
        if (this.cut && i === this.cut.afterEvents) {
          if (this.cut.error) throw this.cut.error;
          break;
        }
        yield e;
      }
      done = true;
    } finally {
      if (!done && !this.cut) this.closedEarly++;
    }
  }
}

// ---- helpers ---------------------------------------------------------------------------------

const userSays = (text: string): HistoryMessage => ({
  role: "user",
  content: [{ type: "text", text }],
});

function options(llm: LlmProvider, overrides: Partial<AgentTurnOptions> = {}) {
  const calls: ModelCallRecord[] = [];
  const opts: AgentTurnOptions = {
    llm,
    tools: createBuiltinToolRegistry(),
    model: "claude-sonnet-4-5",
    system: "You are terse.",
    conversation: [userSays("What is 6 * 7?")],
    maxTokens: 512,
    maxToolIterations: 3,
    stream: false,
    signal: new AbortController().signal,
    // $1 per million input tokens, $2 per million output tokens: easy to check.
    costUsd: (_model, u) => (u.input_tokens * 1 + u.output_tokens * 2) / 1e6,
    onModelCall: (c) => void calls.push(c),
    ...overrides,
  };
  return { opts, calls };
}

async function run(opts: AgentTurnOptions): Promise<{ events: TurnEvent[]; result: TurnResult }> {
  const events: TurnEvent[] = [];
  const turn = runAgentTurn(opts);
  for (;;) {
    const next = await turn.next();
    if (next.done) return { events, result: next.value };
    events.push(next.value);
  }
}

// ---- tests -----------------------------------------------------------------------------------

describe("runAgentTurn", () => {
  it("runs requested tools and calls the model again until it answers", async () => {
    const llm = new ScriptedLlm([use(["tu_1", "calculator", { expression: "6 * 7" }]), say("42.")]);
    const { opts, calls } = options(llm);
    const { events, result } = await run(opts);

    expect(result.iterations).toBe(2);
    expect(result.stopReason).toBe("end_turn");
    expect(result.message.content).toEqual([{ type: "text", text: "42.", citations: null }]);
    expect(result.produced.map((m) => [m.role, m.content.map((b) => b.type), m.model])).toEqual([
      ["assistant", ["tool_use"], "claude-sonnet-4-5-20250929"],
      ["user", ["tool_result"], null],
      ["assistant", ["text"], "claude-sonnet-4-5-20250929"],
    ]);
    expect(result.produced[1]!.content).toEqual([
      { type: "tool_result", tool_use_id: "tu_1", content: "42", is_error: false },
    ]);
    expect(events).toEqual([
      {
        type: "tool_result",
        tool_use_id: "tu_1",
        name: "calculator",
        is_error: false,
        content: "42",
      },
    ]);
    expect(result.usage).toEqual({
      input_tokens: 200,
      output_tokens: 40,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      cost_usd: 0.00028, // two calls of (100 * $1 + 20 * $2) per million tokens
    });
    expect(calls.map((c) => [c.iteration, c.status, c.costUsd])).toEqual([
      [1, "ok", 0.00014],
      [2, "ok", 0.00014],
    ]);

    // What the model saw: the tools, the system prompt, and the growing conversation.
    const [first, second] = llm.requests;
    expect(first).toMatchObject({
      model: "claude-sonnet-4-5",
      max_tokens: 512,
      system: "You are terse.",
    });
    expect(first!.tools!.map((t) => (t as { name: string }).name)).toEqual([
      "calculator",
      "current_time",
      "text_stats",
      "json_query",
    ]);
    expect(first!.messages).toEqual([
      {
        role: "user",
        content: [{ type: "text", text: "What is 6 * 7?", cache_control: { type: "ephemeral" } }],
      },
    ]);
    expect(second!.messages.map((m) => m.role)).toEqual(["user", "assistant", "user"]);
    expect(second!.messages[2]!.content).toEqual([
      {
        type: "tool_result",
        tool_use_id: "tu_1",
        content: "42",
        is_error: false,
        cache_control: { type: "ephemeral" },
      },
    ]);
    // Only the last block carries the breakpoint; the stored history never does.
    expect(JSON.stringify(second!.messages[0])).not.toContain("cache_control");
    expect(JSON.stringify(result.produced)).not.toContain("cache_control");
  });

  it("leaves out the system prompt when the session has none", async () => {
    const llm = new ScriptedLlm([say("hi")]);
    await run(options(llm, { system: null }).opts);
    expect(llm.requests[0]).not.toHaveProperty("system");
  });

  it("runs several tool calls of one response and reports them in the model's order", async () => {
    const order: string[] = [];
    const tools = new ToolRegistry([
      defineTool({
        name: "wait",
        description: "waits",
        input: z.object({ ms: z.number(), tag: z.string() }),
        run: async ({ ms, tag }) => {
          await new Promise((r) => setTimeout(r, ms));
          order.push(tag);
          return tag;
        },
      }),
    ]);
    const llm = new ScriptedLlm([
      use(["a", "wait", { ms: 40, tag: "slow" }], ["b", "wait", { ms: 1, tag: "fast" }]),
      say("done"),
    ]);
    const started = Date.now();
    const { events, result } = await run(options(llm, { tools }).opts);
    expect(order).toEqual(["fast", "slow"]); // they ran at the same time...
    expect(Date.now() - started).toBeLessThan(200);
    expect(events.map((e) => e.type === "tool_result" && e.tool_use_id)).toEqual(["a", "b"]); // ...reported in order
    expect(result.produced[1]!.content.map((b) => b.tool_use_id)).toEqual(["a", "b"]);
  });

  it("turns an unknown tool and invalid input into error results the model sees", async () => {
    const llm = new ScriptedLlm([
      use(["t1", "web_search", { q: "news" }], ["t2", "calculator", { expr: "1+1" }]),
      say("Sorry, I cannot search."),
    ]);
    const { result } = await run(options(llm).opts);
    expect(result.stopReason).toBe("end_turn");
    expect(result.produced[1]!.content).toEqual([
      {
        type: "tool_result",
        tool_use_id: "t1",
        content:
          'unknown tool "web_search"; the available tools are: calculator, current_time, text_stats, json_query',
        is_error: true,
      },
      {
        type: "tool_result",
        tool_use_id: "t2",
        content:
          'invalid input for tool "calculator": expression: Invalid input: expected string, received undefined; Unrecognized key: "expr". Fix the input and call the tool again.',
        is_error: true,
      },
    ]);
  });

  it("stops at the iteration cap without running the last request, keeping the history valid", async () => {
    let runs = 0;
    const tools = new ToolRegistry([
      defineTool({
        name: "again",
        description: "d",
        input: z.object({}),
        run: () => String(++runs),
      }),
    ]);
    const llm = new ScriptedLlm([
      use(["t1", "again", {}]),
      use(["t2", "again", {}]),
      use(["t3", "again", {}]),
      say("never reached"),
    ]);
    const { events, result } = await run(options(llm, { tools, maxToolIterations: 2 }).opts);

    expect(runs).toBe(2);
    expect(llm.requests).toHaveLength(3);
    expect(result.iterations).toBe(3);
    expect(result.stopReason).toBe("max_tool_iterations");
    expect(result.message.stop_reason).toBe("tool_use"); // the upstream message is passed on unchanged
    expect(result.produced.map((m) => m.role)).toEqual([
      "assistant",
      "user",
      "assistant",
      "user",
      "assistant",
      "user",
    ]);
    const refusal = {
      type: "tool_result",
      tool_use_id: "t3",
      content:
        "not run: this turn reached its limit of 2 tool iterations; tell the user what you have so far and that you can continue in the next turn",
      is_error: true,
    };
    expect(result.produced[5]!.content).toEqual([refusal]);
    expect(events[events.length - 1]).toEqual({ ...refusal, name: "again", type: "tool_result" });
  });

  it("does not run a tool call cut off by max_tokens, and answers it with an error", async () => {
    const cut = reply(
      [
        { type: "text", text: "Let me compute" },
        { type: "tool_use", id: "t1", name: "calculator", input: {} },
      ],
      "max_tokens",
    );
    const llm = new ScriptedLlm([cut]);
    const { result } = await run(options(llm).opts);
    expect(result.stopReason).toBe("max_tokens");
    expect(result.iterations).toBe(1);
    expect(result.produced[1]!.content).toEqual([
      {
        type: "tool_result",
        tool_use_id: "t1",
        content:
          'not run: the response stopped (stop_reason "max_tokens") before the tool call was complete',
        is_error: true,
      },
    ]);
  });

  it("propagates an upstream failure and meters both calls", async () => {
    const llm = new ScriptedLlm([
      use(["t1", "calculator", { expression: "1" }]),
      new UpstreamError(529, "overloaded_error", "Overloaded"),
    ]);
    const { opts, calls } = options(llm);
    await expect(run(opts)).rejects.toMatchObject({ status: 529, type: "overloaded_error" });
    expect(calls.map((c) => [c.status, c.usage.input_tokens])).toEqual([
      ["ok", 100],
      ["error", 0],
    ]);
  });

  it("does not start another model call once the turn is cancelled", async () => {
    const controller = new AbortController();
    const tools = new ToolRegistry([
      defineTool({
        name: "t",
        description: "d",
        input: z.object({}),
        run: () => (controller.abort(), "ran"),
      }),
    ]);
    const llm = new ScriptedLlm([use(["t1", "t", {}]), say("unreachable")]);
    await expect(
      run(options(llm, { tools, signal: controller.signal }).opts),
    ).rejects.toMatchObject({ status: 499 });
    expect(llm.requests).toHaveLength(1);
  });

  describe("streaming", () => {
    it("yields every call's upstream events around the tool results and assembles the messages", async () => {
      const first = use(["tu_1", "calculator", { expression: "2 ^ 10" }]);
      const llm = new ScriptedLlm([first, say("It is 1024.")]);
      const { opts, calls } = options(llm, { stream: true });
      const { events, result } = await run(opts);

      const kinds = events.map((e) => (e.type === "upstream" ? e.event.type : `[${e.type}]`));
      expect(kinds[0]).toBe("message_start");
      const toolIndex = kinds.indexOf("[tool_result]");
      expect(kinds.slice(toolIndex - 1, toolIndex + 2)).toEqual([
        "message_stop",
        "[tool_result]",
        "message_start",
      ]);
      expect(kinds[kinds.length - 1]).toBe("message_stop");
      expect(kinds.filter((k) => k === "message_start")).toHaveLength(2);

      // The tool input was streamed as JSON fragments and reassembled before running.
      expect(result.produced[0]!.content).toEqual([
        { type: "tool_use", id: "tu_1", name: "calculator", input: { expression: "2 ^ 10" } },
      ]);
      expect(result.produced[1]!.content[0]).toMatchObject({ content: "1024", is_error: false });
      expect(result.message.content).toEqual([
        { type: "text", text: "It is 1024.", citations: null },
      ]);
      expect(result.message.stop_reason).toBe("end_turn");
      expect(result.usage).toMatchObject({ input_tokens: 200, output_tokens: 40 });
      expect(calls.map((c) => c.status)).toEqual(["ok", "ok"]);
    });

    it("meters partial usage and closes the upstream stream when the consumer stops early", async () => {
      const llm = new ScriptedLlm([
        say("A long answer that the client will never read to the end."),
      ]);
      const { opts, calls } = options(llm, { stream: true });
      const turn = runAgentTurn(opts);
      // message_start, content_block_start and three text deltas of five characters.
      for (let i = 0; i < 5; i++) await turn.next();
      await turn.return(undefined as unknown as TurnResult);

      expect(llm.closedEarly).toBe(1);
      expect(calls).toHaveLength(1);
      expect(calls[0]).toMatchObject({
        status: "aborted",
        usage: { input_tokens: 100, output_tokens: 4 },
      }); // 15 chars ≈ 4 tokens
      expect(calls[0]!.costUsd).toBeCloseTo((100 + 4 * 2) / 1e6, 12);
    });

    it("fails a stream that ends before message_stop", async () => {
      const llm = new ScriptedLlm([say("cut short")], { afterEvents: 3 });
      const { opts, calls } = options(llm, { stream: true });
      await expect(run(opts)).rejects.toMatchObject({
        status: 502,
        message: "the model's stream ended before message_stop",
      });
      expect(calls.map((c) => c.status)).toEqual(["error"]);
    });

    it("passes a mid-stream upstream error on", async () => {
      const llm = new ScriptedLlm([say("cut short")], {
        afterEvents: 2,
        error: new UpstreamError(529, "overloaded_error", "Overloaded"),
      });
      const { opts, calls } = options(llm, { stream: true });
      await expect(run(opts)).rejects.toMatchObject({ status: 529 });
      expect(calls[0]).toMatchObject({ status: "error", usage: { input_tokens: 100 } });
    });
  });
});

describe("history", () => {
  const text = (t: string): ContentBlock => ({ type: "text", text: t });

  it("drops empty messages and merges consecutive messages of one role", () => {
    const history: HistoryMessage[] = [
      { role: "user", content: [text("q1")] },
      { role: "assistant", content: [{ type: "tool_use", id: "t", name: "x", input: {} }] },
      {
        role: "user",
        content: [{ type: "tool_result", tool_use_id: "t", content: "not run", is_error: true }],
      },
      { role: "user", content: [text("q2")] },
      { role: "assistant", content: [] },
      { role: "user", content: [text("q3")] },
    ];
    expect(toRequestMessages(history)).toEqual([
      { role: "user", content: [text("q1")] },
      { role: "assistant", content: [{ type: "tool_use", id: "t", name: "x", input: {} }] },
      {
        role: "user",
        content: [
          { type: "tool_result", tool_use_id: "t", content: "not run", is_error: true },
          text("q2"),
          text("q3"),
        ],
      },
    ]);
    // The stored history is not modified by the merge.
    expect(history[2]!.content).toHaveLength(1);
  });

  it("marks the last block as a cache breakpoint without touching the input", () => {
    const messages = toRequestMessages([{ role: "user", content: [text("a"), text("b")] }]);
    const marked = withCacheBreakpoint(messages);
    expect(marked[0]!.content).toEqual([
      text("a"),
      { ...text("b"), cache_control: { type: "ephemeral" } },
    ]);
    expect(JSON.stringify(messages)).not.toContain("cache_control");
    // Thinking blocks cannot carry a breakpoint: leave such a message alone.
    const thinking = toRequestMessages([
      { role: "user", content: [{ type: "thinking", thinking: "" }] },
    ]);
    expect(withCacheBreakpoint(thinking)).toEqual(thinking);
  });

  it("stores a string as one text block and drops client cache_control", () => {
    expect(userContentBlocks("hi")).toEqual([text("hi")]);
    expect(
      userContentBlocks([{ type: "text", text: "hi", cache_control: { type: "ephemeral" } }]),
    ).toEqual([text("hi")]);
  });
});
