/**
 * Abuse suite, item 8: tools. `text_stats` is linear in its input (100,000 characters used to
 * exhaust the heap on Node 20 and kill the process), and tools run in worker threads with real
 * time and memory limits: a tool spinning in a loop is stopped at its deadline, one allocating
 * without end is stopped at its heap limit, and the service (and the next tool call) goes on.
 */
import { ToolRegistry, createBuiltinToolRegistry } from "../../app/src/agent/tools";
import { ToolSandbox } from "../../app/src/agent/tool-sandbox";
import { tools as evilTools } from "../support/evil-tools";
import { openRig, QUIET, type AbuseRig } from "../support/abuse";
import { serviceBackends } from "../support/services";

const registry = createBuiltinToolRegistry();
const stats = async (input: Record<string, unknown>) => {
  const out = await registry.execute("text_stats", input);
  expect(out.isError).toBe(false);
  return JSON.parse(out.content) as Record<string, number>;
};

describe("text_stats on 100,000 characters", () => {
  it.each([
    ["words", "word ".repeat(20_000), { words: 20_000, sentences: 1, characters: 100_000 }],
    [
      "one long sentence per line",
      "A line of text that ends here.\n".repeat(3225),
      { sentences: 3225, paragraphs: 1 },
    ],
    [
      "sentences without line breaks",
      "It rains. It pours. ".repeat(5_000),
      { sentences: 10_000, words: 20_000 },
    ],
    ["no whitespace at all", "x".repeat(100_000), { words: 1, characters: 100_000, sentences: 1 }],
    ["emoji", "👍🏽".repeat(25_000), { characters: 25_000 }],
    ["CJK", "日本語の文章です。".repeat(11_111), { sentences: 11_111 }],
    ["blank lines", "\n \n".repeat(33_333), { paragraphs: 0, characters_excluding_whitespace: 0 }],
  ])("%s: counts what a single segmentation pass would", async (_name, text, expected) => {
    const result = await stats({ text, find: "e" });
    expect(result).toMatchObject(expected);
    expect(result.utf8_bytes).toBe(Buffer.byteLength(text));
  });

  it("matches one segmentation pass on shorter mixed texts", async () => {
    const sample =
      'Dr. Smith arrived. He said: "Hello!" Then left...\n\nNew paragraph, e.g. this one; 日本語です。 👍🏽 ok? Yes.\r\n';
    for (const text of [sample, sample.repeat(40), sample.repeat(40).replace(/\s+/g, " ")]) {
      const seg = (g: "grapheme" | "word" | "sentence") => [
        ...new Intl.Segmenter("en", { granularity: g }).segment(text),
      ];
      const result = await stats({ text });
      expect(result.characters).toBe(seg("grapheme").length);
      expect(result.words).toBe(seg("word").filter((w) => w.isWordLike).length);
      expect(result.sentences).toBe(seg("sentence").filter((s) => s.segment.trim() !== "").length);
    }
  });
});

describe("the tool sandbox", () => {
  const sandbox = new ToolSandbox({
    names: evilTools.map((t) => t.name),
    toolsModule: require.resolve("../support/evil-tools"),
    memoryMb: 32,
  });
  const evil = new ToolRegistry(evilTools, { sandbox, defaultTimeoutMs: 1_000 });
  // The heap limit, not the clock, must stop the hog: on a loaded machine it may take longer than
  // the 1 s deadline above to allocate 32 MB.
  const patient = new ToolRegistry(evilTools, { sandbox, defaultTimeoutMs: 120_000 });
  afterAll(() => sandbox.close());

  it("stops a tool that never yields at its deadline, and serves the next call", async () => {
    expect(await evil.execute("spin", {})).toEqual({
      content: 'tool "spin" timed out after 1000 ms',
      isError: true,
    });
    expect(await evil.execute("echo", { text: "still here" })).toEqual({
      content: "still here",
      isError: false,
    });
  });

  it("stops a tool that allocates without end at its heap limit, and serves the next call", async () => {
    const out = await patient.execute("hog", {});
    expect(out.isError).toBe(true);
    expect(out.content).toMatch(/ran out of memory \(limit 32 MB\)/);
    expect(await evil.execute("echo", { text: "after" })).toEqual({
      content: "after",
      isError: false,
    });
  });

  it("refuses a JSON document nested too deep for json_query instead of building a huge answer", async () => {
    const deep = "[".repeat(50_000) + "]".repeat(50_000);
    const out = await registry.execute("json_query", { json: deep, path: "$" });
    expect(out.isError).toBe(true);
    expect(out.content).toMatch(/deeper than 64 levels/);
  });
});

describe.each(serviceBackends())("abuse: text_stats in a session turn with $name", (backend) => {
  let rig: AbuseRig;
  beforeAll(async () => {
    rig = await openRig(backend, { ...QUIET, MAX_BODY_BYTES: String(4 * 1024 * 1024) });
  });
  afterAll(() => rig?.close());

  it("runs text_stats on 100,000 characters for the model and answers", async () => {
    const session = (await (
      await rig.post("/v1/sessions", { model: "claude-haiku-4-5" })
    ).json()) as {
      id: string;
    };
    const input = JSON.stringify({ text: "word ".repeat(20_000) });
    const res = await rig.post(`/v1/sessions/${session.id}/messages`, {
      content: `[[tool:text_stats ${input}]]`,
      // Room for the model to write the 100,000 characters of the tool call.
      max_tokens: 40_000,
    });
    expect(res.status).toBe(200);
    const history = (await (await rig.get(`/v1/sessions/${session.id}`)).json()) as {
      messages: Array<{
        role: string;
        content: Array<{ type: string; content?: string; is_error?: boolean }>;
      }>;
    };
    const result = history.messages[2]!.content[0]!;
    expect(result.type).toBe("tool_result");
    expect(result.is_error).toBe(false);
    expect(JSON.parse(result.content!)).toMatchObject({ words: 20_000 });
  });
});
