/**
 * A `fetch` for the Anthropic SDK over node:http / node:https with keep-alive agents.
 *
 * Why not the global fetch: every call through Node's built-in fetch (undici) builds and
 * validates a WHATWG Request, clones its body and runs the fetch controller's algorithm; against
 * the benchmark's fake upstream the SDK's `messages.create` cost ~400 µs of CPU per call with it
 * and ~250 µs with this adapter (streams: ~450 and ~300 µs). The SDK still
 * gets a real `Response`: a JSON answer is read into one buffer, a stream (`text/event-stream`, or
 * Bedrock's `application/vnd.amazon.eventstream`) is handed over as a web stream as it arrives, so
 * streaming keeps its pacing. That web stream is made only when the body is first read: a reader
 * that can take the Node stream itself (`takeNodeBody`: the SSE reader of sdk-provider.ts) reads
 * the socket with no web stream between.
 *
 * Anything this adapter does not handle (a streamed request body, a non-HTTP URL) goes to the
 * global fetch unchanged.
 */
import http from "node:http";
import https from "node:https";
import { Readable } from "node:stream";

type FetchInput = string | URL | Request;

/** Keep-alive agents by protocol: the fetch's, shared with anthropic-wire.ts's calls. */
export interface NodeAgents {
  "http:": http.Agent;
  "https:": https.Agent;
}

/** Keep-alive agents for an upstream client: one per protocol. */
export function nodeAgents(): NodeAgents {
  const agentOptions: http.AgentOptions = {
    keepAlive: true,
    // As the global fetch: no cap on sockets per upstream host; up to 256 idle ones kept.
    maxSockets: Infinity,
    maxFreeSockets: 256,
    // Reuse the most recently used socket: the others may idle out and be closed.
    scheduling: "lifo",
  };
  return { "http:": new http.Agent(agentOptions), "https:": new https.Agent(agentOptions) };
}

/** The fetch, over `agents` (shared with anthropic-wire.ts's calls, where the provider has both). */
export function createNodeFetch(agents: NodeAgents = nodeAgents()): typeof fetch {
  const nodeFetch = (input: FetchInput, init: RequestInit = {}): Promise<Response> => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const protocol = url.startsWith("https:") ? "https:" : url.startsWith("http:") ? "http:" : null;
    const body = init.body;
    const isRequest = typeof input === "object" && !(input instanceof URL);
    const isPlainBody = body == null || typeof body === "string" || body instanceof Uint8Array;
    if (protocol === null || isRequest || !isPlainBody) {
      return fetch(input, init);
    }
    const signal = init.signal ?? undefined;
    if (signal?.aborted) return Promise.reject(abortError(signal));
    return new Promise<Response>((resolve, reject) => {
      const fail = (err: Error) => reject(signal?.aborted ? abortError(signal) : err);
      const send = protocol === "https:" ? https.request : http.request;
      const req = send(
        url,
        {
          method: init.method ?? "GET",
          headers: plainHeaders(init.headers),
          agent: agents[protocol],
          signal,
        },
        (res) => {
          const headers = headersOf(res);
          const status = res.statusCode ?? 502;
          const init = { status, statusText: res.statusMessage, headers };
          if (status === 204 || status === 304) {
            res.resume();
            resolve(new Response(null, init));
            return;
          }
          const type = res.headers["content-type"];
          if (isStream(type)) {
            const body: NodeBody = { res, taken: null };
            const response = new Response(lazyWebBody(body), init);
            // Offered to a Node-stream reader only as SSE (Bedrock's binary event stream is not).
            if (type?.startsWith("text/event-stream")) nodeBodies.set(response, body);
            resolve(response);
            return;
          }
          readWhole(
            res,
            (whole) =>
              // The Lambda bundles keep the global Response (AGENT_BUNDLE_LAMBDA, scripts/build.mjs):
              // no adapter replaces it there, and bedrock.js has no room for the class.
              resolve(
                process.env.AGENT_BUNDLE_LAMBDA === "1"
                  ? new Response(whole, init)
                  : (new BufferedResponse(url, whole, init) as unknown as Response),
              ),
            fail,
          );
        },
      );
      req.on("error", fail);
      req.end(body ?? undefined);
    });
  };
  return nodeFetch as typeof fetch;
}

/** A response's headers as fetch gives them, in the order they came. */
export function headersOf(res: http.IncomingMessage): Headers {
  const headers = new Headers();
  const raw = res.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!);
  return headers;
}

/**
 * Reads a body whole: `done` gets its bytes; `fail` gets a stream error, or a connection closed
 * before the last byte.
 */
export function readWhole(
  res: http.IncomingMessage,
  done: (data: Buffer) => void,
  fail: (err: Error) => void,
): void {
  const chunks: Buffer[] = [];
  res.on("data", (chunk: Buffer) => chunks.push(chunk));
  res.on("end", () => done(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
  res.on("error", fail);
  res.on("close", () => {
    if (!res.complete) fail(new Error("upstream closed the connection mid-response"));
  });
}

/**
 * A response whose body was read whole (JSON answers and errors): what the SDK reads of a Response
 * (status, headers, url, the body as JSON or text), served from the buffer. Not the global
 * Response: in the service @hono/node-server replaces it with a lightweight class that builds the
 * real (undici) Response the moment `url` or `body` is read, and the SDK reads both on every
 * call (`makeRequest`, `readBody`): profiled at 256 connections (`npm run bench -- --only peers
 * --cpu-prof`, 2026-12-06), that conversion and undici's body reading took ~5 % of the service's
 * CPU. A web stream is made only if `body` is read, over the same bytes.
 */
class BufferedResponse {
  readonly ok: boolean;
  readonly status: number;
  readonly statusText: string;
  readonly headers: Headers;
  readonly redirected = false;
  readonly type = "basic";
  private readonly isJson: boolean;
  private used = false;
  private stream: ReadableStream<Uint8Array> | undefined;

  constructor(
    readonly url: string,
    private readonly data: Buffer,
    init: { status: number; statusText?: string; headers: Headers },
  ) {
    this.status = init.status;
    this.ok = init.status >= 200 && init.status < 300;
    this.statusText = init.statusText ?? "";
    this.headers = init.headers;
    const type = init.headers.get("content-type") ?? "";
    this.isJson = /^application\/(?:[\w.+-]*\+)?json\s*(?:;|$)/i.test(type);
  }

  get bodyUsed(): boolean {
    return this.used;
  }

  /**
   * A JSON answer has no web stream (null): the SDK reads JSON with json() and looks at `body` on
   * every call (its abandonment backstop, readBody's lock check), and making one cost ~2 % of the
   * service's CPU at 256 connections (`--cpu-prof`, 2026-12-06). Other bodies (batch results as
   * JSON lines, files) get one, made on first access.
   */
  get body(): ReadableStream<Uint8Array> | null {
    if (this.isJson) return null;
    // Pulled only when read (highWaterMark 0): reading it uses the body up, as text() does.
    this.stream ??= new ReadableStream<Uint8Array>(
      {
        pull: (controller) => {
          const first = !this.used;
          this.used = true;
          if (first && this.data.length > 0) controller.enqueue(new Uint8Array(this.data));
          controller.close();
        },
      },
      { highWaterMark: 0 },
    );
    return this.stream;
  }

  /** Read once, as fetch's bodies are (a locked or pulled stream counts as read). */
  private get unusable(): boolean {
    return this.used || this.stream?.locked === true;
  }

  /** The body handed to `read`, or the TypeError fetch rejects a second read with. */
  private consume<T>(read: (data: Buffer) => T): Promise<T> {
    if (this.unusable)
      return Promise.reject(new TypeError("Body is unusable: Body has already been read"));
    this.used = true;
    try {
      return Promise.resolve(read(this.data));
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  text(): Promise<string> {
    return this.consume((data) => data.toString("utf8"));
  }

  json(): Promise<unknown> {
    return this.text().then((text) => JSON.parse(text) as unknown);
  }

  arrayBuffer(): Promise<ArrayBuffer> {
    return this.consume(
      (b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer,
    );
  }

  bytes(): Promise<Uint8Array> {
    return this.arrayBuffer().then((b) => new Uint8Array(b));
  }

  blob(): Promise<Blob> {
    return this.arrayBuffer().then(
      (b) => new Blob([b], { type: this.headers.get("content-type") ?? "" }),
    );
  }

  clone(): BufferedResponse {
    if (this.unusable) throw new TypeError("Response.clone: Body has already been consumed.");
    return new BufferedResponse(this.url, this.data, {
      status: this.status,
      statusText: this.statusText,
      headers: new Headers(this.headers),
    });
  }
}

/** A streamed body, and who reads it: the web stream, a taker of the Node stream, or nobody yet. */
interface NodeBody {
  res: http.IncomingMessage;
  taken: "web" | "node" | null;
}

const nodeBodies = new WeakMap<Response, NodeBody>();

/**
 * The Node stream under a streamed body this fetch answered, for a reader that takes it instead
 * of the web stream; undefined once the web stream has been read (or for another fetch's response).
 * Taking it leaves the Response's web body unusable (reading it fails).
 */
export function takeNodeBody(response: Response): http.IncomingMessage | undefined {
  const body = nodeBodies.get(response);
  if (!body || body.taken) return undefined;
  body.taken = "node";
  return body.res;
}

/**
 * A web stream over the body that adapts it only when first pulled (highWaterMark 0: nothing is
 * pulled ahead), so a reader that takes the Node stream pays for no web stream at all.
 */
function lazyWebBody(body: NodeBody): ReadableStream<Uint8Array> {
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  const open = (): ReadableStreamDefaultReader<Uint8Array> => {
    if (!reader) {
      if (body.taken === "node") throw new Error("the body is being read as a Node stream");
      body.taken = "web";
      reader = (Readable.toWeb(body.res) as ReadableStream<Uint8Array>).getReader();
    }
    return reader;
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const next = await open().read();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
      cancel(reason) {
        if (reader) return reader.cancel(reason);
        if (body.taken !== "node") body.res.destroy();
      },
    },
    { highWaterMark: 0 },
  );
}

/**
 * Streamed bodies: SSE (the Anthropic API, Vertex AI's streamRawPredict) and the AWS event stream
 * that Bedrock's InvokeModelWithResponseStream answers with (a buffered one would reach the client
 * only once the model had finished).
 */
function isStream(contentType: string | undefined): boolean {
  const type = contentType ?? "";
  return (
    type.startsWith("text/event-stream") || type.startsWith("application/vnd.amazon.eventstream")
  );
}

/** Request headers as a plain record (Headers, entry pairs or a record, as RequestInit allows). */
function plainHeaders(headers: RequestInit["headers"]): Record<string, string> {
  const out: Record<string, string> = {};
  if (!headers) return out;
  if (headers instanceof Headers) {
    headers.forEach((value, key) => (out[key] = value));
  } else if (Array.isArray(headers)) {
    for (const [key, value] of headers) if (key !== undefined) out[key] = String(value);
  } else {
    for (const key in headers) {
      const value = (headers as Record<string, string | undefined>)[key];
      if (value !== undefined) out[key] = value;
    }
  }
  return out;
}

/** What the global fetch rejects with when its signal aborts: the SDK recognises the name. */
function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error && reason.name === "AbortError") return reason;
  const err = new Error("This operation was aborted", { cause: reason });
  err.name = "AbortError";
  return err;
}
