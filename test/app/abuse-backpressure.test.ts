/**
 * Abuse suite, item 11: a client that stops reading a stream. The service stops reading the
 * upstream too (backpressure: what the upstream could send piles up in neither process), and
 * after STREAM_STALL_TIMEOUT_MS without the client taking anything it ends the request, settling
 * the usage it saw: a ledger row, no hold left behind.
 */
import { createServer, type Server } from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { openRig, QUIET, until, type AbuseRig } from "../support/abuse";
import { serviceBackends } from "../support/services";

/** Streams text deltas as fast as the reader takes them (waiting for 'drain'), for ever. */
async function floodingUpstream(): Promise<{
  url: string;
  written: () => number;
  close(): Promise<void>;
}> {
  let written = 0;
  const chunk = "x".repeat(4096);
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      const send = (event: string, data: unknown) => {
        const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
        written += frame.length;
        return res.write(frame);
      };
      send("message_start", {
        type: "message_start",
        message: {
          id: "msg_flood",
          type: "message",
          role: "assistant",
          model: "claude-haiku-4-5",
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: 10, output_tokens: 1 },
        },
      });
      send("content_block_start", {
        type: "content_block_start",
        index: 0,
        content_block: { type: "text", text: "" },
      });
      const pump = () => {
        while (!res.destroyed) {
          const more = send("content_block_delta", {
            type: "content_block_delta",
            index: 0,
            delta: { type: "text_delta", text: chunk },
          });
          if (!more) return void res.once("drain", pump);
        }
      };
      pump();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    written: () => written,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe.each(serviceBackends())(
  "abuse: a client that stops reading a stream, with $name",
  (backend) => {
    let rig: AbuseRig;
    let upstream: Awaited<ReturnType<typeof floodingUpstream>>;
    beforeAll(async () => {
      upstream = await floodingUpstream();
      rig = await openRig(backend, {
        ...QUIET,
        ANTHROPIC_BASE_URL: upstream.url,
        BUDGET_USER_DAILY_USD: "100",
        STREAM_STALL_TIMEOUT_MS: "1500",
        CACHE_TTL_SECONDS: "0",
      });
    });
    afterAll(async () => {
      await rig?.close();
      await upstream?.close();
    });

    it("stops reading the upstream while the client does not read, then ends the request and settles it", async () => {
      const body = JSON.stringify({
        model: "claude-haiku-4-5",
        max_tokens: 200_000,
        stream: true,
        messages: [{ role: "user", content: "tell me everything" }],
      });
      const { hostname, port } = new URL(rig.service.url);
      const client = net.connect(Number(port), hostname);
      client.on("error", () => {});
      client.write(
        `POST /v1/messages HTTP/1.1\r\nHost: ${hostname}\r\nx-api-key: ${rig.key}\r\nanthropic-version: 2023-06-01\r\n` +
          `content-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
      );
      client.pause(); // and never reads
      const rss = process.memoryUsage.rss();
      try {
        const row = await until(
          async () => (await rig.ledger()).find((r) => r.kind === "messages"),
          "the stalled stream to be ended and settled",
          30_000,
        );
        const grew = process.memoryUsage.rss() - rss;
        process.stdout.write(
          `[abuse] ${backend.name}: stalled client; upstream wrote ${(upstream.written() / 1e6).toFixed(2)} MB before it was stopped, RSS +${(grew / 1e6).toFixed(1)} MB\n`,
        );
        expect(row.status).toBe("aborted");
        expect(row.output_tokens).toBeGreaterThan(0);
        expect(row.cost_usd).toBeGreaterThan(0);
        // What sits in socket buffers on the way (a few MB at most), not the whole stream.
        expect(upstream.written()).toBeLessThan(16e6);
        const daily = (await rig.service.deps.budgets!.usageFor(rig.user)).budgets.find(
          (b) => b.budget === "user_daily",
        )!;
        await until(
          async () =>
            (await rig.service.deps.budgets!.usageFor(rig.user)).budgets.find(
              (b) => b.budget === "user_daily",
            )!.reserved_usd === 0,
          "the hold to be released",
        );
        expect(daily.spent_usd).toBeGreaterThanOrEqual(0);
      } finally {
        client.destroy();
      }
    }, 60_000);
  },
);
