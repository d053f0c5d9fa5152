/**
 * Automatic prompt-cache breakpoints: placement, per-model minimums, the four-breakpoint limit,
 * client breakpoints left alone; and end to end against the fake Anthropic API, that the second
 * call of a conversation with a long system prompt reads the cache and that every later call of a
 * multi-turn conversation reads all of the history before its newest turn.
 */
import { AnthropicProvider } from "../../app/src/llm/anthropic";
import { ModelCatalog } from "../../app/src/llm/models";
import {
  applyPromptCaching,
  countCacheBreakpoints,
  estimateRequestTokens,
  MAX_CACHE_BREAKPOINTS,
} from "../../app/src/llm/prompt-cache";
import type { MessageRequest } from "../../app/src/llm/types";
import {
  estimateInputTokens as estimateFakeInput,
  FAKE_API_KEY,
  startFakeAnthropic,
  type FakeAnthropic,
} from "../support/fake-anthropic";

const catalog = ModelCatalog.load();
const SONNET = "claude-sonnet-4-6"; // minimum 1024 tokens
const HAIKU = "claude-haiku-4-5"; // minimum 4096 tokens
const EPHEMERAL = { type: "ephemeral" };

/** About `tokens` tokens of text (4 characters a token). */
const text = (tokens: number, seed = "x") => `${seed} `.repeat(tokens * 2).slice(0, tokens * 4);
const tool = (name: string, tokens: number) => ({
  name,
  description: text(tokens, name),
  input_schema: { type: "object", properties: {} },
});
type Msg = { role: "user" | "assistant"; content: unknown };
type Over = {
  model?: string;
  messages?: Msg[];
  system?: unknown;
  tools?: unknown;
  cache_control?: unknown;
};
const request = (over: Over): MessageRequest =>
  ({
    model: SONNET,
    max_tokens: 100,
    messages: [{ role: "user", content: "hi" }],
    ...over,
  }) as unknown as MessageRequest;
const marked = (x: unknown) => (x as { cache_control?: unknown })?.cache_control;
/** Where a request carries cache_control (dotted paths; "top" for the top level) and its value. */
function markPaths(r: unknown): Map<string, unknown> {
  const out = new Map<string, unknown>();
  const o = r as { tools?: unknown[]; system?: unknown; messages: Msg[]; cache_control?: unknown };
  if (o.cache_control) out.set("top", o.cache_control);
  (o.tools ?? []).forEach((t, i) => marked(t) && out.set(`tools.${i}`, marked(t)));
  if (Array.isArray(o.system))
    o.system.forEach((b, i) => marked(b) && out.set(`system.${i}`, marked(b)));
  o.messages.forEach((m, i) => {
    if (Array.isArray(m.content))
      m.content.forEach((b, j) => marked(b) && out.set(`messages.${i}.${j}`, marked(b)));
  });
  return out;
}

describe("applyPromptCaching", () => {
  it("adds nothing to a short request and returns the same object", () => {
    const r = request({ system: "be brief", tools: [tool("t", 10)] as never });
    expect(applyPromptCaching(r, catalog)).toBe(r);
  });

  it("marks a long system prompt (a string becomes one text block)", () => {
    const system = text(2000);
    const out = applyPromptCaching(request({ system }), catalog);
    expect(out.system).toEqual([{ type: "text", text: system, cache_control: EPHEMERAL }]);
    expect(countCacheBreakpoints(out as never)).toBe(1);
  });

  it("marks the last tool when the tools alone reach the minimum", () => {
    const tools = [tool("a", 600), tool("b", 600)];
    const out = applyPromptCaching(request({ tools: tools as never }), catalog);
    const outTools = out.tools as unknown[];
    expect(marked(outTools[0])).toBeUndefined();
    expect(marked(outTools[1])).toEqual(EPHEMERAL);
  });

  it("counts prefixes cumulatively: short tools, then a system prompt that completes the minimum", () => {
    const out = applyPromptCaching(
      request({ tools: [tool("a", 600)] as never, system: text(600) }),
      catalog,
    );
    expect(marked((out.tools as unknown[])[0])).toBeUndefined();
    expect(marked((out.system as unknown[])[0])).toEqual(EPHEMERAL);
  });

  it("does not mark a single message: a one-off question pays no cache write", () => {
    const out = applyPromptCaching(
      request({ system: text(2000), messages: [{ role: "user", content: text(3000) }] }),
      catalog,
    );
    expect([...markPaths(out).keys()]).toEqual(["system.0"]);
    expect(typeof (out.messages as Msg[])[0]!.content).toBe("string");
  });

  it("in a conversation, marks the newest user turn once its prefix reaches the minimum", () => {
    const messages: Msg[] = [
      { role: "user", content: text(400) },
      { role: "assistant", content: [{ type: "text", text: text(400) }] },
      { role: "user", content: text(400) },
    ];
    const out = applyPromptCaching(request({ messages }), catalog);
    // 808 tokens up to the reply: below Sonnet's 1,024, so only the newest turn (1,212).
    expect([...markPaths(out).keys()]).toEqual(["messages.2.0"]);
    // A string turn becomes one marked text block; the other messages are passed through.
    expect((out.messages as Msg[])[2]!.content).toEqual([
      { type: "text", text: text(400), cache_control: EPHEMERAL },
    ]);
    expect((out.messages as Msg[])[1]).toBe(messages[1]);
  });

  it("also marks the reply before the newest turn, the prefix conversations that open alike share", () => {
    const opening: Msg[] = [
      { role: "user", content: text(1500) },
      { role: "assistant", content: "an answer" },
    ];
    const a = applyPromptCaching(
      request({ messages: [...opening, { role: "user", content: "q2" }] }),
      catalog,
    );
    const b = applyPromptCaching(
      request({ messages: [...opening, { role: "user", content: "another q2" }] }),
      catalog,
    );
    for (const out of [a, b]) {
      expect([...markPaths(out).keys()]).toEqual(["messages.1.0", "messages.2.0"]);
      // A string reply becomes one marked text block.
      expect((out.messages as Msg[])[1]!.content).toEqual([
        { type: "text", text: "an answer", cache_control: EPHEMERAL },
      ]);
    }
  });

  it("marks the last cacheable blocks in a tool loop: the tool_use (not thinking) and the tool_result (not an empty text)", () => {
    const messages: Msg[] = [
      { role: "user", content: text(1500) },
      {
        role: "assistant",
        content: [
          { type: "text", text: "Calling." },
          { type: "tool_use", id: "t1", name: "calc", input: { a: 1 } },
          { type: "thinking", thinking: "hmm", signature: "s" },
        ],
      },
      {
        role: "user",
        content: [
          { type: "tool_result", tool_use_id: "t1", content: "2" },
          { type: "text", text: "" },
        ],
      },
    ];
    const out = applyPromptCaching(request({ messages }), catalog);
    const m = out.messages as Msg[];
    expect((m[1]!.content as unknown[]).map(marked)).toEqual([undefined, EPHEMERAL, undefined]);
    expect((m[2]!.content as unknown[]).map(marked)).toEqual([EPHEMERAL, undefined]);
    expect(m[0]).toBe(messages[0]);
  });

  it("places tools, system and both conversation breakpoints together", () => {
    const messages: Msg[] = [
      { role: "user", content: "q1" },
      { role: "assistant", content: "a1" },
      { role: "user", content: "q2" },
    ];
    const out = applyPromptCaching(
      request({ tools: [tool("a", 1200)] as never, system: text(1200), messages }),
      catalog,
    );
    expect(countCacheBreakpoints(out as never)).toBe(MAX_CACHE_BREAKPOINTS);
    expect([...markPaths(out).keys()]).toEqual([
      "tools.0",
      "system.0",
      "messages.1.0",
      "messages.2.0",
    ]);
  });

  it("applies each model's minimum: 2,000 tokens cache on Sonnet (1,024) but not on Haiku (4,096)", () => {
    const system = text(2000);
    expect(
      countCacheBreakpoints(
        applyPromptCaching(request({ model: SONNET, system }), catalog) as never,
      ),
    ).toBe(1);
    expect(applyPromptCaching(request({ model: HAIKU, system }), catalog).system).toBe(system);
    expect(
      countCacheBreakpoints(
        applyPromptCaching(request({ model: HAIKU, system: text(4200) }), catalog) as never,
      ),
    ).toBe(1);
    // Unknown models use the API's common minimum, 1,024.
    expect(
      countCacheBreakpoints(
        applyPromptCaching(
          request({ model: "some-new-model", system: text(1100) }),
          catalog,
        ) as never,
      ),
    ).toBe(1);
  });

  it("never exceeds four breakpoints: with two client ones, only the two latest candidates (the turns) are added", () => {
    const messages: Msg[] = [
      { role: "user", content: [{ type: "text", text: "q1", cache_control: EPHEMERAL }] },
      { role: "assistant", content: [{ type: "text", text: "a1", cache_control: EPHEMERAL }] },
      { role: "user", content: [{ type: "text", text: "q2" }] },
      { role: "assistant", content: [{ type: "text", text: "a2" }] },
      { role: "user", content: "q3" },
    ];
    const out = applyPromptCaching(
      request({ tools: [tool("a", 1200)] as never, system: text(1200), messages }),
      catalog,
    );
    expect(countCacheBreakpoints(out as never)).toBe(MAX_CACHE_BREAKPOINTS);
    expect([...markPaths(out).keys()]).toEqual([
      "messages.0.0",
      "messages.1.0",
      "messages.3.0",
      "messages.4.0",
    ]);
  });

  it("returns the request unchanged when the client already set four (or more) breakpoints", () => {
    const cc = (t: string) => ({ type: "text", text: t, cache_control: EPHEMERAL });
    const r = request({
      system: [cc(text(1200))] as never,
      messages: [
        { role: "user", content: [cc("a"), cc("b")] },
        { role: "assistant", content: [cc("c")] },
        { role: "user", content: "d" },
      ],
    });
    expect(applyPromptCaching(r, catalog)).toBe(r);
    // A top-level cache_control counts as one.
    const top = { ...request({ system: text(2000) }), cache_control: EPHEMERAL } as MessageRequest;
    const withThree = {
      ...top,
      messages: [{ role: "user", content: [cc("a"), cc("b"), cc("c")] }],
    } as MessageRequest;
    expect(applyPromptCaching(withThree, catalog)).toBe(withThree);
  });

  it("leaves a client breakpoint where it is and does not duplicate it", () => {
    const system = [
      { type: "text", text: text(2000), cache_control: { type: "ephemeral", ttl: "1h" } },
    ];
    const r = request({ system: system as never });
    expect(applyPromptCaching(r, catalog)).toBe(r);
  });

  it("does not modify its input", () => {
    const r = request({
      tools: [tool("a", 1200)] as never,
      system: text(1200),
      messages: [
        { role: "user", content: [{ type: "text", text: "q" }] },
        { role: "assistant", content: [{ type: "text", text: "a" }] },
        { role: "user", content: "q2" },
      ],
    });
    const before = JSON.stringify(r);
    const out = applyPromptCaching(r, catalog);
    expect(JSON.stringify(r)).toBe(before);
    expect(out).not.toBe(r);
  });

  it("can be turned off", () => {
    const r = request({ system: text(5000) });
    expect(applyPromptCaching(r, catalog, { enabled: false })).toBe(r);
  });

  it("property: over random requests, never more than four breakpoints and client ones always kept", () => {
    let seed = 42;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)]!;
    for (let iter = 0; iter < 500; iter++) {
      const clientMark = () => (rand() < 0.15 ? { cache_control: EPHEMERAL } : {});
      const block = () => ({
        type: "text",
        text: text(Math.floor(rand() * 900), "w"),
        ...clientMark(),
      });
      const tools = Array.from({ length: Math.floor(rand() * 4) }, (_, i) => ({
        ...tool(`t${i}`, Math.floor(rand() * 700)),
        ...clientMark(),
      }));
      const system = pick<unknown>([
        undefined,
        text(Math.floor(rand() * 3000)),
        [block(), block()],
      ]);
      const messages: Msg[] = [];
      const n = 1 + Math.floor(rand() * 7);
      for (let i = 0; i < n; i++) {
        messages.push({
          role: i % 2 === 0 ? "user" : "assistant",
          content:
            rand() < 0.3
              ? text(Math.floor(rand() * 500))
              : [block(), ...(rand() < 0.5 ? [block()] : [])],
        });
      }
      if (messages.at(-1)!.role !== "user") messages.push({ role: "user", content: "go on" });
      const r = request({
        model: pick([SONNET, HAIKU]),
        tools: tools as never,
        system: system as never,
        messages,
      });
      const before = countCacheBreakpoints(r as never);
      const snapshot = JSON.stringify(r);
      const out = applyPromptCaching(r, catalog);
      const after = countCacheBreakpoints(out as never);
      expect(JSON.stringify(r)).toBe(snapshot);
      if (before >= MAX_CACHE_BREAKPOINTS) expect(out).toBe(r);
      else expect(after).toBeLessThanOrEqual(MAX_CACHE_BREAKPOINTS);
      expect(after).toBeGreaterThanOrEqual(before);
      // Every client breakpoint survives where it was, and no content changes.
      const inMarks = markPaths(r);
      const outMarks = markPaths(out);
      for (const [path, value] of inMarks)
        expect(outMarks.get(path.replace(/^system$/, "system.0"))).toEqual(value);
      expect(outMarks.size).toBe(after);
      expect(estimateRequestTokens(out as never)).toBe(estimateRequestTokens(r as never));
    }
  });
});

describe("prompt caching against the fake Anthropic API", () => {
  let fake: FakeAnthropic;
  let llm: AnthropicProvider;
  beforeAll(async () => {
    fake = await startFakeAnthropic({
      minCacheableTokensByModel: { [HAIKU]: 4096, [SONNET]: 1024 },
    });
    llm = new AnthropicProvider({
      apiKey: FAKE_API_KEY,
      baseURL: fake.url,
      timeoutMs: 10_000,
      maxRetries: 0,
    });
  });
  afterAll(() => fake.close());

  const conversation = async (model: string, system: string, cache: boolean) => {
    const prepare = (r: MessageRequest) => (cache ? applyPromptCaching(r, catalog) : r);
    const opts = { timeoutMs: 10_000 };
    const first = await llm.createMessage(
      prepare(
        request({ model, system, messages: [{ role: "user", content: "What is the policy?" }] }),
      ),
      opts,
    );
    const second = await llm.createMessage(
      prepare(
        request({
          model,
          system,
          messages: [
            { role: "user", content: "What is the policy?" },
            { role: "assistant", content: first.content as never },
            { role: "user", content: "And the exceptions?" },
          ],
        }),
      ),
      opts,
    );
    return [first.usage, second.usage];
  };

  it("writes the long system prompt on the first call and reads it on the second", async () => {
    const system = `You are a support agent. ${text(3000, "policy")}`;
    const [first, second] = await conversation(SONNET, system, true);
    expect(first!.cache_creation_input_tokens).toBeGreaterThanOrEqual(3000);
    expect(first!.cache_read_input_tokens).toBe(0);
    expect(second!.cache_read_input_tokens).toBeGreaterThanOrEqual(3000);
    // The second call also wrote the rest of the conversation (answer and question) for the third.
    expect(second!.cache_creation_input_tokens).toBeGreaterThan(0);
    const marks = fake.requests
      .slice(-2)
      .map((r) => JSON.stringify(r.body).split('"cache_control"').length - 1);
    // First call: the system prompt only; second: system, the first answer, the newest question.
    expect(marks).toEqual([1, 3]);
  });

  /** A conversation of `turns` calls, the client resending the history; each call's usage. */
  const multiTurn = async (model: string, system: string, turns: number, reply: number) => {
    const messages: Msg[] = [];
    const usages = [];
    const sent = [];
    for (let t = 0; t < turns; t++) {
      messages.push({
        role: "user",
        content: `Question ${t + 1} about ${system.slice(0, 12)} [[fake:{"minReplyChars":${reply}}]]`,
      });
      const r = applyPromptCaching(
        { ...request({ model, system, messages: [...messages] }), max_tokens: 1024 },
        catalog,
      );
      const res = await llm.createMessage(r, { timeoutMs: 10_000 });
      usages.push(res.usage);
      sent.push(estimateFakeInput(r));
      messages.push({ role: "assistant", content: res.content as never });
    }
    return { usages, sent };
  };

  it("a multi-turn conversation reads its whole history: from the second call on, nothing but the new turn is uncached", async () => {
    const system = `You are a travel agent. ${text(2000, "travel")}`;
    const { usages, sent } = await multiTurn(SONNET, system, 5, 800);
    expect(usages[0]!.cache_read_input_tokens).toBe(0);
    // The first call cached only the system prompt (a single message is not marked).
    expect(usages[1]!.cache_read_input_tokens).toBe(estimateFakeInput({ system, messages: [] }));
    expect(usages[1]!.input_tokens).toBe(0);
    for (let t = 2; t < usages.length; t++) {
      const u = usages[t]!;
      // Everything the previous call sent is read; the previous answer and new question are written.
      expect(u.cache_read_input_tokens).toBe(sent[t - 1]);
      expect(u.cache_creation_input_tokens).toBe(sent[t]! - sent[t - 1]!);
      expect(u.input_tokens).toBe(0);
    }
  });

  it("on Haiku the conversation is cached from the call whose prefix reaches 4,096 tokens", async () => {
    const system = `You are a tax adviser. ${text(3000, "taxes")}`;
    const { usages, sent } = await multiTurn(HAIKU, system, 5, 2400);
    const first = sent.findIndex((n) => n >= 4096);
    expect(first).toBeGreaterThan(0);
    for (let t = 0; t < first; t++) {
      expect(usages[t]!.cache_creation_input_tokens).toBe(0);
      expect(usages[t]!.input_tokens).toBe(sent[t]);
    }
    expect(usages[first]!.cache_creation_input_tokens).toBe(sent[first]);
    for (let t = first + 1; t < usages.length; t++)
      expect(usages[t]!.cache_read_input_tokens).toBe(sent[t - 1]);
  });

  it("a conversation that opens like an earlier one reads the earlier one's prefix through the shared answer", async () => {
    const system = `You are a bank clerk. ${text(2000, "bank")}`;
    const opening: Msg[] = [
      { role: "user", content: "How do I open an account?" },
      { role: "assistant", content: [{ type: "text", text: text(300, "answer") }] },
    ];
    const call = (question: string) =>
      llm.createMessage(
        applyPromptCaching(
          request({
            model: SONNET,
            system,
            messages: [...opening, { role: "user", content: question }],
          }),
          catalog,
        ),
        { timeoutMs: 10_000 },
      );
    await call("And a savings account?");
    const other = await call("Which documents do I need?");
    expect(other.usage.cache_read_input_tokens).toBe(
      estimateFakeInput({ system, messages: opening }),
    );
  });

  it("without breakpoints nothing is cached (the control)", async () => {
    const system = `You are a billing agent. ${text(3000, "billing")}`;
    const [first, second] = await conversation(SONNET, system, false);
    expect(first!.cache_creation_input_tokens).toBe(0);
    expect(second!.cache_read_input_tokens).toBe(0);
  });

  it("places no breakpoint below the model's minimum, so nothing is cached on Haiku for 3,000 tokens", async () => {
    const system = `You are a sales agent. ${text(3000, "sales")}`;
    const [, second] = await conversation(HAIKU, system, true);
    expect(second!.cache_read_input_tokens).toBe(0);
    expect(JSON.stringify(fake.lastRequest()!.body)).not.toContain("cache_control");
  });
});
