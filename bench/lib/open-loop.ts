/**
 * An open-loop, constant-rate (or time-varying rate) load generator.
 *
 * Requests are due at fixed instants (t0, t0 + 1/rate, ...) whatever the responses do, and each
 * request's latency is measured from the instant it was due, not from when it was sent: if the
 * service (or the generator) falls behind, the delay shows up in the latency instead of
 * silently lowering the offered rate ("coordinated omission"). The generator's own lateness is
 * recorded too, so a report can tell a slow service from a saturated generator.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";

export interface Outcome {
  ok: boolean;
  /** HTTP status, 0 for a transport failure, -1 for a request the generator dropped. */
  status: number;
  error?: string;
}

export interface OpenLoopOptions {
  durationMs: number;
  /** Requests per second: a constant, or a function of the time since the start (ms). */
  rate: number | ((elapsedMs: number) => number);
  /** Sends request `i`, due at `dueAt` (performance.now() clock); resolves when it is complete. */
  send: (i: number, dueAt: number) => Promise<Outcome>;
  /** Requests in flight beyond this are not sent and count as errors (status -1). @default 20000 */
  maxInFlight?: number;
}

export interface OpenLoopResult {
  durationMs: number;
  offered: number;
  /** Due time of each request, ms since the start. */
  dueOffsetMs: Float64Array;
  /** Latency of each request from its due time, ms. */
  latencyMs: Float64Array;
  ok: Uint8Array;
  statuses: Map<number, number>;
  errors: Map<string, number>;
  /** How late the generator was in sending (send time minus due time), ms. */
  sendLagMs: Float64Array;
  /** Event-loop delay of the generator process over the run (p99 and max, ms). */
  generatorLoopDelay: { p99: number; max: number };
  maxInFlight: number;
}

export async function runOpenLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const rateAt = typeof options.rate === "number" ? () => options.rate as number : options.rate;
  const cap = options.maxInFlight ?? 20_000;
  const due: number[] = [];
  const latency: number[] = [];
  const lag: number[] = [];
  const ok: number[] = [];
  const statuses = new Map<number, number>();
  const errors = new Map<string, number>();
  const pending = new Set<Promise<void>>();
  let maxInFlight = 0;
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();

  const start = performance.now();
  let nextAt = start;
  let i = 0;

  const fire = (dueAt: number, sentAt: number) => {
    const index = i++;
    due[index] = dueAt - start;
    lag[index] = sentAt - dueAt;
    if (pending.size >= cap) {
      latency[index] = Number.NaN;
      ok[index] = 0;
      statuses.set(-1, (statuses.get(-1) ?? 0) + 1);
      errors.set(
        "generator: too many in flight",
        (errors.get("generator: too many in flight") ?? 0) + 1,
      );
      return;
    }
    const p: Promise<void> = options.send(index, dueAt).then(
      (outcome) => {
        latency[index] = performance.now() - dueAt;
        ok[index] = outcome.ok ? 1 : 0;
        statuses.set(outcome.status, (statuses.get(outcome.status) ?? 0) + 1);
        if (!outcome.ok) {
          const key = outcome.error ?? `HTTP ${outcome.status}`;
          errors.set(key, (errors.get(key) ?? 0) + 1);
        }
        pending.delete(p);
      },
      (err: unknown) => {
        latency[index] = performance.now() - dueAt;
        ok[index] = 0;
        statuses.set(0, (statuses.get(0) ?? 0) + 1);
        const key = String((err as Error)?.message ?? err);
        errors.set(key, (errors.get(key) ?? 0) + 1);
        pending.delete(p);
      },
    );
    pending.add(p);
    if (pending.size > maxInFlight) maxInFlight = pending.size;
  };

  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (nextAt <= now && nextAt - start < options.durationMs) {
        fire(nextAt, now);
        const r = rateAt(nextAt - start);
        nextAt += r > 0 ? 1000 / r : 1;
      }
      if (nextAt - start >= options.durationMs) return resolve();
      const wait = nextAt - performance.now();
      // Never spin (setImmediate) to hit a due time exactly: on a small machine the spinning
      // generator would take CPU from the service it measures. A timer fires up to ~1 ms late;
      // the lateness is recorded, and latency counts from the due time anyway.
      setTimeout(tick, Math.max(1, Math.round(wait)));
    };
    tick();
  });
  while (pending.size > 0) await Promise.all([...pending]);
  loop.disable();

  const n = i;
  return {
    durationMs: options.durationMs,
    offered: n,
    dueOffsetMs: Float64Array.from(due.slice(0, n)),
    latencyMs: Float64Array.from(latency.slice(0, n)),
    ok: Uint8Array.from(ok.slice(0, n)),
    statuses,
    errors,
    sendLagMs: Float64Array.from(lag.slice(0, n)),
    generatorLoopDelay: { p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
    maxInFlight,
  };
}

/** Latencies of the successful requests whose due time falls in [fromMs, toMs). */
export function latenciesBetween(
  result: OpenLoopResult,
  fromMs: number,
  toMs: number,
  okOnly = true,
): number[] {
  const out: number[] = [];
  for (let k = 0; k < result.offered; k++) {
    const t = result.dueOffsetMs[k]!;
    if (t >= fromMs && t < toMs && (!okOnly || result.ok[k] === 1)) out.push(result.latencyMs[k]!);
  }
  return out;
}

export function errorsBetween(
  result: OpenLoopResult,
  fromMs: number,
  toMs: number,
): { n: number; errors: number } {
  let n = 0;
  let errors = 0;
  for (let k = 0; k < result.offered; k++) {
    const t = result.dueOffsetMs[k]!;
    if (t >= fromMs && t < toMs) {
      n++;
      if (result.ok[k] !== 1) errors++;
    }
  }
  return { n, errors };
}

export function mapToObject<K extends string | number>(m: Map<K, number>): Record<string, number> {
  return Object.fromEntries([...m].map(([k, v]) => [String(k), v]));
}
