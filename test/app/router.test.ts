/**
 * Model routing: table-driven decisions of the pure router (cost-aware: fast unless a hard task
 * meets a big job, never deep from "auto", the hardest user turn of a conversation counts), and
 * sticky routing of sessions through the real session routes (in-process app over in-memory PGlite).
 */
import { createDeps } from "../../app/src/bootstrap";
import { buildApp } from "../../app/src/app";
import { loadConfig } from "../../app/src/config";
import type { AppDeps } from "../../app/src/deps";
import { ModelCatalog } from "../../app/src/llm/models";
import { OfflineProvider } from "../../app/src/llm/offline";
import {
  isRoutingAlias,
  modelForTier,
  routeModel,
  type RoutableRequest,
} from "../../app/src/llm/router";
import { prepareSessionTurn } from "../../app/src/agent/model-choice";
import type { CallOptions, LlmProvider, MessageRequest } from "../../app/src/llm/types";
import pino from "pino";

const catalog = ModelCatalog.load();
const FAST = "claude-haiku-4-5";
const SMART = "claude-sonnet-4-6";
const DEEP = "claude-opus-4-5";

const user = (content: unknown) => ({ role: "user", content });
const assistant = (content: unknown) => ({ role: "assistant", content });
const tool = { name: "calculator", description: "adds", input_schema: { type: "object" } };
const req = (over: Partial<RoutableRequest> & { text?: string }): RoutableRequest => ({
  model: "auto",
  max_tokens: 1024,
  messages: [user(over.text ?? "hi")],
  ...over,
});
const conversation = (turns: number, last: string) => {
  const messages = [];
  for (let i = 0; i < turns - 1; i++)
    messages.push(i % 2 === 0 ? user(`question ${i}`) : assistant(`answer ${i}`));
  messages.push(user(last));
  return messages;
};

describe("routeModel", () => {
  const cases: Array<[string, RoutableRequest, { model: string; tier: string; reason: RegExp }]> = [
    [
      "explicit model",
      req({ model: SMART }),
      { model: SMART, tier: "smart", reason: /^explicit$/ },
    ],
    [
      "explicit dated snapshot",
      req({ model: "claude-haiku-4-5-20251001" }),
      { model: "claude-haiku-4-5-20251001", tier: "fast", reason: /^explicit$/ },
    ],
    [
      "explicit unknown model",
      req({ model: "my-own-model" }),
      { model: "my-own-model", tier: "unknown", reason: /^explicit$/ },
    ],
    [
      "alias fast",
      req({ model: "fast", text: "prove it step by step" }),
      { model: FAST, tier: "fast", reason: /^alias:fast$/ },
    ],
    [
      "alias smart",
      req({ model: "smart" }),
      { model: SMART, tier: "smart", reason: /^alias:smart$/ },
    ],
    ["alias deep", req({ model: "deep" }), { model: DEEP, tier: "deep", reason: /^alias:deep$/ }],
    [
      "simple question",
      req({ text: "What is the capital of France?" }),
      { model: FAST, tier: "fast", reason: /^auto:0:simple$/ },
    ],
    [
      "tools alone stay cheap",
      req({ tools: [tool], text: "add 2 and 3" }),
      { model: FAST, tier: "fast", reason: /^auto:1:tools$/ },
    ],
    [
      "a hint alone stays cheap: words are weak evidence",
      req({ text: "Please analyze this incident report." }),
      { model: FAST, tier: "fast", reason: /^auto:2:hint:analyze$/ },
    ],
    [
      "British spelling",
      req({ text: "analyse the numbers" }),
      { model: FAST, tier: "fast", reason: /hint:analyse/ },
    ],
    [
      "two strong hints alone stay cheap",
      req({ text: "Prove, step by step, that there are infinitely many primes." }),
      { model: FAST, tier: "fast", reason: /^auto:4:hint:prove,hint:step-by-step$/ },
    ],
    [
      "code alone",
      req({ text: "```py\nprint(1)\n```" }),
      { model: FAST, tier: "fast", reason: /^auto:1:code$/ },
    ],
    [
      "code and tools without a hint",
      req({ tools: [tool], text: "```py\nprint(1)\n```" }),
      { model: FAST, tier: "fast", reason: /^auto:2:tools,code$/ },
    ],
    [
      "a hint with tools: a hard task on a big job",
      req({ tools: [tool], text: "Please analyze this incident report." }),
      { model: SMART, tier: "smart", reason: /^auto:3:tools,hint:analyze$/ },
    ],
    [
      "code, tools and a debug hint",
      req({ tools: [tool], text: "debug this\n```ts\nlet x = 1\n```" }),
      { model: SMART, tier: "smart", reason: /^auto:4:tools,hint:debug,code$/ },
    ],
    [
      "the strongest evidence still stops at smart: deep is opt-in",
      req({
        tools: [tool],
        max_tokens: 32_000,
        text: "Think carefully and prove, step by step, that this terminates:\n```js\nfor (;;) {}\n```",
      }),
      {
        model: SMART,
        tier: "smart",
        reason: /^auto:8:tools,long-output,hint:think-carefully,hint:prove,code$/,
      },
    ],
    [
      "words that contain a hint do not count",
      req({ tools: [tool], text: "Can you improve and approve this, redesigned or not?" }),
      { model: FAST, tier: "fast", reason: /^auto:1:tools$/ },
    ],
    [
      "a long conversation is not a hard task",
      req({ tools: [tool], messages: conversation(25, "ok, and then?") }),
      { model: FAST, tier: "fast", reason: /^auto:1:tools$/ },
    ],
    [
      "large output alone",
      req({ max_tokens: 8192, tools: [tool] }),
      { model: FAST, tier: "fast", reason: /^auto:2:tools,output-size$/ },
    ],
    [
      "large output and a hint",
      req({ max_tokens: 8192, text: "Design the database schema." }),
      { model: SMART, tier: "smart", reason: /^auto:3:output-size,hint:design$/ },
    ],
    [
      "an ordinary prompt size is no signal",
      req({ text: "x".repeat(20_000) }),
      { model: FAST, tier: "fast", reason: /^auto:0:simple$/ },
    ],
    [
      "prompt size",
      req({ text: "x".repeat(70_000) }),
      { model: FAST, tier: "fast", reason: /^auto:1:prompt-size$/ },
    ],
    [
      "long prompt alone",
      req({ text: "x".repeat(140_000) }),
      { model: FAST, tier: "fast", reason: /^auto:2:long-prompt$/ },
    ],
    [
      "long prompt and a hint",
      req({ text: `${"x".repeat(140_000)} compare the two` }),
      { model: SMART, tier: "smart", reason: /^auto:4:long-prompt,hint:compare$/ },
    ],
    [
      "size alone never escalates",
      req({
        messages: conversation(30, "summarise ".repeat(20_000)),
        tools: [tool],
        max_tokens: 32_000,
      }),
      { model: FAST, tier: "fast", reason: /^auto:5:tools,long-prompt,long-output$/ },
    ],
    [
      "a follow-up to a hard turn stays on its tier (the hardest user turn counts)",
      req({
        tools: [tool],
        messages: [user("prove this step by step"), assistant("done"), user("thanks!")],
      }),
      { model: SMART, tier: "smart", reason: /^auto:5:tools,hint:prove,hint:step-by-step$/ },
    ],
    [
      "a tool loop stays on the tier of the request that started it",
      req({
        tools: [tool],
        messages: [
          user("debug the failing nightly job"),
          assistant([
            { type: "text", text: "Calling calculator." },
            { type: "tool_use", id: "t1", name: "calculator", input: {} },
          ]),
          user([{ type: "tool_result", tool_use_id: "t1", content: "4" }]),
        ],
      }),
      { model: SMART, tier: "smart", reason: /^auto:3:tools,hint:debug$/ },
    ],
    [
      "hints in content blocks",
      req({
        tools: [tool],
        messages: [
          user([
            { type: "text", text: "context" },
            { type: "text", text: "Explain why, step by step." },
          ]),
        ],
      }),
      { model: SMART, tier: "smart", reason: /hint:step-by-step,hint:explain-why$/ },
    ],
    [
      "a hint buried mid-way in a huge message is not scanned",
      req({ tools: [tool], text: "a".repeat(20_000) + " prove " + "b".repeat(20_000) }),
      { model: FAST, tier: "fast", reason: /^auto:1:tools$/ },
    ],
    [
      "a hint at the end of a huge message is",
      req({ tools: [tool], text: "a".repeat(20_000) + " now prove it" }),
      { model: SMART, tier: "smart", reason: /^auto:4:tools,hint:prove$/ },
    ],
  ];
  it.each(cases)("%s", (_name, request, expected) => {
    const decision = routeModel(request, catalog);
    expect(decision.model).toBe(expected.model);
    expect(decision.tier).toBe(expected.tier);
    expect(decision.reason).toMatch(expected.reason);
    // Reasons go into a response header: printable ASCII, no spaces.
    expect(decision.reason).toMatch(/^[\x21-\x7e]+$/);
  });

  it("is pure: the same request routes the same way and is not modified", () => {
    const request = req({ tools: [tool], text: "Prove it step by step" });
    const before = JSON.stringify(request);
    const a = routeModel(request, catalog);
    const b = routeModel(request, catalog);
    expect(a).toEqual(b);
    expect(JSON.stringify(request)).toBe(before);
  });

  it("returns a pinned concrete model as it is (sticky) and routes when the pin is an alias", () => {
    const hard = req({ tools: [tool], text: "Prove step by step" });
    expect(routeModel(hard, catalog, { pinnedModel: FAST })).toEqual({
      model: FAST,
      tier: "fast",
      reason: "sticky",
    });
    expect(routeModel(hard, catalog, { pinnedModel: "auto" }).model).toBe(SMART);
    expect(routeModel(hard, catalog, { pinnedModel: null }).model).toBe(SMART);
  });

  it("uses the caller's token estimate when given", () => {
    expect(routeModel(req({}), catalog, { inputTokens: 50_000 }).reason).toBe("auto:2:long-prompt");
    expect(
      routeModel(req({ text: "x".repeat(140_000) }), catalog, { inputTokens: 10 }).reason,
    ).toBe("auto:0:simple");
  });

  it("property: auto never picks deep, and a growing conversation's tier never goes down", () => {
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
    const questions = [
      "thanks",
      "what is the limit?",
      "compare the plans",
      "prove it step by step",
      "debug this:\n```js\nx()\n```",
      "think carefully and derive the cost",
      "x ".repeat(20_000),
      "and the other option?",
    ];
    const rank: Record<string, number> = { fast: 0, smart: 1 };
    for (let conv = 0; conv < 200; conv++) {
      // A client's settings stay put over a conversation; its messages grow.
      const tools = rand() < 0.5 ? [tool] : undefined;
      const maxTokens = pick([1024, 4096, 8192, 32_000]);
      const messages: Array<{ role: string; content: unknown }> = [];
      let previous = -1;
      for (let turn = 0; turn < 10; turn++) {
        messages.push(
          rand() < 0.2 && tools
            ? user([{ type: "tool_result", tool_use_id: `t${turn}`, content: "ok" }])
            : user(pick(questions)),
        );
        const d = routeModel(
          { model: "auto", max_tokens: maxTokens, tools, messages: [...messages] },
          catalog,
        );
        expect(d.tier).not.toBe("deep");
        expect(d.model).toBe(d.tier === "smart" ? SMART : FAST);
        expect(rank[d.tier]).toBeGreaterThanOrEqual(previous);
        previous = rank[d.tier]!;
        messages.push(assistant(pick(["ok", "a longer answer ".repeat(50)])));
      }
    }
  });

  it("maps tiers through the fallback chains, else the first model of the tier, else the default tier", () => {
    expect(modelForTier("fast", catalog)).toBe(FAST);
    expect(modelForTier("deep", catalog)).toBe(DEEP);
    expect(modelForTier("no-such-tier", catalog)).toBe(SMART);
    const custom = ModelCatalog.load({
      ...catalog.table,
      fallbacks: { smart: [SMART] },
      models: catalog.table.models,
    });
    // No fallback chain for "fast": the table's first fast model.
    expect(modelForTier("fast", custom)).toBe(FAST);
  });

  it("recognises aliases", () => {
    expect(["auto", "fast", "smart", "deep"].every(isRoutingAlias)).toBe(true);
    expect([SMART, "", null, undefined, "Auto"].some(isRoutingAlias)).toBe(false);
  });
});

describe("session model choice", () => {
  it("prepareSessionTurn pins a routed model once and leaves explicit ones alone", async () => {
    const pins: Array<[string, string]> = [];
    const store = {
      setSessionModel: async (id: string, model: string) => void pins.push([id, model]),
    };
    const config = { DEFAULT_MODEL: "auto", SESSION_HISTORY_TOKEN_BUDGET: 0 };
    const session = { id: "s1", model: null as string | null, system: null };
    const first = await prepareSessionTurn(
      session,
      [{ role: "user", content: [{ type: "text", text: "hi" }] }],
      { config, catalog, store },
      { maxTokens: 100 },
    );
    expect(first.model).toBe(FAST);
    expect(pins).toEqual([["s1", FAST]]);
    expect(session.model).toBe(FAST);
    const second = await prepareSessionTurn(
      session,
      [{ role: "user", content: [{ type: "text", text: "now prove it step by step" }] }],
      { config, catalog, store },
      { maxTokens: 100 },
    );
    expect(second).toMatchObject({ model: FAST, reason: "sticky" });
    expect(pins).toHaveLength(1);
    const fixed = { id: "s2", model: SMART, system: null };
    await prepareSessionTurn(
      fixed,
      [{ role: "user", content: [{ type: "text", text: "prove step by step" }] }],
      { config, catalog, store },
      { maxTokens: 100 },
    );
    expect(pins).toHaveLength(1);
  });
});

/** The offline model, recording which model each call asked for. */
class RecordingModel implements LlmProvider {
  readonly synthetic = true;
  readonly models: string[] = [];
  private readonly inner = new OfflineProvider();
  createMessage(request: MessageRequest, options?: CallOptions) {
    this.models.push(request.model);
    return this.inner.createMessage(request, options);
  }
  streamMessage(request: MessageRequest, options?: CallOptions) {
    this.models.push(request.model);
    return this.inner.streamMessage(request, options);
  }
}

describe("sticky routing through the session routes", () => {
  let deps: AppDeps;
  let app: ReturnType<typeof buildApp>;
  const model = new RecordingModel();
  const headers = { "x-api-key": "alice-key-0001", "content-type": "application/json" };

  beforeAll(async () => {
    const config = loadConfig({
      DATA_DIR: "memory://",
      AGENT_API_KEYS: "alice:alice-key-0001",
      LOG_LEVEL: "silent",
      BATCH_POLLER_ENABLED: "false",
      METRICS_ENABLED: "false",
      RATE_LIMIT_RPM: "0",
      RATE_LIMIT_TPM: "0",
    });
    deps = await createDeps(config, { llm: model, logger: pino({ level: "silent" }) });
    app = buildApp(deps);
  });
  afterAll(() => deps.close());

  const createSession = async (body: object) => {
    const res = await app.request("/v1/sessions", {
      method: "POST",
      headers,
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  };
  const turn = (id: string, content: string) =>
    app.request(`/v1/sessions/${id}/messages`, {
      method: "POST",
      headers,
      body: JSON.stringify({ content }),
    });

  it("routes the first turn of an auto session, pins the model and keeps it for later turns", async () => {
    const id = await createSession({ model: "auto" });
    const first = await turn(id, "Hello there");
    expect(first.status).toBe(200);
    expect(first.headers.get("x-agent-route-reason")).toBe("auto:1:tools");
    expect(model.models.at(-1)).toBe(FAST);
    const stored = (await (await app.request(`/v1/sessions/${id}`, { headers })).json()) as {
      model: string;
    };
    expect(stored.model).toBe(FAST);

    // A turn that would route to deep on its own stays on the pinned model.
    const second = await turn(id, "Now prove, step by step, that this is optimal:\n```\ncode\n```");
    expect(second.status).toBe(200);
    expect(second.headers.get("x-agent-route-reason")).toBe("sticky");
    expect(model.models.at(-1)).toBe(FAST);
  });

  it("routes a hard first turn (with the agent's tools) to the smart tier, never deep, and pins that", async () => {
    const id = await createSession({ model: "auto" });
    const res = await turn(id, "Prove, step by step, that the algorithm terminates.");
    expect(res.status).toBe(200);
    expect(res.headers.get("x-agent-route-reason")).toBe(
      "auto:5:tools,hint:prove,hint:step-by-step",
    );
    expect(model.models.at(-1)).toBe(SMART);
    const stored = (await (await app.request(`/v1/sessions/${id}`, { headers })).json()) as {
      model: string;
    };
    expect(stored.model).toBe(SMART);
  });

  it("resolves tier aliases on sessions and pins them", async () => {
    const id = await createSession({ model: "smart" });
    const res = await turn(id, "hi");
    expect(res.headers.get("x-agent-route-reason")).toBe("alias:smart");
    expect(model.models.at(-1)).toBe(SMART);
    const stored = (await (await app.request(`/v1/sessions/${id}`, { headers })).json()) as {
      model: string;
    };
    expect(stored.model).toBe(SMART);
  });

  it("leaves an explicit session model alone", async () => {
    const id = await createSession({ model: DEEP });
    const res = await turn(id, "hi");
    expect(res.headers.get("x-agent-route-reason")).toBe("sticky");
    expect(model.models.at(-1)).toBe(DEEP);
  });
});
