/**
 * The SDK's HTTP client (app/src/llm/node-fetch.ts): what the SDK relies on from `fetch` —
 * status, headers, JSON bodies, streams that arrive as they are written, aborts that look like
 * the global fetch's — and the SDK itself running on it against the fake upstream.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { BaseAnthropic } from "@anthropic-ai/sdk/client";
import { Messages } from "@anthropic-ai/sdk/resources/messages/messages";
import { APIUserAbortError, APIConnectionError } from "@anthropic-ai/sdk/core/error";
import { createNodeFetch } from "../../app/src/llm/node-fetch";
import { startFakeAnthropic, FAKE_API_KEY, type FakeAnthropic } from "../support/fake-anthropic";

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

async function serve(handler: Handler): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString("utf8")));
    req.on("end", () => handler(req, res, body));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe("createNodeFetch", () => {
  const nodeFetch = createNodeFetch();

  it("sends method, headers and body, and returns status, headers and a JSON body", async () => {
    const server = await serve((req, res, body) => {
      res.writeHead(201, { "content-type": "application/json", "request-id": "req_1" });
      res.end(JSON.stringify({ method: req.method, key: req.headers["x-api-key"], body }));
    });
    try {
      const res = await nodeFetch(`${server.url}/v1/messages`, {
        method: "POST",
        headers: new Headers({ "x-api-key": "k-1", "content-type": "application/json" }),
        body: '{"a":1}',
      });
      expect(res.status).toBe(201);
      expect(res.ok).toBe(true);
      expect(res.headers.get("request-id")).toBe("req_1");
      expect(await res.json()).toEqual({ method: "POST", key: "k-1", body: '{"a":1}' });
    } finally {
      await server.close();
    }
  });

  it("serves a whole body as a Response does: url, text or JSON once, clone before reading; a body that is not JSON also as a web stream", async () => {
    const lines = '{"custom_id":"a"}\n{"custom_id":"b"}\n';
    const server = await serve((req, res) => {
      if (req.url === "/results") {
        res.writeHead(200, { "content-type": "application/binary" });
        res.end(lines);
        return;
      }
      res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
      res.end('{"text":"h\u00e9llo \ud83d\udc4b"}');
    });
    try {
      const url = `${server.url}/v1/messages`;
      const res = await nodeFetch(url, { method: "POST", body: "{}" });
      expect(res.url).toBe(url);
      expect(res.statusText).toBe("OK");
      expect(res.bodyUsed).toBe(false);
      // A JSON answer is read as JSON or text (what the SDK does): no web stream is made for it.
      expect(res.body).toBeNull();
      const copy = res.clone();
      expect(await res.json()).toEqual({ text: "héllo 👋" });
      expect(res.bodyUsed).toBe(true);
      // Read once, as fetch's bodies are: a second read is the TypeError the SDK tells apart.
      await expect(res.text()).rejects.toThrow(TypeError);
      expect(() => res.clone()).toThrow(TypeError);
      expect(await copy.text()).toBe('{"text":"héllo 👋"}');
      const blob = await (await nodeFetch(url, { method: "POST", body: "{}" })).blob();
      expect(blob.type).toBe("application/json; charset=utf-8");
      expect(await blob.text()).toBe('{"text":"héllo 👋"}');
      const bytes = await (await nodeFetch(url, { method: "POST", body: "{}" })).arrayBuffer();
      expect(Buffer.from(bytes).toString("utf8")).toBe('{"text":"héllo 👋"}');

      // Batch results (JSON lines) are read from the web stream, which uses the body up.
      const results = await nodeFetch(`${server.url}/results`);
      const chunks: Uint8Array[] = [];
      for await (const chunk of results.body!) chunks.push(chunk);
      expect(Buffer.concat(chunks).toString("utf8")).toBe(lines);
      expect(results.bodyUsed).toBe(true);
      await expect(results.text()).rejects.toThrow(TypeError);
    } finally {
      await server.close();
    }
  });

  it("keeps error statuses and their headers for the SDK's retry logic", async () => {
    const server = await serve((_req, res) => {
      res.writeHead(529, { "content-type": "application/json", "retry-after": "7" });
      res.end('{"type":"error","error":{"type":"overloaded_error","message":"busy"}}');
    });
    try {
      const res = await nodeFetch(server.url, { method: "POST", body: "{}" });
      expect(res.status).toBe(529);
      expect(res.headers.get("retry-after")).toBe("7");
      expect(await res.text()).toContain("overloaded_error");
    } finally {
      await server.close();
    }
  });

  it("hands an event stream over as it arrives, not when it ends", async () => {
    let finish: () => void = () => {};
    const server = await serve((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("event: ping\ndata: {}\n\n");
      finish = () => res.end("event: done\ndata: {}\n\n");
    });
    try {
      const res = await nodeFetch(server.url, { method: "POST", body: "{}" });
      const reader = res.body!.getReader();
      const first = await reader.read();
      expect(new TextDecoder().decode(first.value)).toBe("event: ping\ndata: {}\n\n");
      finish();
      let rest = "";
      for (let r = await reader.read(); !r.done; r = await reader.read())
        rest += new TextDecoder().decode(r.value);
      expect(rest).toBe("event: done\ndata: {}\n\n");
    } finally {
      await server.close();
    }
  });

  it("rejects with an AbortError when the signal aborts, before or during the call", async () => {
    const server = await serve(() => {
      // never answers
    });
    try {
      const controller = new AbortController();
      const pending = nodeFetch(server.url, {
        method: "POST",
        body: "{}",
        signal: controller.signal,
      });
      setTimeout(() => controller.abort(), 20);
      await expect(pending).rejects.toMatchObject({ name: "AbortError" });
      await expect(
        nodeFetch(server.url, { method: "POST", signal: AbortSignal.abort() }),
      ).rejects.toMatchObject({ name: "AbortError" });
    } finally {
      await server.close();
    }
  });

  it("rejects when the upstream cuts the connection mid-response", async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "content-length": "100" });
      res.write('{"partial":');
      setTimeout(() => res.socket?.destroy(), 10);
    });
    try {
      await expect(nodeFetch(server.url, { method: "POST", body: "{}" })).rejects.toThrow();
    } finally {
      await server.close();
    }
  });

  it("rejects when nothing listens", async () => {
    const server = await serve(() => {});
    const url = server.url;
    await server.close();
    await expect(nodeFetch(url, { method: "POST", body: "{}" })).rejects.toMatchObject({
      code: "ECONNREFUSED",
    });
  });
});

describe("the SDK on createNodeFetch", () => {
  let fake: FakeAnthropic;
  let messages: Messages;

  beforeAll(async () => {
    fake = await startFakeAnthropic({ behavior: { reply: "hello from the fake" } });
    const base = new BaseAnthropic({
      apiKey: FAKE_API_KEY,
      baseURL: fake.url,
      maxRetries: 0,
      fetch: createNodeFetch(),
    });
    messages = new Messages(base);
  });
  afterAll(() => fake.close());

  const request = {
    model: "claude-haiku-4-5",
    max_tokens: 64,
    messages: [{ role: "user" as const, content: "hi" }],
  };

  it("creates a message", async () => {
    const message = await messages.create(request);
    expect(message.content[0]).toMatchObject({ type: "text", text: "hello from the fake" });
    expect(message.usage.output_tokens).toBeGreaterThan(0);
  });

  it("streams a message, event by event", async () => {
    const types: string[] = [];
    let text = "";
    for await (const event of await messages.create({ ...request, stream: true })) {
      types.push(event.type);
      if (event.type === "content_block_delta" && event.delta.type === "text_delta")
        text += event.delta.text;
    }
    expect(types[0]).toBe("message_start");
    expect(types.at(-1)).toBe("message_stop");
    expect(text).toBe("hello from the fake");
  });

  it("maps an aborted call to the SDK's abort error", async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(messages.create(request, { signal: controller.signal })).rejects.toBeInstanceOf(
      APIUserAbortError,
    );
  });

  it("maps a refused connection to the SDK's connection error", async () => {
    const closed = await serve(() => {});
    const url = closed.url;
    await closed.close();
    const offline = new Messages(
      new BaseAnthropic({ apiKey: "k", baseURL: url, maxRetries: 0, fetch: createNodeFetch() }),
    );
    await expect(offline.create(request)).rejects.toBeInstanceOf(APIConnectionError);
  });
});
