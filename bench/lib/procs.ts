/**
 * The processes a benchmark runs: the fake upstream, the service and the floor proxy, each in its own process
 * on loopback (so the load generator, the service and the upstream never share an event loop),
 * and what Linux tells us about them (/proc: resident memory, CPU time).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { FakeAnthropicOptions } from "../../test/support/fake-anthropic";
import type { FloorProxyConfig } from "../support/floor-proxy";

export const REPO_ROOT = path.resolve(__dirname, "..", "..");

/** Linux clock ticks per second for /proc/<pid>/stat (USER_HZ); 100 on every mainstream kernel. */
const CLOCK_TICKS = 100;

export interface ProcStats {
  /** Resident set size, MiB. */
  rssMb: number;
  /** Peak resident set size since start, MiB. */
  hwmMb: number;
  /** user + system CPU time, seconds. */
  cpuSeconds: number;
}

/** Reads /proc/<pid>; null when the process is gone (or not on Linux). */
export function procStats(pid: number): ProcStats | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (field: string) =>
      Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces: fields are counted after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return {
      rssMb: kb("VmRSS") / 1024,
      hwmMb: kb("VmHWM") / 1024,
      cpuSeconds: (utime + stime) / CLOCK_TICKS,
    };
  } catch {
    return null;
  }
}

/** Every process's children, by parent pid (from /proc/<pid>/stat). */
export function childrenOf(): Map<number, number[]> {
  const map = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = map.get(ppid) ?? [];
      list.push(Number(entry));
      map.set(ppid, list);
    } catch {
      // gone
    }
  }
  return map;
}

/**
 * procStats of a process and all its descendants together: the service is a cluster primary and
 * its worker (CLUSTER_WORKERS=1, as the image runs it), whose CPU and memory both count. RSS and
 * peak RSS are summed; CPU adds the CPU of children that already exited (the root's cutime/cstime).
 */
export function procTreeStats(root: number): ProcStats | null {
  const self = procStats(root);
  if (!self) return null;
  const total = { ...self, cpuSeconds: self.cpuSeconds + exitedChildrenCpu(root) };
  const children = childrenOf();
  const queue = [...(children.get(root) ?? [])];
  while (queue.length) {
    const pid = queue.shift()!;
    const s = procStats(pid);
    if (!s) continue;
    total.rssMb += s.rssMb;
    total.hwmMb += s.hwmMb;
    total.cpuSeconds += s.cpuSeconds + exitedChildrenCpu(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return total;
}

/** CPU seconds of a process's children that have exited and been waited for (cutime + cstime). */
function exitedChildrenCpu(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** CPU use of a process between two readings, as a share of one core (1.0 = one core busy). */
export function cpuShare(
  before: ProcStats | null,
  after: ProcStats | null,
  wallMs: number,
): number {
  if (!before || !after || wallMs <= 0) return Number.NaN;
  return (after.cpuSeconds - before.cpuSeconds) / (wallMs / 1000);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      const port = typeof address === "object" && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Every child still running. If the runner dies (Ctrl-C, a test's timeout), they die with it
 * rather than leaving a service and a fake upstream listening.
 */
const live = new Set<ChildProcess>();
let priority: number | undefined;

/**
 * Run the benchmark's processes (this one and every child started from now on) at this
 * scheduling priority (nice value; negative needs privileges). On a machine shared with other
 * work, a higher priority keeps the measurement about the service rather than the neighbours.
 */
export function setBenchPriority(nice: number): void {
  priority = nice;
  os.setPriority(process.pid, nice);
  // With autogroup scheduling (kernel.sched_autogroup_enabled), CPU is first shared between
  // sessions and nice only orders processes within one: the session's own nice must move too.
  // Restored when the runner exits, so the session is left as it was found.
  try {
    const before = /nice\s+(-?\d+)/.exec(readFileSync("/proc/self/autogroup", "utf8"))?.[1];
    writeFileSync("/proc/self/autogroup", String(nice));
    if (before !== undefined) {
      process.once("exit", () => {
        try {
          writeFileSync("/proc/self/autogroup", before);
        } catch {
          // nothing to restore
        }
      });
    }
  } catch {
    // no autogroups here: nice alone does it
  }
}

export function track(child: ChildProcess): ChildProcess {
  if (priority !== undefined && child.pid !== undefined) {
    try {
      os.setPriority(child.pid, priority);
    } catch {
      // exited already
    }
  }
  live.add(child);
  child.once("exit", () => live.delete(child));
  return child;
}
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/** Kills every child this runner started (signal handlers call it before exiting). */
export function killChildren(): void {
  for (const child of live) child.kill("SIGKILL");
}

/** The last bytes a child wrote to stderr, for error messages. */
function tailCollector(child: ChildProcess): () => string {
  let tail = "";
  child.stderr?.on("data", (d: Buffer) => {
    tail = (tail + d.toString("utf8")).slice(-4000);
  });
  return () => tail.trim();
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  const code = await exited;
  clearTimeout(timer);
  return code;
}

/**
 * The one JSON line a helper process (fake upstream, floor proxy) prints once listening; the
 * rest of its stdout is drained.
 */
async function readyLine(child: ChildProcess, what: string): Promise<string> {
  const stderr = tailCollector(child);
  const line = await new Promise<string>((resolve, reject) => {
    let buf = "";
    const onData = (d: Buffer) => {
      buf += d.toString("utf8");
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        child.stdout?.off("data", onData);
        resolve(buf.slice(0, nl));
      }
    };
    child.stdout?.on("data", onData);
    child.once("exit", (code) =>
      reject(new Error(`${what} exited (${code}) before listening: ${stderr()}`)),
    );
    setTimeout(
      () => reject(new Error(`${what} did not start within 20 s: ${stderr()}`)),
      20_000,
    ).unref();
  });
  child.stdout?.resume();
  return line;
}

/** A helper process the benchmark starts and stops: the fake upstream, the floor proxy. */
export interface Helper {
  pid: number;
  stats(): ProcStats | null;
  stop(): Promise<void>;
}

/**
 * Runs bench/support/<script> through tsx with one JSON argument, and waits for the one JSON
 * line it prints once listening (what the caller gets, with the process' handle).
 */
async function startHelper<T>(
  script: string,
  arg: unknown,
  what: string,
  nodeFlags: string[] = [],
): Promise<Helper & T> {
  const child = track(
    spawn(
      process.execPath,
      [
        ...nodeFlags,
        "--import",
        "tsx",
        path.join(REPO_ROOT, "bench", "support", script),
        JSON.stringify(arg),
      ],
      {
        cwd: REPO_ROOT,
        stdio: ["ignore", "pipe", "pipe"],
        // Helpers started with the image's node flags (the floor proxy) get its tuning too.
        env: cleanEnv({ ...(nodeFlags.length ? imageTuningEnv() : {}), NODE_ENV: "production" }),
      },
    ),
  );
  const info = JSON.parse(await readyLine(child, what)) as T;
  const pid = child.pid!;
  return {
    ...info,
    pid,
    stats: () => procStats(pid),
    stop: async () => {
      await stopChild(child, 5000);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The fake upstream

export interface Upstream extends Helper {
  url: string;
  apiKey: string;
}

/**
 * Starts test/support/fake-anthropic.ts in its own process through bench/support/upstream.ts,
 * which takes the full option set (the CLI has no per-model cache minimums).
 */
export function startUpstream(options: FakeAnthropicOptions): Promise<Upstream> {
  return startHelper<{ url: string; apiKey: string }>("upstream.ts", options, "fake upstream");
}

// ---------------------------------------------------------------------------------------------
// The service, from the built bundle

export interface ServiceOptions {
  /** The bundle to run, e.g. dist/server/index.js. */
  entry: string;
  env: Record<string, string>;
  /** Write a V8 CPU profile of the whole run into this directory under this file name. */
  cpuProfile?: { dir: string; name: string };
  /** Where the service's stdout (its JSON logs) goes. */
  logFile: string;
}

export interface Service {
  url: string;
  pid: number;
  logFile: string;
  stats(): ProcStats | null;
  stop(): Promise<number | null>;
}

/**
 * The flags between `node` and the script in app/Dockerfile's CMD (exec form), so the benchmark
 * runs the service exactly as the image does (Cloud Run, EKS and VM groups run that image).
 */
export function imageNodeFlags(dockerfile = path.join(REPO_ROOT, "app", "Dockerfile")): string[] {
  const cmd = readFileSync(dockerfile, "utf8")
    .split("\n")
    .filter((line) => /^CMD\s+\[/.test(line))
    .at(-1);
  if (!cmd) throw new Error(`${dockerfile}: no exec-form CMD to take the node flags from`);
  const argv = JSON.parse(cmd.replace(/^CMD\s+/, "")) as string[];
  if (argv[0] !== "node") throw new Error(`${dockerfile}: CMD does not start node: ${cmd}`);
  return argv.slice(1).filter((a) => a.startsWith("-"));
}

/**
 * The process tuning the image's runtime stage sets with ENV (the allocator it preloads with
 * LD_PRELOAD and mimalloc's MIMALLOC_*, glibc's MALLOC_*, libuv's UV_*, NODE_OPTIONS), so the
 * benchmark's processes run with it as the image's do. Other variables of the image (PORT,
 * DATA_DIR, NODE_ENV) are the benchmark's own to set.
 */
export function imageTuningEnv(
  dockerfile = path.join(REPO_ROOT, "app", "Dockerfile"),
): Record<string, string> {
  // Instructions with their continuation lines joined; only those of the last stage count.
  const instructions = readFileSync(dockerfile, "utf8")
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim());
  const stage = instructions.slice(instructions.findLastIndex((l) => /^FROM\s/i.test(l)));
  const env: Record<string, string> = {};
  for (const line of stage.filter((l) => /^ENV\s/i.test(l))) {
    for (const [, k, v] of line.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)/g))
      if (/^(LD_PRELOAD$|MIMALLOC_|MALLOC_|UV_|NODE_OPTIONS$)/.test(k!))
        env[k!] = v!.replace(/^"|"$/g, "");
  }
  return env;
}

/** Debian's package for each library the image may preload (app/Dockerfile installs it). */
const PRELOAD_PACKAGES: Record<string, string> = { "libmimalloc.so.2": "libmimalloc2.0" };

/**
 * Throws unless every library of the image's LD_PRELOAD loads into a `node` here. The dynamic
 * loader only warns on stderr about one it cannot find and runs the process without it: the
 * benchmark would then measure another allocator than the image's, quietly.
 */
export function checkImagePreload(env: Record<string, string> = imageTuningEnv()): void {
  const libs = (env.LD_PRELOAD ?? "").split(/[\s:]+/).filter(Boolean);
  if (libs.length === 0) return;
  const r = spawnSync(
    process.execPath,
    ["-e", "process.stdout.write(require('fs').readFileSync('/proc/self/maps', 'utf8'))"],
    { env: { PATH: process.env.PATH ?? "", LD_PRELOAD: env.LD_PRELOAD }, encoding: "utf8" },
  );
  const missing = libs.filter((lib) => !r.stdout.includes(`/${path.basename(lib)}`));
  if (missing.length === 0) return;
  const packages = missing.map((lib) => PRELOAD_PACKAGES[path.basename(lib)]);
  const install = packages.every(Boolean)
    ? `apt-get install ${packages.join(" ")}`
    : "install the packages that provide them";
  throw new Error(
    `app/Dockerfile preloads ${missing.join(", ")} (LD_PRELOAD), which node does not load on this machine: ` +
      `${install}, so that the benchmark runs the service with the image's allocator`,
  );
}

export async function startService(options: ServiceOptions): Promise<Service> {
  const port = await freePort();
  // The image's node flags (production), then diagnostics from the environment (e.g. --trace-gc).
  const nodeArgs: string[] = [
    ...imageNodeFlags(),
    ...(process.env.BENCH_SERVICE_NODE_ARGS ?? "").split(/\s+/).filter(Boolean),
  ];
  if (options.cpuProfile) {
    mkdirSync(options.cpuProfile.dir, { recursive: true });
    nodeArgs.push(
      "--cpu-prof",
      "--cpu-prof-dir",
      options.cpuProfile.dir,
      "--cpu-prof-name",
      options.cpuProfile.name,
    );
  }
  mkdirSync(path.dirname(options.logFile), { recursive: true });
  const log = createWriteStream(options.logFile, { flags: "a" });
  const child = track(
    spawn(process.execPath, [...nodeArgs, options.entry], {
      cwd: REPO_ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: cleanEnv({
        ...imageTuningEnv(),
        ...options.env,
        PORT: String(port),
        HOST: "127.0.0.1",
      }),
    }),
  );
  child.stdout?.pipe(log);
  const stderr = tailCollector(child);
  child.stderr?.on("data", (d: Buffer) => log.write(d));
  const url = `http://127.0.0.1:${port}`;
  const pid = child.pid!;
  const deadline = Date.now() + 30_000;
  let lastError = "";
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(
        `service exited with code ${child.exitCode} during start-up: ${stderr() || tailOf(options.logFile)}`,
      );
    }
    try {
      const res = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(2000) });
      const body = await res.text();
      if (res.status === 200) break;
      lastError = `${res.status} ${body}`;
    } catch (err) {
      lastError = (err as Error).message;
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(
        `service not ready within 30 s (${lastError}): ${stderr() || tailOf(options.logFile)}`,
      );
    }
    await sleep(100);
  }
  return {
    url,
    pid,
    logFile: options.logFile,
    stats: () => procTreeStats(pid),
    stop: async () => {
      // SIGTERM drains and exits 0; a CPU profile is written on that exit.
      const code = await stopChild(child, 30_000);
      await new Promise<void>((resolve) => log.end(resolve));
      return code;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The floor proxy: the least a gateway with shared-Redis controls adds (bench/support/floor-proxy.ts)

export interface FloorProxy extends Helper {
  url: string;
}

/**
 * Starts bench/support/floor-proxy.ts in its own process with the service's node flags (the
 * image's CMD), so the two are compared on equal terms.
 */
export function startFloorProxy(config: FloorProxyConfig): Promise<FloorProxy> {
  return startHelper<{ url: string }>("floor-proxy.ts", config, "floor proxy", imageNodeFlags());
}

// ---------------------------------------------------------------------------------------------
// A peer: the open-source Portkey gateway (@portkey-ai/gateway, a devDependency of the benchmark)

export interface Portkey extends Helper {
  url: string;
}

/**
 * Starts Portkey's Node server (`build/start-server.js --port=N --headless`, what
 * `npx @portkey-ai/gateway` runs) in its own process with the service's node flags, so the two
 * are compared on equal terms; ready once `GET /` answers.
 */
export async function startPortkey(): Promise<Portkey> {
  const port = await freePort();
  const pkg = path.dirname(require.resolve("@portkey-ai/gateway/package.json"));
  const child = track(
    spawn(
      process.execPath,
      [
        ...imageNodeFlags(),
        path.join(pkg, "build", "start-server.js"),
        `--port=${port}`,
        "--headless",
      ],
      {
        cwd: REPO_ROOT,
        stdio: ["ignore", "ignore", "pipe"],
        env: cleanEnv({ ...imageTuningEnv(), NODE_ENV: "production" }),
      },
    ),
  );
  const stderr = tailCollector(child);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`Portkey exited (${child.exitCode}): ${stderr()}`);
    const up = await fetch(`${url}/`, { signal: AbortSignal.timeout(1000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (up) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`Portkey did not answer within 20 s: ${stderr()}`);
    }
    await sleep(100);
  }
  const pid = child.pid!;
  return {
    url,
    pid,
    stats: () => procStats(pid),
    stop: async () => {
      await stopChild(child, 5000);
    },
  };
}

function tailOf(file: string): string {
  try {
    return existsSync(file) ? readFileSync(file, "utf8").slice(-3000).trim() : "";
  } catch {
    return "";
  }
}

/**
 * The environment a child gets: the variables given plus only what Node itself needs, so a
 * DATABASE_URL or ANTHROPIC_API_KEY in the developer's shell cannot leak into a measurement.
 */
export function cleanEnv(vars: Record<string, string>): NodeJS.ProcessEnv {
  const keep = ["PATH", "HOME", "TMPDIR", "TZ", "LANG"];
  const env: NodeJS.ProcessEnv = {};
  for (const k of keep) if (process.env[k] !== undefined) env[k] = process.env[k];
  return { ...env, ...vars };
}

export function machineInfo() {
  const cpus = os.cpus();
  return {
    cores: cpus.length,
    cpuModel: cpus[0]?.model ?? "unknown",
    memoryGb: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    loadAverage: os.loadavg().map((v) => Math.round(v * 100) / 100),
  };
}

// ---------------------------------------------------------------------------------------------
// Who used the CPU during a scenario: the benchmark's own processes, the stores, everyone else.
// The machine is shared (other builds and test runs may be going on), and a benchmark result
// means little without saying how much of the machine it actually had.

export interface CpuSnapshot {
  at: number;
  /** Busy CPU seconds of the whole machine (all cores). */
  systemBusy: number;
  /** CPU seconds of this process plus its exited children (service, fake upstream, Lambda runs). */
  own: number;
  /** CPU seconds so far of each Redis and PostgreSQL server process, by pid. */
  stores: Map<number, number>;
}

function readSystemBusy(): number {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const total = v.reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    return (total - idle) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

function readOwnWithChildren(): number {
  try {
    const stat = readFileSync("/proc/self/stat", "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime, stime, cutime, cstime: fields 14-17 (indices 11-14 after the command name).
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

/** Redis and PostgreSQL server processes on this machine (read-only use of /proc). */
function findStorePids(): number[] {
  const pids: number[] = [];
  try {
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const comm = readFileSync(`/proc/${entry}/comm`, "utf8").trim();
        if (comm.startsWith("redis-server") || comm.startsWith("postgres"))
          pids.push(Number(entry));
      } catch {
        // gone
      }
    }
  } catch {
    // not Linux
  }
  return pids;
}

export function cpuSnapshot(): CpuSnapshot {
  const stores = new Map<number, number>();
  for (const pid of findStorePids()) {
    const s = procStats(pid);
    if (s) stores.set(pid, s.cpuSeconds);
  }
  return {
    at: performance.now(),
    systemBusy: readSystemBusy(),
    own: readOwnWithChildren(),
    stores,
  };
}

export interface CpuBreakdown {
  /** Average cores busy over the period, machine-wide. */
  machine: number;
  /** Generator + service + fake upstream (children counted once they have exited). */
  bench: number;
  /**
   * Redis and PostgreSQL (which may also be serving others). PostgreSQL backends that exited
   * during the period (the service's pool closing) are missed and land in `others`.
   */
  stores: number;
  /** Everything else: other people's builds and tests, the kernel. */
  others: number;
}

export function cpuBreakdown(a: CpuSnapshot, b: CpuSnapshot): CpuBreakdown {
  const secs = (b.at - a.at) / 1000;
  const r = (v: number) => Math.round((v / secs) * 100) / 100;
  const machine = b.systemBusy - a.systemBusy;
  const bench = b.own - a.own;
  let stores = 0;
  for (const [pid, end] of b.stores) stores += end - (a.stores.get(pid) ?? 0);
  return {
    machine: r(machine),
    bench: r(bench),
    stores: r(stores),
    others: r(Math.max(0, machine - bench - stores)),
  };
}

/** Average cores busy machine-wide over the next `ms` milliseconds. */
export async function machineBusyCores(ms: number): Promise<number> {
  const a = cpuSnapshot();
  await new Promise((r) => setTimeout(r, ms));
  const b = cpuSnapshot();
  return (b.systemBusy - a.systemBusy) / ((b.at - a.at) / 1000);
}
