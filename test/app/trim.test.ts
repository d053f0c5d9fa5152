/**
 * History trimming: invariants checked over many generated histories (tool loops, merged tool
 * results, huge turns), the cache-friendly stability of the cut, and the wiring into session turns.
 */
import { isTurnStart, trimHistory } from "../../app/src/agent/trim";
import type { HistoryMessage } from "../../app/src/agent/history";
import { prepareSessionTurn } from "../../app/src/agent/model-choice";
import { toRequestMessages } from "../../app/src/agent/history";
import { estimateMessageTokens } from "../../app/src/llm/prompt-cache";
import { ModelCatalog } from "../../app/src/llm/models";

type Block = HistoryMessage["content"][number];
const text = (t: string): Block => ({ type: "text", text: t });
const words = (rand: () => number, max: number) => "w".repeat(1 + Math.floor(rand() * max));

function prng(seed: number) {
  return () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
}

/**
 * A session history as the agent loop stores it: turns of a user message, then assistant
 * messages with tool_use blocks each answered by a user message of tool_results, ending with an
 * assistant answer; sometimes a turn stops at the iteration cap (tool results the model never
 * saw), so the next user message follows a tool_result message.
 */
function generateHistory(rand: () => number, turns: number): HistoryMessage[] {
  const out: HistoryMessage[] = [];
  let id = 0;
  for (let t = 0; t < turns; t++) {
    out.push({ role: "user", content: [text(`turn ${t} ${words(rand, 2000)}`)] });
    const rounds = Math.floor(rand() * 3);
    let capped = false;
    for (let r = 0; r < rounds; r++) {
      const uses = 1 + Math.floor(rand() * 3);
      const ids = Array.from({ length: uses }, () => `toolu_${++id}`);
      out.push({
        role: "assistant",
        content: [
          text("Calling tools."),
          ...ids.map((i) => ({
            type: "tool_use",
            id: i,
            name: "calc",
            input: { q: words(rand, 50) },
          })),
        ],
      });
      out.push({
        role: "user",
        content: ids.map((i) => ({
          type: "tool_result",
          tool_use_id: i,
          content: words(rand, 1500),
        })),
      });
      if (r === rounds - 1 && rand() < 0.3) capped = true;
    }
    if (!capped)
      out.push({ role: "assistant", content: rand() < 0.1 ? [] : [text(words(rand, 1200))] });
  }
  // Now and then a newest turn too large for small budgets on its own.
  out.push({
    role: "user",
    content: [text(`newest ${words(rand, rand() < 0.15 ? 40_000 : 400)}`)],
  });
  return out;
}

const total = (h: readonly HistoryMessage[]) => h.reduce((n, m) => n + estimateMessageTokens(m), 0);

function checkInvariants(history: HistoryMessage[], budget: number) {
  const r = trimHistory(history, budget);
  // A suffix of the input, the same objects.
  expect(r.messages).toEqual(history.slice(r.dropped));
  r.messages.forEach((m, i) => expect(m).toBe(history[r.dropped + i]));
  // The newest user turn is always kept.
  expect(r.messages.at(-1)).toBe(history.at(-1));
  expect(r.tokens).toBe(total(r.messages));
  if (r.dropped > 0) {
    // Starts at a turn start: a user message without tool results.
    expect(isTurnStart(r.messages[0]!)).toBe(true);
  }
  // Every tool_result answers a tool_use that is still there, earlier.
  const uses = new Set<string>();
  for (const m of r.messages) {
    for (const b of m.content) {
      if (b.type === "tool_use") uses.add(String(b.id));
      if (b.type === "tool_result") expect(uses.has(String(b.tool_use_id))).toBe(true);
    }
  }
  // What the API receives starts with a user message and alternates roles.
  const sent = toRequestMessages(r.messages);
  expect(sent[0]!.role).toBe("user");
  sent.forEach((m, i) => i > 0 && expect(m.role).not.toBe(sent[i - 1]!.role));
  if (total(history) <= budget || budget <= 0) {
    expect(r.dropped).toBe(0);
    expect(r.overBudget).toBe(false);
  } else if (!r.overBudget) {
    expect(r.tokens).toBeLessThanOrEqual(budget);
  } else {
    // Over budget only when even the last turn alone does not fit: then only that turn is left.
    const lastStart = history.map(isTurnStart).lastIndexOf(true);
    expect(r.dropped).toBe(lastStart);
  }
  // Nothing dropped needlessly: the previous turn start (kept one turn more) would not have
  // dropped the rounded-up amount.
  if (r.dropped > 0) {
    const step = Math.max(1, Math.floor(budget / 4));
    const target = Math.ceil((total(history) - budget) / step) * step;
    const starts = history
      .map((m, i) => (i > 0 && isTurnStart(m) ? i : -1))
      .filter((i) => i > 0 && i < r.dropped);
    const prev = starts.at(-1);
    if (prev !== undefined) expect(total(history.slice(0, prev))).toBeLessThan(target);
  }
  return r;
}

describe("trimHistory", () => {
  it("keeps a history within the budget untouched, and a budget of 0 disables trimming", () => {
    const h: HistoryMessage[] = [
      { role: "user", content: [text("hello")] },
      { role: "assistant", content: [text("hi")] },
      { role: "user", content: [text("bye")] },
    ];
    expect(trimHistory(h, 1000)).toMatchObject({ dropped: 0, overBudget: false, messages: h });
    expect(trimHistory(h, 0).dropped).toBe(0);
  });

  it("drops whole turns from the front and never starts at a tool result", () => {
    const h: HistoryMessage[] = [
      { role: "user", content: [text("a".repeat(4000))] }, // 1004 tokens
      { role: "assistant", content: [{ type: "tool_use", id: "t1", name: "calc", input: {} }] },
      {
        role: "user",
        content: [{ type: "tool_result", tool_use_id: "t1", content: "b".repeat(4000) }],
      },
      { role: "assistant", content: [text("done")] },
      { role: "user", content: [text("next")] },
    ];
    const r = trimHistory(h, 100);
    // The tool_result message is no turn start: the cut skips to the newest user turn.
    expect(r.dropped).toBe(4);
    expect(r.messages).toEqual([h[4]]);
    expect(r.overBudget).toBe(false);
  });

  it("keeps an oversized newest turn whole and says so", () => {
    const h: HistoryMessage[] = [
      { role: "user", content: [text("old")] },
      { role: "assistant", content: [text("reply")] },
      { role: "user", content: [text("x".repeat(10_000))] },
    ];
    const r = trimHistory(h, 500);
    expect(r).toMatchObject({ dropped: 2, overBudget: true });
    const single = trimHistory([h[2]!], 500);
    expect(single).toMatchObject({ dropped: 0, overBudget: true });
  });

  it("property: invariants hold over 300 generated histories and budgets", () => {
    const rand = prng(7);
    let trimmed = 0;
    let over = 0;
    for (let i = 0; i < 300; i++) {
      const history = generateHistory(rand, 1 + Math.floor(rand() * 12));
      const budget = [0, 200, 1000, 3000, 8000, 30_000][Math.floor(rand() * 6)]!;
      const r = checkInvariants(history, budget);
      if (r.dropped > 0) trimmed++;
      if (r.overBudget) over++;
    }
    // The generator exercises every branch, not just the trivial one.
    expect(trimmed).toBeGreaterThan(100);
    expect(over).toBeGreaterThan(5);
  });

  it("property: as a conversation grows, the cut only moves forward, and only in steps", () => {
    const rand = prng(11);
    for (let run = 0; run < 20; run++) {
      const full = generateHistory(rand, 40);
      const budget = 5000;
      let lastCut = 0;
      let moves = 0;
      let prefixes = 0;
      for (let n = 1; n <= full.length; n++) {
        if (!isTurnStart(full[n - 1]!)) continue; // a turn begins: what a new turn would send
        prefixes++;
        const r = trimHistory(full.slice(0, n), budget);
        expect(r.dropped).toBeGreaterThanOrEqual(lastCut);
        if (r.dropped !== lastCut) moves++;
        lastCut = r.dropped;
      }
      // Trimming turn by turn would move the start at almost every turn once over budget; steps
      // of a quarter of the budget move it far less often (the prompt cache stays warm between).
      const growth = total(full) - budget;
      expect(moves).toBeLessThanOrEqual(Math.ceil(Math.max(0, growth) / (budget / 4)) + 1);
      expect(moves).toBeLessThan(prefixes);
    }
  });
});

describe("session turns are trimmed to SESSION_HISTORY_TOKEN_BUDGET", () => {
  const catalog = ModelCatalog.load();
  const store = { setSessionModel: async () => {} };
  const history: HistoryMessage[] = [];
  for (let i = 0; i < 30; i++) {
    history.push({ role: "user", content: [text(`q${i} ${"x".repeat(400)}`)] });
    history.push({ role: "assistant", content: [text(`a${i} ${"y".repeat(400)}`)] });
  }
  history.push({ role: "user", content: [text("latest")] });

  it("sends only the kept suffix", async () => {
    const plan = await prepareSessionTurn(
      { id: "s", model: "claude-sonnet-4-6", system: null },
      history,
      { config: { DEFAULT_MODEL: "auto", SESSION_HISTORY_TOKEN_BUDGET: 2000 }, catalog, store },
      { maxTokens: 100 },
    );
    expect(plan.droppedMessages).toBeGreaterThan(0);
    expect(plan.conversation.at(-1)).toBe(history.at(-1));
    expect(plan.conversation[0]!.role).toBe("user");
    expect(total(plan.conversation)).toBeLessThanOrEqual(2000);
  });

  it("never lets the history outgrow what the context window leaves after system, tools and output", async () => {
    const plan = await prepareSessionTurn(
      { id: "s", model: "claude-sonnet-4-6", system: null },
      history,
      // A budget larger than the window is clamped by it: window 200k - 198k of output = 2k.
      {
        config: { DEFAULT_MODEL: "auto", SESSION_HISTORY_TOKEN_BUDGET: 1_000_000 },
        catalog,
        store,
      },
      { maxTokens: 198_000 },
    );
    expect(total(plan.conversation)).toBeLessThanOrEqual(2000);
    const off = await prepareSessionTurn(
      { id: "s", model: "claude-sonnet-4-6", system: null },
      history,
      { config: { DEFAULT_MODEL: "auto", SESSION_HISTORY_TOKEN_BUDGET: 0 }, catalog, store },
      { maxTokens: 100 },
    );
    expect(off.droppedMessages).toBe(0);
  });
});
