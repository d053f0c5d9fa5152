/** The shape every scenario returns, and what the report writer reads. */
import type { BenchOptions, Identity } from "./harness";
import type { CpuBreakdown } from "./procs";

export interface TargetCheck {
  /** What is promised, e.g. "added p99 at c=1, JSON". */
  name: string;
  /** The target, human-readable, e.g. "≤ 1 ms". */
  target: string;
  /** What was measured, human-readable, e.g. "0.84 ms". */
  measured: string;
  /** null when the figure could not be measured in this run. */
  pass: boolean | null;
}

export interface ScenarioResult {
  name: string;
  title: string;
  /** How it was measured, for the Markdown report. */
  method: string[];
  /** Machine-readable figures for latest.json. */
  figures: Record<string, unknown>;
  /** Markdown table rows: [label, value]. */
  table: Array<[string, string]>;
  targets: TargetCheck[];
  notes: string[];
  durationSeconds: number;
  /** What else the machine was doing meanwhile (filled in by the runner). */
  environment?: { loadAverageAtStart: number[]; cpuCores: CpuBreakdown };
}

export interface ScenarioContext {
  opts: BenchOptions;
  id: Identity;
  /** Figures of scenarios that ran before (throughput feeds spike and soak rates). */
  earlier: Map<string, ScenarioResult>;
}

export interface Scenario {
  name: string;
  title: string;
  run(
    ctx: ScenarioContext,
  ): Promise<Omit<ScenarioResult, "name" | "title" | "durationSeconds" | "environment">>;
}

/**
 * Decimal places for the formatters: a literal, so that passing one as an array callback
 * (`xs.map(fmtNum)`, whose index would become the places: "1,024.0") does not type-check.
 */
export type Digits = 0 | 1 | 2 | 3;

export const fmtMs = (v: number | null | undefined, digits: Digits = 2): string =>
  v === null || v === undefined || !Number.isFinite(v) ? "n/a" : `${v.toFixed(digits)} ms`;

export const fmtNum = (v: number | null | undefined, digits: Digits = 0): string =>
  v === null || v === undefined || !Number.isFinite(v)
    ? "n/a"
    : v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
