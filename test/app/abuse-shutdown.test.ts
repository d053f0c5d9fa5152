/**
 * Abuse suite, item 4: shutdown. The real server process (app/entrypoints/server.ts) gets SIGTERM
 * while a stream and a JSON call are in flight and outlive SHUTDOWN_GRACE_MS. While it drains,
 * /ready answers 503 (the port stays open); when the grace period ends, both requests are cut,
 * and before the process exits each has a ledger row with what it spent and no budget hold is
 * left behind in Redis.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import pino from "pino";
import { openStore } from "../../app/src/store";
import { loadConfig } from "../../app/src/config";
import { utcDay } from "../../app/src/budget/budgets";
import { serviceBackends } from "../support/services";
import { openServerRig, until, type ServerRig } from "../support/abuse";

const ROOT = path.resolve(__dirname, "../..");

interface Child {
  proc: ChildProcess;
  url: string;
  exited: Promise<number | null>;
  output: () => string;
}

async function startServer(env: Record<string, string>): Promise<Child> {
  const proc = spawn(process.execPath, ["--import", "tsx", "app/entrypoints/server.ts"], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    proc.once("exit", (code) => resolve(code)),
  );
  const url = await until(
    async () => /"url":"(http:[^"]+)"[^\n]*agent service listening/.exec(out)?.[1],
    "the server to listen",
    30_000,
  );
  return { proc, url, exited, output: () => out };
}

describe.each(serviceBackends())("abuse: shutdown with $name", (backend) => {
  let rig: ServerRig;
  let env: Record<string, string>;
  let dataDir: string | undefined;
  let user = "";
  let key = "";

  beforeAll(async () => {
    rig = await openServerRig(backend, "drain");
    ({ user, key } = rig);
    env = { ...rig.env };
    if (env.DATA_DIR === "memory://") {
      // The ledger must outlive the process to be read afterwards.
      dataDir = mkdtempSync(path.join(tmpdir(), "agent-drain-"));
      env.DATA_DIR = dataDir;
    }
  });
  afterAll(async () => {
    await rig?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });
  const fake = () => rig.fake;

  it("answers /ready with 503 while draining, and settles and writes every request cut at the end of the grace period", async () => {
    const child = await startServer({
      ...env,
      LOG_LEVEL: "info",
      SHUTDOWN_GRACE_MS: "1500",
      BUDGET_USER_DAILY_USD: "5",
      METRICS_ENABLED: "false",
      BATCH_POLLER_ENABLED: "false",
    });
    try {
      const post = (content: string, stream: boolean) =>
        fetch(`${child.url}/v1/messages`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "x-api-key": key,
            "anthropic-version": "2023-06-01",
          },
          body: JSON.stringify({
            model: "claude-haiku-4-5",
            max_tokens: 400,
            stream,
            messages: [{ role: "user", content }],
          }),
        });
      // A stream of 400 deltas 50 ms apart (20 s) and a JSON call that takes 60 s upstream.
      const streaming = await post(
        'long stream [[fake:{"deltas":400,"deltaIntervalMs":50}]]',
        true,
      );
      expect(streaming.status).toBe(200);
      const reader = streaming.body!.getReader();
      await reader.read(); // under way
      const json = post('long call [[fake:{"latencyMs":60000}]]', false).catch(() => null);
      await until(async () => fake().requestCount >= 2, "both upstream calls");

      child.proc.kill("SIGTERM");
      // Draining: the port still answers, and /ready says so.
      const ready = await until(async () => {
        const r = await fetch(`${child.url}/ready`).catch(() => null);
        return r && r.status === 503 && r;
      }, "/ready to answer 503");
      expect(((await ready.json()) as { status: string }).status).toBe("draining");

      // Read what the stream sends until it is cut.
      for (;;) {
        const next = await reader.read().catch(() => ({ done: true }));
        if (next.done) break;
      }
      await json;
      expect(await child.exited).toBe(0);
    } finally {
      child.proc.kill("SIGKILL");
    }

    const config = loadConfig({ ...env, LOG_LEVEL: "silent" });
    const store = await openStore(config, { logger: pino({ level: "silent" }) });
    try {
      const { rows } = await (
        store as unknown as {
          db: { query<T>(sql: string, p: unknown[]): Promise<{ rows: T[] }> };
        }
      ).db.query<{ status: string; output_tokens: string; cost_usd: string }>(
        "SELECT status, output_tokens, cost_usd FROM usage_ledger WHERE user_id = $1",
        [user],
      );
      expect(rows).toHaveLength(2);
      for (const r of rows) {
        expect(r.status).toBe("aborted");
        expect(Number(r.output_tokens)).toBeGreaterThan(0);
        expect(Number(r.cost_usd)).toBeGreaterThan(0);
      }
    } finally {
      await store.close();
    }

    if (env.REDIS_URL) {
      const redis = new Redis(env.REDIS_URL);
      try {
        const window = await redis.hgetall(
          `{budget}:u:${encodeURIComponent(user)}:${utcDay(Date.now()).id}`,
        );
        expect(Number(window.reserved ?? 0)).toBe(0);
        expect(Number(window.spent)).toBeGreaterThan(0);
      } finally {
        redis.disconnect();
      }
    }
  }, 60_000);
});
