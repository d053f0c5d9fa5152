/**
 * What a client is told when the model API fails: an Anthropic-shaped error with our request id,
 * a status that says whose problem it is, and a short fixed message. Never the upstream's own
 * body: it may echo a key or headers, or be a proxy's HTML page. That goes to the log instead,
 * with anything that looks like a key removed.
 *
 *   upstream                         client
 *   400 invalid_request_error        400 invalid_request_error
 *   401, 403 (our credentials)       502 api_error (the client's own key was fine)
 *   404 (model unknown upstream)     502 api_error
 *   402, spend limit reached         503 service_unavailable, x-should-retry: false
 *   413 request_too_large            413 request_too_large
 *   429 rate_limit_error             429 rate_limit_error, retry-after kept
 *   503, 529 (unavailable)           503 / 529 overloaded_error, retry-after kept
 *   504, timeouts                    504 timeout_error
 *   anything else, 5xx, connection   502 api_error
 */
import { ApiError } from "../errors";
import type { UpstreamError } from "./types";

const KEPT_HEADERS = ["retry-after", "retry-after-ms", "x-should-retry"];

export function clientErrorFor(err: UpstreamError): ApiError {
  const headers: Record<string, string> = {};
  for (const h of KEPT_HEADERS) if (err.headers[h] !== undefined) headers[h] = err.headers[h];
  const spendLimit =
    err.status === 402 ||
    err.type === "billing_error" ||
    (err.status === 429 && headers["x-should-retry"] === "false");
  if (spendLimit) {
    return new ApiError(
      503,
      "service_unavailable",
      "the model API refuses this service's calls for now (its spend limit or billing); retrying will not help",
      { "x-should-retry": "false" },
    );
  }
  switch (err.status) {
    case 400:
    case 422:
      return new ApiError(
        400,
        "invalid_request_error",
        "the model API rejected the request as invalid; check the model, max_tokens and messages",
      );
    case 401:
    case 403:
      return new ApiError(502, "api_error", "the model API refused this service's credentials");
    case 404:
      return new ApiError(502, "api_error", "the model API does not serve the requested model");
    case 413:
      return new ApiError(413, "request_too_large", "the request is too large for the model API");
    case 429:
      return new ApiError(
        429,
        "rate_limit_error",
        "the model API is rate limiting this service; retry after the delay in retry-after",
        headers,
      );
    case 503:
    case 529:
      return new ApiError(
        err.status as 503,
        "overloaded_error",
        "the model API is overloaded; retry after a while",
        headers,
      );
    case 504:
      return new ApiError(504, "timeout_error", "the model API did not answer in time", headers);
    default:
      return new ApiError(502, "api_error", "the model API call failed", headers);
  }
}

/** `text` without anything shaped like an API key or a bearer token, and at most 500 characters. */
export function redactSecrets(
  text: string,
  secrets: ReadonlyArray<string | undefined> = [],
): string {
  let out = text;
  for (const s of secrets) if (s && s.length >= 8) out = out.split(s).join("[redacted]");
  out = out
    .replace(/\bsk-ant-[A-Za-z0-9_-]+/g, "[redacted]")
    .replace(/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi, "$1 [redacted]")
    .replace(
      /\b(x-api-key|api[_-]?key|authorization)(["']?\s*[:=]\s*["']?)[^\s"',;]+/gi,
      "$1$2[redacted]",
    );
  return out.length > 500 ? `${out.slice(0, 500)}...` : out;
}
