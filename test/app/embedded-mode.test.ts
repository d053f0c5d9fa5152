/**
 * Embedded mode listens before its dependencies are open (app/entrypoints/node-server.ts
 * listenEarly): /health answers at once, /ready is 503 `starting`, other requests wait for the
 * app (bounded), and a stop during start-up refuses what waits. Driven in process, with the app
 * made ready by hand, so nothing depends on how long a start takes. And `npm start` runs the
 * launcher with the image's node flags.
 */
import fs from "node:fs";
import path from "node:path";
import pino from "pino";
import { loadConfig, type AppConfig } from "../../app/src/config";
import { createDeps } from "../../app/src/bootstrap";
import { buildApp } from "../../app/src/app";
import type { AppDeps } from "../../app/src/deps";
import {
  listenEarly,
  STARTUP_RETRY_AFTER_S,
  type StartingServer,
} from "../../app/entrypoints/node-server";
import { imageNodeFlags } from "../../bench/lib/procs";

const ROOT = path.resolve(__dirname, "../..");
const KEY = "embedded-mode-key-0001";
const BODY = JSON.stringify({
  model: "claude-haiku-4-5",
  max_tokens: 16,
  messages: [{ role: "user", content: "hello" }],
});

function config(): AppConfig {
  return loadConfig({
    LOG_LEVEL: "silent",
    PORT: "0",
    HOST: "127.0.0.1",
    METRICS_ENABLED: "false",
    DATA_DIR: "memory://",
    AGENT_API_KEYS: `alice:${KEY}`,
  });
}

const post = (url: string) =>
  fetch(`${url}/v1/messages`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-api-key": KEY,
      "anthropic-version": "2023-06-01",
    },
    body: BODY,
  });

/** Resolves to whether `p` settled within `ms` (a request that must still be waiting does not). */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
  ]);
  clearTimeout(timer);
  return settled;
}

describe("embedded mode: listening while the service starts", () => {
  let starting: StartingServer | undefined;
  let deps: AppDeps | undefined;
  afterEach(async () => {
    await starting?.close().catch(() => {});
    await deps?.close().catch(() => {});
    starting = undefined;
    deps = undefined;
  });

  it("answers /health 200 and /ready 503 starting before the app exists; a request waits for it, then succeeds", async () => {
    const cfg = config();
    starting = await listenEarly(cfg, { waitMs: 60_000 });
    const { url } = starting;

    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: "ok" });
    const ready = await fetch(`${url}/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: "starting", down: ["starting"] });

    const early = post(url);
    expect(await settlesWithin(early, 300)).toBe(false);
    expect(starting.inflight).toBe(1);

    deps = await createDeps(cfg, { logger: pino({ level: "silent" }) });
    const node = await starting.ready(deps, buildApp(deps));
    const res = await early;
    expect(res.status).toBe(200);
    expect(((await res.json()) as { type: string }).type).toBe("message");
    expect((await fetch(`${url}/ready`)).status).toBe(200);

    // From now on it is the app's server, drained as ever.
    await node.drain();
    deps = undefined; // closed by the drain
  });

  it("answers a request that waited longer than the bound 503 overloaded_error, in the Anthropic shape, with retry-after", async () => {
    starting = await listenEarly(config(), { waitMs: 200 });
    const res = await post(starting.url);
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe(String(STARTUP_RETRY_AFTER_S));
    const body = (await res.json()) as {
      type: string;
      error: { type: string; message: string };
      request_id: string;
    };
    expect(body).toMatchObject({ type: "error", error: { type: "overloaded_error" } });
    expect(body.error.message).toMatch(/starting/);
    expect(body.request_id).toMatch(/^req_/);
    expect(res.headers.get("request-id")).toBe(body.request_id);
    // Probes still answer.
    expect((await fetch(`${starting.url}/health`)).status).toBe(200);
  });

  it("refuses what waits when start-up stops (a signal): 503, /ready draining, connection: close; then closes", async () => {
    starting = await listenEarly(config(), { waitMs: 60_000 });
    const { url } = starting;
    const waiting = post(url);
    expect(await settlesWithin(waiting, 200)).toBe(false);

    starting.refuse("stopping");
    const refused = await waiting;
    expect(refused.status).toBe(503);
    expect(refused.headers.get("connection")).toBe("close");
    expect(((await refused.json()) as { error: { type: string } }).error.type).toBe(
      "overloaded_error",
    );
    const ready = await fetch(`${url}/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: "draining", down: ["draining"] });
    const later = await post(url);
    expect(later.status).toBe(503);
    await later.arrayBuffer();

    await starting.close();
    await expect(fetch(`${url}/health`)).rejects.toThrow();
    starting = undefined;
  });

  it("answers what waits 503 api_error when start-up fails", async () => {
    starting = await listenEarly(config(), { waitMs: 60_000 });
    const waiting = post(starting.url);
    expect(await settlesWithin(waiting, 200)).toBe(false);
    starting.refuse("failed");
    const res = await waiting;
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { type: string } }).error.type).toBe("api_error");
    expect(
      ((await (await fetch(`${starting.url}/ready`)).json()) as { status: string }).status,
    ).toBe("failed");
  });
});

describe("npm start", () => {
  it("runs the launcher (scripts/start.mjs) in node with the image's node flags", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as {
      scripts: Record<string, string>;
    };
    const argv = pkg.scripts.start!.split(/\s+/);
    expect(argv[0]).toBe("node");
    expect(argv.at(-1)).toBe("scripts/start.mjs");
    // The launcher runs the bundle in its own process: node's flags are the service's.
    expect(argv.slice(1, -1)).toEqual(imageNodeFlags());
  });
});
