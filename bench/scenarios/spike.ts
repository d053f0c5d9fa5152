/**
 * 7. Spike: the offered load jumps 100-fold from one instant to the next (a step, the hardest
 * case of "within one second"), holds, and falls back. Reported: errors and p99 during the jump,
 * and how long until p99 is back to normal.
 *
 * "Normal" is the pre-spike p99 doubled (at least +5 ms): the service is back to normal when every
 * later 500 ms window of the high phase has its p99 under that. Recovery time is measured from
 * the jump to the end of the last window above it (0 when there was none).
 */
import { messageBody, nonce, progress, withStack } from "../lib/harness";
import { errorsBetween, latenciesBetween, mapToObject, runOpenLoop } from "../lib/open-loop";
import { cpuShare } from "../lib/procs";
import { round, summarize } from "../lib/stats";
import { fmtMs, fmtNum, type Scenario } from "../lib/types";
import { UPSTREAM_LATENCY_MS } from "./throughput";

const FACTOR = 100;
const WINDOW_MS = 500;

export const spikeScenario: Scenario = {
  name: "spike",
  title: "Spike: offered load ×100 within one second",
  async run({ opts, id, earlier }) {
    const sustained = Number(
      (earlier.get("throughput")?.figures as { sustainedRps?: number } | undefined)?.sustainedRps ??
        0,
    );
    // The high rate stays within what one process sustains, so the spike tests the jump, not overload.
    const high = opts.quick
      ? 200
      : Math.max(
          100,
          Math.min(1000, Math.floor((sustained > 0 ? sustained * 0.8 : 1000) / 10) * 10),
        );
    const low = high / FACTOR;
    const baseSeconds = opts.quick ? 4 : 20;
    const highSeconds = opts.quick ? 4 : 20;
    const afterSeconds = opts.quick ? 1 : 5;
    const jumpAt = baseSeconds * 1000;
    const fallAt = jumpAt + highSeconds * 1000;
    const total = fallAt + afterSeconds * 1000;
    return withStack(
      opts,
      id,
      "spike",
      { behavior: { latencyMs: UPSTREAM_LATENCY_MS, minReplyChars: 400 } },
      {},
      async (stack) => {
        const target = stack.viaService(512, 10_000);
        // Warm the process at the low rate's neighbourhood only: a spike hits a service that was quiet.
        for (let i = 0; i < 50; i++) await target.postJson("/v1/messages", messageBody(nonce()));
        progress(
          opts,
          `  ${low} req/s for ${baseSeconds} s, then ${high} req/s for ${highSeconds} s, then ${low} req/s for ${afterSeconds} s`,
        );
        const svc0 = stack.service.stats();
        const t0 = performance.now();
        const r = await runOpenLoop({
          durationMs: total,
          rate: (t) => (t >= jumpAt && t < fallAt ? high : low),
          send: async (_i, dueAt) => {
            const res = await target.postJson(
              "/v1/messages",
              messageBody(nonce()),
              undefined,
              dueAt,
            );
            return { ok: res.status === 200, status: res.status, error: res.error };
          },
        });
        const serviceCpu = cpuShare(svc0, stack.service.stats(), performance.now() - t0);
        // The last 10 s before the jump (all of it in a quick run) is the baseline.
        const baseline = summarize(latenciesBetween(r, Math.max(0, jumpAt - 10_000), jumpAt));
        const normal = Math.max(baseline.p99 * 2, baseline.p99 + 5);
        const firstSecond = summarize(latenciesBetween(r, jumpAt, jumpAt + 1000, false));
        const firstFive = summarize(latenciesBetween(r, jumpAt, jumpAt + 5000, false));
        const wholeHigh = summarize(latenciesBetween(r, jumpAt, fallAt, false));
        const steadyHigh = summarize(
          latenciesBetween(r, fallAt - Math.min(10_000, (highSeconds * 1000) / 2), fallAt),
        );
        const errFirstFive = errorsBetween(r, jumpAt, jumpAt + 5000);
        const errHigh = errorsBetween(r, jumpAt, fallAt);
        const errAll = errorsBetween(r, 0, total);
        const windows: Array<{ fromMs: number; n: number; p99: number | null; errors: number }> =
          [];
        let lastAbove = -1;
        for (let w = jumpAt; w < fallAt; w += WINDOW_MS) {
          const lat = latenciesBetween(r, w, w + WINDOW_MS, false);
          const p99 = summarize(lat).p99;
          const e = errorsBetween(r, w, w + WINDOW_MS);
          windows.push({ fromMs: w - jumpAt, n: lat.length, p99: round(p99), errors: e.errors });
          if (!(p99 <= normal) || e.errors > 0) lastAbove = w;
        }
        const recovered = lastAbove < 0 ? 0 : lastAbove + WINDOW_MS - jumpAt;
        const neverRecovered = lastAbove >= 0 && lastAbove + WINDOW_MS >= fallAt;
        progress(
          opts,
          `  baseline p99 ${fmtMs(baseline.p99, 1)}; first second p99 ${fmtMs(firstSecond.p99, 1)} max ${fmtMs(firstSecond.max, 1)}; ` +
            `errors in high phase ${errHigh.errors}/${errHigh.n}; back to normal (p99 ≤ ${fmtMs(normal, 1)}) after ${neverRecovered ? "never" : fmtMs(recovered, 0)}`,
        );
        const notes: string[] = [];
        if (sustained === 0 && !opts.quick)
          notes.push(
            "The throughput scenario did not run first, so the high rate defaulted to 1,000 req/s.",
          );
        return {
          method: [
            `Open-loop generator, upstream answering in ${UPSTREAM_LATENCY_MS} ms, every request a cache MISS. ${fmtNum(low)} req/s for ${baseSeconds} s, then a step to ${fmtNum(high)} req/s (×${FACTOR}) for ${highSeconds} s, then back to ${fmtNum(low)} req/s.`,
            `The high rate is 80 % of the sustained rate found by the throughput scenario (at most 1,000 req/s), so this tests the jump rather than overload. Before the jump the process has served only 50 warm-up requests and the low phase: the spike meets a quiet process whose code is not yet fully optimised by the JIT, as after a scale-out.`,
            `Normal = max(2 × pre-spike p99, pre-spike p99 + 5 ms). Recovery = time from the jump to the end of the last ${WINDOW_MS} ms window whose p99 exceeded normal (or that had errors).`,
          ],
          figures: {
            lowRps: low,
            highRps: high,
            baselineP99Ms: round(baseline.p99),
            normalThresholdMs: round(normal),
            firstSecond: {
              p50: round(firstSecond.p50),
              p99: round(firstSecond.p99),
              max: round(firstSecond.max),
            },
            firstFiveSeconds: {
              p99: round(firstFive.p99),
              max: round(firstFive.max),
              errors: errFirstFive.errors,
              requests: errFirstFive.n,
            },
            highPhase: {
              p50: round(wholeHigh.p50),
              p99: round(wholeHigh.p99),
              max: round(wholeHigh.max),
              errors: errHigh.errors,
              requests: errHigh.n,
            },
            steadyHighP99Ms: round(steadyHigh.p99),
            recoveryMs: neverRecovered ? null : recovered,
            errorsTotal: errAll.errors,
            errorKinds: mapToObject(r.errors),
            serviceCpu: round(serviceCpu, 2),
            generatorLagP99Ms: round(summarize(r.sendLagMs).p99),
            windows,
          },
          table: [
            ["rates", `${fmtNum(low)} → ${fmtNum(high)} → ${fmtNum(low)} req/s`],
            ["pre-spike p99 (normal threshold)", `${fmtMs(baseline.p99, 1)} (${fmtMs(normal, 1)})`],
            [
              "**first second after the jump: p99 / max**",
              `${fmtMs(firstSecond.p99, 1)} / ${fmtMs(firstSecond.max, 1)}`,
            ],
            [
              "first 5 s: p99 / errors",
              `${fmtMs(firstFive.p99, 1)} / ${errFirstFive.errors} of ${fmtNum(errFirstFive.n)}`,
            ],
            [
              "whole high phase: p99 / errors",
              `${fmtMs(wholeHigh.p99, 1)} / ${errHigh.errors} of ${fmtNum(errHigh.n)}`,
            ],
            ["steady p99 at the high rate (its second half)", fmtMs(steadyHigh.p99, 1)],
            [
              "errors by kind",
              r.errors.size
                ? [...r.errors].map(([k, v]) => `${k} × ${v}`).join(", ") +
                  " (the generator gives up on a response after 10 s)"
                : "none",
            ],
            ["service CPU over the run", `${round(serviceCpu, 2) ?? "n/a"} cores`],
            [
              "**p99 back to normal after**",
              neverRecovered ? `not within the ${highSeconds} s high phase` : fmtMs(recovered, 0),
            ],
          ],
          targets: [
            {
              name: "No errors during the spike",
              target: "0 errors",
              measured: `${errHigh.errors} of ${fmtNum(errHigh.n)}`,
              pass: errHigh.errors === 0,
            },
          ],
          notes,
        };
      },
    );
  },
};
