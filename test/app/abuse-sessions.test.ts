/**
 * Abuse suite, item 2: a session turn (the tool loop, several model calls) stays within
 * BUDGET_REQUEST_USD as a whole, and input that cannot be stored (NUL characters, which Postgres
 * rejects in text and JSON) is refused with 400 before any model call.
 */
import { openRig, QUIET, type AbuseRig, type ErrorJson } from "../support/abuse";
import { serviceBackends } from "../support/services";

const HAIKU = "claude-haiku-4-5";
const SONNET = "claude-sonnet-4-6";

async function newSession(rig: AbuseRig, model = HAIKU): Promise<string> {
  const res = await rig.post("/v1/sessions", { model });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

const modelCalls = (rig: AbuseRig) =>
  rig.fake.requests.filter((r) => r.method === "POST" && r.path === "/v1/messages").length;

describe.each(serviceBackends())(
  "abuse: session turns and the request budget with $name",
  (backend) => {
    const REQUEST_USD = 0.012;
    let rig: AbuseRig;
    beforeAll(async () => {
      // The fake caches no prefix here, so every call of the loop pays its whole input.
      rig = await openRig(
        backend,
        { ...QUIET, BUDGET_REQUEST_USD: String(REQUEST_USD) },
        { fake: { minCacheableTokens: 10_000_000 } },
      );
    });
    afterAll(() => rig?.close());

    it("keeps a whole turn of the tool loop within BUDGET_REQUEST_USD, storing what was paid for", async () => {
      const id = await newSession(rig, SONNET);
      // ~2,600 tokens of input: each model call of the turn costs about $0.008 at Sonnet's prices,
      // so a second call would take the turn past $0.012.
      const content = `[[tool:calculator {"expression":"6*7"}]] ${"lorem ipsum ".repeat(700)}`;
      const res = await rig.post(`/v1/sessions/${id}/messages`, { content, max_tokens: 512 });
      expect(res.status).toBe(200);
      const turn = (await res.json()) as { stop_reason: string; usage: { cost_usd: number } };
      const rows = await rig.ledger();
      const turnCost = rows.reduce((sum, r) => sum + r.cost_usd, 0);
      expect(rows.length).toBeGreaterThanOrEqual(1);
      expect(turnCost).toBeLessThanOrEqual(REQUEST_USD);
      expect(turn.usage.cost_usd).toBeCloseTo(turnCost, 8);
      expect(turn.stop_reason).toBe("budget_exceeded");
      // The call that was paid for and the tool's result are in the history, ready for the next turn.
      const history = (await (await rig.get(`/v1/sessions/${id}`)).json()) as {
        messages: Array<{ role: string }>;
      };
      expect(history.messages.map((m) => m.role)).toEqual(["user", "assistant", "user"]);
    });
  },
);

describe.each(serviceBackends())("abuse: input a session cannot store with $name", (backend) => {
  let rig: AbuseRig;
  beforeAll(async () => {
    rig = await openRig(backend, { ...QUIET });
  });
  afterAll(() => rig?.close());

  it.each([
    ["a string", "hello\u0000world"],
    ["a text block", [{ type: "text", text: "a\u0000b" }]],
    ["an image block's data", [{ type: "image", source: { type: "base64", data: "QQ\u0000" } }]],
  ])("refuses a NUL character in %s with 400 before any model call", async (_what, content) => {
    const id = await newSession(rig);
    const calls = modelCalls(rig);
    const rows = (await rig.ledger()).length;
    const res = await rig.post(`/v1/sessions/${id}/messages`, { content });
    expect(res.status).toBe(400);
    const body = (await res.json()) as ErrorJson;
    expect(body.error.type).toBe("invalid_request_error");
    expect(body.error.message).toMatch(/NUL/);
    expect(body.request_id).toMatch(/^req_/);
    expect(modelCalls(rig)).toBe(calls);
    expect((await rig.ledger()).length).toBe(rows);
    // Nothing already stored is lost: the session still answers, and a clean turn works.
    const ok = await rig.post(`/v1/sessions/${id}/messages`, { content: "clean" });
    expect(ok.status).toBe(200);
  });

  it("stores a model answer holding a NUL character (as U+FFFD) instead of failing the paid turn", async () => {
    const id = await newSession(rig);
    rig.fake.setBehavior({ reply: "before\u0000after" });
    try {
      const res = await rig.post(`/v1/sessions/${id}/messages`, { content: "say it" });
      expect(res.status).toBe(200);
    } finally {
      rig.fake.setBehavior({ reply: undefined });
    }
    const history = (await (await rig.get(`/v1/sessions/${id}`)).json()) as {
      messages: Array<{ role: string; content: Array<{ text?: string }> }>;
    };
    expect(history.messages[1]!.content[0]!.text).toContain("before\uFFFDafter");
  });

  it("refuses a NUL character in a batch request with 400 before anything is stored or sent", async () => {
    const batches = () => rig.fake.requests.filter((r) => r.path === "/v1/messages/batches").length;
    const before = batches();
    const res = await rig.post("/v1/messages/batches", {
      requests: [
        {
          custom_id: "nul",
          params: {
            model: HAIKU,
            max_tokens: 10,
            messages: [{ role: "user", content: "a\u0000" }],
          },
        },
      ],
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as ErrorJson;
    expect(body.error.message).toContain("requests.0.params.messages.0.content");
    expect(batches()).toBe(before);
  });

  it("refuses a NUL character in a new session's system prompt or metadata with 400", async () => {
    for (const body of [{ system: "be\u0000nice" }, { metadata: { k: "v\u0000" } }]) {
      const res = await rig.post("/v1/sessions", body);
      expect(res.status).toBe(400);
      expect(((await res.json()) as ErrorJson).error.type).toBe("invalid_request_error");
    }
  });
});
