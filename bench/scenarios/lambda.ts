/**
 * 6. Lambda: the size of what `npm run build` ships (dist/lambda/index.js and dist/lambda.zip),
 * and cold start: a fresh `node` process loads the bundle from an otherwise empty directory (as
 * Lambda loads /var/task) and handles one real-shaped Function URL event, POST /v1/messages,
 * against the real PostgreSQL and Redis and the fake upstream. Median of N fresh processes.
 */
import { spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { functionUrlEvent } from "../../test/support/lambda-events";
import { messageBody, nonce, progress, serviceEnv } from "../lib/harness";
import { cleanEnv, REPO_ROOT, startUpstream, track } from "../lib/procs";
import { round, summarize } from "../lib/stats";
import { fmtMs, type Scenario } from "../lib/types";

const BUNDLE_LIMIT_BYTES = 1024 * 1024;
const COLD_START_LIMIT_MS = 150;

interface ColdRun {
  /** Spawn to the result line, measured by the parent (includes fork/exec of node). */
  wallMs: number;
  /** performance.now() in the child when the handler returned: process start to first handled event. */
  firstEventMs: number;
  /** Node's own bootstrap, until the first line of the script runs. */
  bootMs: number;
  /** require() of the bundle: parse and evaluate. */
  requireMs: number;
  /** From loaded to handled: secrets, config, pools, the request itself. */
  initAndEventMs: number;
  /** The handler's own measure of its init (secrets, config, createDeps), from its "cold start complete" log line. */
  initMs: number;
  /**
   * From that line too: when init ended, on the child's clock. Init starts while the module
   * loads (eager start), so it overlaps requireMs: the request is what follows this, not initMs.
   */
  readyAtMs: number;
  /** The child's clock when the bundle had loaded. */
  loadedMs: number;
  statusCode: number;
}

function coldStart(env: NodeJS.ProcessEnv, cwd: string, profileDir?: string): Promise<ColdRun> {
  // --cpu-prof: the last run is profiled, sampling every 100 µs (the default 1 ms would give a
  // cold start of ~150 ms only ~150 samples).
  const profile = profileDir
    ? [
        "--cpu-prof",
        `--cpu-prof-dir=${profileDir}`,
        "--cpu-prof-name=lambda.cpuprofile",
        "--cpu-prof-interval=100",
      ]
    : [];
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = track(
      spawn(
        process.execPath,
        [...profile, path.join(REPO_ROOT, "bench", "support", "lambda-cold.cjs")],
        {
          cwd,
          env,
          stdio: ["ignore", "pipe", "pipe"],
        },
      ),
    );
    let out = "";
    let err = "";
    let result: ColdRun | undefined;
    let failure: string | undefined;
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString("utf8");
      const m = /^BENCH_RESULT (.*)$/m.exec(out);
      if (m && !result && !failure) {
        const wallMs = performance.now() - t0;
        const r = JSON.parse(m[1]!) as {
          error?: string;
          scriptStartMs: number;
          requireMs: number;
          loadedMs: number;
          firstEventMs: number;
          statusCode: number;
          bodyStart?: string;
        };
        if (r.error) failure = r.error;
        else if (r.statusCode !== 200)
          failure = `handler answered ${r.statusCode}: ${r.bodyStart ?? ""}`;
        else
          result = {
            initMs: Number(/"initMs":(\d+)/.exec(out)?.[1] ?? Number.NaN),
            readyAtMs: Number(/"readyAtMs":([\d.]+)/.exec(out)?.[1] ?? Number.NaN),
            loadedMs: r.loadedMs,
            wallMs,
            firstEventMs: r.firstEventMs,
            bootMs: r.scriptStartMs,
            requireMs: r.requireMs,
            initAndEventMs: r.firstEventMs - r.loadedMs,
            statusCode: r.statusCode,
          };
      }
    });
    child.stderr!.on("data", (d: Buffer) => (err += d.toString("utf8")));
    child.on("exit", (code) => {
      if (result) resolve(result);
      else
        reject(
          new Error(
            `cold start failed (exit ${code}): ${failure ?? ""} ${err.slice(-2000)} ${out.slice(-2000)}`,
          ),
        );
    });
  });
}

export const lambdaScenario: Scenario = {
  name: "lambda",
  title: "Lambda bundle size and cold start to the first handled event",
  async run({ opts, id }) {
    const bundle = path.join(opts.distDir, "lambda", "index.js");
    const zip = path.join(opts.distDir, "lambda.zip");
    const bundleBytes = statSync(bundle).size;
    const zipBytes = statSync(zip).size;
    const runs = opts.quick ? 3 : 15;
    const upstream = await startUpstream({ behavior: { minReplyChars: 400 } });
    const task = mkdtempSync(path.join(os.tmpdir(), "agent-bench-lambda-"));
    const cold: ColdRun[] = [];
    try {
      copyFileSync(bundle, path.join(task, "index.js"));
      // A profile's frames name the copy: its source map goes beside it, and the copy stays.
      if (opts.cpuProf) copyFileSync(`${bundle}.map`, path.join(task, "index.js.map"));
      const base = serviceEnv(opts, upstream, id, {
        LAMBDA_INVOKE_MODE: "BUFFERED",
        AWS_LAMBDA_FUNCTION_NAME: "agent-bench",
        AWS_REGION: "eu-west-1",
        NODE_PATH: "",
      });
      // One untimed run first: it migrates the database if no service has yet (a deployed Lambda
      // finds its schema in place) and warms the OS file cache, as Lambda's is for its runtime.
      for (let i = 0; i <= runs; i++) {
        const eventFile = path.join(task, `event-${i}.json`);
        const event = functionUrlEvent({
          method: "POST",
          path: "/v1/messages",
          headers: {
            "content-type": "application/json",
            "x-api-key": id.key,
            "anthropic-version": "2023-06-01",
          },
          body: messageBody(nonce()),
        });
        writeFileSync(eventFile, JSON.stringify(event));
        const env = cleanEnv({
          ...base,
          BENCH_BUNDLE: path.join(task, "index.js"),
          BENCH_EVENT_FILE: eventFile,
        });
        const r = await coldStart(env, task, opts.cpuProf && i === runs ? opts.outDir : undefined);
        if (i > 0) cold.push(r);
        progress(
          opts,
          `  ${i === 0 ? "untimed" : `run ${i}/${runs}`}: first event at ${fmtMs(r.firstEventMs, 1)} (spawn to result ${fmtMs(r.wallMs, 1)}; require ${fmtMs(r.requireMs, 1)}, init + event ${fmtMs(r.initAndEventMs, 1)}, of which init ${fmtMs(r.initMs, 0)})`,
        );
      }
    } finally {
      if (!opts.cpuProf) rmSync(task, { recursive: true, force: true });
      await upstream.stop();
    }
    const s = (k: keyof ColdRun) => summarize(cold.map((c) => c[k] as number));
    const wall = s("wallMs");
    const first = s("firstEventMs");
    const boot = s("bootMs");
    const req = s("requireMs");
    const init = s("initAndEventMs");
    const initOnly = s("initMs");
    // Handling the event itself: from the end of init (or of the module load, if init ended
    // during it) to the handled event. Before the eager start this was initAndEvent - initMs.
    const eventOnly = summarize(
      cold
        .map((c) =>
          Number.isFinite(c.readyAtMs)
            ? c.firstEventMs - Math.max(c.readyAtMs, c.loadedMs)
            : c.initAndEventMs - c.initMs,
        )
        .filter(Number.isFinite),
    );
    const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
    return {
      method: [
        `Sizes as built by \`npm run build\` (the zip is what Lambda deploys, deflated: index.js, the default build measured here, and bedrock.js, the build a Bedrock stack runs).`,
        `Cold start: ${runs} fresh \`node\` processes (${process.version} here; Lambda runs nodejs22.x), each loading index.js copied into an empty directory (like /var/task) and invoking \`handler\` once with a Function URL event for POST /v1/messages (BUFFERED mode, DATABASE_URL and REDIS_URL set, AWS_LAMBDA_FUNCTION_NAME set so the Lambda defaults apply), after one untimed run.`,
        `"Spawn to first event" is measured by the parent from spawn() to the result line (includes exec of node); the breakdown is on the child's own clock. Stores are on loopback: a VPC adds its round trips.`,
      ],
      figures: {
        bundleBytes,
        zipBytes,
        bundleLimitBytes: BUNDLE_LIMIT_BYTES,
        runs,
        coldStartMs: {
          spawnToFirstEvent: {
            p50: round(wall.p50, 1),
            p90: round(wall.p90, 1),
            max: round(wall.max, 1),
          },
          processStartToFirstEvent: {
            p50: round(first.p50, 1),
            p90: round(first.p90, 1),
            max: round(first.max, 1),
          },
          nodeBootstrap: { p50: round(boot.p50, 1) },
          requireBundle: { p50: round(req.p50, 1) },
          initAndFirstEvent: { p50: round(init.p50, 1) },
          initOnly: { p50: round(initOnly.p50, 1), max: round(initOnly.max, 1) },
          firstEventOnly: { p50: round(eventOnly.p50, 1), max: round(eventOnly.max, 1) },
        },
        runsMs: cold.map((c) => ({
          wall: round(c.wallMs, 1),
          firstEvent: round(c.firstEventMs, 1),
          require: round(c.requireMs, 1),
          initAndEvent: round(c.initAndEventMs, 1),
          init: round(c.initMs, 1),
        })),
      },
      table: [
        [
          "**dist/lambda/index.js**",
          `${kib(bundleBytes)} (${bundleBytes.toLocaleString("en-US")} bytes)`,
        ],
        ["dist/lambda.zip", `${kib(zipBytes)} (${zipBytes.toLocaleString("en-US")} bytes)`],
        [
          "**cold start, spawn to first handled event: median / p90 / max**",
          `${fmtMs(wall.p50, 1)} / ${fmtMs(wall.p90, 1)} / ${fmtMs(wall.max, 1)}`,
        ],
        ["process start to first handled event (child clock), median", fmtMs(first.p50, 1)],
        [
          "of which: node bootstrap / require(index.js) / init + first event",
          `${fmtMs(boot.p50, 1)} / ${fmtMs(req.p50, 1)} / ${fmtMs(init.p50, 1)}`,
        ],
        [
          "init (secrets, config, createDeps; the handler's initMs, begun during the module load) / the request after init, median (max)",
          `${fmtMs(initOnly.p50, 1)} (${fmtMs(initOnly.max, 1)}) / ${fmtMs(eventOnly.p50, 1)} (${fmtMs(eventOnly.max, 1)})`,
        ],
      ],
      targets: [
        {
          name: "Lambda bundle (dist/lambda/index.js)",
          target: "< 1 MiB",
          measured: kib(bundleBytes),
          pass: bundleBytes < BUNDLE_LIMIT_BYTES,
        },
        {
          name: "Lambda cold start to first handled event (median)",
          target: `< ${COLD_START_LIMIT_MS} ms`,
          measured: fmtMs(wall.p50, 1),
          pass: Number.isFinite(wall.p50) ? wall.p50 < COLD_START_LIMIT_MS : null,
        },
      ],
      notes: [],
    };
  },
};
