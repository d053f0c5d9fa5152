/**
 * Listing, cancelling and deleting message batches (issue 16), on both modes:
 * - local (no API key: requests run one by one in the service): a request already running
 *   finishes, the rest are `canceled`; the budget hold is settled to what ran, the rest released;
 * - upstream (the fake Message Batches API): the cancel goes upstream, the batch is `canceling`
 *   until the upstream one ends, its results are collected and the whole hold is released.
 * Checked against the SDK's types through the official SDK, the ledger and the budget's holds.
 */
import Anthropic from "@anthropic-ai/sdk";
import type { MessageBatch } from "@anthropic-ai/sdk/resources/messages/batches";
import type {
  CallOptions,
  LlmProvider,
  MessageRequest,
  MessageResponse,
  StreamEvent,
} from "../../app/src/llm/types";
import { ModelCatalog } from "../../app/src/llm/models";
import { FAKE_API_KEY, startFakeAnthropic, type FakeAnthropic } from "../support/fake-anthropic";
import { startService, type RunningService } from "../support/service";

const catalog = ModelCatalog.load();
const ALICE = { user: "alice", key: "alice-key-0001" };
const BOB = { user: "bob", key: "bob-key-00001" };
const ENV = {
  DATA_DIR: "memory://",
  AGENT_API_KEYS: `${ALICE.user}:${ALICE.key},${BOB.user}:${BOB.key}`,
  METRICS_ENABLED: "false",
  RATE_LIMIT_RPM: "0",
  RATE_LIMIT_TPM: "0",
  BUDGET_USER_DAILY_USD: "50",
  BATCH_POLL_INTERVAL_MS: "50",
};
const HAIKU = "claude-haiku-4-5";

async function waitFor<T>(
  fn: () => Promise<T | undefined | null | false>,
  ms = 10_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 20));
  }
}

const request = (customId: string, text: string) => ({
  custom_id: customId,
  params: {
    model: HAIKU,
    max_tokens: 200,
    messages: [{ role: "user" as const, content: text }],
  },
});

/** The user's daily budget line: spent and held (USD). */
async function userDaily(service: RunningService, user: string) {
  const report = await service.deps.budgets!.usageFor(user);
  const line = report.budgets.find((b) => b.budget === "user_daily")!;
  return { spent: line.spent_usd ?? 0, reserved: line.reserved_usd ?? 0 };
}

async function batchLedger(service: RunningService, user: string, batchId: string) {
  await service.deps.usage.flush();
  return (await service.deps.store.listUsage({ userId: user })).filter((e) =>
    e.requestId.startsWith(`batch:${batchId}:`),
  );
}

async function untilEnded(sdk: Anthropic, id: string): Promise<MessageBatch> {
  return waitFor(async () => {
    const b = await sdk.messages.batches.retrieve(id);
    return b.processing_status === "ended" ? b : undefined;
  });
}

async function resultsOf(sdk: Anthropic, id: string) {
  const out: Record<string, string> = {};
  for await (const line of await sdk.messages.batches.results(id))
    out[line.custom_id] = line.result.type;
  return out;
}

/** A real-priced model (not the free synthetic one) whose calls wait until the test lets them go. */
class GatedModel implements LlmProvider {
  readonly synthetic = false;
  readonly calls: string[] = [];
  private readonly gates: Array<() => void> = [];

  release(): void {
    this.gates.shift()?.();
  }

  async createMessage(request: MessageRequest, _options?: CallOptions): Promise<MessageResponse> {
    const text = JSON.stringify(request.messages.at(-1)?.content);
    this.calls.push(text);
    await new Promise<void>((resolve) => this.gates.push(resolve));
    return {
      id: `msg_gated_${this.calls.length}`,
      type: "message",
      role: "assistant",
      model: request.model,
      content: [{ type: "text", text: `answer to ${text}` }],
      stop_reason: "end_turn",
      stop_sequence: null,
      usage: { input_tokens: 120, output_tokens: 40 },
    } as unknown as MessageResponse;
  }

  async *streamMessage(): AsyncIterable<StreamEvent> {
    throw new Error("not used");
  }
}

describe("cancelling a local batch (a request in flight finishes, the rest are canceled)", () => {
  let service: RunningService;
  let sdk: Anthropic;
  const model = new GatedModel();

  beforeAll(async () => {
    service = await startService(ENV, { llm: model });
    sdk = new Anthropic({ baseURL: service.url, apiKey: ALICE.key, maxRetries: 0 });
  });
  afterAll(async () => {
    for (let i = 0; i < 10; i++) model.release();
    await service.close();
  });

  it("ends canceling -> ended, charges the request that ran, releases the rest of the hold", async () => {
    const batch = await sdk.messages.batches.create({
      requests: [request("first", "one"), request("second", "two"), request("third", "three")],
    });
    expect(batch).toMatchObject({ processing_status: "in_progress", cancel_initiated_at: null });
    await waitFor(async () => model.calls.length === 1);
    const held = await userDaily(service, ALICE.user);
    expect(held.reserved).toBeGreaterThan(0);
    expect(held.spent).toBe(0);

    const canceling = await sdk.messages.batches.cancel(batch.id);
    expect(canceling.processing_status).toBe("canceling");
    expect(Number.isNaN(Date.parse(canceling.cancel_initiated_at ?? ""))).toBe(false);
    expect(canceling.results_url).toBeNull();
    // A second cancel changes nothing.
    expect((await sdk.messages.batches.cancel(batch.id)).cancel_initiated_at).toBe(
      canceling.cancel_initiated_at,
    );

    model.release();
    const ended = await untilEnded(sdk, batch.id);
    expect(ended.request_counts).toEqual({
      processing: 0,
      succeeded: 1,
      errored: 0,
      canceled: 2,
      expired: 0,
    });
    expect(ended.cancel_initiated_at).toBe(canceling.cancel_initiated_at);
    expect(await resultsOf(sdk, batch.id)).toEqual({
      first: "succeeded",
      second: "canceled",
      third: "canceled",
    });
    expect(model.calls).toHaveLength(1);

    // The ledger has the request that ran, at the standard price (it ran here, not upstream).
    const ledger = await batchLedger(service, ALICE.user, batch.id);
    const cost = catalog.costUsd(HAIKU, { input_tokens: 120, output_tokens: 40 });
    expect(ledger.map((e) => [e.requestId, e.status])).toEqual([[`batch:${batch.id}:first`, "ok"]]);
    expect(ledger[0]!.costUsd).toBeCloseTo(cost, 9);
    // The hold is settled to that cost: spent, and nothing left held.
    const settled = await waitFor(async () => {
      const now = await userDaily(service, ALICE.user);
      return now.reserved === 0 ? now : undefined;
    });
    expect(settled.spent).toBeCloseTo(cost, 5);
  });

  it("deletes only an ended batch, and only the owner's", async () => {
    const batch = await sdk.messages.batches.create({ requests: [request("only", "x")] });
    await waitFor(async () => model.calls.length === 2);
    const early = await sdk.messages.batches.delete(batch.id).catch((e: unknown) => e);
    expect(early).toBeInstanceOf(Anthropic.BadRequestError);
    expect((early as InstanceType<typeof Anthropic.BadRequestError>).message).toMatch(
      /cannot be deleted while it is processing; cancel it first/,
    );
    model.release();
    await untilEnded(sdk, batch.id);
    const bob = new Anthropic({ baseURL: service.url, apiKey: BOB.key, maxRetries: 0 });
    await expect(bob.messages.batches.delete(batch.id)).rejects.toBeInstanceOf(
      Anthropic.NotFoundError,
    );
    await expect(bob.messages.batches.cancel(batch.id)).rejects.toBeInstanceOf(
      Anthropic.NotFoundError,
    );
    expect(await sdk.messages.batches.delete(batch.id)).toEqual({
      id: batch.id,
      type: "message_batch_deleted",
    });
    await expect(sdk.messages.batches.retrieve(batch.id)).rejects.toBeInstanceOf(
      Anthropic.NotFoundError,
    );
    // The usage stays in the ledger: it was spent.
    expect(await batchLedger(service, ALICE.user, batch.id)).toHaveLength(1);
  });
});

describe("batches on the Message Batches API (fake upstream): list, cancel, delete", () => {
  let fake: FakeAnthropic;
  let service: RunningService;
  let alice: Anthropic;
  let bob: Anthropic;

  beforeAll(async () => {
    // Upstream batches never end by themselves here: only a cancel ends them.
    fake = await startFakeAnthropic({ batchDelayMs: 3_600_000 });
    service = await startService({
      ...ENV,
      ANTHROPIC_API_KEY: FAKE_API_KEY,
      ANTHROPIC_BASE_URL: fake.url,
    });
    alice = new Anthropic({ baseURL: service.url, apiKey: ALICE.key, maxRetries: 0 });
    bob = new Anthropic({ baseURL: service.url, apiKey: BOB.key, maxRetries: 0 });
  });
  afterAll(async () => {
    await service.close();
    await fake.close();
  });

  it("lists the caller's own batches, newest first, a page at a time", async () => {
    const mine: string[] = [];
    for (const text of ["a", "b", "c"])
      mine.unshift((await alice.messages.batches.create({ requests: [request("r", text)] })).id);
    const theirs = (await bob.messages.batches.create({ requests: [request("r", "bob")] })).id;

    const first = await alice.messages.batches.list({ limit: 2 });
    expect(first.data.map((b) => b.id)).toEqual(mine.slice(0, 2));
    expect(first).toMatchObject({ has_more: true, first_id: mine[0], last_id: mine[1] });
    const seen: string[] = [];
    for await (const b of alice.messages.batches.list({ limit: 1 })) seen.push(b.id);
    expect(seen.slice(0, 3)).toEqual(mine);
    expect(seen).not.toContain(theirs);
    const before = await alice.messages.batches.list({ limit: 5, before_id: mine[2]! });
    expect(before.data.map((b) => b.id)).toEqual(mine.slice(0, 2));
    // The beta namespace sends ?beta=true.
    const beta = await alice.beta.messages.batches.list({ limit: 3 });
    expect(beta.data.map((b) => b.id)).toEqual(mine);
    const res = await fetch(`${service.url}/v1/messages/batches?after_id=${theirs}`, {
      headers: { "x-api-key": ALICE.key, "anthropic-version": "2023-06-01" },
    });
    expect(res.status).toBe(400);
  });

  it("cancels upstream: canceling, then ended with canceled results; the whole hold is released", async () => {
    const batch = await alice.messages.batches.create({
      requests: [request("x", "first"), request("y", "second")],
    });
    const held = await userDaily(service, ALICE.user);
    expect(held.reserved).toBeGreaterThan(0);

    const canceled = await alice.messages.batches.cancel(batch.id);
    expect(["canceling", "ended"]).toContain(canceled.processing_status);
    expect(canceled.cancel_initiated_at).not.toBeNull();
    const upstreamId = (await service.deps.store.getBatch(batch.id))!.upstreamId!;
    expect(
      fake.requests.some(
        (r) => r.method === "POST" && r.path === `/v1/messages/batches/${upstreamId}/cancel`,
      ),
    ).toBe(true);

    const ended = await untilEnded(alice, batch.id);
    expect(ended.request_counts).toMatchObject({ canceled: 2, succeeded: 0, processing: 0 });
    expect(await resultsOf(alice, batch.id)).toEqual({ x: "canceled", y: "canceled" });
    expect(await batchLedger(service, ALICE.user, batch.id)).toEqual([]);
    // This batch's worst case is released; the other batches of this describe (never ended) still hold theirs.
    const { reservedUsd } = (await service.deps.store.getBatch(batch.id))!;
    expect(reservedUsd).toBeGreaterThan(0);
    const after = await waitFor(async () => {
      const now = await userDaily(service, ALICE.user);
      return now.reserved < held.reserved ? now : undefined;
    });
    expect(after.reserved).toBeCloseTo(held.reserved - reservedUsd, 5);
    expect(after.spent).toBe(0);
    const view = (await (
      await fetch(`${service.url}/v1/messages/batches/${batch.id}`, {
        headers: { "x-api-key": ALICE.key, "anthropic-version": "2023-06-01" },
      })
    ).json()) as { cost_usd: number };
    expect(view.cost_usd).toBe(0);

    // Cancelling an ended batch answers it unchanged.
    const again = await alice.messages.batches.cancel(batch.id);
    expect(again).toMatchObject({
      processing_status: "ended",
      cancel_initiated_at: ended.cancel_initiated_at,
    });
  });

  it("deletes an ended batch here and upstream; refuses one in progress with 400", async () => {
    const running = await alice.messages.batches.create({ requests: [request("r", "keep")] });
    await expect(alice.messages.batches.delete(running.id)).rejects.toBeInstanceOf(
      Anthropic.BadRequestError,
    );
    await alice.messages.batches.cancel(running.id);
    await untilEnded(alice, running.id);
    const upstreamId = (await service.deps.store.getBatch(running.id))!.upstreamId!;
    await expect(bob.messages.batches.delete(running.id)).rejects.toBeInstanceOf(
      Anthropic.NotFoundError,
    );
    expect(await alice.messages.batches.delete(running.id)).toEqual({
      id: running.id,
      type: "message_batch_deleted",
    });
    expect(
      fake.requests.some(
        (r) => r.method === "DELETE" && r.path === `/v1/messages/batches/${upstreamId}`,
      ),
    ).toBe(true);
    const listed: string[] = [];
    for await (const b of alice.messages.batches.list()) listed.push(b.id);
    expect(listed).not.toContain(running.id);
  });
});
