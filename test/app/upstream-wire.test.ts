/**
 * AnthropicProvider's two ways of sending a Messages call (anthropic.ts `calls`): through the SDK's
 * request path, and the same request sent by anthropic-wire.ts. Every case runs both ways against
 * one scripted server: what reached the server (method, path, every header, the body) and what came
 * back (the message, the events, or the UpstreamError with its status, type, message, headers and
 * error code) must be the same. A new SDK that sends or reads something differently fails here.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { AnthropicProvider } from "../../app/src/llm/anthropic";
import type { CallOptions, MessageRequest, StreamEvent } from "../../app/src/llm/types";
import { closedPort } from "../support/ports";

interface Seen {
  method: string;
  url: string;
  headers: Array<[string, string]>;
  body: string;
}

type Reply = (res: http.ServerResponse, req: http.IncomingMessage) => void;

const json = (status: number, body: unknown, headers: Record<string, string> = {}): Reply => {
  return (res) => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  };
};

const MESSAGE = {
  id: "msg_01",
  type: "message",
  role: "assistant",
  model: "claude-haiku-4-5",
  content: [{ type: "text", text: "hello" }],
  stop_reason: "end_turn",
  stop_sequence: null,
  usage: { input_tokens: 5, output_tokens: 1 },
};

const frame = (type: string, data: object = {}) =>
  `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;

const SSE =
  frame("message_start", { message: { ...MESSAGE, content: [], stop_reason: null } }) +
  frame("ping") +
  frame("content_block_start", { index: 0, content_block: { type: "text", text: "" } }) +
  frame("content_block_delta", { index: 0, delta: { type: "text_delta", text: "hello" } }) +
  frame("content_block_stop", { index: 0 }) +
  frame("message_delta", { delta: { stop_reason: "end_turn" }, usage: { output_tokens: 1 } }) +
  frame("message_stop");

/** Replies by the request id the provider sends (x-agent-request-id). */
const REPLIES: Record<string, Reply> = {
  ok: json(200, MESSAGE, { "request-id": "req_ok" }),
  stream: (res) => {
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.end(SSE);
  },
  "bad-request": json(400, {
    type: "error",
    error: { type: "invalid_request_error", message: "max_tokens: too large" },
  }),
  overloaded: json(
    529,
    {
      type: "error",
      error: { type: "overloaded_error", message: "Overloaded", details: { error_code: "busy" } },
      request_id: "req_529",
    },
    { "retry-after": "7", "retry-after-ms": "7000", "x-should-retry": "true" },
  ),
  "spend-cap": json(429, {
    type: "error",
    error: {
      type: "rate_limit_error",
      message: "spend limit",
      details: { error_code: "enforced_spend_limit_reached" },
    },
  }),
  "html-error": (res) => {
    res.writeHead(502, { "content-type": "text/html" });
    res.end("<html>bad gateway</html>");
  },
  "empty-error": (res) => {
    res.writeHead(503);
    res.end();
  },
  "text-answer": (res) => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("not json");
  },
  "broken-json": (res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end("{not json");
  },
  "cut-short": (res) => {
    res.writeHead(200, { "content-type": "application/json", "content-length": "500" });
    res.write('{"id":"msg_');
    setTimeout(() => res.destroy(), 20);
  },
  slow: (res) => {
    const timer = setTimeout(() => json(200, MESSAGE)(res, undefined as never), 1_000);
    // The client has given up by then: no timer left to hold the jest worker open after the file.
    res.on("close", () => clearTimeout(timer));
  },
};

describe("AnthropicProvider: the SDK's calls and the wire's are the same calls", () => {
  let server: http.Server;
  let url: string;
  const seen: Seen[] = [];
  const providers = (baseURL: string, timeoutMs = 5_000) =>
    (["sdk", "wire"] as const).map(
      (calls) => new AnthropicProvider({ apiKey: "sk-ant-test", baseURL, timeoutMs, calls }),
    );

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (chunk: string) => (body += chunk));
      req.on("end", () => {
        const headers: Array<[string, string]> = [];
        for (let i = 0; i + 1 < req.rawHeaders.length; i += 2)
          headers.push([req.rawHeaders[i]!.toLowerCase(), req.rawHeaders[i + 1]!]);
        headers.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        seen.push({ method: req.method!, url: req.url!, headers, body });
        const reply = REPLIES[String(req.headers["x-agent-request-id"])] ?? json(404, {});
        reply(res, req);
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    // A path under the base URL, as a gateway in front of the API would have.
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/anthropic/`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const request = (extra: Record<string, unknown> = {}) =>
    ({
      model: "claude-haiku-4-5",
      max_tokens: 16,
      messages: [{ role: "user", content: "hi" }],
      ...extra,
    }) as MessageRequest;

  /** What a call gave back, comparable across the two ways. */
  const outcome = async (fn: () => Promise<unknown>) => {
    try {
      return { value: await fn() };
    } catch (err) {
      const e = err as Error & Record<string, unknown>;
      return {
        error: {
          class: e.constructor.name,
          status: e.status,
          type: e.type,
          message: e.message,
          headers: e.headers,
          remote: e.remote,
          errorCode: e.errorCode,
        },
      };
    }
  };

  /** Runs `call` the SDK's way and the wire's way; both outcomes and both requests the server saw. */
  const bothWays = async (
    call: (p: AnthropicProvider) => Promise<unknown>,
    baseURL = url,
    timeoutMs?: number,
  ) => {
    const results = [];
    const requests = [];
    for (const provider of providers(baseURL, timeoutMs)) {
      const before = seen.length;
      results.push(await outcome(() => call(provider)));
      requests.push(seen.slice(before));
    }
    return { results, requests };
  };

  const json200 = (requestId: string, options: CallOptions = {}, extra = {}) =>
    bothWays((p) => p.createMessage(request(extra), { requestId, ...options }));

  it("sends the same request (path under the base URL, every header, the body) and reads the same message", async () => {
    const { results, requests } = await json200("ok");
    expect(results[1]).toEqual(results[0]);
    expect(results[0]).toEqual({ value: MESSAGE });
    expect(requests[1]).toEqual(requests[0]);
    expect(requests[0]).toHaveLength(1);
    expect(requests[0]![0]!.url).toBe("/anthropic/v1/messages");
    // What the wire takes from the SDK: its auth, version, user agent and x-stainless set.
    const names = requests[1]![0]!.headers.map(([name]) => name);
    expect(names).toEqual(
      expect.arrayContaining(["anthropic-version", "user-agent", "x-stainless-timeout"]),
    );
  });

  it("sends the client's version and betas, and the body's user_profile_id and workspace_id as headers, as the SDK does", async () => {
    const { results, requests } = await json200(
      "ok",
      { forward: { version: "2023-06-01", beta: "prompt-caching-2024-07-31" } },
      { user_profile_id: "up_1", workspace_id: "wrkspc_1", metadata: { user_id: "u" } },
    );
    expect(results[1]).toEqual(results[0]);
    expect(requests[1]).toEqual(requests[0]);
    const headers = Object.fromEntries(requests[1]![0]!.headers);
    expect(headers).toMatchObject({
      "anthropic-version": "2023-06-01",
      "anthropic-beta": "prompt-caching-2024-07-31",
      "anthropic-user-profile-id": "up_1",
      "anthropic-workspace-id": "wrkspc_1",
    });
    expect(JSON.parse(requests[1]![0]!.body)).not.toHaveProperty("workspace_id");
  });

  it("sets x-stainless-timeout from the call's own timeout", async () => {
    const { requests } = await json200("ok", { timeoutMs: 42_000 });
    expect(requests[1]).toEqual(requests[0]);
    expect(Object.fromEntries(requests[1]![0]!.headers)["x-stainless-timeout"]).toBe("42");
  });

  it("streams the same events", async () => {
    const events = (p: AnthropicProvider) => async () => {
      const out: StreamEvent[] = [];
      for await (const e of p.streamMessage(request(), { requestId: "stream" })) out.push(e);
      return out;
    };
    const { results, requests } = await bothWays((p) => events(p)());
    expect(results[1]).toEqual(results[0]);
    expect((results[0]!.value as StreamEvent[]).map((e) => e.type)).toEqual([
      "message_start",
      "ping",
      "content_block_start",
      "content_block_delta",
      "content_block_stop",
      "message_delta",
      "message_stop",
    ]);
    expect(requests[1]).toEqual(requests[0]);
  });

  it.each([
    ["an error with its type and message", "bad-request"],
    ["an overload with retry-after, x-should-retry and an error code", "overloaded"],
    ["a spend cap, told apart by its error code", "spend-cap"],
    ["an error page that is not JSON", "html-error"],
    ["an error status with no body", "empty-error"],
    ["a 2xx that is not JSON (the SDK hands the text back)", "text-answer"],
    ["a 2xx whose JSON does not parse", "broken-json"],
    ["a connection closed before the last byte", "cut-short"],
  ])("fails the same way on %s", async (_label, requestId) => {
    const { results } = await json200(requestId);
    expect(results[1]).toEqual(results[0]);
    expect(results[0]).toHaveProperty(requestId === "text-answer" ? "value" : "error");
  });

  it("fails the same way when a stream is refused", async () => {
    const { results } = await bothWays(async (p) => {
      for await (const _ of p.streamMessage(request(), { requestId: "overloaded" })) void _;
    });
    expect(results[1]).toEqual(results[0]);
    expect(results[0]!.error).toMatchObject({ status: 529, type: "overloaded_error" });
  });

  it("times out the same way (504), and gives up a call the caller aborts the same way (499)", async () => {
    const timedOut = await bothWays(
      (p) => p.createMessage(request(), { requestId: "slow" }),
      url,
      100,
    );
    expect(timedOut.results[1]).toEqual(timedOut.results[0]);
    expect(timedOut.results[0]!.error).toMatchObject({ status: 504, type: "timeout_error" });

    const aborted = await bothWays((p) =>
      p.createMessage(request(), { requestId: "slow", signal: AbortSignal.timeout(50) }),
    );
    expect(aborted.results[1]).toEqual(aborted.results[0]);
    expect(aborted.results[0]!.error).toMatchObject({ status: 499, type: "aborted" });

    const before = new AbortController();
    before.abort();
    const early = await bothWays((p) =>
      p.createMessage(request(), { requestId: "ok", signal: before.signal }),
    );
    expect(early.results[1]).toEqual(early.results[0]);
    expect(early.requests).toEqual([[], []]);
  });

  it("fails the same way when nothing listens (a connection error naming its code)", async () => {
    const port = await closedPort();
    const { results } = await bothWays(
      (p) => p.createMessage(request(), { requestId: "ok" }),
      `http://127.0.0.1:${port}`,
    );
    expect(results[1]).toEqual(results[0]);
    expect(results[0]!.error).toMatchObject({
      status: 502,
      type: "api_connection_error",
      // The failure's code (ECONNREFUSED) when its error is of this realm; jest's sandbox gives
      // Node's errors from another realm, which both ways (as the SDK's castToError) call "Error".
      message: expect.stringMatching(new RegExp(`^Connection to 127\\.0\\.0\\.1:${port} failed: `)),
    });
  });
});
