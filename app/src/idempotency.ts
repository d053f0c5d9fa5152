/**
 * `Idempotency-Key` for POST /v1/messages and POST /v1/sessions/{id}/messages: a client that
 * retries a request (timeout, dropped connection) with the same key gets the first response
 * again, without a second model call and without a second charge.
 *
 * - Keys are scoped per user and kept in Postgres (durable, shared by every replica) for
 *   IDEMPOTENCY_TTL_SECONDS (24 h by default). No Redis fast path: a replay is one indexed read.
 * - The request is fingerprinted (method, path, body with object keys sorted, so formatting does
 *   not matter). The same key with a different request is 409 `conflict_error`.
 * - A duplicate that arrives while the first is still running is refused at once with 409
 *   `conflict_error` and `retry-after: 1` rather than held open: holding would tie up a
 *   connection per duplicate for as long as a generation takes. A claim whose replica died is
 *   taken over after `lockSeconds`.
 * - Only 2xx responses are stored: JSON bodies whole; event streams as their full text, and only
 *   when they ran to `message_stop` / `turn_complete` without an `event: error`. Anything else
 *   (4xx, 5xx, a cut or failed stream, a client that left) releases the key, so the client can
 *   retry with it.
 * - A replay has the stored status, content-type and `x-agent-*` headers, the stored body, and
 *   `idempotent-replayed: true`.
 */
import { createHash } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Logger } from "pino";
import type { AppEnv } from "./http";
import { ApiError, errorMessage } from "./errors";
import type { IdempotentResponse, Store } from "./store/types";
import { tapResponse } from "./ratelimit/body-tap";
import { canonicalJson } from "./cache/key";

export const IDEMPOTENCY_HEADER = "idempotency-key";
/** Visible ASCII, as Stripe and the IETF draft allow: UUIDs, ULIDs and the like. */
const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;
const PURGE_EVERY_MS = 10 * 60_000;

export interface IdempotencyOptions {
  store: Pick<
    Store,
    | "claimIdempotencyKey"
    | "completeIdempotencyKey"
    | "releaseIdempotencyKey"
    | "purgeIdempotencyKeys"
  >;
  /** How long a stored response is replayed. */
  ttlSeconds: number;
  /** How long an unfinished request holds its key against a crashed replica. @default 600 */
  lockSeconds?: number;
  /** Larger responses are not stored (the key is released). @default 8 MiB */
  maxStoredBytes?: number;
  logger: Pick<Logger, "warn" | "error">;
}

export function idempotencyMiddleware(options: IdempotencyOptions): MiddlewareHandler<AppEnv> {
  const { store, logger } = options;
  const maxBytes = options.maxStoredBytes ?? 8 * 1024 * 1024;
  let lastPurge = 0;

  return async (c, next) => {
    const key = c.req.header(IDEMPOTENCY_HEADER);
    if (c.req.method !== "POST" || key === undefined) return next();
    if (!KEY_PATTERN.test(key)) {
      throw new ApiError(
        400,
        "invalid_request_error",
        "Idempotency-Key must be 1 to 255 visible ASCII characters",
      );
    }
    const userId = c.get("userId");
    const requestHash = fingerprint(c.req.method, c.req.path, await c.req.text());

    if (Date.now() - lastPurge > PURGE_EVERY_MS) {
      lastPurge = Date.now();
      void store
        .purgeIdempotencyKeys()
        .catch((err: Error) =>
          logger.warn({ err: err.message }, "could not purge expired idempotency keys"),
        );
    }

    let claim;
    try {
      claim = await store.claimIdempotencyKey({
        userId,
        key,
        requestHash,
        ttlSeconds: options.ttlSeconds,
        lockSeconds: options.lockSeconds ?? 600,
      });
    } catch (err) {
      logger.error({ err: errorMessage(err) }, "idempotency key lookup failed");
      // Running the request anyway could charge the client twice, which is what they asked us not to do.
      throw new ApiError(
        503,
        "service_unavailable",
        "cannot check the Idempotency-Key right now; retry shortly",
        { "retry-after": "2" },
      );
    }
    if (!claim.claimed) {
      const held = claim.record;
      if (held.requestHash !== requestHash) {
        throw new ApiError(
          409,
          "conflict_error",
          "this Idempotency-Key was already used for a different request (method, path or body); use a new key for a new request",
        );
      }
      if (held.state !== "completed" || !held.response) {
        throw new ApiError(
          409,
          "conflict_error",
          "a request with this Idempotency-Key is still in progress; retry when it has completed",
          {
            "retry-after": "1",
          },
        );
      }
      return c.body(held.response.body, held.response.status as ContentfulStatusCode, {
        ...held.response.headers,
        "idempotent-replayed": "true",
      });
    }

    const release = () =>
      store
        .releaseIdempotencyKey(userId, key)
        .catch((err: Error) =>
          logger.warn({ err: err.message }, "could not release an idempotency key"),
        );
    const complete = async (response: IdempotentResponse) => {
      try {
        if (await store.completeIdempotencyKey(userId, key, response)) return;
      } catch (err) {
        logger.warn({ err: errorMessage(err) }, "could not store an idempotent response");
      }
      await release();
    };

    // A stream it answers is recorded as it goes out: the route must not bypass the Response body.
    c.set("tapsBody", true);
    try {
      await next();
    } catch (err) {
      await release();
      throw err;
    }
    const res = c.res;
    if (res.status < 200 || res.status >= 300 || !res.body) {
      await release();
      return;
    }
    const headers = replayHeaders(res.headers);
    if ((res.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
      const chunks: Buffer[] = [];
      let size = 0;
      c.res = tapResponse(res, {
        chunk(bytes) {
          size += bytes.byteLength;
          if (size <= maxBytes) chunks.push(Buffer.from(bytes));
        },
        done(outcome) {
          const text =
            outcome === "end" && size <= maxBytes ? Buffer.concat(chunks).toString("utf8") : null;
          void (text !== null && streamCompleted(text)
            ? complete({ status: res.status, headers, body: text })
            : release());
        },
      });
      return;
    }
    const body = await res.clone().text();
    if (Buffer.byteLength(body) > maxBytes) await release();
    else await complete({ status: res.status, headers, body });
  };
}

/** The headers a replay carries: the content type and the service's own `x-agent-*` headers. */
function replayHeaders(headers: Headers): Record<string, string> {
  const kept: Record<string, string> = {};
  headers.forEach((value, name) => {
    if (name === "content-type" || name.startsWith("x-agent-")) kept[name] = value;
  });
  return kept;
}

/** A stream worth replaying ran to its last event and carried no error. */
export function streamCompleted(text: string): boolean {
  if (/(^|\n)event: error\r?\n/.test(text)) return false;
  return /(^|\n)event: (message_stop|turn_complete)\r?\n[^\n]*\r?\n\r?\n?\s*$/.test(text);
}

export function fingerprint(method: string, path: string, body: string): string {
  let canonical = body;
  try {
    canonical = canonicalJson(JSON.parse(body));
  } catch {
    // Not JSON: the route refuses it anyway; compare the raw text.
  }
  return createHash("sha256").update(`${method} ${path}\n${canonical}`).digest("hex");
}
