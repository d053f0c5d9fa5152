/**
 * How /v1/messages streams reach the client: events that arrive from the upstream together leave
 * together (one write, so one wake-up of the reader instead of one per event), and events the
 * upstream paces out are passed on as they come, never held back for the ones after.
 */
import http from "node:http";
import { randomBytes } from "node:crypto";
import { startFakeAnthropic, FAKE_API_KEY, type FakeAnthropic } from "../support/fake-anthropic";
import { startService, type RunningService } from "../support/service";

const run = randomBytes(4).toString("hex");
const USER = { user: `sse-${run}`, key: `sse-key-${run}` };

/** The body's chunks as the client's socket delivered them, with when each arrived. */
function streamChunks(url: string, content: string): Promise<Array<{ at: number; text: string }>> {
  const body = JSON.stringify({
    model: "claude-haiku-4-5",
    max_tokens: 256,
    stream: true,
    messages: [{ role: "user", content }],
  });
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${url}/v1/messages`,
      {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-api-key": USER.key,
          "anthropic-version": "2023-06-01",
        },
        agent: false,
      },
      (res) => {
        const chunks: Array<{ at: number; text: string }> = [];
        res.setEncoding("utf8");
        res.on("data", (text: string) => chunks.push({ at: performance.now(), text }));
        res.on("end", () => resolve(chunks));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

const deltasIn = (text: string) => text.split("event: content_block_delta").length - 1;

describe("/v1/messages stream writes", () => {
  let fake: FakeAnthropic;
  let service: RunningService;

  beforeAll(async () => {
    fake = await startFakeAnthropic();
    service = await startService({
      DATA_DIR: "memory://",
      ANTHROPIC_API_KEY: FAKE_API_KEY,
      ANTHROPIC_BASE_URL: fake.url,
      AGENT_API_KEYS: `${USER.user}:${USER.key}`,
      CACHE_TTL_SECONDS: "0",
    });
  });
  afterAll(async () => {
    await service?.close();
    await fake?.close();
  });

  it("sends a stream the upstream delivered at once in a few writes, not one per event", async () => {
    const chunks = await streamChunks(
      service.url,
      `[[fake:{"deltas":40}]] all at once ${randomBytes(4).toString("hex")}`,
    );
    const text = chunks.map((c) => c.text).join("");
    expect(deltasIn(text)).toBe(40);
    expect(text).toContain("event: message_stop");
    // 44 events (start, block start, 40 deltas, block stop, delta, stop): one write, which the
    // socket may split; nowhere near one chunk per event.
    expect(chunks.length).toBeLessThanOrEqual(4);
  });

  it("passes on paced events as they arrive", async () => {
    const chunks = await streamChunks(
      service.url,
      `[[fake:{"deltas":6,"deltaIntervalMs":40}]] paced ${randomBytes(4).toString("hex")}`,
    );
    const withDeltas = chunks.filter((c) => deltasIn(c.text) > 0);
    expect(withDeltas.reduce((n, c) => n + deltasIn(c.text), 0)).toBe(6);
    // Six deltas 40 ms apart reach the client as (at least) five separate reads spread over the
    // stream, not as one read at its end.
    expect(withDeltas.length).toBeGreaterThanOrEqual(5);
    expect(withDeltas.at(-1)!.at - withDeltas[0]!.at).toBeGreaterThan(100);
  });
});
