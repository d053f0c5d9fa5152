/**
 * The rate-limit middleware's lazy admission (app/src/ratelimit/middleware.ts) on a route that
 * fails before it awaits the admission: a 400 for a bad body, a 503 for a stream refused as
 * overload. The admission's headers still go out, on the response the error handler built.
 */
import { Hono } from "hono";
import { ApiError, errorBody } from "../../app/src/errors";
import type { AppEnv } from "../../app/src/http";
import { RequestRateLimiter } from "../../app/src/ratelimit/limiter";
import { rateLimitMiddleware } from "../../app/src/ratelimit/middleware";

function appFailingBeforeAdmission(limiter: RequestRateLimiter) {
  const app = new Hono<AppEnv>();
  const built: Response[] = [];
  const sent: Response[] = [];
  app.onError((err, c) => {
    const e = err instanceof ApiError ? err : new ApiError(500, "api_error", String(err));
    const res = c.json(errorBody(e.type, e.message), e.status, e.headers);
    built.push(res);
    return res;
  });
  app.use("*", async (c, next) => {
    c.set("userId", "u");
    await next();
    sent.push(c.res);
  });
  app.post(
    "/v1/messages",
    rateLimitMiddleware(limiter, { lazy: () => true }),
    // The admission has not resolved yet when the route refuses (it never awaits it).
    () => {
      throw new ApiError(503, "overloaded_error", "this replica is relaying 384 streams", {
        "retry-after": "1",
      });
    },
  );
  return { app, built, sent };
}

describe("rate-limit middleware, lazy admission on a route that failed first", () => {
  it("sends the error handler's own response, with the admission's rate-limit headers added to it", async () => {
    const { app, built, sent } = appFailingBeforeAdmission(
      new RequestRateLimiter({ rpm: 100, tpm: 0 }),
    );
    const res = await app.request("/v1/messages", { method: "POST", body: "{}" });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    expect(res.headers.get("anthropic-ratelimit-requests-limit")).toBe("100");
    expect(res.headers.get("anthropic-ratelimit-requests-remaining")).toBe("99");
    expect(((await res.json()) as { error: { type: string } }).error.type).toBe("overloaded_error");
    // Not rebuilt by c.header after the response was final (under @hono/node-server that
    // rebuild turned its light Response into undici's, ~0.1 ms of CPU per refused request).
    expect(built).toHaveLength(1);
    expect(sent).toEqual([built[0]]);
  });
});
