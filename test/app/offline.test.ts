/**
 * The offline synthetic model speaks the Messages protocol as the API does (issue 16): no
 * `citations: null`, tool_use when tool_choice forces a tool (input valid for its schema), a tool
 * the prompt names when tools are offered, structured outputs, stop_sequences, max_tokens, and the
 * same content streamed with input_json_delta. Schemas are made with zod and checked with it, so a
 * sample that does not satisfy its schema fails here.
 */
import * as z from "zod";
import { compose, OfflineProvider, sampleOf, SYNTHETIC_NOTICE } from "../../app/src/llm/offline";
import type { MessageRequest, StreamEvent } from "../../app/src/llm/types";
import { UpstreamError } from "../../app/src/llm/types";

const weatherInput = z.object({
  city: z.string().min(2),
  days: z.number().int().min(1).max(7),
  unit: z.enum(["celsius", "fahrenheit"]),
  alerts: z.boolean().optional(),
});
const person = z.object({
  name: z.string(),
  age: z.number().int().min(0).max(150),
  email: z.email(),
  tags: z.array(z.string()).min(2),
  address: z.object({ street: z.string(), zip: z.string().length(5) }),
  score: z.number().gt(0).lt(1),
  nickname: z.string().nullable(),
});

/** A tool definition as a client sends it: its input_schema is the zod schema's JSON schema. */
function toolOf(name: string, schema: z.ZodType) {
  return {
    name,
    description: `the ${name} tool`,
    input_schema: z.toJSONSchema(schema) as { type: "object" } & Record<string, unknown>,
  };
}

const tools = [toolOf("get_weather", weatherInput), toolOf("lookup_person", person)];

function request(content: string, over: Partial<MessageRequest> = {}): MessageRequest {
  return {
    model: "claude-sonnet-4-6",
    max_tokens: 512,
    messages: [{ role: "user", content }],
    ...over,
  };
}

/** The content a stream carries, put back together as a client does. */
async function collect(events: AsyncIterable<StreamEvent>) {
  const blocks: Array<Record<string, unknown>> = [];
  const json: string[] = [];
  let delta: Record<string, unknown> = {};
  let outputTokens = 0;
  const types: string[] = [];
  for await (const raw of events) {
    const e = raw as unknown as Record<string, unknown> & { type: string; index: number };
    types.push(e.type);
    if (e.type === "content_block_start") {
      blocks[e.index] = { ...(e.content_block as object) };
      json[e.index] = "";
    } else if (e.type === "content_block_delta") {
      const d = e.delta as { type: string; text?: string; partial_json?: string };
      const block = blocks[e.index]!;
      if (d.type === "text_delta") block.text = `${String(block.text)}${d.text}`;
      else json[e.index] += d.partial_json ?? "";
    } else if (e.type === "content_block_stop") {
      if (blocks[e.index]!.type === "tool_use") blocks[e.index]!.input = JSON.parse(json[e.index]!);
    } else if (e.type === "message_delta") {
      delta = e.delta as Record<string, unknown>;
      outputTokens = (e.usage as { output_tokens: number }).output_tokens;
    }
  }
  return { blocks, delta, outputTokens, types };
}

describe("the offline model's answers", () => {
  const model = new OfflineProvider();

  it("answers with a text block without a citations key, labelled synthetic, with full usage", async () => {
    const m = await model.createMessage(request("Hello there"));
    expect(m.content).toHaveLength(1);
    expect(m.content[0]).toEqual({
      type: "text",
      text: `${SYNTHETIC_NOTICE} You said: Hello there`,
    });
    expect("citations" in m.content[0]!).toBe(false);
    expect(m).toMatchObject({ stop_reason: "end_turn", stop_sequence: null, role: "assistant" });
    expect(m.usage.input_tokens).toBeGreaterThan(0);
    expect(m.usage.output_tokens).toBeGreaterThan(0);
    expect(m.usage).toMatchObject({ cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
  });

  it('calls the tool tool_choice {type: "tool"} names, with no text before it and a valid input', async () => {
    const m = await model.createMessage(
      request("What is it like outside?", {
        tools,
        tool_choice: { type: "tool", name: "lookup_person" },
      }),
    );
    expect(m.stop_reason).toBe("tool_use");
    expect(m.content.map((b) => b.type)).toEqual(["tool_use"]);
    const call = m.content[0] as { name: string; input: unknown; id: string };
    expect(call.name).toBe("lookup_person");
    expect(call.id).toMatch(/^toolu_/);
    expect(() => person.parse(call.input)).not.toThrow();
  });

  it('calls a tool for tool_choice {type: "any"}: the one the prompt names, else the first', async () => {
    const named = await model.createMessage(
      request("please use lookup_person", { tools, tool_choice: { type: "any" } }),
    );
    expect(named.content.map((b) => b.type === "tool_use" && b.name)).toEqual(["lookup_person"]);
    const first = await model.createMessage(
      request("anything", { tools, tool_choice: { type: "any" } }),
    );
    const call = first.content[0] as { name: string; input: unknown };
    expect(call.name).toBe("get_weather");
    expect(() => weatherInput.parse(call.input)).not.toThrow();
  });

  it("refuses a forced tool that is not among the tools, as the API does (400)", async () => {
    await expect(
      model.createMessage(request("x", { tools, tool_choice: { type: "tool", name: "nope" } })),
    ).rejects.toMatchObject({ status: 400, type: "invalid_request_error" } as UpstreamError);
  });

  it("calls a tool the prompt names when tools are offered, with the arguments the prompt gives", async () => {
    const m = await model.createMessage(
      request('Use get_weather with city: "Oslo", days = 3 and unit is fahrenheit', { tools }),
    );
    expect(m.stop_reason).toBe("tool_use");
    expect(m.content.map((b) => b.type)).toEqual(["text", "tool_use"]);
    const call = m.content[1] as { name: string; input: unknown };
    expect(call).toMatchObject({
      name: "get_weather",
      input: { city: "Oslo", days: 3, unit: "fahrenheit" },
    });
    expect(() => weatherInput.parse(call.input)).not.toThrow();
  });

  it("answers in text when no tool is named, tool_choice is none, or the turn carries tool results", async () => {
    for (const r of [
      request("What's new?", { tools }),
      request("use get_weather", { tools, tool_choice: { type: "none" } }),
      {
        ...request("", { tools }),
        messages: [
          { role: "user" as const, content: "use get_weather" },
          {
            role: "assistant" as const,
            content: [{ type: "tool_use" as const, id: "toolu_1", name: "get_weather", input: {} }],
          },
          {
            role: "user" as const,
            content: [{ type: "tool_result" as const, tool_use_id: "toolu_1", content: "sunny" }],
          },
        ],
      },
    ]) {
      const m = await model.createMessage(r);
      expect(m.stop_reason).toBe("end_turn");
      expect(m.content.map((b) => b.type)).toEqual(["text"]);
    }
    const afterTool = await model.createMessage({
      ...request(""),
      messages: [
        {
          role: "user",
          content: [{ type: "tool_result", tool_use_id: "toolu_1", content: "sunny, 21 degrees" }],
        },
      ],
    });
    expect((afterTool.content[0] as { text: string }).text).toContain("sunny, 21 degrees");
  });

  it("answers output_config.format (and the beta's output_format) with JSON of the schema", async () => {
    const schema = z.toJSONSchema(person);
    const ga = await model.createMessage(
      request("name: Ada", { output_config: { format: { type: "json_schema", schema } } }),
    );
    const beta = await model.createMessage({
      ...request("someone"),
      output_format: { type: "json_schema", schema },
    } as MessageRequest);
    for (const m of [ga, beta]) {
      expect(m.content.map((b) => b.type)).toEqual(["text"]);
      const value = person.parse(JSON.parse((m.content[0] as { text: string }).text));
      expect(value.tags.length).toBeGreaterThanOrEqual(2);
    }
    expect(JSON.parse((ga.content[0] as { text: string }).text).name).toBe("Ada");
  });

  it("stops at the earliest stop sequence: text before it, stop_reason and stop_sequence set", async () => {
    const m = await model.createMessage(
      request("one two END three FIN four", { stop_sequences: ["FIN", "END"] }),
    );
    expect(m.stop_reason).toBe("stop_sequence");
    expect(m.stop_sequence).toBe("END");
    const text = (m.content[0] as { text: string }).text;
    expect(text.endsWith("one two ")).toBe(true);
    expect(text).not.toContain("END");
    const none = await model.createMessage(request("no marker", { stop_sequences: ["FIN"] }));
    expect(none).toMatchObject({ stop_reason: "end_turn", stop_sequence: null });
  });

  it("honours max_tokens: the answer is cut, stop_reason max_tokens, a tool call that does not fit dropped", async () => {
    const m = await model.createMessage(request("word ".repeat(200), { max_tokens: 5 }));
    expect(m.stop_reason).toBe("max_tokens");
    expect(m.usage.output_tokens).toBeLessThanOrEqual(5);
    expect((m.content[0] as { text: string }).text.length).toBeLessThanOrEqual(20);
    const cut = await model.createMessage(
      request("x", { tools, tool_choice: { type: "tool", name: "lookup_person" }, max_tokens: 3 }),
    );
    expect(cut.stop_reason).toBe("max_tokens");
    expect(cut.content.some((b) => b.type === "tool_use")).toBe(false);
  });
});

describe("the offline model's streams", () => {
  const model = new OfflineProvider();

  it("streams text in deltas that add up to the answer, with a ping, then the stop reason and usage", async () => {
    const r = request("Stream this please", { stop_sequences: ["please"] });
    const streamed = await collect(model.streamMessage(r));
    const whole = compose(r);
    expect(streamed.blocks).toEqual(whole.blocks);
    expect(streamed.blocks[0]).not.toHaveProperty("citations");
    expect(streamed.delta).toEqual({ stop_reason: "stop_sequence", stop_sequence: "please" });
    expect(streamed.outputTokens).toBe(whole.outputTokens);
    expect(streamed.types[0]).toBe("message_start");
    expect(streamed.types).toContain("ping");
    expect(streamed.types.at(-1)).toBe("message_stop");
    expect(streamed.types.filter((t) => t === "content_block_delta").length).toBeGreaterThan(3);
  });

  it("streams a forced tool call as content_block_start (input {}) and input_json_delta pieces", async () => {
    const events: StreamEvent[] = [];
    for await (const e of model.streamMessage(
      request("x", { tools, tool_choice: { type: "tool", name: "lookup_person" } }),
    ))
      events.push(e);
    const start = events.find((e) => e.type === "content_block_start") as unknown as {
      content_block: Record<string, unknown>;
    };
    expect(start.content_block).toMatchObject({
      type: "tool_use",
      name: "lookup_person",
      input: {},
    });
    const pieces = events.filter(
      (e) => e.type === "content_block_delta" && e.delta.type === "input_json_delta",
    );
    expect(pieces.length).toBeGreaterThan(1);
    const { blocks, delta } = await collect(
      (async function* () {
        yield* events;
      })(),
    );
    expect(delta.stop_reason).toBe("tool_use");
    expect(() => person.parse(blocks[0]!.input)).not.toThrow();
  });
});

describe("sampleOf: a value of a JSON schema", () => {
  it.each([
    ["an object with every kind of field", person],
    ["a union and a nullable", z.object({ v: z.union([z.number(), z.string()]), n: z.null() })],
    ["bounds and steps", z.object({ n: z.number().int().multipleOf(5).min(12).max(40) })],
    ["formats", z.object({ at: z.iso.datetime(), id: z.uuid(), url: z.url(), d: z.iso.date() })],
    ["a short array", z.object({ xs: z.array(z.number()).max(0) })],
    ["a tuple", z.tuple([z.string(), z.number()])],
    ["a literal and an enum", z.object({ k: z.literal("fixed"), e: z.enum(["a", "b"]) })],
  ])("satisfies %s", (_name, schema) => {
    const value = sampleOf(z.toJSONSchema(schema) as Record<string, unknown>, { prompt: "" });
    expect(() => schema.parse(value)).not.toThrow();
  });

  it("follows $ref into $defs (a recursive schema ends)", () => {
    interface Tree {
      label: string;
      children: Tree[];
    }
    const tree: z.ZodType<Tree> = z.object({
      label: z.string(),
      get children() {
        return z.array(tree);
      },
    });
    const json = z.toJSONSchema(z.object({ root: tree }));
    expect(JSON.stringify(json)).toContain("$ref");
    const value = sampleOf(json as Record<string, unknown>, { prompt: "" });
    expect(() => z.object({ root: tree }).parse(value)).not.toThrow();
  });
});
