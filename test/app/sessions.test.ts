/**
 * The session routes in-process (Hono's app.request) over the real SQL store on in-memory
 * PGlite, with a scripted model in place of the Anthropic API.
 */
import pino from "pino";
import { buildApp } from "../../app/src/app";
import { CachedKeyResolver } from "../../app/src/auth";
import { BatchedLedger } from "../../app/src/budget/ledger";
import { MemoryResponseCache } from "../../app/src/cache/memory";
import { loadConfig } from "../../app/src/config";
import type { AppDeps } from "../../app/src/deps";
import { ModelCatalog } from "../../app/src/llm/models";
import type {
  CallOptions,
  LlmProvider,
  MessageRequest,
  MessageResponse,
  StreamEvent,
} from "../../app/src/llm/types";
import { UpstreamError } from "../../app/src/llm/types";
import { openStore } from "../../app/src/store/index";
import type { Store, UsageEntry } from "../../app/src/store/types";

// ---- a scripted model --------------------------------------------------------------------------

type Block = Record<string, unknown> & { type: string };
interface Step {
  message: MessageResponse;
  /** Wait this long, or until `gate()` resolves, before answering. */
  delayMs?: number;
  gate?: () => Promise<void>;
  /** Streaming: after this many events, throw `error`, or hang until the call is aborted. */
  cut?: { afterEvents: number; error?: Error };
}
type Script = Array<Step | Error>;

/** What the scripted model reports having run as. */
const MODEL = "claude-sonnet-4-5-20250929";
/** The service default, for sessions that name no model. */
const DEFAULT_MODEL = "claude-default-under-test";
let ids = 0;
function reply(content: Block[], stop_reason: string): MessageResponse {
  return {
    id: `msg_${++ids}`,
    type: "message",
    role: "assistant",
    model: MODEL,
    content,
    stop_reason,
    stop_sequence: null,
    usage: {
      input_tokens: 100,
      output_tokens: 20,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
    },
  } as unknown as MessageResponse;
}
const say = (text: string): Step => ({
  message: reply([{ type: "text", text, citations: null }], "end_turn"),
});
const use = (...calls: Array<[id: string, name: string, input: unknown]>): Step => ({
  message: reply(
    calls.map(([id, name, input]) => ({ type: "tool_use", id, name, input })),
    "tool_use",
  ),
});

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
      for (const chunk of String(b.text).match(/.{1,8}/gs) ?? [])
        events.push({
          type: "content_block_delta",
          index,
          delta: { type: "text_delta", text: chunk },
        });
    } else {
      events.push({ type: "content_block_start", index, content_block: { ...b, input: {} } });
      events.push({
        type: "content_block_delta",
        index,
        delta: { type: "input_json_delta", partial_json: JSON.stringify(b.input) },
      });
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const aborted = (signal?: AbortSignal) =>
  new Promise<never>((_, reject) => {
    const fail = () => reject(new UpstreamError(499, "aborted", "request aborted"));
    if (signal?.aborted) fail();
    signal?.addEventListener("abort", fail, { once: true });
  });

/** Resolves for everyone once `parties` callers have arrived. */
function barrier(parties: number): () => Promise<void> {
  let arrived = 0;
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return () => {
    if (++arrived === parties) open();
    return opened;
  };
}

class ScriptedLlm implements LlmProvider {
  readonly synthetic = false;
  readonly requests: MessageRequest[] = [];
  constructor(private readonly script: Script) {}

  push(...steps: Script) {
    this.script.push(...steps);
  }

  private async take(request: MessageRequest): Promise<Step> {
    this.requests.push(structuredClone(request));
    const step = this.script.shift();
    if (!step) throw new Error("the script has no more steps");
    if (step instanceof Error) throw step;
    if (step.gate) await step.gate();
    if (step.delayMs) await sleep(step.delayMs);
    return step;
  }

  async createMessage(request: MessageRequest): Promise<MessageResponse> {
    return (await this.take(request)).message;
  }

  async *streamMessage(
    request: MessageRequest,
    options: CallOptions = {},
  ): AsyncIterable<StreamEvent> {
    const step = await this.take(request);
    for (const [i, event] of toEvents(step.message).entries()) {
      if (step.cut && i === step.cut.afterEvents) {
        if (step.cut.error) throw step.cut.error;
        await aborted(options.signal);
      }
      yield event;
    }
  }
}

// ---- the app -----------------------------------------------------------------------------------

const ALICE = "alice-key-0001";
const BOB = "bob-key-00002";
const logger = pino({ level: "silent" });
const catalog = ModelCatalog.load();
let store: Store;

beforeAll(async () => {
  store = await openStore({ DATA_DIR: "memory://", DATABASE_POOL_MAX: 1 });
}, 60_000);

afterAll(async () => {
  await store?.close();
});

interface Harness {
  request(
    path: string,
    init?: { method?: string; body?: unknown; key?: string | null; raw?: string },
  ): Promise<Response>;
  llm: ScriptedLlm;
  /** Every ledger entry, in the order the routes recorded them. */
  usage: UsageEntry[];
  ledger: BatchedLedger;
}

function harness(script: Script, env: Record<string, string> = {}): Harness {
  const config = loadConfig({
    DATA_DIR: "memory://",
    LOG_LEVEL: "silent",
    AGENT_MAX_TOOL_ITERATIONS: "3",
    DEFAULT_MODEL,
    ...env,
  });
  const llm = new ScriptedLlm(script);
  const ledger = new BatchedLedger(store, logger, { intervalMs: 5 });
  const usage: UsageEntry[] = [];
  const record = ledger.record.bind(ledger);
  ledger.record = (entry) => {
    usage.push(entry);
    record(entry);
  };
  const deps: AppDeps = {
    config,
    logger,
    store,
    llm,
    cache: new MemoryResponseCache(),
    usage: ledger,
    auth: new CachedKeyResolver({
      staticKeys: [
        { user: "alice", key: ALICE },
        { user: "bob", key: BOB },
      ],
    }),
    lifecycle: { draining: false },
    close: async () => ledger.close(),
  };
  const app = buildApp(deps, { catalog });
  return {
    llm,
    usage,
    ledger,
    request: (path, init = {}) => {
      const headers: Record<string, string> = { "content-type": "application/json" };
      const key = init.key === undefined ? ALICE : init.key;
      if (key) headers["x-api-key"] = key;
      const body = init.raw ?? (init.body === undefined ? undefined : JSON.stringify(init.body));
      return Promise.resolve(
        app.request(path, {
          method: init.method ?? (body === undefined ? "GET" : "POST"),
          headers,
          body,
        }),
      );
    },
  };
}

async function newSession(h: Harness, body: unknown = {}, key = ALICE): Promise<string> {
  const res = await h.request("/v1/sessions", { body, key });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

async function history(
  id: string,
): Promise<Array<{ role: string; content: Block[]; model: string | null }>> {
  return (await store.listMessages(id)).map((m) => ({
    role: m.role,
    content: m.content,
    model: m.model,
  }));
}

interface SseEvent {
  event: string;
  data: Record<string, unknown>;
}
function parseSse(text: string): SseEvent[] {
  return text
    .split("\n\n")
    .filter((f) => f.trim() !== "")
    .map((frame) => {
      const event = /^event: (.*)$/m.exec(frame)?.[1] ?? "";
      const data = /^data: (.*)$/m.exec(frame)?.[1] ?? "null";
      return { event, data: JSON.parse(data) as Record<string, unknown> };
    });
}

async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 3000) {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

// ---- tests -------------------------------------------------------------------------------------

describe("POST /v1/sessions and GET /v1/sessions/{id}", () => {
  it("creates a session and returns it in snake_case", async () => {
    const h = harness([]);
    const res = await h.request("/v1/sessions", {
      body: { model: "claude-haiku-4-5", system: "Be brief.", metadata: { ticket: 42 } },
    });
    expect(res.status).toBe(201);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      model: "claude-haiku-4-5",
      system: "Be brief.",
      metadata: { ticket: 42 },
      created_at: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/),
    });

    const got = await h.request(`/v1/sessions/${body.id}`);
    expect(got.status).toBe(200);
    expect(await got.json()).toEqual({ ...body, updated_at: expect.any(String), messages: [] });
  });

  it("accepts an empty body", async () => {
    const h = harness([]);
    const res = await h.request("/v1/sessions", { method: "POST" });
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ model: null, system: null, metadata: {} });
  });

  it("answers another user's session, an unknown id and a malformed id with the same 404", async () => {
    const h = harness([]);
    const id = await newSession(h);
    const bodies = [];
    for (const [path, key] of [
      [`/v1/sessions/${id}`, BOB],
      ["/v1/sessions/00000000-0000-4000-8000-000000000000", ALICE],
      ["/v1/sessions/not-a-session-id", ALICE],
    ] as const) {
      const res = await h.request(path, { key });
      expect(res.status).toBe(404);
      const body = (await res.json()) as { error: { type: string; message: string } };
      expect(body.error.type).toBe("not_found_error");
      bodies.push(body.error.message.replace(/"[^"]*"/, "<id>"));
    }
    expect(new Set(bodies)).toEqual(new Set(["session <id> not found"]));
    // Bob cannot run a turn on it either, and the model is never called.
    const turn = await h.request(`/v1/sessions/${id}/messages`, {
      body: { content: "hi" },
      key: BOB,
    });
    expect(turn.status).toBe(404);
    expect(h.llm.requests).toHaveLength(0);
  });

  it("requires an API key", async () => {
    const h = harness([]);
    expect((await h.request("/v1/sessions", { body: {}, key: null })).status).toBe(401);
  });

  it.each([
    ["an empty model", { model: "" }, "model: must not be empty"],
    ["a numeric model", { model: 7 }, "model: Invalid input: expected string, received number"],
    [
      "array metadata",
      { metadata: [] },
      "metadata: Invalid input: expected record, received array",
    ],
    [
      "oversized metadata",
      { metadata: { blob: "x".repeat(17_000) } },
      "metadata: must be at most 16384 bytes as JSON",
    ],
    ["an unknown field", { sytem: "typo" }, 'Unrecognized key: "sytem"'],
    ["a non-object body", "just a string", "Invalid input: expected object, received string"],
  ])("rejects a session body with %s: 400 naming the field", async (_label, body, message) => {
    const res = await harness([]).request("/v1/sessions", { body });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      type: "error",
      error: { type: "invalid_request_error", message },
    });
  });

  it("rejects a body that is not JSON", async () => {
    const res = await harness([]).request("/v1/sessions", { raw: "{nope" });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      error: { type: "invalid_request_error", message: "request body is not valid JSON" },
    });
  });
});

describe("POST /v1/sessions/{id}/messages", () => {
  it("runs the tool loop, stores the turn in order and meters every model call", async () => {
    const h = harness([
      use(["tu_1", "calculator", { expression: "6 * 7" }]),
      say("6 times 7 is 42."),
    ]);
    const id = await newSession(h, { system: "Use tools for arithmetic." });
    const res = await h.request(`/v1/sessions/${id}/messages`, {
      body: { content: "What is 6 times 7?" },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-agent-model")).toBe(MODEL);
    const body = (await res.json()) as Record<string, unknown>;
    const perCall = catalog.costUsd(MODEL, { input_tokens: 100, output_tokens: 20 });
    expect(body).toEqual({
      session_id: id,
      message: expect.objectContaining({
        role: "assistant",
        content: [{ type: "text", text: "6 times 7 is 42.", citations: null }],
        stop_reason: "end_turn",
      }),
      iterations: 2,
      stop_reason: "end_turn",
      usage: {
        input_tokens: 200,
        output_tokens: 40,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
        cost_usd: 2 * perCall,
      },
    });

    expect(await history(id)).toEqual([
      { role: "user", content: [{ type: "text", text: "What is 6 times 7?" }], model: null },
      {
        role: "assistant",
        content: [
          { type: "tool_use", id: "tu_1", name: "calculator", input: { expression: "6 * 7" } },
        ],
        model: MODEL,
      },
      {
        role: "user",
        content: [{ type: "tool_result", tool_use_id: "tu_1", content: "42", is_error: false }],
        model: null,
      },
      {
        role: "assistant",
        content: [{ type: "text", text: "6 times 7 is 42.", citations: null }],
        model: MODEL,
      },
    ]);

    // The session's system prompt and the configured default model went upstream with the tools.
    expect(h.llm.requests[0]).toMatchObject({
      model: DEFAULT_MODEL,
      system: "Use tools for arithmetic.",
      max_tokens: 4096,
    });
    expect(h.llm.requests[0]!.tools!.map((t) => (t as { name: string }).name)).toContain(
      "calculator",
    );

    expect(h.usage.map((u) => [u.kind, u.sessionId, u.status, u.model, u.costUsd])).toEqual([
      ["session", id, "ok", MODEL, perCall],
      ["session", id, "ok", MODEL, perCall],
    ]);
    await h.ledger.flush();
    const rows = await store.listUsage({ sessionId: id });
    expect(rows).toHaveLength(2);
    expect(rows.every((r) => r.userId === "alice" && r.kind === "session")).toBe(true);

    // GET returns the same history, with a timestamp per message.
    const got = (await (await h.request(`/v1/sessions/${id}`)).json()) as {
      messages: Array<Record<string, unknown>>;
    };
    expect(got.messages.map((m) => [m.role, m.model])).toEqual([
      ["user", null],
      ["assistant", MODEL],
      ["user", null],
      ["assistant", MODEL],
    ]);
    expect(got.messages[0]!.created_at).toEqual(expect.stringMatching(/^\d{4}-/));
  });

  it("sends the stored history with the next turn and uses the session's model", async () => {
    const h = harness([say("Hello, Ada."), say("Your name is Ada.")]);
    const id = await newSession(h, { model: "claude-haiku-4-5" });
    expect(
      (await h.request(`/v1/sessions/${id}/messages`, { body: { content: "I am Ada." } })).status,
    ).toBe(200);
    const res = await h.request(`/v1/sessions/${id}/messages`, {
      body: { content: [{ type: "text", text: "Who am I?" }], max_tokens: 100 },
    });
    expect(res.status).toBe(200);
    const second = h.llm.requests[1]!;
    expect(second).toMatchObject({ model: "claude-haiku-4-5", max_tokens: 100 });
    expect(second).not.toHaveProperty("system");
    expect(
      second.messages.map((m) => [m.role, (m.content as unknown as Block[])[0]!.text]),
    ).toEqual([
      ["user", "I am Ada."],
      ["assistant", "Hello, Ada."],
      ["user", "Who am I?"],
    ]);
    expect((await history(id)).length).toBe(4);
  });

  it("stops at AGENT_MAX_TOOL_ITERATIONS with stop_reason max_tool_iterations, and the session goes on", async () => {
    const h = harness(
      [
        use(["t1", "calculator", { expression: "1+1" }]),
        use(["t2", "calculator", { expression: "2+2" }]),
        use(["t3", "calculator", { expression: "3+3" }]),
        say("Where were we? 1+1=2 and 2+2=4."),
      ],
      { AGENT_MAX_TOOL_ITERATIONS: "2" },
    );
    const id = await newSession(h);
    const res = await h.request(`/v1/sessions/${id}/messages`, {
      body: { content: "Add things forever." },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      iterations: number;
      stop_reason: string;
      message: { stop_reason: string };
    };
    expect(body.iterations).toBe(3);
    expect(body.stop_reason).toBe("max_tool_iterations");
    expect(body.message.stop_reason).toBe("tool_use");

    const stored = await history(id);
    expect(stored.map((m) => m.role)).toEqual([
      "user",
      "assistant",
      "user",
      "assistant",
      "user",
      "assistant",
      "user",
    ]);
    expect(stored[6]!.content).toEqual([
      expect.objectContaining({
        type: "tool_result",
        tool_use_id: "t3",
        is_error: true,
        content: expect.stringMatching(
          /^not run: this turn reached its limit of 2 tool iterations/,
        ),
      }),
    ]);

    // The next turn is valid for the API: the unanswered tool results and the new text are one user message.
    expect(
      (await h.request(`/v1/sessions/${id}/messages`, { body: { content: "Continue." } })).status,
    ).toBe(200);
    const next = h.llm.requests[3]!;
    expect(next.messages.map((m) => m.role)).toEqual([
      "user",
      "assistant",
      "user",
      "assistant",
      "user",
      "assistant",
      "user",
    ]);
    expect((next.messages[6]!.content as unknown as Block[]).map((b) => b.type)).toEqual([
      "tool_result",
      "text",
    ]);
  });

  it("returns unknown tools and invalid tool input to the model as is_error results", async () => {
    const h = harness([
      use(
        ["t1", "shell", { cmd: "rm -rf /" }],
        ["t2", "calculator", { expression: "2 +" }],
        ["t3", "current_time", { time_zone: "Nowhere/Land" }],
      ),
      say("Those failed."),
    ]);
    const id = await newSession(h);
    const res = await h.request(`/v1/sessions/${id}/messages`, {
      body: { content: "Try things." },
    });
    expect(res.status).toBe(200);
    const results = (await history(id))[2]!.content;
    expect(results.map((r) => [r.tool_use_id, r.is_error, r.content])).toEqual([
      [
        "t1",
        true,
        'unknown tool "shell"; the available tools are: calculator, current_time, text_stats, json_query',
      ],
      ["t2", true, 'cannot evaluate "2 +": expression ends where a number or "(" was expected'],
      [
        "t3",
        true,
        'unknown time zone "Nowhere/Land": use an IANA name such as "UTC", "Europe/Berlin" or "America/Los_Angeles"',
      ],
    ]);
    // The model saw the same results on its second call.
    expect(h.llm.requests[1]!.messages[2]!.content).toEqual(
      expect.arrayContaining([expect.objectContaining({ tool_use_id: "t1", is_error: true })]),
    );
  });

  it("stores nothing of a turn whose upstream call fails, and passes the upstream error on", async () => {
    const h = harness([
      say("First turn."),
      use(["t1", "calculator", { expression: "1" }]),
      new UpstreamError(529, "overloaded_error", "Overloaded", { "retry-after": "3" }),
    ]);
    const id = await newSession(h);
    expect(
      (await h.request(`/v1/sessions/${id}/messages`, { body: { content: "one" } })).status,
    ).toBe(200);
    const before = await history(id);

    const res = await h.request(`/v1/sessions/${id}/messages`, { body: { content: "two" } });
    expect(res.status).toBe(529);
    expect(res.headers.get("retry-after")).toBe("3");
    expect(await res.json()).toMatchObject({
      type: "error",
      error: { type: "overloaded_error", message: "Overloaded" },
    });
    expect(await history(id)).toEqual(before);
    expect(h.usage.map((u) => u.status)).toEqual(["ok", "ok", "error"]);
  });

  it("lets only one of two concurrent turns on a session run (409 for the other)", async () => {
    const h = harness([{ ...say("first"), delayMs: 50 }, say("second")]);
    const id = await newSession(h);
    const [a, b] = await Promise.all([
      h.request(`/v1/sessions/${id}/messages`, { body: { content: "A" } }),
      h.request(`/v1/sessions/${id}/messages`, { body: { content: "B" } }),
    ]);
    const statuses = [a.status, b.status].sort();
    expect(statuses).toEqual([200, 409]);
    const conflict = (await (a.status === 409 ? a : b).json()) as {
      error: { type: string; message: string };
    };
    expect(conflict.error).toEqual({
      type: "conflict_error",
      message: `session ${id} already has a turn in progress; send the next message when it completes`,
    });
    expect(h.llm.requests).toHaveLength(1); // the refused turn never reached the model
    expect((await history(id)).map((m) => m.role)).toEqual(["user", "assistant"]);
    // The guard is released: the next turn runs.
    expect(
      (await h.request(`/v1/sessions/${id}/messages`, { body: { content: "C" } })).status,
    ).toBe(200);
  });

  it("lets the store decide between concurrent turns on two replicas: one 409, no interleaving", async () => {
    // Each replica has its own in-process guard. Both models answer only once both turns have
    // read the history, so both turns start from the same position.
    const gate = barrier(2);
    const replicaA = harness([
      { ...use(["ta", "calculator", { expression: "1+1" }]), gate },
      say("A done"),
    ]);
    const replicaB = harness([
      { ...use(["tb", "calculator", { expression: "2+2" }]), gate },
      say("B done"),
    ]);
    const id = await newSession(replicaA);

    const [a, b] = await Promise.all([
      replicaA.request(`/v1/sessions/${id}/messages`, { body: { content: "from A" } }),
      replicaB.request(`/v1/sessions/${id}/messages`, { body: { content: "from B" } }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 409]);
    const loser = a.status === 409 ? a : b;
    expect(await loser.json()).toMatchObject({
      error: {
        type: "conflict_error",
        message: expect.stringContaining(
          "changed while this turn ran (another turn finished first); nothing from this turn was stored",
        ),
      },
    });
    const winner = a.status === 200 ? "A" : "B";
    const stored = await history(id);
    expect(stored.map((m) => m.role)).toEqual(["user", "assistant", "user", "assistant"]);
    expect(stored[0]!.content).toEqual([{ type: "text", text: `from ${winner}` }]);
    expect(stored[3]!.content[0]!.text).toBe(`${winner} done`);
    // Both turns were paid for, and both are in the ledger.
    expect(replicaA.usage).toHaveLength(2);
    expect(replicaB.usage).toHaveLength(2);
  });

  it.each([
    [{}, "content: required: a string or an array of content blocks"],
    [{ content: "   " }, "content: must contain non-whitespace text"],
    [{ content: [] }, "content: must hold at least one content block"],
    [{ content: 42 }, "content: must be a string or an array of content blocks"],
    [
      { content: [{ type: "tool_result", tool_use_id: "x" }] },
      'content.0.type: must be one of "text", "image", "document"',
    ],
    [
      { content: [{ type: "text", text: "ok" }, { type: "text" }] },
      "content.1.text: must be a string with non-whitespace text",
    ],
    [{ content: [{ type: "image" }] }, "content.0.source: must be an object"],
    [{ content: "hi", max_tokens: 0 }, "max_tokens: Too small: expected number to be >0"],
    [
      { content: "hi", max_tokens: 1.5 },
      "max_tokens: Invalid input: expected int, received number",
    ],
    [{ content: "hi", stream: "yes" }, "stream: Invalid input: expected boolean, received string"],
    [{ content: "hi", model: "x" }, 'Unrecognized key: "model"'],
  ])("rejects the turn body %j with a 400 naming the field", async (body, message) => {
    const h = harness([]);
    const id = await newSession(h);
    const res = await h.request(`/v1/sessions/${id}/messages`, { body });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { type: "invalid_request_error", message } });
    expect(h.llm.requests).toHaveLength(0);
  });

  describe("streaming", () => {
    it("re-emits every model call's events with tool results between them and ends with turn_complete", async () => {
      const h = harness([
        use(["tu_1", "calculator", { expression: "2 ^ 10" }]),
        say("Two to the tenth is 1024."),
      ]);
      const id = await newSession(h);
      const res = await h.request(`/v1/sessions/${id}/messages`, {
        body: { content: "2^10?", stream: true },
      });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
      const events = parseSse(await res.text());

      const names = events.map((e) => e.event);
      expect(names.slice(0, 5)).toEqual([
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
      ]);
      const toolAt = names.indexOf("tool_result");
      expect(names.slice(toolAt - 1, toolAt + 2)).toEqual([
        "message_stop",
        "tool_result",
        "message_start",
      ]);
      expect(names.slice(-3)).toEqual(["message_delta", "message_stop", "turn_complete"]);
      expect(names.filter((n) => n === "message_start")).toHaveLength(2);
      // Every frame's data carries its own type, as the Messages API's events do.
      expect(events.every((e) => e.data.type === e.event)).toBe(true);

      expect(events[toolAt]!.data).toEqual({
        type: "tool_result",
        tool_use_id: "tu_1",
        name: "calculator",
        is_error: false,
        content: "1024",
      });
      const text = events
        .filter(
          (e) => e.event === "content_block_delta" && (e.data.delta as Block).type === "text_delta",
        )
        .map((e) => (e.data.delta as Block).text)
        .join("");
      expect(text).toBe("Two to the tenth is 1024.");

      const done = events[events.length - 1]!.data;
      expect(done).toMatchObject({
        type: "turn_complete",
        session_id: id,
        iterations: 2,
        stop_reason: "end_turn",
        message: {
          content: [{ type: "text", text: "Two to the tenth is 1024.", citations: null }],
          stop_reason: "end_turn",
        },
        usage: { input_tokens: 200, output_tokens: 40 },
      });
      expect((await history(id)).map((m) => m.role)).toEqual([
        "user",
        "assistant",
        "user",
        "assistant",
      ]);
      expect((await history(id))[1]!.content).toEqual([
        { type: "tool_use", id: "tu_1", name: "calculator", input: { expression: "2 ^ 10" } },
      ]);
      expect(h.usage.map((u) => [u.status, u.outputTokens])).toEqual([
        ["ok", 20],
        ["ok", 20],
      ]);
    });

    it("answers a refused first call with an HTTP error, not a stream", async () => {
      const h = harness([
        new UpstreamError(429, "rate_limit_error", "slow down", { "retry-after": "7" }),
      ]);
      const id = await newSession(h);
      const res = await h.request(`/v1/sessions/${id}/messages`, {
        body: { content: "hi", stream: true },
      });
      expect(res.status).toBe(429);
      expect(res.headers.get("retry-after")).toBe("7");
      expect(await res.json()).toMatchObject({
        error: { type: "rate_limit_error", message: "slow down" },
      });
      expect(await history(id)).toEqual([]);
      // The session is free again.
      h.llm.push(say("ok"));
      expect(
        (await h.request(`/v1/sessions/${id}/messages`, { body: { content: "again" } })).status,
      ).toBe(200);
    });

    it("ends with event: error and stores nothing when a later call fails mid-stream", async () => {
      const h = harness([
        use(["t1", "calculator", { expression: "1+1" }]),
        {
          ...say("The answer is two."),
          cut: { afterEvents: 3, error: new UpstreamError(529, "overloaded_error", "Overloaded") },
        },
      ]);
      const id = await newSession(h);
      const res = await h.request(`/v1/sessions/${id}/messages`, {
        body: { content: "1+1?", stream: true },
      });
      expect(res.status).toBe(200);
      const events = parseSse(await res.text());
      expect(events.map((e) => e.event)).toContain("tool_result");
      expect(events[events.length - 1]).toEqual({
        event: "error",
        data: {
          type: "error",
          error: { type: "overloaded_error", message: "Overloaded" },
          request_id: expect.stringMatching(/^req_/),
        },
      });
      expect(events.map((e) => e.event)).not.toContain("turn_complete");
      expect(await history(id)).toEqual([]);
      expect(h.usage.map((u) => u.status)).toEqual(["ok", "error"]);
    });

    it("aborts the upstream call when the client disconnects, meters the partial usage and stores nothing", async () => {
      const h = harness([
        { ...say("A long answer the client will not wait for."), cut: { afterEvents: 4 } },
        say("next turn"),
      ]);
      const id = await newSession(h);
      const res = await h.request(`/v1/sessions/${id}/messages`, {
        body: { content: "Tell me a story.", stream: true },
      });
      expect(res.status).toBe(200);
      const reader = res.body!.getReader();
      let seen = "";
      while (!seen.includes("text_delta")) {
        const { value, done } = await reader.read();
        if (done) throw new Error("stream ended early");
        seen += new TextDecoder().decode(value);
      }
      await reader.cancel();

      await eventually(() => h.usage.length === 1, "the aborted call to be metered");
      expect(h.usage[0]).toMatchObject({
        status: "aborted",
        sessionId: id,
        kind: "session",
        inputTokens: 100,
      });
      expect(h.usage[0]!.outputTokens).toBeGreaterThan(0); // estimated from the text that was generated
      expect(await history(id)).toEqual([]);
      // The turn is over: the session takes the next one.
      await eventually(async () => {
        const next = await h.request(`/v1/sessions/${id}/messages`, {
          body: { content: "Short one." },
        });
        return next.status === 200;
      }, "the session to accept a new turn");
    });
  });
});
