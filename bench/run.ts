/**
 * `npm run bench`: measures what the service adds over calling the (fake) upstream directly,
 * the way independent gateway benchmarks do, with the service, the fake upstream and the load
 * generator in three separate processes on loopback, and the service run from the built bundle.
 *
 *   npm run bench                              full run (about 25 minutes), writes bench/results/latest.{json,md}
 *   npm run bench -- --quick                   every scenario, short (about 2 minutes)
 *   npm run bench -- --only latency,cache      a subset (names: see --help)
 *   npm run bench -- --cpu-prof                also write a V8 CPU profile per service process
 *                                              (bench/results/<scenario>.cpuprofile) and its hot
 *                                              spots (bench/results/profile.{json,md})
 *
 * See bench/README.md for what each scenario measures and how.
 */
import { existsSync, mkdirSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import {
  cleanRedis,
  createDatabase,
  benchDatabaseName,
  dropDatabase,
  LOG_DIR,
  newIdentity,
  progress,
  type BenchOptions,
} from "./lib/harness";
import {
  REPO_ROOT,
  checkImagePreload,
  cpuBreakdown,
  cpuSnapshot,
  killChildren,
  setBenchPriority,
  machineBusyCores,
  machineInfo,
} from "./lib/procs";
import { summarizeProfile, type ProfileSummary } from "./lib/profile";
import type { Scenario, ScenarioResult } from "./lib/types";
import { writeReports } from "./report";
import { latencyScenario } from "./scenarios/latency";
import { throughputScenario } from "./scenarios/throughput";
import { cacheScenario } from "./scenarios/cache";
import { streamsScenario } from "./scenarios/streams";
import { memoryScenario } from "./scenarios/memory";
import { lambdaScenario } from "./scenarios/lambda";
import { spikeScenario } from "./scenarios/spike";
import { costScenario } from "./scenarios/cost";
import { peersScenario } from "./scenarios/peers";
import { embeddedScenario } from "./scenarios/embedded";

/** In running order: throughput runs before spike and memory, which size their load from it. */
export const SCENARIOS: readonly Scenario[] = [
  latencyScenario,
  cacheScenario,
  throughputScenario,
  peersScenario,
  streamsScenario,
  spikeScenario,
  memoryScenario,
  lambdaScenario,
  costScenario,
  embeddedScenario,
];

const USAGE = `Usage: npm run bench -- [options]
  --only a,b           run only these scenarios: ${SCENARIOS.map((s) => s.name).join(", ")}
  --quick              short run of each scenario (smoke test; timings are indicative only)
  --soak-seconds N     memory soak duration (default 300; 10 with --quick)
  --rounds N           rounds for the latency and cache-hit figures (default 5)
  --cpu-prof           run each service process with --cpu-prof; profiles and their hot spots go
                       to the output directory (timings are then not representative)
  --out DIR            where latest.json / latest.md go (default bench/results)
  --dist DIR           where to build (scripts/build.mjs, as npm run build) and what to run
                       (default bench/results/dist.tmp, git-ignored; --dist dist uses npm run build's)
  --no-build           do not build first: run the bundles already in --dist
  --database-url URL   use this database as is (default: a fresh database on the admin URL, dropped after)
  --pg-admin-url URL   where to create the run's database (default postgres://postgres@127.0.0.1:5432/test)
  --redis-url URL      Redis (default redis://127.0.0.1:6379)
  --log-level L        the service's LOG_LEVEL (default info: production's, written asynchronously)
  --wait-quiet N       first wait up to N seconds for the machine to be quiet (< 0.3 cores busy
                       over 5 s), then run anyway; the report shows what else ran meanwhile
  --nice=N             run the generator, the service and the fake upstream at nice N (negative
                       needs root; write it with "=", e.g. --nice=-10): on a shared machine this
                       keeps the figures about the service rather than the neighbours (at their
                       expense while it runs)
  --silent             no progress lines on stderr
  --help`;

function parseCli(argv: string[]) {
  return parseArgs({
    args: argv,

    options: {
      only: { type: "string" },
      quick: { type: "boolean", default: false },
      "soak-seconds": { type: "string" },
      rounds: { type: "string" },
      "cpu-prof": { type: "boolean", default: false },
      out: { type: "string" },
      dist: { type: "string" },
      "no-build": { type: "boolean", default: false },
      "database-url": { type: "string" },
      "pg-admin-url": { type: "string" },
      "redis-url": { type: "string" },
      "log-level": { type: "string" },
      "wait-quiet": { type: "string" },
      nice: { type: "string" },
      silent: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
}

/** Set while the run holds a database and Redis keys: what an interrupted run still cleans up. */
let onInterrupt: (() => Promise<void>) | undefined;

export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseCli>;
  try {
    parsed = parseCli(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { values } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const names = new Set(SCENARIOS.map((s) => s.name));
  const only = new Set(
    (values.only ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  );
  for (const n of only) {
    if (!names.has(n)) {
      process.stderr.write(`unknown scenario "${n}"\n${USAGE}\n`);
      return 2;
    }
  }
  const positiveInt = (name: string, raw: string | undefined, fallback: number): number => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n <= 0)
      throw new Error(`--${name} must be a positive integer, got "${raw}"`);
    return n;
  };
  const quick = values.quick ?? false;
  const id = newIdentity();
  const adminUrl =
    values["pg-admin-url"] ??
    process.env.TEST_DATABASE_URL ??
    "postgres://postgres@127.0.0.1:5432/test";
  const dbName = benchDatabaseName(id);
  const opts: BenchOptions = {
    quick,
    only,
    outDir: path.resolve(values.out ?? path.join(REPO_ROOT, "bench", "results")),
    // Its own build directory by default: a concurrent `npm run build` empties dist/ first, which
    // would pull the bundle from under a running benchmark.
    distDir: path.resolve(values.dist ?? path.join(REPO_ROOT, "bench", "results", "dist.tmp")),
    cpuProf: values["cpu-prof"] ?? false,
    soakSeconds: positiveInt("soak-seconds", values["soak-seconds"], quick ? 10 : 300),
    rounds: positiveInt("rounds", values.rounds, 5),
    databaseUrl: values["database-url"] ?? "",
    redisUrl: values["redis-url"] ?? process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379",
    logLevel: values["log-level"] ?? "info",
    verbose: !(values.silent ?? false),
  };
  mkdirSync(opts.outDir, { recursive: true });

  if (!values["no-build"]) {
    progress(opts, `building into ${path.relative(process.cwd(), opts.distDir) || "."} ...`);
    const buildScript = pathToFileURL(path.join(REPO_ROOT, "scripts", "build.mjs")).href;
    const { build } = (await import(buildScript)) as {
      build(o: { outdir: string; quiet: boolean }): Promise<unknown>;
    };
    await build({ outdir: opts.distDir, quiet: true });
  }
  const serverBundle = path.join(opts.distDir, "server", "index.js");
  if (!existsSync(serverBundle))
    throw new Error(`${serverBundle} is missing: run npm run build (or drop --no-build)`);
  checkImagePreload();

  const waitQuiet =
    values["wait-quiet"] === undefined ? 0 : positiveInt("wait-quiet", values["wait-quiet"], 0);
  if (waitQuiet > 0) {
    const until = Date.now() + waitQuiet * 1000;
    for (;;) {
      const busy = await machineBusyCores(5000);
      if (busy < 0.3) break;
      if (Date.now() > until) {
        progress(
          opts,
          `machine still busy (${busy.toFixed(2)} cores) after ${waitQuiet} s: running anyway`,
        );
        break;
      }
      progress(opts, `waiting for a quiet machine: ${busy.toFixed(2)} cores busy`);
    }
  }

  if (values.nice !== undefined) {
    const nice = Number(values.nice);
    if (!Number.isInteger(nice) || nice < -20 || nice > 19)
      throw new Error(`--nice must be an integer from -20 to 19, got "${values.nice}"`);
    setBenchPriority(nice);
    opts.nice = nice;
  }

  const ownsDatabase = !values["database-url"];
  if (ownsDatabase) opts.databaseUrl = await createDatabase(adminUrl, dbName);
  const cleanUp = async () => {
    await cleanRedis(opts.redisUrl, id).catch(() => 0);
    if (ownsDatabase) await dropDatabase(adminUrl, dbName).catch(() => undefined);
  };
  onInterrupt = cleanUp;

  const selected = SCENARIOS.filter((s) => only.size === 0 || only.has(s.name));
  const results = new Map<string, ScenarioResult>();
  const startedAt = new Date();
  const failures: string[] = [];
  try {
    for (const scenario of selected) {
      progress(opts, `\n▶ ${scenario.name}: ${scenario.title}`);
      const t0 = performance.now();
      const loadAverageAtStart = os.loadavg().map((v) => Math.round(v * 100) / 100);
      const cpu0 = cpuSnapshot();
      try {
        const r = await scenario.run({ opts, id, earlier: results });
        const cpuCores = cpuBreakdown(cpu0, cpuSnapshot());
        results.set(scenario.name, {
          ...r,
          name: scenario.name,
          title: scenario.title,
          durationSeconds: Math.round((performance.now() - t0) / 100) / 10,
          environment: { loadAverageAtStart, cpuCores },
        });
        progress(
          opts,
          `  cores busy on average: ${cpuCores.machine} (bench ${cpuCores.bench}, Redis+Postgres ${cpuCores.stores}, others ${cpuCores.others})`,
        );
      } catch (err) {
        const message = (err as Error)?.stack ?? String(err);
        failures.push(`${scenario.name}: ${message}`);
        progress(opts, `  ✗ ${scenario.name} failed: ${message}`);
        results.set(scenario.name, {
          name: scenario.name,
          title: scenario.title,
          method: [],
          figures: { error: (err as Error)?.message ?? String(err) },
          table: [["error", (err as Error)?.message ?? String(err)]],
          targets: [],
          notes: [`The scenario failed: ${(err as Error)?.message ?? String(err)}`],
          durationSeconds: Math.round((performance.now() - t0) / 100) / 10,
        });
      }
    }
  } finally {
    onInterrupt = undefined;
    await cleanUp();
  }

  const profiles: ProfileSummary[] = [];
  if (opts.cpuProf) {
    for (const name of ["throughput", ...[...results.keys()].filter((n) => n !== "throughput")]) {
      for (const file of [
        `${name}.cpuprofile`,
        `${name}-naive.cpuprofile`,
        `${name}-defaults.cpuprofile`,
      ]) {
        const full = path.join(opts.outDir, file);
        if (!existsSync(full) || statSync(full).mtimeMs < startedAt.getTime()) continue;
        try {
          profiles.push(summarizeProfile(full, REPO_ROOT));
        } catch (err) {
          progress(opts, `  could not read ${file}: ${(err as Error).message}`);
        }
      }
    }
  }

  const written = await writeReports({
    opts,
    startedAt,
    finishedAt: new Date(),
    machine: machineInfo(),
    scenarios: [...results.values()],
    profiles,
  });
  if (failures.length === 0 && !process.env.BENCH_KEEP_LOGS)
    rmSync(LOG_DIR, { recursive: true, force: true });
  else progress(opts, `\nservice logs kept in ${LOG_DIR}`);
  progress(opts, `\nwrote ${written.map((f) => path.relative(process.cwd(), f)).join(", ")}`);
  return failures.length > 0 ? 1 : 0;
}

if (require.main === module) {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      process.stderr.write(
        `\n${signal}: stopping the service and the fake upstream, cleaning up\n`,
      );
      killChildren();
      const deadline = setTimeout(() => process.exit(130), 10_000);
      void (onInterrupt?.() ?? Promise.resolve()).finally(() => {
        clearTimeout(deadline);
        process.exit(130);
      });
    });
  }
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`bench failed: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
