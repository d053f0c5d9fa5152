/**
 * The Vercel AI SDK (`ai` 6 with `@ai-sdk/anthropic` 3, createAnthropic({baseURL: <service>/v1}))
 * end to end, against `npm start` on embedded defaults and against the service with a fake
 * upstream (clients-setup.ts): generateText, streamText, a tool loop over steps (tools with
 * execute, stopWhen stepCountIs), streamed tool calls, and generateObject with a zod schema. The
 * provider validates every response against its own schema, so a protocol slip (`citations: null`
 * on a text block, a malformed stream event) fails these calls.
 */
import { createAnthropic } from "@ai-sdk/anthropic";
import { generateObject, generateText, stepCountIs, streamText, tool } from "ai";
import * as z from "zod";
import { jsonPrompt, TARGETS, toolPrompt, type ClientTarget } from "./clients-setup";

const MODEL = "claude-sonnet-4-6";

const forecasts: string[] = [];
const weatherTool = tool({
  description: "The weather in a city",
  inputSchema: z.object({ city: z.string().min(1) }),
  execute: async ({ city }) => {
    forecasts.push(city);
    return { city, forecast: "sunny", celsius: 21 };
  },
});

const person = z.object({
  name: z.string(),
  age: z.number().int().min(0),
  languages: z.array(z.string()).min(1),
});

describe.each(TARGETS)("the Vercel AI SDK against $name", (kind) => {
  let target: ClientTarget;
  let model: ReturnType<ReturnType<typeof createAnthropic>>;

  beforeAll(async () => {
    target = await kind.start();
    model = createAnthropic({ baseURL: `${target.url}/v1`, apiKey: target.apiKey })(MODEL);
  }, 90_000);
  afterAll(() => target?.close());

  it("generateText: the text, finish reason and usage", async () => {
    const result = await generateText({ model, prompt: "Hello from generateText", maxRetries: 0 });
    expect(result.text).toContain("Hello from generateText");
    expect(result.finishReason).toBe("stop");
    expect(result.usage.inputTokens).toBeGreaterThan(0);
    expect(result.usage.outputTokens).toBeGreaterThan(0);
  });

  it("streamText: the streamed pieces make up the text, with usage", async () => {
    const result = streamText({ model, prompt: "Hello from streamText", maxRetries: 0 });
    const pieces: string[] = [];
    for await (const piece of result.textStream) pieces.push(piece);
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.join("")).toBe(await result.text);
    expect(await result.text).toContain("Hello from streamText");
    expect(await result.finishReason).toBe("stop");
    const usage = await result.usage;
    expect(usage.inputTokens).toBeGreaterThan(0);
    expect(usage.outputTokens).toBeGreaterThan(0);
  });

  it("a tool loop: the model calls the tool with valid arguments, gets its result, then answers", async () => {
    forecasts.length = 0;
    const result = await generateText({
      model,
      tools: { get_weather: weatherTool },
      stopWhen: stepCountIs(4),
      prompt: toolPrompt("What is the weather in Paris?", "get_weather", { city: "Paris" }),
      maxRetries: 0,
    });
    expect(result.steps.length).toBe(2);
    const [first, last] = [result.steps[0]!, result.steps.at(-1)!];
    expect(first.finishReason).toBe("tool-calls");
    expect(first.toolCalls).toHaveLength(1);
    expect(first.toolCalls[0]).toMatchObject({ toolName: "get_weather", input: { city: "Paris" } });
    expect(first.toolResults[0]?.output).toEqual({ city: "Paris", forecast: "sunny", celsius: 21 });
    expect(forecasts).toEqual(["Paris"]);
    // The last step answers from the tool's result.
    expect(last.finishReason).toBe("stop");
    expect(last.toolCalls).toHaveLength(0);
    expect(result.text).toContain("sunny");
    expect(result.totalUsage.inputTokens).toBeGreaterThan(result.steps[0]!.usage.inputTokens!);
  });

  it("streamText with tools: the tool call streams (input_json_delta) and the loop goes on", async () => {
    forecasts.length = 0;
    const result = streamText({
      model,
      tools: { get_weather: weatherTool },
      stopWhen: stepCountIs(4),
      prompt: toolPrompt("Streamed weather for Oslo?", "get_weather", { city: "Oslo" }),
      maxRetries: 0,
    });
    const kinds = new Set<string>();
    for await (const part of result.fullStream) kinds.add(part.type);
    expect([...kinds]).toEqual(
      expect.arrayContaining(["tool-input-start", "tool-input-delta", "tool-call", "tool-result"]),
    );
    const steps = await result.steps;
    expect(steps[0]!.toolCalls[0]).toMatchObject({
      toolName: "get_weather",
      input: { city: "Oslo" },
    });
    expect(forecasts).toEqual(["Oslo"]);
    expect(await result.text).toContain("sunny");
  });

  it("generateObject: an object that matches the zod schema, with the values asked for", async () => {
    const wanted = { name: "Ada", age: 36, languages: ["English"] };
    const result = await generateObject({
      model,
      schema: person,
      prompt: jsonPrompt("Describe a person with name: Ada, age: 36.", wanted),
      maxRetries: 0,
    });
    expect(() => person.parse(result.object)).not.toThrow();
    expect(result.object).toMatchObject({ name: "Ada", age: 36 });
    expect(result.usage.outputTokens).toBeGreaterThan(0);
  });
});
