/**
 * How the service's one retry loop (ResilientProvider) reads an upstream failure: whether it may
 * be retried at all, whether it says something about the model's health (circuit breaker), how
 * long the upstream asked us to wait, and the backoff when it did not say.
 *
 * The rules follow the Anthropic API: 408, 409, 429 and 5xx are retryable, other 4xx are the
 * request's fault; `x-should-retry: false` and a spend-limit refusal are final whatever the status;
 * 529 means the model is overloaded for everyone, so retrying the same model alone rarely helps.
 */
import { upstreamErrorCode } from "./sdk-errors";
import { UpstreamError } from "./types";
import { errorMessage } from "../errors";

export type FailureKind =
  /** Never retried: client errors, spend limits, billing, a caller that went away. */
  | "fatal"
  /** 429: this model's capacity for our organisation; cool the model down, use the fallback. */
  | "rate_limited"
  /** 529: the model is overloaded; move to the fallback at once, back off before coming back. */
  | "overloaded"
  /** 5xx, 408, 409, timeouts, connection failures: back off and retry the same model. */
  | "transient";

/** Error codes the API uses for account-level spend and billing caps: retrying cannot help. */
const FINAL_ERROR_CODE = /spend_limit|billing|on_hold|ramp_limit/;

export function asUpstreamError(err: unknown): UpstreamError {
  if (err instanceof UpstreamError) return err;
  return new UpstreamError(502, "api_error", `upstream call failed: ${errorMessage(err)}`);
}

/** A refusal that no retry can fix until a person acts (raise the limit, pay the bill). */
export function isSpendLimit(err: UpstreamError): boolean {
  const code = upstreamErrorCode(err);
  if (code !== undefined && FINAL_ERROR_CODE.test(code)) return true;
  if (err.type === "billing_error") return true;
  // Seen from the API as a 400 invalid_request_error without a code, so match the wording too.
  return /usage limits|spend limit|credit balance/i.test(err.message);
}

export function classify(err: UpstreamError): FailureKind {
  if (err.status === 499) return "fatal";
  if (err.headers["x-should-retry"] === "false" || isSpendLimit(err)) return "fatal";
  if (err.status === 429) return "rate_limited";
  if (err.status === 529 || err.type === "overloaded_error") return "overloaded";
  if (err.status === 408 || err.status === 409 || err.status >= 500) return "transient";
  // Other 4xx are the request's own fault, whatever x-should-retry says.
  return "fatal";
}

/**
 * Whether a failure counts against the model in its circuit breaker: capacity and server
 * failures do; the caller's own mistakes, aborts and account-level caps say nothing about the
 * model's health and do not.
 */
export function countsAgainstModel(err: unknown): boolean {
  const e = asUpstreamError(err);
  if (e.status === 499) return false;
  if (e.status === 429) return !isSpendLimit(e) && e.headers["x-should-retry"] !== "false";
  return e.status === 408 || e.status >= 500 || e.type === "overloaded_error";
}

/** How long the upstream asked us to wait: `retry-after-ms`, else `retry-after` (seconds or an HTTP date). */
export function retryAfterMs(err: UpstreamError, now = Date.now()): number | undefined {
  const ms = err.headers["retry-after-ms"];
  if (ms !== undefined && ms.trim() !== "") {
    const v = Number(ms);
    if (Number.isFinite(v) && v >= 0) return v;
  }
  const ra = err.headers["retry-after"];
  if (ra === undefined || ra.trim() === "") return undefined;
  const seconds = Number(ra);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(ra);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export interface BackoffOptions {
  /** First delay's upper bound. @default 250 */
  baseMs?: number;
  /** Cap on any single delay. @default 8000 */
  maxMs?: number;
}

/**
 * Exponential backoff with "equal jitter": half the step is fixed, half random. Replicas retrying
 * the same outage spread out, and no delay collapses to zero as full jitter allows.
 * `retry` counts from 1 (the first retry).
 */
export function backoffMs(
  retry: number,
  options: BackoffOptions = {},
  random = Math.random,
): number {
  const base = options.baseMs ?? 250;
  const max = options.maxMs ?? 8000;
  const step = Math.min(max, base * 2 ** Math.max(0, retry - 1));
  return Math.round(step / 2 + (random() * step) / 2);
}
