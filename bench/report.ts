/**
 * Writes latest.json (every figure, machine-readable) and latest.md (the summary a reader wants:
 * targets pass/fail, then each scenario's method and figures). Written to `<file>.tmp` first and
 * renamed, so a crashed run never leaves a half-written report behind.
 */
import { imageNodeFlags, imageTuningEnv } from "./lib/procs";
import { renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { BenchOptions } from "./lib/harness";
import type { machineInfo } from "./lib/procs";
import type { ProfileSummary } from "./lib/profile";
import type { ScenarioResult } from "./lib/types";

/** The image's process tuning as a shell prefix (`LD_PRELOAD=libmimalloc.so.2 `), or "". */
function imageEnvPrefix(): string {
  return Object.entries(imageTuningEnv())
    .map(([k, v]) => `${k}=${v} `)
    .join("");
}

export const REPORT_SCHEMA_VERSION = 1;

export interface ReportInput {
  opts: BenchOptions;
  startedAt: Date;
  finishedAt: Date;
  machine: ReturnType<typeof machineInfo>;
  scenarios: ScenarioResult[];
  /** CPU profile summaries (--cpu-prof), throughput first. */
  profiles?: ProfileSummary[];
}

export interface JsonReport {
  schemaVersion: number;
  generatedAt: string;
  mode: "full" | "quick";
  cpuProfile: boolean;
  /** Nice value of the benchmark's processes (--nice), null when left alone. */
  nice: number | null;
  machine: ReturnType<typeof machineInfo>;
  durationSeconds: number;
  scenariosRun: string[];
  targets: Array<ScenarioResult["targets"][number] & { scenario: string }>;
  summary: { passed: number; failed: number; notMeasured: number };
  scenarios: Record<string, Omit<ScenarioResult, "name">>;
  profiles: Array<ProfileSummary & { file: string }>;
}

export function buildJsonReport(input: ReportInput): JsonReport {
  const targets = input.scenarios.flatMap((s) =>
    s.targets.map((t) => ({ scenario: s.name, ...t })),
  );
  return {
    schemaVersion: REPORT_SCHEMA_VERSION,
    generatedAt: input.finishedAt.toISOString(),
    mode: input.opts.quick ? "quick" : "full",
    cpuProfile: input.opts.cpuProf,
    nice: input.opts.nice ?? null,
    machine: input.machine,
    durationSeconds: Math.round((input.finishedAt.getTime() - input.startedAt.getTime()) / 1000),
    scenariosRun: input.scenarios.map((s) => s.name),
    targets,
    summary: {
      passed: targets.filter((t) => t.pass === true).length,
      failed: targets.filter((t) => t.pass === false).length,
      notMeasured: targets.filter((t) => t.pass === null).length,
    },
    scenarios: Object.fromEntries(input.scenarios.map(({ name, ...rest }) => [name, rest])),
    profiles: (input.profiles ?? []).map((p) => ({ ...p, file: path.basename(p.file) })),
  };
}

const verdict = (pass: boolean | null) =>
  pass === true ? "✅ pass" : pass === false ? "❌ fail" : "— not measured";
const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

export function renderMarkdown(report: JsonReport, input: ReportInput): string {
  const m = report.machine;
  const lines: string[] = [];
  lines.push(`# Benchmark results`);
  lines.push("");
  lines.push(
    `Generated ${report.generatedAt} by \`npm run bench\`${report.mode === "quick" ? " -- --quick (short run: indicative only)" : ""}` +
      `${report.cpuProfile ? " with --cpu-prof (profiling overhead: timings not representative)" : ""}, in ${report.durationSeconds} s.`,
  );
  lines.push("");
  lines.push(
    `Machine: **${m.cores} cores** (${m.cpuModel}), ${m.memoryGb} GB RAM, ${m.platform}, Node ${m.node}; ` +
      `load average at the end ${m.loadAverage.join(" / ")}. The service, the fake upstream and the load generator ` +
      `run as three processes on these cores, next to Redis and PostgreSQL` +
      (report.nice !== null ? `, at nice ${report.nice} (--nice)` : "") +
      `. The service runs as the image runs it: \`${imageEnvPrefix()}node ${imageNodeFlags().join(" ")} <dist>/server/index.js\` (app/Dockerfile's CMD and its runtime stage's process tuning).`,
  );
  lines.push("");
  lines.push(`## Targets`);
  lines.push("");
  lines.push(`| scenario | target | required | measured | result |`);
  lines.push(`|---|---|---|---|---|`);
  for (const t of report.targets) {
    lines.push(
      `| ${t.scenario} | ${cell(t.name)} | ${cell(t.target)} | ${cell(t.measured)} | ${verdict(t.pass)} |`,
    );
  }
  lines.push("");
  lines.push(
    `${report.summary.passed} passed, ${report.summary.failed} failed` +
      (report.summary.notMeasured ? `, ${report.summary.notMeasured} not measured` : "") +
      ".",
  );
  for (const s of input.scenarios) {
    lines.push("");
    lines.push(`## ${s.name}: ${s.title}`);
    lines.push("");
    if (s.method.length) {
      for (const line of s.method) lines.push(`- ${line}`);
      lines.push("");
    }
    if (s.table.length) {
      lines.push(`| figure | value |`);
      lines.push(`|---|---|`);
      for (const [k, v] of s.table) lines.push(`| ${cell(k)} | ${cell(v)} |`);
      lines.push("");
    }
    for (const n of s.notes) lines.push(`> ${n.replace(/\n/g, "\n> ")}\n`);
    const env = s.environment;
    lines.push(
      `_${s.durationSeconds} s` +
        (env
          ? `; cores busy on average ${env.cpuCores.machine} of ${m.cores}: benchmark processes ${env.cpuCores.bench}, Redis + PostgreSQL ${env.cpuCores.stores}, everything else ${env.cpuCores.others}; load average at start ${env.loadAverageAtStart.join(" / ")}`
          : "") +
        "_",
    );
  }
  const shared = input.scenarios.filter((s) => (s.environment?.cpuCores.others ?? 0) >= 0.25);
  if (shared.length > 0) {
    lines.splice(
      lines.indexOf("## Targets"),
      0,
      `> **The machine was shared**: other processes kept ≥ 0.25 cores busy during ${shared.map((s) => s.name).join(", ")} (see each scenario's footer). Timings there are pessimistic.`,
      "",
    );
  }
  for (const p of report.profiles) {
    lines.push("");
    lines.push(`## CPU profile: ${p.file}`);
    lines.push("");
    lines.push(
      `${p.busyMs.toLocaleString("en-US")} ms on CPU over ${p.durationMs.toLocaleString("en-US")} ms (profiling adds overhead). Self time by area:`,
    );
    lines.push("");
    lines.push(`| area | self ms | share |`);
    lines.push(`|---|---|---|`);
    for (const a of p.areas.slice(0, 12))
      lines.push(`| ${cell(a.area)} | ${a.selfMs.toLocaleString("en-US")} | ${a.selfPercent} % |`);
    lines.push("");
    lines.push(
      `Self time with Node internals and natives charged to the package (or app code) that called them:`,
    );
    lines.push("");
    lines.push(`| area | ms | share |`);
    lines.push(`|---|---|---|`);
    for (const a of p.attributedAreas.slice(0, 12))
      lines.push(`| ${cell(a.area)} | ${a.selfMs.toLocaleString("en-US")} | ${a.selfPercent} % |`);
    lines.push("");
    lines.push(`App functions by inclusive time:`);
    lines.push("");
    lines.push(`| share | function | where |`);
    lines.push(`|---|---|---|`);
    for (const f of p.appInclusive.slice(0, 12))
      lines.push(`| ${f.selfPercent} % | ${cell(f.name)} | ${cell(f.where)} |`);
    lines.push("");
    lines.push(`Top functions by self time:`);
    lines.push("");
    lines.push(`| share | function | where |`);
    lines.push(`|---|---|---|`);
    for (const f of p.functions.slice(0, 20))
      lines.push(`| ${f.selfPercent} % | ${cell(f.name)} | ${cell(f.where)} |`);
  }
  lines.push("");
  return lines.join("\n");
}

function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

/**
 * Writes latest.json and latest.md into the output directory; returns their paths. A profiling
 * run (--cpu-prof) writes profile.json and profile.md instead: its timings carry the profiler's
 * overhead and must not replace the committed figures.
 */
export async function writeReports(input: ReportInput): Promise<string[]> {
  const report = buildJsonReport(input);
  const base = input.opts.cpuProf ? "profile" : "latest";
  const jsonFile = path.join(input.opts.outDir, `${base}.json`);
  const mdFile = path.join(input.opts.outDir, `${base}.md`);
  writeAtomically(jsonFile, JSON.stringify(report, null, 2) + "\n");
  writeAtomically(mdFile, renderMarkdown(report, input));
  return [jsonFile, mdFile];
}
