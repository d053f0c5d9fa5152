/**
 * 10. Embedded mode, as a developer meets it: the real `npm start` (scripts/start.mjs, which
 * builds the server bundle and runs it in its own process) with no DATABASE_URL, REDIS_URL or API
 * key, on a fresh DATA_DIR: time to the first 200 on /health (the process answers), on /ready
 * (the embedded database is open) and on POST /v1/messages (with the local API key the banner
 * prints), then the resident memory once idle, of the service process and of the whole process
 * tree (npm and sh included). Then a warm start: the same DATA_DIR, the bundle up to date.
 *
 * The first start of each round is as cold as a fresh checkout's: the launcher is told to
 * rebuild (`npm start -- --rebuild`) and the database directory is new (initdb).
 */
import { spawn, type ChildProcess } from "node:child_process";
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ANTHROPIC_VERSION, LOG_DIR, messageBody, nonce, progress } from "../lib/harness";
import { childrenOf, cleanEnv, freePort, procStats, REPO_ROOT } from "../lib/procs";
import { median, round } from "../lib/stats";
import { fmtMs, type Scenario } from "../lib/types";

const HEALTH_LIMIT_MS = 5000;
const IDLE_RSS_LIMIT_MB = 250;
/** How long a start may take before the round fails (a first start runs initdb). */
const START_TIMEOUT_MS = 120_000;
const POLL_MS = 25;

interface StartRun {
  /** From spawning `npm start` to the first 200 of each. */
  healthMs: number;
  readyMs: number;
  messageMs: number;
  /** Idle RSS (median of 5 samples), MiB: the service process, and npm's whole tree. */
  serverRssMb: number;
  treeRssMb: number;
  /** The processes of the tree and their RSS at the last sample, e.g. "npm 55, sh 2, node 170". */
  tree: string;
  /** The service drained and exited on SIGTERM, and released the database's lock. */
  cleanStop: boolean;
}

/** `root` and its descendants, each with its command name. */
function tree(root: number): Array<{ pid: number; comm: string; cmdline: string }> {
  const children = childrenOf();
  const out: Array<{ pid: number; comm: string; cmdline: string }> = [];
  const queue = [root];
  while (queue.length) {
    const pid = queue.shift()!;
    try {
      out.push({
        pid,
        comm: readFileSync(`/proc/${pid}/comm`, "utf8").trim(),
        cmdline: readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " "),
      });
    } catch {
      continue;
    }
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

async function status(url: string, init?: RequestInit): Promise<number> {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(5000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

async function oneStart(dataDir: string, rebuild: boolean, logFile: string): Promise<StartRun> {
  const port = await freePort();
  const metricsPort = await freePort();
  const url = `http://127.0.0.1:${port}`;
  mkdirSync(path.dirname(logFile), { recursive: true });
  const log = createWriteStream(logFile, { flags: "a" });
  const t0 = performance.now();
  // Its own process group, as a terminal's foreground job: the stop signal goes to all of it.
  const npm: ChildProcess = spawn("npm", ["start", ...(rebuild ? ["--", "--rebuild"] : [])], {
    cwd: REPO_ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    // No DATABASE_URL, REDIS_URL or ANTHROPIC_API_KEY: cleanEnv passes none of the shell's on.
    env: cleanEnv({ DATA_DIR: dataDir, PORT: String(port), METRICS_PORT: String(metricsPort) }),
  });
  let out = "";
  npm.stdout!.on("data", (d: Buffer) => {
    out += d.toString("utf8");
    log.write(d);
  });
  npm.stderr!.on("data", (d: Buffer) => log.write(d));
  const exited = new Promise<void>((resolve) => npm.once("exit", () => resolve()));
  const group = npm.pid!;
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-group, signal);
    } catch {
      // gone
    }
  };
  const onExit = () => killGroup("SIGKILL");
  process.once("exit", onExit);
  const elapsed = () => performance.now() - t0;
  const until = async (what: string, check: () => Promise<boolean>): Promise<number> => {
    for (;;) {
      if (await check()) return elapsed();
      if (npm.exitCode !== null)
        throw new Error(`npm start exited before ${what}: ${out.slice(-2000)}`);
      if (elapsed() > START_TIMEOUT_MS)
        throw new Error(`no ${what} within ${START_TIMEOUT_MS} ms: ${out.slice(-2000)}`);
      await sleep(POLL_MS);
    }
  };
  try {
    const healthMs = await until(
      "/health 200",
      async () => (await status(`${url}/health`)) === 200,
    );
    const readyMs = await until("/ready 200", async () => (await status(`${url}/ready`)) === 200);
    let key = "";
    const messageMs = await until("a 200 on POST /v1/messages", async () => {
      key ||= /Local API key: (\S+)/.exec(out)?.[1] ?? "";
      if (!key) return false;
      const s = await status(`${url}/v1/messages`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-api-key": key,
          "anthropic-version": ANTHROPIC_VERSION,
        },
        body: messageBody(nonce(), { maxTokens: 64 }),
      });
      return s === 200;
    });

    const procs = tree(group);
    const server = procs.find((p) => p.comm === "node" && p.cmdline.includes("scripts/start.mjs"));
    if (!server) throw new Error(`no service process under npm: ${JSON.stringify(procs)}`);
    // Idle: ~10 s after the first message, the median of 5 samples a second apart.
    await sleep(8000);
    const serverSamples: number[] = [];
    const treeSamples: number[] = [];
    let last = "";
    for (let i = 0; i < 5; i++) {
      const now = tree(group).map((p) => ({ ...p, rss: procStats(p.pid)?.rssMb ?? 0 }));
      serverSamples.push(procStats(server.pid)?.rssMb ?? Number.NaN);
      treeSamples.push(now.reduce((n, p) => n + p.rss, 0));
      last = now.map((p) => `${p.comm} ${p.rss.toFixed(0)}`).join(", ");
      await sleep(1000);
    }

    // Stopped as Ctrl-C stops it: a signal to the foreground group; the service drains.
    killGroup("SIGTERM");
    const stopDeadline = Date.now() + 30_000;
    while (procStats(server.pid) && Date.now() < stopDeadline) await sleep(50);
    await Promise.race([exited, sleep(5000)]);
    const cleanStop =
      procStats(server.pid) === null && !existsSync(path.join(dataDir, "pglite.lock"));
    return {
      healthMs,
      readyMs,
      messageMs,
      serverRssMb: median(serverSamples),
      treeRssMb: median(treeSamples),
      tree: last,
      cleanStop,
    };
  } finally {
    killGroup("SIGKILL");
    process.off("exit", onExit);
    await new Promise<void>((resolve) => log.end(resolve));
  }
}

const med = (runs: StartRun[], k: keyof StartRun) => median(runs.map((r) => r[k] as number));
const mb = (v: number) => (Number.isFinite(v) ? `${v.toFixed(0)} MB` : "n/a");

export const embeddedScenario: Scenario = {
  name: "embedded",
  title: "Embedded mode: npm start with no services, first and warm start",
  async run({ opts }) {
    const rounds = opts.quick ? 1 : opts.rounds;
    const first: StartRun[] = [];
    const warm: StartRun[] = [];
    for (let i = 1; i <= rounds; i++) {
      const dataDir = mkdtempSync(path.join(os.tmpdir(), "agent-bench-embedded-"));
      try {
        for (const [kind, runs] of [
          ["first", first],
          ["warm", warm],
        ] as const) {
          const r = await oneStart(
            dataDir,
            kind === "first",
            path.join(LOG_DIR, `embedded-${i}-${kind}.log`),
          );
          runs.push(r);
          progress(
            opts,
            `  round ${i}/${rounds}, ${kind} start: /health ${fmtMs(r.healthMs, 0)}, /ready ${fmtMs(r.readyMs, 0)}, first message ${fmtMs(r.messageMs, 0)}; idle RSS service ${mb(r.serverRssMb)}, tree ${mb(r.treeRssMb)} (${r.tree})${r.cleanStop ? "" : "; did NOT stop cleanly"}`,
          );
        }
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    }
    const summary = (runs: StartRun[]) => ({
      healthMs: round(med(runs, "healthMs"), 0),
      readyMs: round(med(runs, "readyMs"), 0),
      firstMessageMs: round(med(runs, "messageMs"), 0),
      idleServerRssMb: round(med(runs, "serverRssMb"), 1),
      idleTreeRssMb: round(med(runs, "treeRssMb"), 1),
      cleanStops: runs.filter((r) => r.cleanStop).length,
      rounds: runs.map((r) => ({
        healthMs: round(r.healthMs, 0),
        readyMs: round(r.readyMs, 0),
        messageMs: round(r.messageMs, 0),
        serverRssMb: round(r.serverRssMb, 1),
        treeRssMb: round(r.treeRssMb, 1),
        tree: r.tree,
        cleanStop: r.cleanStop,
      })),
    });
    const f = summary(first);
    const w = summary(warm);
    const firstHealth = med(first, "healthMs");
    const firstRss = med(first, "serverRssMb");
    const warmRss = med(warm, "serverRssMb");
    const row = (label: string, runs: StartRun[]): Array<[string, string]> => [
      [
        `**${label}: to /health / /ready / first message 200**`,
        `${fmtMs(med(runs, "healthMs"), 0)} / ${fmtMs(med(runs, "readyMs"), 0)} / ${fmtMs(med(runs, "messageMs"), 0)}`,
      ],
      [
        `**${label}: idle RSS, service process / whole tree**`,
        `${mb(med(runs, "serverRssMb"))} / ${mb(med(runs, "treeRssMb"))}`,
      ],
    ];
    const notes: string[] = [];
    const unclean = first.length + warm.length - f.cleanStops - w.cleanStops;
    if (unclean > 0)
      notes.push(
        `${unclean} start(s) did not stop cleanly on SIGTERM (see the rounds in latest.json).`,
      );
    return {
      method: [
        `${rounds} round(s). Each: \`npm start -- --rebuild\` (the launcher builds the server bundle, as on a fresh checkout) on a new DATA_DIR (the embedded database runs initdb), then \`npm start\` again on the same DATA_DIR (bundle up to date, database in place). No DATABASE_URL, REDIS_URL or ANTHROPIC_API_KEY (the offline model), default LOG_LEVEL and NODE_ENV, free PORT and METRICS_PORT.`,
        `Times run from spawning npm to the first 200 on GET /health, on GET /ready, and on POST /v1/messages with the local API key printed in the banner (polled every ${POLL_MS} ms). Idle RSS (/proc VmRSS): 8 to 12 s after that message, the median of 5 samples a second apart, of the service process (node running scripts/start.mjs) and of npm's whole process tree (npm, sh, node). Medians over the rounds.`,
        `Stopped with SIGTERM to the process group (as Ctrl-C signals a terminal's foreground job); a clean stop is the service gone and the database's lock file released.`,
      ],
      figures: { rounds, first: f, warm: w },
      table: [
        ...row("first start", first),
        ...row("warm start", warm),
        [
          "processes at the last idle sample (first start, round 1), RSS MB",
          first[0]?.tree ?? "n/a",
        ],
      ],
      targets: [
        {
          name: "First start to /health 200 (median)",
          target: `≤ ${HEALTH_LIMIT_MS / 1000} s`,
          measured: fmtMs(firstHealth, 0),
          pass: Number.isFinite(firstHealth) ? firstHealth <= HEALTH_LIMIT_MS : null,
        },
        {
          name: "Idle RSS of the service process, first start (median)",
          target: `≤ ${IDLE_RSS_LIMIT_MB} MB`,
          measured: mb(firstRss),
          pass: Number.isFinite(firstRss) ? firstRss <= IDLE_RSS_LIMIT_MB : null,
        },
        {
          name: "Idle RSS of the service process, warm start (median)",
          target: `≤ ${IDLE_RSS_LIMIT_MB} MB`,
          measured: mb(warmRss),
          pass: Number.isFinite(warmRss) ? warmRss <= IDLE_RSS_LIMIT_MB : null,
        },
      ],
      notes,
    };
  },
};
