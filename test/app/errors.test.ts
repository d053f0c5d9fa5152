/** ApiError (app/src/errors.ts): the client's answer, in the API's shape, made cheaply. */
import { ApiError, errorBody } from "../../app/src/errors";

describe("ApiError", () => {
  it("carries no stack frames (a refusal under load pays for none) and leaves Error.stackTraceLimit as it was", () => {
    const before = Error.stackTraceLimit;
    const e = new ApiError(429, "rate_limit_error", "over RATE_LIMIT_RPM", { "retry-after": "3" });
    expect(Error.stackTraceLimit).toBe(before);
    expect(e.stack).toBe("ApiError: over RATE_LIMIT_RPM");
    expect(new Error("other").stack).toMatch(/\n\s+at /);
    expect(e).toBeInstanceOf(Error);
    expect([e.status, e.type, e.message, e.headers]).toEqual([
      429,
      "rate_limit_error",
      "over RATE_LIMIT_RPM",
      { "retry-after": "3" },
    ]);
  });

  it("is sent in the Anthropic API's error shape", () => {
    expect(errorBody("overloaded_error", "busy", "req_1", { limit: 1 })).toEqual({
      type: "error",
      error: { type: "overloaded_error", message: "busy", limit: 1 },
      request_id: "req_1",
    });
  });
});
