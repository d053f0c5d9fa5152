/**
 * `npm start` end to end on embedded defaults (no DATABASE_URL, REDIS_URL or API key): the
 * launcher (scripts/start.mjs) builds the server bundle unless it is up to date and runs it in
 * its own process. From a fresh DATA_DIR it listens before the database exists (/health 200,
 * /ready 503 `starting`, requests held until the app is ready), then prints the banner; a restart
 * on the same DATA_DIR keeps the data; a SIGTERM during the first start stops it cleanly.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const ROOT = path.resolve(__dirname, "../..");
const BUNDLE = path.join(ROOT, "node_modules", ".cache", "agent-platform", "start", "index.js");
/** A first start runs initdb: seconds, more on a loaded machine. */
const START_TIMEOUT_MS = 90_000;

interface Launched {
  proc: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

function launch(dataDir: string): Launched {
  const proc = spawn(process.execPath, ["scripts/start.mjs"], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      HOST: "127.0.0.1",
      PORT: "0",
      METRICS_PORT: "0",
      DATA_DIR: dataDir,
      LOG_LEVEL: "info",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    proc.once("exit", (code) => resolve(code)),
  );
  return { proc, output: () => out, exited };
}

async function until<T>(
  launched: Launched,
  check: () => Promise<T | undefined> | T | undefined,
  what: string,
): Promise<T> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (launched.proc.exitCode !== null || Date.now() > deadline)
      throw new Error(`no ${what}; output:\n${launched.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The URL from the line logged once listening, before the dependencies are open. */
const startingUrl = (l: Launched) =>
  until(
    l,
    () => /"url":"(http:[^"]+)"[^\n]*"msg":"starting/.exec(l.output())?.[1],
    "starting line",
  );

const banner = (l: Launched) =>
  until(
    l,
    () => {
      const m = /Agent service: (http:\S+)\nLocal API key: (\S+)/.exec(l.output());
      return m ? { url: m[1]!, key: m[2]! } : undefined;
    },
    "banner",
  );

const message = (url: string, key: string) =>
  fetch(`${url}/v1/messages`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-api-key": key,
      "anthropic-version": "2023-06-01",
    },
    body: JSON.stringify({
      model: "claude-haiku-4-5",
      max_tokens: 32,
      messages: [{ role: "user", content: "Hello" }],
    }),
  });

async function stop(l: Launched): Promise<number | null> {
  if (l.proc.exitCode === null) l.proc.kill("SIGTERM");
  return l.exited;
}

describe("npm start (scripts/start.mjs) on embedded defaults", () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "embedded-start-"));
  let running: Launched | undefined;
  let key = "";
  afterEach(async () => {
    if (running) await stop(running);
    running = undefined;
  });
  afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it("from a fresh DATA_DIR: /health at once, /ready 503 starting, a request held until ready, then the banner and a message", async () => {
    running = launch(dataDir);
    const l = running;
    const url = await startingUrl(l);
    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(200);
    // initdb is under way (in its child process): seconds of work.
    const ready = await fetch(`${url}/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: "starting", down: ["starting"] });
    expect(fs.existsSync(path.join(dataDir, "local-api-key"))).toBe(false);
    // Held, then answered by the app: a key it never issued is a 401, not a 503.
    const held = message(url, "ak_not-a-key-of-this-service");

    await until(
      l,
      async () => ((await fetch(`${url}/ready`)).status === 200 ? true : undefined),
      "/ready 200",
    );
    const refused = await held;
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { error: { type: string } }).error.type).toBe(
      "authentication_error",
    );
    const printed = await banner(l);
    expect(printed.url).toBe(url);
    key = printed.key;
    const res = await message(url, key);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { type: string }).type).toBe("message");

    expect(await stop(l)).toBe(0);
    running = undefined;
    expect(fs.existsSync(path.join(dataDir, "pglite", "PG_VERSION"))).toBe(true);
    expect(fs.existsSync(path.join(dataDir, "pglite.lock"))).toBe(false);
    expect(fs.readdirSync(dataDir).filter((f) => f.includes("initdb"))).toEqual([]);
  }, 180_000);

  it("restarted on the same DATA_DIR: the same key, which still works, from the bundle built before", async () => {
    expect(key).not.toBe("");
    const builtAt = fs.statSync(BUNDLE).mtimeMs;
    running = launch(dataDir);
    const printed = await banner(running);
    expect(printed.key).toBe(key);
    expect((await message(printed.url, key)).status).toBe(200);
    expect(fs.statSync(BUNDLE).mtimeMs).toBe(builtAt); // up to date: not built again
    expect(fs.readFileSync(path.join(dataDir, "pglite.lock"), "utf8")).toBe(
      String(running.proc.pid),
    );
    expect(await stop(running)).toBe(0);
    running = undefined;
  }, 120_000);

  it("stops cleanly on SIGTERM during a first start: exit 0, and no lock, staging copy or half-made database left", async () => {
    const fresh = fs.mkdtempSync(path.join(os.tmpdir(), "embedded-start-stop-"));
    try {
      running = launch(fresh);
      const url = await startingUrl(running);
      const held = message(url, "ak_not-a-key-of-this-service");
      expect(((await (await fetch(`${url}/ready`)).json()) as { status: string }).status).toBe(
        "starting",
      );
      expect(await stop(running)).toBe(0);
      expect(running.output()).toMatch(/stopped during start-up/);
      running = undefined;
      const refused = await held;
      expect(refused.status).toBe(503);
      expect(((await refused.json()) as { error: { type: string } }).error.type).toBe(
        "overloaded_error",
      );
      // No lock, no staging copy, no half-made database (the next start runs initdb again).
      expect(fs.readdirSync(fresh).filter((f) => f.startsWith("pglite"))).toEqual([]);
    } finally {
      fs.rmSync(fresh, { recursive: true, force: true });
    }
  }, 120_000);
});
