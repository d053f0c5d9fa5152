/**
 * The load generator's HTTP client: undici's Pool (keep-alive, HTTP/1.1, no pipelining).
 *
 * Why undici rather than autocannon: every scenario here needs timings autocannon does not give
 * (time to the first SSE delta, gaps between deltas, per-request timestamps for a spike's
 * windows), autocannon's rate limiting is closed-loop per connection (a slow response delays the
 * next send, hiding the very queueing a rate test must see), and undici is the most CPU-frugal
 * Node client, which matters when generator, service and upstream share two cores. Latency is
 * measured from the moment a request was *due* (open loop), so queueing anywhere counts.
 */
import { Pool } from "undici";

export interface TargetOptions {
  /** Base URL, e.g. http://127.0.0.1:8080. */
  url: string;
  /** Sent with every request (API key, anthropic-version). */
  headers: Record<string, string>;
  /** Keep-alive connections. @default 1 */
  connections?: number;
  /** Gives up on a response whose headers (or next body chunk) take longer. @default 30000 */
  timeoutMs?: number;
}

export interface JsonResult {
  status: number;
  /** Milliseconds from `startedAt` to the last byte of the body. */
  ms: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  error?: string;
}

export interface SseResult {
  status: number;
  /** Milliseconds from `startedAt` to the first `content_block_delta` (NaN if none came). */
  ttftMs: number;
  /** Milliseconds from `startedAt` to the end of the stream. */
  totalMs: number;
  deltas: number;
  /** Largest gap between two body chunks that carried deltas, after the first delta. */
  maxGapMs: number;
  /** Every gap between delta-carrying chunks (only when asked for). */
  gaps?: number[];
  headers: Record<string, string | string[] | undefined>;
  /** The full text of the stream (only when asked for). */
  text?: string;
  error?: string;
}

const DELTA = Buffer.from("event: content_block_delta");
const STOP = Buffer.from("event: message_stop");
const ERROR_EVENT = Buffer.from("event: error");

function countOccurrences(buf: Buffer, needle: Buffer): number {
  let n = 0;
  let i = buf.indexOf(needle);
  while (i >= 0) {
    n++;
    i = buf.indexOf(needle, i + needle.length);
  }
  return n;
}

export class Target {
  readonly pool: Pool;
  private readonly baseHeaders: Record<string, string>;

  constructor(readonly options: TargetOptions) {
    const timeout = options.timeoutMs ?? 30_000;
    this.pool = new Pool(options.url, {
      connections: options.connections ?? 1,
      pipelining: 1,
      keepAliveTimeout: 60_000,
      headersTimeout: timeout,
      bodyTimeout: timeout,
    });
    this.baseHeaders = { "content-type": "application/json", ...options.headers };
  }

  /** POST a JSON body and read the whole response. Never throws: failures have status 0. */
  async postJson(
    path: string,
    body: string,
    extraHeaders?: Record<string, string>,
    startedAt = performance.now(),
  ): Promise<JsonResult> {
    try {
      const res = await this.pool.request({
        path,
        method: "POST",
        headers: extraHeaders ? { ...this.baseHeaders, ...extraHeaders } : this.baseHeaders,
        body,
      });
      const text = await res.body.text();
      return {
        status: res.statusCode,
        ms: performance.now() - startedAt,
        headers: res.headers,
        body: text,
      };
    } catch (err) {
      return {
        status: 0,
        ms: performance.now() - startedAt,
        headers: {},
        body: "",
        error: errorName(err),
      };
    }
  }

  /** GET, reading the whole response. */
  async get(path: string, startedAt = performance.now()): Promise<JsonResult> {
    try {
      const res = await this.pool.request({ path, method: "GET", headers: this.baseHeaders });
      const text = await res.body.text();
      return {
        status: res.statusCode,
        ms: performance.now() - startedAt,
        headers: res.headers,
        body: text,
      };
    } catch (err) {
      return {
        status: 0,
        ms: performance.now() - startedAt,
        headers: {},
        body: "",
        error: errorName(err),
      };
    }
  }

  /**
   * POST a streaming Messages request and time its deltas. Chunks are only scanned for event
   * names (no JSON parsing), so the generator stays cheap with thousands of streams open.
   */
  async postSse(
    path: string,
    body: string,
    opts: { extraHeaders?: Record<string, string>; keepGaps?: boolean; keepText?: boolean } = {},
    startedAt = performance.now(),
  ): Promise<SseResult> {
    let ttft = Number.NaN;
    let deltas = 0;
    let maxGap = 0;
    let lastDeltaAt = 0;
    const gaps: number[] | undefined = opts.keepGaps ? [] : undefined;
    const parts: Buffer[] | undefined = opts.keepText ? [] : undefined;
    let sawStop = false;
    let sawError = false;
    try {
      const res = await this.pool.request({
        path,
        method: "POST",
        headers: opts.extraHeaders
          ? { ...this.baseHeaders, ...opts.extraHeaders }
          : this.baseHeaders,
        body,
      });
      if (res.statusCode !== 200) {
        const text = await res.body.text();
        return {
          status: res.statusCode,
          ttftMs: ttft,
          totalMs: performance.now() - startedAt,
          deltas,
          maxGapMs: maxGap,
          headers: res.headers,
          text,
          error: `HTTP ${res.statusCode}`,
        };
      }
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        const now = performance.now();
        parts?.push(chunk);
        const n = countOccurrences(chunk, DELTA);
        if (n > 0) {
          if (deltas === 0) ttft = now - startedAt;
          else {
            const gap = now - lastDeltaAt;
            if (gap > maxGap) maxGap = gap;
            gaps?.push(gap);
          }
          lastDeltaAt = now;
          deltas += n;
        }
        if (!sawStop && chunk.indexOf(STOP) >= 0) sawStop = true;
        if (!sawError && chunk.indexOf(ERROR_EVENT) >= 0) sawError = true;
      }
      const result: SseResult = {
        status: res.statusCode,
        ttftMs: ttft,
        totalMs: performance.now() - startedAt,
        deltas,
        maxGapMs: maxGap,
        gaps,
        headers: res.headers,
        text: parts ? Buffer.concat(parts).toString("utf8") : undefined,
      };
      if (sawError) result.error = "event: error in stream";
      else if (!sawStop) result.error = "stream ended without message_stop";
      return result;
    } catch (err) {
      return {
        status: 0,
        ttftMs: ttft,
        totalMs: performance.now() - startedAt,
        deltas,
        maxGapMs: maxGap,
        gaps,
        headers: {},
        error: errorName(err),
      };
    }
  }

  async close(): Promise<void> {
    await this.pool.close().catch(() => this.pool.destroy());
  }
}

function errorName(err: unknown): string {
  const e = err as { code?: string; message?: string };
  return e?.code ?? e?.message ?? String(err);
}

export function header(
  headers: Record<string, string | string[] | undefined>,
  name: string,
): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}
