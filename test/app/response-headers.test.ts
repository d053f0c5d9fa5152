/**
 * The app's response headers (app/src/http.ts setHeader, respond): its layers set them in a plain
 * record, which a respond() response carries as is, and which the app's outermost middleware
 * copies onto any other response (errors, 404s, routes answering with c.json).
 */
import { Hono } from "hono";
import { ApiError } from "../../app/src/errors";
import {
  addHeaders,
  applyOutHeaders,
  respond,
  responseHeader,
  setHeader,
  type AppEnv,
} from "../../app/src/http";
import { startService, type RunningService } from "../support/service";

function testApp() {
  const app = new Hono<AppEnv>();
  app.use("*", async (c, next) => {
    setHeader(c, "Request-Id", "req_1");
    await next();
    applyOutHeaders(c);
  });
  app.get("/respond", (c) => {
    setHeader(c, "x-one", "first");
    setHeader(c, "X-One", "second");
    return respond(c, '{"ok":true}', 201, "application/json");
  });
  app.get("/json", (c) => {
    setHeader(c, "x-agent-model", "m");
    return c.json({ ok: true });
  });
  app.get("/refused", (c) => {
    setHeader(c, "retry-after", "1");
    setHeader(c, "x-kept", "yes");
    throw new ApiError(429, "rate_limit_error", "slow down", { "retry-after": "30" });
  });
  app.get("/content-type", (c) => {
    setHeader(c, "Content-Type", "text/csv");
    return c.body("a,b");
  });
  app.onError((err, c) =>
    err instanceof ApiError
      ? c.json({ type: "error" }, err.status, err.headers)
      : c.json({ message: err.message }, 500),
  );
  return app;
}

describe("response headers set with setHeader", () => {
  const app = testApp();

  it("go out with a respond() response, by lower-case name, the last set winning", async () => {
    const res = await app.request("/respond");
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ ok: true });
    expect(res.headers.get("x-one")).toBe("second");
    expect(res.headers.get("request-id")).toBe("req_1");
    expect(res.headers.get("content-type")).toBe("application/json");
  });

  it("reach a response the route made with Hono (c.json), which keeps its own content type", async () => {
    const res = await app.request("/json");
    expect(res.headers.get("x-agent-model")).toBe("m");
    expect(res.headers.get("request-id")).toBe("req_1");
    expect(res.headers.get("content-type")).toBe("application/json");
  });

  it("reach an error response, whose own headers win over the same names set before", async () => {
    const res = await app.request("/refused");
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("30");
    expect(res.headers.get("x-kept")).toBe("yes");
    expect(res.headers.get("request-id")).toBe("req_1");
  });

  it("refuse a content type, which is respond()'s to set, naming it", async () => {
    const res = await app.request("/content-type");
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({
      message: "content-type is set by respond() or streamResponse(), not setHeader()",
    });
  });
});

describe("responseHeader and addHeaders", () => {
  it("read a respond() response's headers, and add only those it lacks", async () => {
    const app = new Hono<AppEnv>();
    let made: Response | undefined;
    app.get("/", (c) => {
      setHeader(c, "x-a", "1");
      made = respond(c, null, 204);
      return made;
    });
    await app.request("/");
    const res = made!;
    expect(responseHeader(res, "x-a")).toBe("1");
    expect(responseHeader(res, "x-b")).toBeNull();
    addHeaders(res, { "x-a": "other" });
    expect(responseHeader(res, "x-a")).toBe("1");
    addHeaders(res, { "x-a": "other", "x-b": "2" });
    expect(responseHeader(res, "x-a")).toBe("1");
    expect(responseHeader(res, "x-b")).toBe("2");
    expect(res.headers.get("x-b")).toBe("2");
  });

  it("leave an immutable response's headers alone, without failing", () => {
    const res = Response.error();
    expect(() => addHeaders(res, { "x-a": "1" })).not.toThrow();
  });
});

describe("the service's responses, over HTTP", () => {
  let service: RunningService;
  beforeAll(async () => {
    service = await startService({
      DATA_DIR: "memory://",
      AGENT_API_KEYS: "rh:rh-key-0123456789",
      METRICS_ENABLED: "false",
      RATE_LIMIT_RPM: "100",
    });
  });
  afterAll(() => service.close());

  it("a Messages answer carries the request id, the rate limits and the cache and model headers", async () => {
    const res = await fetch(`${service.url}/v1/messages`, {
      method: "POST",
      headers: {
        "x-api-key": "rh-key-0123456789",
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
      },
      body: JSON.stringify({
        model: "claude-haiku-4-5",
        max_tokens: 16,
        messages: [{ role: "user", content: "headers" }],
      }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(res.headers.get("request-id")).toMatch(/^req_/);
    expect(res.headers.get("anthropic-ratelimit-requests-limit")).toBe("100");
    expect(res.headers.get("x-cache")).toBe("MISS");
    const body = (await res.json()) as { type: string; model: string };
    expect(body.type).toBe("message");
    expect(res.headers.get("x-agent-model")).toBe(body.model);
  });

  it("a 404 carries the request id too", async () => {
    const res = await fetch(`${service.url}/nowhere`);
    expect(res.status).toBe(404);
    expect(res.headers.get("request-id")).toMatch(/^req_/);
    expect(((await res.json()) as { request_id: string }).request_id).toBe(
      res.headers.get("request-id"),
    );
  });
});
