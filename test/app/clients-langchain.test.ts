/**
 * LangChain (`@langchain/anthropic` ChatAnthropic with anthropicApiUrl = the service) end to end,
 * against `npm start` on embedded defaults and against the service with a fake upstream
 * (clients-setup.ts): invoke, stream, bindTools (a tool call comes back, its result goes back in),
 * and withStructuredOutput with a zod schema (a forced tool call, LangChain's default method, and
 * the JSON-schema output format).
 */
import { ChatAnthropic } from "@langchain/anthropic";
import { AIMessageChunk, HumanMessage, ToolMessage } from "@langchain/core/messages";
import { tool } from "@langchain/core/tools";
import * as z from "zod";
import { jsonPrompt, TARGETS, toolPrompt, type ClientTarget } from "./clients-setup";

const MODEL = "claude-haiku-4-5";

const weather = tool(async ({ city }) => `sunny and 21 degrees in ${city}`, {
  name: "get_weather",
  description: "The weather in a city",
  schema: z.object({ city: z.string().min(1) }),
});

const person = z.object({ name: z.string(), age: z.number().int().min(0) });

const textOf = (content: unknown): string =>
  typeof content === "string"
    ? content
    : Array.isArray(content)
      ? content.map((c: { text?: unknown }) => (typeof c.text === "string" ? c.text : "")).join("")
      : "";

describe.each(TARGETS)("LangChain's ChatAnthropic against $name", (kind) => {
  let target: ClientTarget;
  let llm: ChatAnthropic;

  beforeAll(async () => {
    target = await kind.start();
    llm = new ChatAnthropic({
      model: MODEL,
      anthropicApiUrl: target.url,
      apiKey: target.apiKey,
      maxTokens: 300,
      maxRetries: 0,
    });
  }, 90_000);
  afterAll(() => target?.close());

  it("invoke: an AI message with the text and usage metadata", async () => {
    const answer = await llm.invoke("Hello from LangChain");
    expect(textOf(answer.content)).toContain("Hello from LangChain");
    expect(answer.usage_metadata?.input_tokens).toBeGreaterThan(0);
    expect(answer.usage_metadata?.output_tokens).toBeGreaterThan(0);
    expect(answer.response_metadata.stop_reason).toBe("end_turn");
  });

  it("stream: chunks that add up to the answer, with usage", async () => {
    let whole: AIMessageChunk | undefined;
    let chunks = 0;
    for await (const chunk of await llm.stream("Streaming from LangChain")) {
      chunks++;
      whole = whole ? whole.concat(chunk) : chunk;
    }
    expect(chunks).toBeGreaterThan(2);
    expect(textOf(whole!.content)).toContain("Streaming from LangChain");
    expect(whole!.usage_metadata?.input_tokens).toBeGreaterThan(0);
    expect(whole!.usage_metadata?.output_tokens).toBeGreaterThan(0);
  });

  it("bindTools: a tool call comes back with valid arguments; its result goes back in", async () => {
    const withTools = llm.bindTools([weather]);
    const question = new HumanMessage(
      toolPrompt("How is the weather in Lisbon?", "get_weather", { city: "Lisbon" }),
    );
    const answer = await withTools.invoke([question]);
    expect(answer.tool_calls).toHaveLength(1);
    const call = answer.tool_calls![0]!;
    expect(call).toMatchObject({ name: "get_weather", args: { city: "Lisbon" } });
    expect(call.id).toEqual(expect.any(String));
    expect(answer.response_metadata.stop_reason).toBe("tool_use");

    const result = await weather.invoke(call);
    expect(result).toBeInstanceOf(ToolMessage);
    const final = await withTools.invoke([question, answer, result]);
    expect(final.tool_calls ?? []).toHaveLength(0);
    expect(textOf(final.content)).toContain("sunny and 21 degrees in Lisbon");
  });

  it("withStructuredOutput: an object of the zod schema (forced tool call, the default)", async () => {
    const extract = llm.withStructuredOutput(person);
    // LangChain names the forced tool "extract" when the schema has no name.
    const prompt = toolPrompt("Extract the person from: Grace, 85.", "extract", {
      name: "Grace",
      age: 85,
    });
    const value = await extract.invoke(prompt);
    expect(person.parse(value)).toEqual({ name: "Grace", age: 85 });
  });

  it("withStructuredOutput with method jsonSchema: JSON in the output format", async () => {
    const extract = llm.withStructuredOutput(person, { method: "jsonSchema" });
    const value = await extract.invoke(
      jsonPrompt("Extract the person with name: Alan, age: 41.", { name: "Alan", age: 41 }),
    );
    expect(person.parse(value)).toEqual({ name: "Alan", age: 41 });
  });
});
