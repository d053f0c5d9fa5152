/**
 * The stream hot path's pieces: the SSE reader over a Node stream (app/src/llm/sse-reader.ts), the
 * upstream text kept for the client's frames, node-fetch's Node body for that reader, and a route
 * writing its stream straight to the Node response (app/src/routes/stream-out.ts).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { PassThrough, Readable } from "node:stream";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import pino from "pino";
import { endsRead, keepWireData, sseFrame } from "../../app/src/llm/sse";
import { AnthropicProvider } from "../../app/src/llm/anthropic";
import { readSse, type SseMessage } from "../../app/src/llm/sse-reader";
import { createNodeFetch, takeNodeBody } from "../../app/src/llm/node-fetch";
import { directWrites } from "../../app/src/routes/direct-writes";
import { streamResponse } from "../../app/src/routes/stream-out";
import type { StreamEvent } from "../../app/src/llm/types";
import { setHeader, type AppEnv } from "../../app/src/http";

/** A local HTTP server for the enclosing describe block: listening before its tests, closed after. */
function serveLocally(handler: http.RequestListener): { url: () => string } {
  let server: http.Server;
  let url = "";
  beforeAll(async () => {
    server = http.createServer(handler);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return { url: () => url };
}

async function collect(chunks: Array<string | Buffer>): Promise<SseMessage[][]> {
  const batches: SseMessage[][] = [];
  for await (const batch of readSse(Readable.from(chunks))) batches.push(batch);
  return batches;
}

describe("readSse (the upstream's SSE from a Node stream)", () => {
  it("gives the events of one chunk as one batch, with their names and data", async () => {
    const batches = await collect([
      'event: message_start\ndata: {"type":"message_start"}\n\nevent: ping\ndata: {"type":"ping"}\n\n',
      ': a comment\nevent: message_stop\ndata: {"type":"message_stop"}\n\n',
    ]);
    expect(batches).toEqual([
      [
        { event: "message_start", data: '{"type":"message_start"}' },
        { event: "ping", data: '{"type":"ping"}' },
      ],
      [{ event: "message_stop", data: '{"type":"message_stop"}' }],
    ]);
  });

  it("joins events split across chunks, CRLF line ends and a UTF-8 character cut in two", async () => {
    const text = 'event: content_block_delta\r\ndata: {"text":"héllo ✓"}\r\n\r\n';
    const bytes = Buffer.from(text, "utf8");
    const cut = bytes.indexOf(Buffer.from("✓")) + 1; // inside the three bytes of ✓
    const batches = await collect([bytes.subarray(0, cut), bytes.subarray(cut)]);
    expect(batches.flat()).toEqual([{ event: "content_block_delta", data: '{"text":"héllo ✓"}' }]);
  });

  it("joins a multi-line data field with newlines and names an unnamed event null", async () => {
    const batches = await collect(['data: {"a":\ndata: 1}\n\n']);
    expect(batches.flat()).toEqual([{ event: null, data: '{"a":\n1}' }]);
  });

  it("drops an event the body ends in the middle of, as EventSource does", async () => {
    const batches = await collect([
      'event: ping\ndata: {"type":"ping"}\n\nevent: message_stop\ndata: {"ty',
    ]);
    expect(batches.flat().map((m) => m.event)).toEqual(["ping"]);
  });

  it("fails the stream on an event beyond MAX_SSE_EVENT_BYTES instead of buffering it", async () => {
    const huge = "x".repeat(1024 * 1024);
    const chunks = ["data: "];
    for (let i = 0; i < 17; i++) chunks.push(huge);
    await expect(collect(chunks)).rejects.toMatchObject({ status: 502 });
  });
});

describe("sseFrame (an event for the client)", () => {
  const delta = (): StreamEvent =>
    ({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "hi" } }) as never;

  it("sends an upstream event with the upstream's own data text, not a second serialisation", () => {
    const data =
      '{"type":"content_block_delta", "index":0,"delta":{"type":"text_delta","text":"hi"}}';
    const event = JSON.parse(data) as StreamEvent;
    keepWireData(event, "content_block_delta", data);
    expect(sseFrame(event)).toBe(`event: content_block_delta\ndata: ${data}\n\n`);
  });

  it("serialises an event that has no kept text, and a changed copy of one that has", () => {
    const event = delta();
    expect(sseFrame(event)).toBe(`event: content_block_delta\ndata: ${JSON.stringify(event)}\n\n`);
    const data =
      ' {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}';
    const kept = JSON.parse(data) as StreamEvent;
    keepWireData(kept, "content_block_delta", data);
    const copy = { ...kept, index: 1 } as StreamEvent;
    expect(sseFrame(copy)).toBe(`event: content_block_delta\ndata: ${JSON.stringify(copy)}\n\n`);
  });

  it("does not keep text that would not frame as it came: another name, or several lines", () => {
    const multi = '{"type":"content_block_delta",\n"index":0}';
    const a = JSON.parse(multi) as StreamEvent;
    keepWireData(a, "content_block_delta", multi);
    expect(sseFrame(a)).toBe(`event: content_block_delta\ndata: ${JSON.stringify(a)}\n\n`);
    const data = '{"type":"content_block_delta", "index":0}';
    const b = JSON.parse(data) as StreamEvent;
    keepWireData(b, "message", data);
    expect(sseFrame(b)).toBe(`event: content_block_delta\ndata: ${JSON.stringify(b)}\n\n`);
  });
});

describe("node-fetch's Node body", () => {
  const server = serveLocally((_req, res) => {
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.end('event: ping\ndata: {"type":"ping"}\n\n');
  });

  it("hands a stream's Node body to one taker, who reads it; the web body is then unusable", async () => {
    const res = await createNodeFetch()(server.url(), { method: "POST", body: "{}" });
    const node = takeNodeBody(res);
    expect(node).toBeDefined();
    expect(takeNodeBody(res)).toBeUndefined();
    const batches: SseMessage[][] = [];
    for await (const batch of readSse(node!)) batches.push(batch);
    expect(batches.flat()).toEqual([{ event: "ping", data: '{"type":"ping"}' }]);
    await expect(res.text()).rejects.toThrow();
  });

  it("keeps the web body working when it is read first: the Node body is then not handed out", async () => {
    const res = await createNodeFetch()(server.url(), { method: "POST", body: "{}" });
    const text = res.text();
    await new Promise((r) => setImmediate(r));
    expect(takeNodeBody(res)).toBeUndefined();
    expect(await text).toBe('event: ping\ndata: {"type":"ping"}\n\n');
  });

  it("hands out nothing for a response another fetch made", () => {
    expect(takeNodeBody(new Response("x"))).toBeUndefined();
  });
});

describe("AnthropicProvider's stream: where each event sat in its upstream read", () => {
  const frame = (type: string, data: object = {}) =>
    `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  // Three writes far enough apart to be three reads; an event with no data carries nothing.
  const server = serveLocally((_req, res) => {
    res.writeHead(200, { "content-type": "text/event-stream" });
    const delta = frame("content_block_delta", { index: 0, delta: { type: "text_delta" } });
    const reads = [
      frame("message_start", { message: { model: "m", usage: {} } }) +
        frame("content_block_start", { index: 0 }) +
        frame("ping") +
        "event: ping\ndata:\n\n",
      delta,
      delta + frame("message_delta", { usage: { output_tokens: 2 } }) + frame("message_stop"),
    ];
    const next = () => {
      res.write(reads.shift()!);
      if (reads.length > 0) setTimeout(next, 60);
      else res.end();
    };
    next();
  });

  it("marks the last event of each read, and those with more behind them, for the route's writes", async () => {
    const llm = new AnthropicProvider({
      apiKey: "sk-test",
      baseURL: server.url(),
      timeoutMs: 5_000,
    });
    const seen: Array<[string, boolean | undefined]> = [];
    const request = { model: "m", max_tokens: 8, messages: [{ role: "user", content: "hi" }] };
    for await (const event of llm.streamMessage(request as never)) {
      seen.push([event.type, endsRead(event)]);
    }
    expect(seen).toEqual([
      ["message_start", false],
      ["content_block_start", false],
      // The last event of its read that carries something: the empty ping after it is dropped.
      ["ping", true],
      ["content_block_delta", true],
      ["content_block_delta", false],
      ["message_delta", false],
      ["message_stop", true],
    ]);
  });

  it("leaves events it did not read itself unmarked", () => {
    expect(endsRead({ type: "ping" } as StreamEvent)).toBeUndefined();
  });
});

describe("streamResponse (a route writing its stream to the Node response)", () => {
  /** A route streaming three frames; an outer middleware records the Response the app saw. */
  function app(seen: Array<{ status: number; marker: string | null }>, aborted: boolean[]) {
    const hono = new Hono<AppEnv>();
    hono.use("*", async (c, next) => {
      c.set("logger", pino({ level: "silent" }));
      await next();
      seen.push({ status: c.res.status, marker: c.res.headers.get("x-marker") });
    });
    hono.get("/s", (c) => {
      setHeader(c, "x-marker", "set-before");
      return streamResponse(
        c,
        async (out) => {
          out.onAbort(() => void aborted.push(true));
          for (const n of [1, 2, 3]) {
            await out.write(`data: ${n}\n\n`);
            await new Promise((r) => setTimeout(r, 5));
          }
        },
        "text/event-stream",
      );
    });
    return hono;
  }

  async function run(direct: boolean) {
    const seen: Array<{ status: number; marker: string | null }> = [];
    const aborted: boolean[] = [];
    const hono = app(seen, aborted);
    const writes: string[] = [];
    const server = serve({
      fetch: direct ? directWrites(hono.fetch) : hono.fetch,
      port: 0,
      hostname: "127.0.0.1",
    }) as http.Server;
    // What is written to the Node response, and as what: before the adapter's own listener.
    server.prependListener("request", (_req, res: http.ServerResponse) => {
      const write = res.write.bind(res);
      res.write = ((chunk: unknown, ...rest: never[]) => {
        writes.push(typeof chunk);
        return write(chunk as never, ...rest);
      }) as typeof res.write;
    });
    await new Promise<void>((r) => (server.listening ? r() : server.once("listening", r)));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const res = await fetch(`${base}/s`);
      const body = await res.text();
      return { res, body, seen, writes, aborted };
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  }

  it("under directWrites: the headers set before, every frame, and a Response the middleware reads", async () => {
    const { res, body, seen, writes } = await run(true);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-marker")).toBe("set-before");
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    expect(body).toBe("data: 1\n\ndata: 2\n\ndata: 3\n\n");
    expect(seen).toEqual([{ status: 200, marker: "set-before" }]);
    // The route's three writes reach the response as it wrote them (Hono's stream would have
    // encoded each to bytes and passed it through a web stream and the adapter's reader).
    expect(writes).toEqual(["string", "string", "string"]);
  });

  it("served without directWrites, streams through Hono with the same answer", async () => {
    const { res, body, seen, writes } = await run(false);
    expect(writes.every((w) => w === "object")).toBe(true);
    expect(res.headers.get("x-marker")).toBe("set-before");
    expect(body).toBe("data: 1\n\ndata: 2\n\ndata: 3\n\n");
    expect(seen).toEqual([{ status: 200, marker: "set-before" }]);
  });

  it("tells the route when the client leaves mid-stream", async () => {
    const aborted: boolean[] = [];
    const hono = new Hono<AppEnv>();
    hono.use("*", async (c, next) => {
      c.set("logger", pino({ level: "silent" }));
      await next();
    });
    const ended = new PassThrough();
    hono.get("/s", (c) =>
      streamResponse(c, async (out) => {
        out.onAbort(() => void aborted.push(true));
        await out.write("data: 1\n\n");
        while (!out.aborted) await new Promise((r) => setTimeout(r, 5));
        ended.end();
      }),
    );
    const server = serve({
      fetch: directWrites(hono.fetch),
      port: 0,
      hostname: "127.0.0.1",
    }) as http.Server;
    await new Promise<void>((r) => (server.listening ? r() : server.once("listening", r)));
    const port = (server.address() as AddressInfo).port;
    try {
      await new Promise<void>((resolve) => {
        const req = http.get({ host: "127.0.0.1", port, path: "/s" }, (res) => {
          res.once("data", () => {
            req.destroy();
            resolve();
          });
        });
      });
      await new Promise((r) => ended.once("finish", r));
      expect(aborted).toEqual([true]);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
