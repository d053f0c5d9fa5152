/**
 * The gate evaluator both GCP kinds share: pure, over one-minute samples of the canary's
 * signals, with the thresholds of `RolloutGates` (components/release/rollout-plan.ts).
 *
 * A minute is bad when it had at least `minRequestsPerMinute` requests and either its 5xx ratio
 * is above `errorRatePercent` or its p99 latency is above `p99LatencyMs`. The gate fails when at
 * least `badMinutes` of the minutes in the last `windowMinutes` are bad. A minute without data
 * (no traffic, or Monitoring has not ingested it yet) is not bad.
 *
 * The request minimum applies to the latency signal too, not only to the ratio: at a 10 % step
 * of little traffic the p99 of two requests is the slower of the two, often the new revision's
 * (or VM's) first, cold request, which would fail a good release.
 */
import type { RolloutGates } from "../../components/release/rollout-plan";

/** One minute of the canary's signals, as read from Cloud Monitoring. */
export interface MinuteSample {
  /** The end of the one-minute alignment period, ms since the epoch. */
  endMs: number;
  requests: number;
  /** Responses of class 5xx. */
  errors5xx: number;
  /** p99 latency of the minute in ms; undefined when Monitoring had no latency point. */
  p99Ms?: number;
}

export interface BadMinute {
  endMs: number;
  /** Why, naming the gate: "5xx 20 % of 50 requests > 5 % (errorRatePercent)". */
  reasons: string[];
}

export interface GateVerdict {
  failed: boolean;
  /** Minutes with data inside the window. */
  observed: number;
  bad: BadMinute[];
  /** One line for the progress log or the failure message. */
  summary: string;
}

const MINUTE_MS = 60_000;

/** Why `sample` is a bad minute under `gates` (empty when it is not). */
export function badMinuteReasons(sample: MinuteSample, gates: RolloutGates): string[] {
  if (sample.requests < gates.minRequestsPerMinute) return [];
  const reasons: string[] = [];
  const errorPercent = (sample.errors5xx / sample.requests) * 100;
  if (errorPercent > gates.errorRatePercent) {
    reasons.push(
      `5xx ${round(errorPercent)} % of ${sample.requests} requests > ${gates.errorRatePercent} % (errorRatePercent)`,
    );
  }
  if (sample.p99Ms !== undefined && sample.p99Ms > gates.p99LatencyMs) {
    reasons.push(`p99 ${Math.round(sample.p99Ms)} ms > ${gates.p99LatencyMs} ms (p99LatencyMs)`);
  }
  return reasons;
}

/**
 * The verdict over the minutes that end within the `windowMinutes` before `windowEndMs`.
 * Samples outside the window are ignored, so a caller may pass everything it has read.
 */
export function evaluateGates(
  samples: readonly MinuteSample[],
  gates: RolloutGates,
  windowEndMs: number,
): GateVerdict {
  const windowStart = windowEndMs - gates.windowMinutes * MINUTE_MS;
  const inWindow = samples
    .filter((s) => s.endMs > windowStart && s.endMs <= windowEndMs)
    .sort((a, b) => a.endMs - b.endMs);
  const bad = inWindow
    .map((s) => ({ endMs: s.endMs, reasons: badMinuteReasons(s, gates) }))
    .filter((m) => m.reasons.length > 0);
  const failed = bad.length >= gates.badMinutes;
  const requests = inWindow.reduce((n, s) => n + s.requests, 0);
  const head = `${bad.length} of the last ${gates.windowMinutes} min bad (fails at ${gates.badMinutes}); ${inWindow.length} min with data, ${requests} requests`;
  const detail = bad.map((m) => `${minuteLabel(m.endMs)} ${m.reasons.join(", ")}`).join("; ");
  return {
    failed,
    observed: inWindow.length,
    bad,
    summary: detail ? `${head}: ${detail}` : head,
  };
}

/** "12:04Z": the minute a sample ends, for messages. */
export function minuteLabel(endMs: number): string {
  return `${new Date(endMs).toISOString().slice(11, 16)}Z`;
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
