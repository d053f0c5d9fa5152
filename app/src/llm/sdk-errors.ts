/**
 * Failures of the official SDKs (the Anthropic API's, and AnthropicBedrock's and AnthropicVertex's,
 * which share its error classes) as the UpstreamError the rest of the service reads.
 */
import {
  APIError,
  APIUserAbortError,
  APIConnectionTimeoutError,
} from "@anthropic-ai/sdk/core/error";
import { UpstreamError } from "./types";
import { errorMessage } from "../errors";

type UpstreamErrorWithCode = UpstreamError & { errorCode?: string };

/**
 * The API's machine-readable `error.details.error_code` (e.g. `enforced_spend_limit_reached`),
 * kept on the UpstreamError so the retry loop can tell a spend cap from an ordinary 429.
 */
export function upstreamErrorCode(err: unknown): string | undefined {
  return err instanceof UpstreamError ? (err as UpstreamErrorWithCode).errorCode : undefined;
}

/** Keep the upstream's status and error type, so clients see what Anthropic said. */
export function toUpstreamError(err: unknown): UpstreamError {
  if (err instanceof UpstreamError) return err;
  if (err instanceof APIUserAbortError) return new UpstreamError(499, "aborted", "request aborted");
  if (err instanceof APIConnectionTimeoutError)
    return new UpstreamError(504, "timeout_error", "upstream model API timed out");
  if (err instanceof APIError) {
    const body = err.error as ErrorBody | undefined;
    const type =
      body?.error?.type ?? err.type ?? (err.status ? "api_error" : "api_connection_error");
    const message = body?.error?.message ?? err.apiMessage ?? err.message;
    const headers: Record<string, string> = {};
    for (const h of ["retry-after", "retry-after-ms", "x-should-retry"]) {
      const v = err.headers?.get(h);
      if (v) headers[h] = v;
    }
    // No status: a connection failure or an `event: error` inside a stream.
    const status = err.status ?? (type === "overloaded_error" ? 529 : 502);
    return withCode(new UpstreamError(status, type, message, headers, true), body);
  }
  return new UpstreamError(
    502,
    "api_error",
    `upstream call failed: ${errorMessage(err)}`,
    {},
    true,
  );
}

interface ErrorBody {
  error?: { type?: string; message?: string; details?: { error_code?: unknown } };
}

/**
 * An `event: error` inside a stream (`data: {"type":"error","error":{...}}`). It has no HTTP
 * status of its own: `statusOf` gives one by its type (529 for overloaded_error, else 502).
 */
export function streamError(
  data: string,
  statusOf: (type: string) => number | undefined = () => undefined,
): UpstreamError {
  let body: ErrorBody | undefined;
  try {
    body = JSON.parse(data) as ErrorBody;
  } catch {
    body = undefined;
  }
  const type = body?.error?.type ?? "api_error";
  const message = body?.error?.message ?? (data.slice(0, 200) || "error event in the stream");
  const status = statusOf(type) ?? (type === "overloaded_error" ? 529 : 502);
  return withCode(new UpstreamError(status, type, message, {}, true), body);
}

function withCode(upstream: UpstreamError, body: ErrorBody | undefined): UpstreamError {
  const code = body?.error?.details?.error_code;
  if (typeof code === "string") (upstream as UpstreamErrorWithCode).errorCode = code;
  return upstream;
}
