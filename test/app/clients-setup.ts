/**
 * What the client tests (clients-*.test.ts) run against, each client the same way:
 *
 * - the service as `npm start` runs it: app/entrypoints/server.ts in a child process, with the
 *   embedded defaults (no API key: the offline synthetic model; PGlite under DATA_DIR; the local
 *   API key it prints). Only the ports are ephemeral and DATA_DIR a fresh directory, so test
 *   files can run side by side.
 * - the service in this process with the fake Anthropic API as its upstream.
 *
 * Prompts that must make a model call a tool or answer JSON say so twice: in words and values the
 * offline model reads (it calls a tool the prompt names, with `key: value` arguments), and in the
 * directives the fake follows (`[[tool:NAME {json}]]`, `[[fake:{"reply": ...}]]`).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { FAKE_API_KEY, startFakeAnthropic, type FakeAnthropic } from "../support/fake-anthropic";
import { startService } from "../support/service";

const ROOT = path.resolve(__dirname, "../..");

export interface ClientTarget {
  /** The service's base URL (no /v1). */
  url: string;
  apiKey: string;
  /** Answered by the offline synthetic model. */
  offline: boolean;
  /** The upstream the service calls, when it is the fake. */
  fake?: FakeAnthropic;
  /** What `npm start` printed on embedded defaults (URL, key, a curl command to try). */
  banner?: string;
  close(): Promise<void>;
}

export interface TargetKind {
  name: string;
  start(): Promise<ClientTarget>;
}

/** `npm start` (tsx app/entrypoints/server.ts) on embedded defaults. */
export async function startEmbedded(): Promise<ClientTarget> {
  const dataDir = mkdtempSync(path.join(tmpdir(), "agent-clients-"));
  const proc = spawn(process.execPath, ["--import", "tsx", "app/entrypoints/server.ts"], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      HOST: "127.0.0.1",
      PORT: "0",
      METRICS_PORT: "0",
      DATA_DIR: dataDir,
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  const close = async () => {
    if (proc.exitCode === null) proc.kill("SIGTERM");
    await exited;
    rmSync(dataDir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 60_000;
  // What the entrypoint prints once listening on embedded defaults.
  const banner = /Agent service: (http:\S+)\nLocal API key: (\S+)/;
  for (;;) {
    const m = banner.exec(out);
    if (m && /^Try: .*\n/m.test(out)) {
      return { url: m[1]!, apiKey: m[2]!, offline: true, banner: out, close };
    }
    if (proc.exitCode !== null || Date.now() > deadline) {
      await close();
      throw new Error(`the service did not start:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The service with the fake Anthropic API as its upstream (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL). */
export async function startWithFakeUpstream(): Promise<ClientTarget> {
  const fake = await startFakeAnthropic({ batchDelayMs: 300 });
  const apiKey = "client-test-key-0001";
  const service = await startService({
    DATA_DIR: "memory://",
    AGENT_API_KEYS: `client:${apiKey}`,
    ANTHROPIC_API_KEY: FAKE_API_KEY,
    ANTHROPIC_BASE_URL: fake.url,
    METRICS_ENABLED: "false",
    RATE_LIMIT_RPM: "0",
    RATE_LIMIT_TPM: "0",
    BATCH_POLL_INTERVAL_MS: "50",
  });
  return {
    url: service.url,
    apiKey,
    offline: false,
    fake,
    async close() {
      await service.close();
      await fake.close();
    },
  };
}

export const TARGETS: readonly TargetKind[] = [
  { name: "npm start on embedded defaults (offline model)", start: startEmbedded },
  { name: "the service with a fake Anthropic upstream", start: startWithFakeUpstream },
];

/** A prompt that makes both models call `name` with `args` (flat string or number values). */
export function toolPrompt(text: string, name: string, args: Record<string, string | number>) {
  const said = Object.entries(args)
    .map(([k, v]) => `${k}: ${typeof v === "string" ? JSON.stringify(v) : v}`)
    .join(", ");
  return `${text} Use ${name} with ${said}. [[tool:${name} ${JSON.stringify(args)}]]`;
}

/** A prompt whose answer is `json` on the fake; the offline model reads the values from `text`. */
export function jsonPrompt(text: string, json: unknown) {
  return `${text} [[fake:${JSON.stringify({ reply: JSON.stringify(json) })}]]`;
}
