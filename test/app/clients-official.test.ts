/**
 * The official SDK (@anthropic-ai/sdk) end to end, against `npm start` on embedded defaults and
 * against the service with a fake upstream (clients-setup.ts): messages.create and .stream, tool
 * use, countTokens, models.list / retrieve, beta.messages.create with betas (`?beta=true`), every
 * messages.batches method, a request without anthropic-version, and a body over the old 1 MB limit.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import Anthropic from "@anthropic-ai/sdk";
import { loadConfig } from "../../app/src/config";
import { TARGETS, toolPrompt, type ClientTarget } from "./clients-setup";

const MODEL = "claude-haiku-4-5";
const weather = {
  name: "get_weather",
  description: "The weather in a city",
  input_schema: {
    type: "object" as const,
    properties: { city: { type: "string" } },
    required: ["city"],
  },
};

async function waitFor<T>(fn: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 50));
  }
}

const textOf = (m: Anthropic.Message) =>
  m.content.map((b) => (b.type === "text" ? b.text : "")).join("");

describe.each(TARGETS)("the official SDK against $name", (kind) => {
  let target: ClientTarget;
  let sdk: Anthropic;

  beforeAll(async () => {
    target = await kind.start();
    sdk = new Anthropic({ baseURL: target.url, apiKey: target.apiKey, maxRetries: 0 });
  }, 90_000);
  afterAll(() => target?.close());

  it("messages.create: a text answer with usage", async () => {
    const m = await sdk.messages.create({
      model: MODEL,
      max_tokens: 200,
      messages: [{ role: "user", content: "Say hello to the SDK" }],
    });
    expect(m.type).toBe("message");
    expect(m.role).toBe("assistant");
    expect(m.stop_reason).toBe("end_turn");
    expect(textOf(m)).toContain("Say hello to the SDK");
    expect(m.usage.input_tokens).toBeGreaterThan(0);
    expect(m.usage.output_tokens).toBeGreaterThan(0);
    if (target.offline) expect(m.content[0]).not.toHaveProperty("citations");
  });

  it("messages.stream: text deltas add up to the final message, with its usage", async () => {
    const stream = sdk.messages.stream({
      model: MODEL,
      max_tokens: 200,
      messages: [{ role: "user", content: "Stream a greeting please" }],
    });
    let streamed = "";
    stream.on("text", (t) => (streamed += t));
    const final = await stream.finalMessage();
    expect(streamed).toBe(textOf(final));
    expect(streamed).toContain("Stream a greeting please");
    expect(final.stop_reason).toBe("end_turn");
    expect(final.usage.output_tokens).toBeGreaterThan(0);
  });

  it("tool use: a tool_use block with the tool's arguments, streamed or not", async () => {
    const body = {
      model: MODEL,
      max_tokens: 300,
      tools: [weather],
      tool_choice: { type: "tool" as const, name: "get_weather" },
      messages: [
        {
          role: "user" as const,
          content: toolPrompt("Weather?", "get_weather", { city: "Paris" }),
        },
      ],
    };
    const m = await sdk.messages.create(body);
    const streamed = await sdk.messages.stream(body).finalMessage();
    for (const answer of [m, streamed]) {
      expect(answer.stop_reason).toBe("tool_use");
      const call = answer.content.find((b) => b.type === "tool_use");
      expect(call).toMatchObject({ name: "get_weather", input: { city: "Paris" } });
    }
  });

  it("messages.countTokens: the input tokens messages.create then reports", async () => {
    const request = {
      model: MODEL,
      system: "You are terse.",
      messages: [{ role: "user" as const, content: "How many tokens is this question?" }],
    };
    const counted = await sdk.messages.countTokens(request);
    expect(counted.input_tokens).toBeGreaterThan(0);
    const created = await sdk.messages.create({ ...request, max_tokens: 50 });
    expect(created.usage.input_tokens).toBe(counted.input_tokens);
  });

  it("models.list and models.retrieve", async () => {
    const ids: string[] = [];
    for await (const m of sdk.models.list()) ids.push(m.id);
    expect(ids).toContain(MODEL);
    const m = await sdk.models.retrieve(MODEL);
    expect(m).toMatchObject({ id: MODEL, type: "model", display_name: "Claude Haiku 4.5" });
    await expect(sdk.models.retrieve("claude-nonesuch")).rejects.toBeInstanceOf(
      Anthropic.NotFoundError,
    );
  });

  it("beta.messages.create with betas (sent to /v1/messages?beta=true, betas passed upstream)", async () => {
    const betas = ["token-efficient-tools-2025-02-19"];
    const m = await sdk.beta.messages.create({
      model: MODEL,
      max_tokens: 200,
      betas,
      messages: [{ role: "user", content: "Hello from the beta namespace" }],
    });
    expect(m.content.some((b) => b.type === "text" && b.text.includes("beta namespace"))).toBe(
      true,
    );
    expect(m.usage.output_tokens).toBeGreaterThan(0);
    if (target.fake) {
      const upstream = target.fake.requests.filter((r) => r.path === "/v1/messages").at(-1)!;
      expect(upstream.headers["anthropic-beta"]).toBe(betas.join(","));
    }
  });

  it("messages.batches: create, retrieve, list, results, cancel, delete", async () => {
    const params = (content: string) => ({
      model: MODEL,
      max_tokens: 100,
      messages: [{ role: "user" as const, content }],
    });
    const created = await sdk.messages.batches.create({
      requests: [
        { custom_id: "first", params: params("first question") },
        { custom_id: "second", params: params("second question") },
      ],
    });
    expect(created).toMatchObject({ type: "message_batch", results_url: null });
    const ended = await waitFor(async () => {
      const b = await sdk.messages.batches.retrieve(created.id);
      return b.processing_status === "ended" ? b : undefined;
    });
    expect(ended.request_counts).toMatchObject({ succeeded: 2, processing: 0 });
    expect(ended.ended_at).not.toBeNull();

    const listed: string[] = [];
    for await (const b of sdk.messages.batches.list({ limit: 1 })) listed.push(b.id);
    expect(listed).toContain(created.id);

    const answers: Record<string, string> = {};
    for await (const line of await sdk.messages.batches.results(created.id)) {
      if (line.result.type === "succeeded") answers[line.custom_id] = textOf(line.result.message);
    }
    expect(answers.first).toContain("first question");
    expect(answers.second).toContain("second question");

    const second = await sdk.messages.batches.create({
      requests: [
        { custom_id: "a", params: params("to cancel") },
        { custom_id: "b", params: params("to cancel too") },
      ],
    });
    const canceled = await sdk.messages.batches.cancel(second.id);
    expect(canceled.id).toBe(second.id);
    // Offline, the requests may all have run before the cancel arrives; upstream they have not.
    expect(["canceling", "ended"]).toContain(canceled.processing_status);
    const done = await waitFor(async () => {
      const b = await sdk.messages.batches.retrieve(second.id);
      return b.processing_status === "ended" ? b : undefined;
    });
    expect(done.request_counts.succeeded + done.request_counts.canceled).toBe(2);
    if (!target.offline) expect(done.request_counts.canceled).toBe(2);

    const deleted = await sdk.messages.batches.delete(created.id);
    expect(deleted).toEqual({ id: created.id, type: "message_batch_deleted" });
    await expect(sdk.messages.batches.retrieve(created.id)).rejects.toBeInstanceOf(
      Anthropic.NotFoundError,
    );
  });

  it("a request without anthropic-version is the API's 400; with one, the upstream gets it as sent", async () => {
    const post = (headers: Record<string, string>) =>
      fetch(`${target.url}/v1/messages`, {
        method: "POST",
        headers: { "x-api-key": target.apiKey, "content-type": "application/json", ...headers },
        body: JSON.stringify({
          model: MODEL,
          max_tokens: 50,
          messages: [{ role: "user", content: "version header" }],
        }),
      });
    const bare = await post({});
    expect(bare.status).toBe(400);
    expect(await bare.json()).toMatchObject({
      type: "error",
      error: { type: "invalid_request_error", message: "anthropic-version: header is required" },
    });
    const res = await post({ "anthropic-version": "2023-06-01" });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { type: string }).type).toBe("message");
    if (target.fake) {
      const upstream = target.fake.requests.filter((r) => r.path === "/v1/messages").at(-1)!;
      expect(upstream.headers["anthropic-version"]).toBe("2023-06-01");
    }
  });

  it("the curl command npm start prints answers as printed", async () => {
    if (!target.banner) return; // printed on embedded defaults only
    const printed = /^Try: (curl .*)$/m.exec(target.banner)?.[1];
    expect(printed).toBeDefined();
    const { stdout } = await promisify(execFile)("sh", ["-c", printed!]);
    expect(JSON.parse(stdout)).toMatchObject({ type: "message", role: "assistant" });
  });

  it("accepts a 2 MB image, over the old 1 MB body limit (the default is the API's 32 MB)", async () => {
    expect(loadConfig({}).MAX_BODY_BYTES).toBe(32 * 1024 * 1024);
    const data = Buffer.alloc(2 * 1024 * 1024, 7).toString("base64");
    const m = await sdk.messages.create({
      model: MODEL,
      max_tokens: 50,
      messages: [
        {
          role: "user",
          content: [
            { type: "image", source: { type: "base64", media_type: "image/png", data } },
            { type: "text", text: "What is in this image?" },
          ],
        },
      ],
    });
    expect(textOf(m)).toContain("What is in this image?");
  });
});
