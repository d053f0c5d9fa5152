/**
 * Abuse suite, item 7: deeply nested JSON. The cache-key canonicaliser is iterative (no stack to
 * overflow, whatever the depth), and a body nesting deeper than MAX_JSON_DEPTH is a 400
 * invalid_request_error before anything else happens: no model call, no hold, no 500.
 */
import { canonicalJson } from "../../app/src/cache/key";
import { MAX_JSON_DEPTH } from "../../app/src/json-limits";
import { openRig, QUIET, type AbuseRig, type ErrorJson } from "../support/abuse";
import { serviceBackends } from "../support/services";

/** `[[[...]]]` nested `depth` levels, as JSON text (built without recursion). */
const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth);

describe("the cache-key canonicaliser", () => {
  it("handles 200,000 levels of nesting without recursion", () => {
    const deep = JSON.parse(nested(200_000)) as unknown;
    expect(canonicalJson(deep)).toBe(nested(200_000));
  });

  it("sorts object keys at every depth and leaves out undefined values, as before", () => {
    expect(canonicalJson({ b: [1, { d: null, c: "x" }], a: undefined, e: true })).toBe(
      '{"b":[1,{"c":"x","d":null}],"e":true}',
    );
    expect(canonicalJson([undefined, "s", 1.5])).toBe('[null,"s",1.5]');
  });
});

describe.each(serviceBackends())("abuse: deeply nested JSON with $name", (backend) => {
  let rig: AbuseRig;
  beforeAll(async () => {
    rig = await openRig(backend, {
      ...QUIET,
      CACHE_TTL_SECONDS: "300",
      BUDGET_USER_DAILY_USD: "1",
    });
  });
  afterAll(() => rig?.close());

  const deepMessage = (depth: number) =>
    `{"model":"claude-haiku-4-5","max_tokens":16,"messages":[{"role":"user","content":[{"type":"text","text":"hi","extra":${nested(depth)}}]}]}`;

  it.each([
    ["/v1/messages", {}],
    ["/v1/messages", { "idempotency-key": "deep-1" }],
    ["/v1/messages", { "cache-control": "no-cache" }],
  ])("answers 100,000 levels on %s (%j) with 400, calling nothing", async (path, headers) => {
    const calls = rig.fake.requestCount;
    const res = await rig.post(path, deepMessage(100_000), headers as Record<string, string>);
    expect(res.status).toBe(400);
    const body = (await res.json()) as ErrorJson;
    expect(body.error.type).toBe("invalid_request_error");
    expect(body.error.message).toContain(String(MAX_JSON_DEPTH));
    expect(body.request_id).toMatch(/^req_/);
    expect(rig.fake.requestCount).toBe(calls);
    expect(await rig.spent()).toBe(0);
  });

  it("refuses deep nesting in a session turn and a batch too", async () => {
    const session = (await (await rig.post("/v1/sessions", {})).json()) as { id: string };
    const turn = await rig.post(
      `/v1/sessions/${session.id}/messages`,
      `{"content":[{"type":"text","text":"hi","x":${nested(100_000)}}]}`,
    );
    expect(turn.status).toBe(400);
    const batch = await rig.post(
      "/v1/messages/batches",
      `{"requests":[{"custom_id":"a","params":${deepMessage(100_000)}}]}`,
    );
    expect(batch.status).toBe(400);
    expect(((await batch.json()) as ErrorJson).error.type).toBe("invalid_request_error");
  });

  it("still serves a request nested up to the limit", async () => {
    const res = await rig.post("/v1/messages", deepMessage(MAX_JSON_DEPTH - 8));
    expect(res.status).toBe(200);
  });
});
