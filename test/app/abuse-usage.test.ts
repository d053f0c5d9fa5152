/**
 * Abuse suite, item 3: abandoned and misreported usage. A JSON request whose client leaves is
 * not cancelled upstream (the model call is paid for either way): it finishes, its real usage is
 * recorded (status "aborted") and it is not cached. Usage the upstream reports above the
 * admitted max_tokens is clamped to it, so a misbehaving upstream cannot push a user past a budget.
 */
import { ModelCatalog } from "../../app/src/llm/models";
import { openRig, QUIET, until, type AbuseRig, type LedgerRow } from "../support/abuse";
import { serviceBackends } from "../support/services";

const HAIKU = "claude-haiku-4-5";
const catalog = ModelCatalog.load();

const body = (content: string, extra: Record<string, unknown> = {}) => ({
  model: HAIKU,
  max_tokens: 50,
  messages: [{ role: "user", content }],
  ...extra,
});

const priced = (r: LedgerRow) =>
  catalog.costUsd(r.model, { input_tokens: r.input_tokens, output_tokens: r.output_tokens });

describe.each(serviceBackends())("abuse: abandoned and misreported usage with $name", (backend) => {
  let rig: AbuseRig;
  beforeAll(async () => {
    rig = await openRig(backend, {
      ...QUIET,
      CACHE_TTL_SECONDS: "300",
      BUDGET_USER_DAILY_USD: "5",
      BATCH_POLL_INTERVAL_MS: "50",
    });
  });
  afterAll(() => rig?.close());

  const rowsAfter = async (n: number) =>
    until(async () => {
      const rows = await rig.ledger();
      return rows.length > n && rows;
    }, "a new ledger row");

  it("records the real usage of a JSON request whose client left mid-call, and does not cache it", async () => {
    const content = `slow answer ${Date.now()} [[fake:{"latencyMs":500}]]`;
    const seen = (await rig.ledger()).length;
    const before = rig.fake.requestCount;
    const client = new AbortController();
    const pending = rig.post("/v1/messages", body(content), {}, client.signal).catch(() => null);
    // Leave once the upstream has the request: the call is under way and will be billed.
    await until(async () => rig.fake.requestCount > before, "the upstream call");
    client.abort();
    expect(await pending).toBeNull();

    const row = (await rowsAfter(seen))[seen]!;
    expect(row.status).toBe("aborted");
    expect(row.output_tokens).toBeGreaterThan(0);
    expect(row.cost_usd).toBeGreaterThan(0);
    expect(row.cost_usd).toBeCloseTo(priced(row), 9);
    const daily = (await rig.service.deps.budgets!.usageFor(rig.user)).budgets.find(
      (b) => b.budget === "user_daily",
    )!;
    expect(daily.reserved_usd).toBe(0);
    expect(daily.spent_usd).toBeCloseTo(await rig.spent(), 5);

    // The answer nobody received was not cached: the same request is a miss, served upstream.
    const again = await rig.post("/v1/messages", body(content));
    expect(again.status).toBe(200);
    expect(again.headers.get("x-cache")).toBe("MISS");
  });

  it.each([false, true])(
    "clamps output the upstream reports above the admitted max_tokens to it (stream: %s)",
    async (stream) => {
      const seen = (await rig.ledger()).length;
      const content = `inflated ${stream} ${Date.now()} [[fake:{"reportedOutputTokens":1000000}]]`;
      const res = await rig.post("/v1/messages", body(content, { stream }));
      expect(res.status).toBe(200);
      await res.text();
      const row = (await rowsAfter(seen))[seen]!;
      expect(row.output_tokens).toBe(50);
      expect(row.cost_usd).toBeCloseTo(priced(row), 9);
      // 1,000,000 output tokens of Haiku would be $5: the whole daily budget.
      expect(row.cost_usd).toBeLessThan(0.001);
    },
  );

  it("clamps a session turn's reported output to its max_tokens", async () => {
    const session = (await (await rig.post("/v1/sessions", { model: HAIKU })).json()) as {
      id: string;
    };
    const seen = (await rig.ledger()).length;
    const res = await rig.post(`/v1/sessions/${session.id}/messages`, {
      content: 'inflated turn [[fake:{"reportedOutputTokens":1000000}]]',
      max_tokens: 40,
    });
    expect(res.status).toBe(200);
    const row = (await rowsAfter(seen))[seen]!;
    expect(row.output_tokens).toBe(40);
    expect(row.cost_usd).toBeLessThan(0.001);
  });

  it("clamps a batch result's reported output to its request's max_tokens", async () => {
    const created = await rig.post("/v1/messages/batches", {
      requests: [
        {
          custom_id: "inflated",
          params: body('batch [[fake:{"reportedOutputTokens":1000000}]]', { max_tokens: 30 }),
        },
      ],
    });
    expect(created.status).toBe(200);
    const { id } = (await created.json()) as { id: string };
    const ended = await until(async () => {
      const b = (await (await rig.get(`/v1/messages/batches/${id}`)).json()) as {
        processing_status: string;
        cost_usd: number;
      };
      return b.processing_status === "ended" && b;
    }, "the batch to end");
    const row = (await rig.ledger()).find((r) => r.request_id === `batch:${id}:inflated`)!;
    expect(row.output_tokens).toBe(30);
    expect(ended.cost_usd).toBeLessThan(0.001);
  });
});
