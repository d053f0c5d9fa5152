/**
 * POST /v1/messages of the Anthropic API over node:http / node:https, for AnthropicProvider while
 * the service traces nothing. The official SDK's request path builds a WHATWG `Headers` from five
 * sources and validates every header, wraps the call in an APIPromise, a retry loop (off here:
 * ResilientProvider owns retries), an abort controller and its tracing hooks, then parses through a
 * `Response`: measured against the benchmark's fake upstream (scripted side by side, 16 calls at
 * a time, the last 3 of 4 rounds), 215-254 µs of CPU per JSON call against 100-109 µs for the same
 * request sent here, and 339-386 against 149-157 µs per stream of 25 deltas. While
 * tracing is on, every call goes through the SDK (upstream.ts): its call span and the trace context
 * it sends upstream are features there, and this path has neither.
 *
 * The wire is the SDK's, not a second idea of it:
 * - URL and headers come from the SDK's own `buildRequest`, asked once per client for a
 *   POST /v1/messages (auth, `anthropic-version`, `user-agent`, the `x-stainless-*` set, as the
 *   installed SDK sends them). Each call then sets what the SDK sets per call: `x-stainless-timeout`
 *   from its timeout, the body's `user_profile_id` and `workspace_id` moved into the
 *   `anthropic-user-profile-id` and `anthropic-workspace-id` headers (as `messages.create` does),
 *   then the provider's own headers (request id, the client's version and betas), which win.
 * - Failures are the SDK's own error classes, made as its client makes them (an error status with
 *   its parsed body and `APIError.generate`; `APIConnectionError` naming the failure's code;
 *   `APIConnectionTimeoutError`; `APIUserAbortError`), so toUpstreamError reads them as it reads
 *   the SDK's.
 * - The timeout covers a JSON answer until its last byte and a stream until its headers, as the
 *   SDK's does over node-fetch.ts.
 * test/app/upstream-wire.test.ts sends every case both ways and compares what reached the server
 * and what came back.
 */
import http from "node:http";
import https from "node:https";
import { urlToHttpOptions } from "node:url";
import type { BaseAnthropic } from "@anthropic-ai/sdk/client";
import {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  APIUserAbortError,
} from "@anthropic-ai/sdk/core/error";
import { headersOf, readWhole, type NodeAgents } from "./node-fetch";

export interface WireCall {
  signal?: AbortSignal;
  /** @default the client's timeout */
  timeoutMs?: number;
}

/** The provider's headers (request id, version, betas): they win over the SDK's. */
type CallHeaders = Record<string, string>;

interface Template {
  /** The URL as request options, parsed once (http.request would parse a string on every call). */
  target: http.RequestOptions;
  host: string;
  /** For an error's message, as the SDK gives it: origin, path and query, no credentials. */
  requestUrl: string;
  protocol: "http:" | "https:";
  headers: Record<string, string>;
}

/** The SDK's body fields that go as headers (`messagesCreateHeaders` in its messages resource). */
const HEADER_FIELDS = {
  user_profile_id: "anthropic-user-profile-id",
  workspace_id: "anthropic-workspace-id",
} as const;

export class MessagesWire {
  private template: Promise<Template> | undefined;

  constructor(
    private readonly client: BaseAnthropic,
    private readonly agents: NodeAgents,
  ) {}

  /**
   * The answer as the SDK parses it: JSON by its content type (a JSON that does not parse fails with
   * the parser's error), undefined for an empty JSON body, else the text.
   */
  async create(
    body: Record<string, unknown>,
    headers: CallHeaders,
    call: WireCall,
  ): Promise<unknown> {
    const { res, data } = await this.send({ ...body, stream: false }, headers, call, false);
    const mediaType = res.headers["content-type"]?.split(";")[0]?.trim();
    const isJson = mediaType?.includes("application/json") || mediaType?.endsWith("+json");
    if (!isJson) return data!.toString("utf8");
    if (res.headers["content-length"] === "0") return undefined;
    return JSON.parse(data!.toString("utf8")) as unknown;
  }

  /** A stream's response once its headers are in: the SSE body, as a Node stream. */
  async stream(
    body: Record<string, unknown>,
    headers: CallHeaders,
    call: WireCall,
  ): Promise<http.IncomingMessage> {
    const { res } = await this.send({ ...body, stream: true }, headers, call, true);
    return res;
  }

  private prepare(): Promise<Template> {
    this.template ??= this.client
      .buildRequest({ method: "post", path: "/v1/messages", body: {} }, { retryCount: 0 })
      .then(({ url, req }) => {
        const headers: Record<string, string> = {};
        new Headers(req.headers).forEach((value, name) => (headers[name] = value));
        const parsed = new URL(url);
        if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
          throw new Error(`the Anthropic API's base URL must be http(s): ${parsed.protocol}`);
        return {
          target: urlToHttpOptions(parsed),
          host: parsed.host,
          requestUrl: parsed.origin + parsed.pathname + parsed.search,
          protocol: parsed.protocol,
          headers,
        };
      });
    // A template that could not be made is asked for again on the next call.
    this.template.catch(() => (this.template = undefined));
    return this.template;
  }

  private async send(
    body: Record<string, unknown>,
    callHeaders: CallHeaders,
    call: WireCall,
    stream: boolean,
  ): Promise<{ res: http.IncomingMessage; data?: Buffer }> {
    const t = await this.prepare();
    const signal = call.signal;
    if (signal?.aborted) throw new APIUserAbortError();
    const timeout = call.timeoutMs ?? this.client.timeout;
    const headers: Record<string, string> = {
      ...t.headers,
      "x-stainless-timeout": String(Math.trunc(timeout / 1000)),
    };
    let wire = body;
    for (const field of Object.keys(HEADER_FIELDS) as Array<keyof typeof HEADER_FIELDS>) {
      if (!(field in body)) continue;
      const { [field]: value, ...rest } = wire;
      wire = rest;
      if (value != null) headers[HEADER_FIELDS[field]] = String(value as string);
    }
    for (const name in callHeaders) headers[name.toLowerCase()] = callHeaders[name]!;
    const payload = JSON.stringify(wire);

    return new Promise((resolve, reject) => {
      let timedOut = false;
      let settled = false;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        fn();
      };
      const fail = (err: unknown) =>
        finish(() => reject(this.connectionError(err, t, timeout, timedOut, signal)));
      const send = t.protocol === "https:" ? https.request : http.request;
      const req = send(
        { ...t.target, method: "POST", headers, agent: this.agents[t.protocol], signal },
        (res) => {
          const status = res.statusCode ?? 502;
          const ok = status >= 200 && status < 300;
          if (ok && stream) {
            finish(() => resolve({ res }));
            return;
          }
          readWhole(
            res,
            (data) =>
              ok
                ? finish(() => resolve({ res, data }))
                : finish(() => reject(this.statusError(res, data, t))),
            fail,
          );
        },
      );
      const timer = setTimeout(() => {
        timedOut = true;
        req.destroy(new Error("timed out"));
      }, timeout);
      req.on("error", fail);
      req.end(payload);
    });
  }

  /** As the SDK's client: the status, the body parsed when it is JSON (else its text), the headers. */
  private statusError(res: http.IncomingMessage, data: Buffer, t: Template): APIError {
    const text = data.toString("utf8");
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return APIError.generate(
      res.statusCode,
      json as object | undefined,
      json ? undefined : text,
      headersOf(res),
      { request: { method: "post", url: t.requestUrl } },
    );
  }

  /** As the SDK's client: the caller's abort, then a timeout (its own or the runtime's), else a failed connection. */
  private connectionError(
    err: unknown,
    t: Template,
    timeout: number,
    timedOut: boolean,
    signal: AbortSignal | undefined,
  ): Error {
    if (signal?.aborted) return new APIUserAbortError();
    const error = err instanceof Error ? err : new Error(String(err));
    const cause = "cause" in error ? String(error.cause) : "";
    if (timedOut || error.name === "AbortError" || /timed? ?out/i.test(String(error) + cause)) {
      const waited = timedOut ? ` after ${timeout / 1000}s` : "";
      return new APIConnectionTimeoutError({ message: `Request to ${t.host} timed out${waited}` });
    }
    return new APIConnectionError({
      message: `Connection to ${t.host} failed: ${failureName(error)}`,
      cause: error,
    });
  }
}

/**
 * The code (or else the name) of the innermost cause: what the SDK says of a failed fetch, leaving
 * out the message, which can quote the request.
 */
function failureName(err: Error): string {
  let innermost: { name?: unknown; code?: unknown; cause?: unknown } = err;
  const seen = new Set<unknown>();
  while (
    typeof innermost.cause === "object" &&
    innermost.cause !== null &&
    !seen.has(innermost.cause)
  ) {
    seen.add(innermost);
    innermost = innermost.cause as typeof innermost;
  }
  const { code, name } = innermost;
  return typeof code === "string" ? code : typeof name === "string" ? name : "Error";
}
