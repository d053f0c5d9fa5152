/**
 * Offline plan: runs the Pulumi program for one or more stacks under the mock runtime (no
 * credentials, no Pulumi CLI, no cloud) and prints each stack's resource tree, the policy pack's
 * verdict and an estimated monthly cost from the dated price table in `prices.json`.
 *
 *   npm run plan -- <stack> [<stack>...]     one or more stacks from stacks/
 *   npm run plan -- --all                    every stack, two at a time, progress on stderr
 *
 *   npm run plan -- --all --preflight [--live] what the clouds will refuse, across all stacks
 *
 * Each stack renders in its own child process (Pulumi's runtime state is module-global). Exit
 * codes: 0 clean, 1 a mandatory policy is violated, 2 a stack failed to render or bad usage,
 * 3 the preflight found a blocker.
 */
import { spawn } from "node:child_process";
import { cpus } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type { Environment } from "../../components/contracts";
import { listStacks, STACKS_DIR } from "../stack-files";
import {
  formatAssumptions,
  formatStack,
  formatSummary,
  isMandatory,
  toJson,
  type PrintedPlan,
  type StackFailure,
} from "./format";
import type { WorkerMessage, WorkerRequest } from "./types";
import {
  preflight,
  quotaUsage,
  summarize,
  type ConfigFailure,
  type Finding,
  type QuotaUse,
} from "../preflight/checks";
import { formatFindings } from "../preflight/format";
import { readLiveFacts } from "../preflight/live";
import { utcToday } from "../../components/versions";

export const EXIT = { ok: 0, mandatoryViolation: 1, failure: 2, blocker: 3 } as const;

const USAGE = `Usage: npm run plan -- [options] <stack> [<stack>...]
       npm run plan -- [options] --all

Renders stacks under Pulumi's mock runtime and prints the resource tree, the policy
results and an estimated monthly cost (list prices from infra/plan/prices.json).

Options:
  --all               every stack in the stacks directory
  --json              print {"stacks":[...]} as JSON on stdout (progress stays on stderr)
  --summary           skip the resource trees (text output)
  --stacks-dir <dir>  where the Pulumi.<stack>.yaml files are (default: stacks/)
  --jobs <n>          stacks rendered in parallel (default: 2, at most the CPU count)
  --policy <module>   policy runner module exporting evaluatePolicies
                      (default: infra/policy/runner.ts)
  --timeout <s>       give up on a stack after this many seconds (default: 180)
  --preflight         also check what the clouds will refuse or what will not work once
                      deployed, across all the stacks given: versions, APIs, names that
                      collide, quotas, placeholders and unset values, DNS, promotion grants
  --live              with --preflight: ask the clouds (AWS Service Quotas, EKS versions, Cost
                      Explorer; GCP projects and billing) with the credentials in the
                      environment, and treat sampled or unset values as blockers
  --today <date>      judge version support on this day (YYYY-MM-DD; default: today, UTC)
  -h, --help          this text

Exit status: 0 clean, 1 a mandatory policy is violated, 2 a stack failed to render or bad usage,
3 the preflight found a blocker.`;

const WORKER = join(__dirname, "worker.ts");
const REPO_ROOT = resolve(__dirname, "..", "..");

interface CliOptions {
  stacks: string[];
  json: boolean;
  summary: boolean;
  stacksDir?: string;
  jobs: number;
  policyModule?: string;
  timeoutMs: number;
  preflight: boolean;
  live: boolean;
  today: string;
}

class UsageError extends Error {}

function parse(argv: string[]): CliOptions | "help" {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      all: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      summary: { type: "boolean", default: false },
      "stacks-dir": { type: "string" },
      jobs: { type: "string" },
      policy: { type: "string" },
      timeout: { type: "string" },
      preflight: { type: "boolean", default: false },
      live: { type: "boolean", default: false },
      today: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return "help";
  const stacksDir = values["stacks-dir"] ? resolve(values["stacks-dir"]) : undefined;
  let known: string[];
  try {
    known = listStacks(stacksDir ?? STACKS_DIR);
  } catch (err) {
    throw new UsageError(
      `cannot read the stacks directory ${stacksDir ?? STACKS_DIR}: ${(err as Error).message}`,
    );
  }
  if (values.all && positionals.length) throw new UsageError("give stack names or --all, not both");
  if (!values.all && positionals.length === 0) throw new UsageError("name a stack, or pass --all");
  const unknown = positionals.filter((s) => !known.includes(s));
  if (unknown.length)
    throw new UsageError(
      `unknown stack${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")}; known: ${known.join(", ") || "none"}`,
    );
  const jobs = values.jobs === undefined ? Math.min(2, cpus().length) : Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1)
    throw new UsageError(`--jobs must be a positive integer (got ${values.jobs})`);
  const timeout = values.timeout === undefined ? 180 : Number(values.timeout);
  if (!(timeout > 0))
    throw new UsageError(`--timeout must be a positive number of seconds (got ${values.timeout})`);
  if (values.live && !values.preflight) throw new UsageError("--live goes with --preflight");
  if (values.today !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(values.today))
    throw new UsageError(`--today must be a date such as 2026-12-06 (got ${values.today})`);
  return {
    preflight: values.preflight,
    live: values.live,
    today: values.today ?? utcToday(),
    stacks: values.all ? known : [...new Set(positionals)],
    json: values.json,
    summary: values.summary,
    stacksDir,
    jobs,
    policyModule: values.policy ? resolve(values.policy) : undefined,
    timeoutMs: timeout * 1000,
  };
}

type Outcome =
  | { ok: true; plan: PrintedPlan }
  | { ok: false; failure: StackFailure; config?: { problems: string[]; missing: string[] } };

/** Lines the program logged that a reader should see (deprecation noise dropped). */
function programMessages(output: string): string[] {
  return output
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => /^(info|warning|error):/.test(l) && !/deprecated/i.test(l));
}

function renderInChild(request: WorkerRequest, timeoutMs: number): Promise<Outcome> {
  const tsx = pathToFileURL(require.resolve("tsx")).href;
  return new Promise((done) => {
    const child = spawn(process.execPath, ["--import", tsx, WORKER, JSON.stringify(request)], {
      cwd: REPO_ROOT,
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    let output = "";
    let message: WorkerMessage | undefined;
    child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    child.on("message", (m) => (message = m as WorkerMessage));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (message?.ok)
        return done({ ok: true, plan: { ...message.plan, messages: programMessages(output) } });
      const error =
        message?.error ??
        (signal === "SIGKILL"
          ? `timed out after ${timeoutMs / 1000} s`
          : `worker exited with ${signal ?? `code ${code}`}: ${output.trim().split("\n").slice(-5).join("\n") || "no output"}`);
      done({
        ok: false,
        failure: { name: request.stack, error },
        ...(message && !message.ok && message.config ? { config: message.config } : {}),
      });
    });
  });
}

/** Runs `jobs` stacks at a time; `onDone` sees each result as it arrives. */
async function renderAll(
  options: CliOptions,
  onDone: (o: Outcome, seconds: number, index: number) => void,
): Promise<Outcome[]> {
  const results: Outcome[] = new Array(options.stacks.length);
  let next = 0;
  let finished = 0;
  const lane = async () => {
    while (next < options.stacks.length) {
      const i = next++;
      const started = Date.now();
      const outcome = await renderInChild(
        {
          stack: options.stacks[i]!,
          stacksDir: options.stacksDir,
          policyModule: options.policyModule,
          preflight: options.preflight,
        },
        options.timeoutMs,
      );
      results[i] = outcome;
      onDone(outcome, (Date.now() - started) / 1000, ++finished);
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.jobs, options.stacks.length) }, lane));
  return results;
}

export async function main(
  argv: string[],
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream } = process,
): Promise<number> {
  let options: CliOptions | "help";
  try {
    options = parse(argv);
  } catch (err) {
    io.stderr.write(`plan: ${(err as Error).message}\n\n${USAGE}\n`);
    return EXIT.failure;
  }
  if (options === "help") {
    io.stdout.write(`${USAGE}\n`);
    return EXIT.ok;
  }
  const opts = options;
  const many = opts.stacks.length > 1;
  const started = Date.now();
  if (many)
    io.stderr.write(
      `Rendering ${opts.stacks.length} stacks, ${Math.min(opts.jobs, opts.stacks.length)} at a time\n`,
    );
  const outcomes = await renderAll(opts, (o, seconds, index) => {
    if (!many) return;
    const name = o.ok ? o.plan.name : o.failure.name;
    io.stderr.write(
      `[${index}/${opts.stacks.length}] ${name} ${o.ok ? "✓" : "✗"} ${seconds.toFixed(1)}s\n`,
    );
  });
  const plans = outcomes.flatMap((o) => (o.ok ? [o.plan] : []));
  // With the preflight, an incomplete or invalid configuration is a finding, not a failure.
  const configFailures: ConfigFailure[] = opts.preflight
    ? outcomes.flatMap((o) => (!o.ok && o.config ? [{ stack: o.failure.name, ...o.config }] : []))
    : [];
  const failures = outcomes.flatMap((o) =>
    o.ok || configFailures.some((c) => c.stack === o.failure.name) ? [] : [o.failure],
  );
  let findings: Finding[] | undefined;
  let quotas: QuotaUse[] = [];
  if (opts.preflight) {
    const facts = plans.flatMap((p) => (p.facts ? [p.facts] : []));
    const live = opts.live
      ? await readLiveFacts(facts, { log: (m) => io.stderr.write(`${m}\n`) })
      : undefined;
    findings = preflight(facts, { today: opts.today, failures: configFailures, live });
    quotas = quotaUsage(facts, live);
  }
  if (many)
    io.stderr.write(
      `Rendered ${plans.length} of ${opts.stacks.length} stacks in ${((Date.now() - started) / 1000).toFixed(1)}s\n`,
    );

  if (opts.json) {
    const json = findings
      ? { ...toJson(plans, failures), findings, preflight: { ...summarize(findings), quotas } }
      : toJson(plans, failures);
    io.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  } else {
    const sections = plans.map((p) => formatStack(p, { tree: !opts.summary }));
    for (const f of failures) sections.push(`━━ ${f.name}: FAILED ━━\n${f.error}`);
    if (many) sections.push(formatSummary(plans, failures));
    sections.push(formatAssumptions([...new Set(plans.map((p) => p.environment as Environment))]));
    if (findings) sections.push(formatFindings(findings, opts.stacks.length, opts.live, quotas));
    io.stdout.write(`${sections.join("\n\n")}\n`);
  }
  for (const f of failures) io.stderr.write(`plan: ${f.name} failed: ${f.error}\n`);
  if (failures.length) return EXIT.failure;
  if (findings?.some((f) => f.severity === "blocker")) return EXIT.blocker;
  return plans.some((p) => p.policy.violations.some(isMandatory))
    ? EXIT.mandatoryViolation
    : EXIT.ok;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(
        `plan: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exitCode = EXIT.failure;
    },
  );
}
