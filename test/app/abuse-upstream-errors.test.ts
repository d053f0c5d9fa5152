/**
 * Abuse suite, item 9: what the upstream says in an error never reaches the client. Upstream
 * failures become Anthropic-shaped errors with our request id and a short fixed message; the
 * upstream's own body (which may echo a key, or be an HTML page) is only logged, redacted. An
 * upstream 401 is our credentials' problem: the client gets 502, not a 401 about its own key.
 */
import { redactSecrets } from "../../app/src/llm/upstream-errors";
import { openRig, QUIET, type AbuseRig, type ErrorJson } from "../support/abuse";
import { serviceBackends } from "../support/services";
import { FAKE_API_KEY, type FakeFault } from "../support/fake-anthropic";

const LEAK = `<html><body>invalid x-api-key ${FAKE_API_KEY} (Authorization: Bearer ${FAKE_API_KEY})</body></html>`;

const body = (content: string, stream = false) => ({
  model: "claude-haiku-4-5",
  max_tokens: 32,
  stream,
  messages: [{ role: "user", content }],
});

describe.each(serviceBackends())("abuse: upstream error bodies with $name", (backend) => {
  let rig: AbuseRig;
  beforeAll(async () => {
    rig = await openRig(backend, { ...QUIET, UPSTREAM_MAX_ATTEMPTS: "1", MODEL_FALLBACK: "false" });
  });
  afterAll(() => rig?.close());

  const fault = (f: FakeFault) => `[[fake:${JSON.stringify({ fault: f })}]]`;
  const expectClean = (text: string) => {
    expect(text).not.toContain(FAKE_API_KEY);
    expect(text).not.toContain("<html");
    expect(text).not.toContain("invalid x-api-key");
  };

  it.each([
    [401, "authentication_error", 502, "api_error"],
    [403, "permission_error", 502, "api_error"],
    [404, "not_found_error", 502, "api_error"],
    [400, "invalid_request_error", 400, "invalid_request_error"],
    [413, "request_too_large", 413, "request_too_large"],
    [429, "rate_limit_error", 429, "rate_limit_error"],
    [500, "api_error", 502, "api_error"],
    [503, "api_error", 503, "overloaded_error"],
    [529, "overloaded_error", 529, "overloaded_error"],
  ] as const)(
    "an upstream %i %s reaches the client as %i %s with a fixed message",
    async (status, type, clientStatus, clientType) => {
      const res = await rig.post(
        "/v1/messages",
        body(`q ${status} ${fault({ kind: "http_error", status, type, message: LEAK })}`),
      );
      const text = await res.text();
      expect(res.status).toBe(clientStatus);
      expectClean(text);
      const err = JSON.parse(text) as ErrorJson;
      expect(err.type).toBe("error");
      expect(err.error.type).toBe(clientType);
      expect(err.error.message.length).toBeLessThan(200);
      expect(err.request_id).toBe(res.headers.get("request-id"));
      expect(err.request_id).toMatch(/^req_/);
    },
  );

  it("keeps retry-after on an upstream 429", async () => {
    const res = await rig.post(
      "/v1/messages",
      body(`slow down ${fault({ kind: "rate_limit", retryAfterSeconds: 7 })}`),
    );
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("7");
  });

  it("sends a fixed message for an error in the middle of a stream", async () => {
    const res = await rig.post(
      "/v1/messages",
      body(
        `cut ${fault({ kind: "stream_error", afterDeltas: 1, errorType: "api_error", message: LEAK })}`,
        true,
      ),
    );
    expect(res.status).toBe(200);
    const text = await res.text();
    expectClean(text);
    expect(text).toMatch(/event: error\ndata: \{"type":"error","error":\{"type":"api_error"/);
  });
});

describe.each(serviceBackends())(
  "abuse: the service's own key refused upstream, with $name",
  (backend) => {
    const WRONG = "sk-ant-wrong-key-0123456789";
    let rig: AbuseRig;
    beforeAll(async () => {
      rig = await openRig(backend, { ...QUIET, ANTHROPIC_API_KEY: WRONG });
    });
    afterAll(() => rig?.close());

    it.each([
      ["/v1/messages", body("hello")],
      ["/v1/messages/batches", { requests: [{ custom_id: "a", params: body("hello") }] }],
    ])(
      "%s: the client, whose key is fine, gets 502 and nothing of the upstream's answer",
      async (path, payload) => {
        const res = await rig.post(path, payload);
        const text = await res.text();
        expect(res.status).toBe(502);
        expect(text).not.toContain(WRONG);
        expect(text).not.toContain("x-api-key");
        const err = JSON.parse(text) as ErrorJson;
        expect(err.error.type).toBe("api_error");
        expect(err.request_id).toMatch(/^req_/);
      },
    );
  },
);

describe("what is logged of an upstream error", () => {
  it("leaves out keys and bearer tokens, and is bounded", () => {
    const text = `bad key sk-ant-api03-AbC_def-123 for x-api-key: hunter2hunter2 Authorization: Bearer abc.def ${"x".repeat(600)}`;
    const out = redactSecrets(text, ["hunter2hunter2"]);
    expect(out).not.toMatch(/sk-ant-api03|hunter2|abc\.def/);
    expect(out.length).toBeLessThanOrEqual(503);
  });
});
