/**
 * Most requests one user may have in flight on this replica (MAX_CONCURRENT_REQUESTS_PER_USER).
 * A client that opens connections and sends its bodies a byte at a time is refused its next
 * request with 429 once it holds that many, instead of holding every connection the server has.
 * Per replica, in memory: it bounds what one replica spends on one user, whatever the others do.
 */
import type { MiddlewareHandler } from "hono";
import { holdWhileResponding, type AppEnv } from "./http";
import { ApiError } from "./errors";

export function concurrencyMiddleware(limit: number): MiddlewareHandler<AppEnv> {
  const inFlight = new Map<string, number>();
  const release = (user: string) => {
    const n = (inFlight.get(user) ?? 1) - 1;
    if (n <= 0) inFlight.delete(user);
    else inFlight.set(user, n);
  };
  return async (c, next) => {
    const user = c.get("userId");
    const n = inFlight.get(user) ?? 0;
    if (n >= limit) {
      throw new ApiError(
        429,
        "rate_limit_error",
        `too many concurrent requests: at most ${limit} in flight per user (MAX_CONCURRENT_REQUESTS_PER_USER); retry when one has finished`,
        { "retry-after": "1" },
      );
    }
    inFlight.set(user, n + 1);
    await holdWhileResponding(c, next, () => release(user));
  };
}
