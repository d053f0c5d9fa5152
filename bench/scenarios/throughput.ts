/**
 * 2. Sustained throughput of one service process, with the upstream answering in 20 ms: the
 * highest constant request rate held for 30 s with p99 under 1 s and under 0.1 % errors.
 *
 * Open-loop search: short probes double the rate until one fails, which brackets the answer;
 * then a binary search with full-length probes narrows it. Only full-length passes count.
 * Every request is a cache MISS with the whole path on (auth, rate limits, budgets, cache
 * lookup and write, upstream call, ledger).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { messageBody, nonce, progress, withStack, type Stack } from "../lib/harness";
import { mapToObject, runOpenLoop } from "../lib/open-loop";
import { cpuShare } from "../lib/procs";
import { median, round, summarize } from "../lib/stats";
import { fmtMs, fmtNum, type Scenario } from "../lib/types";

export const UPSTREAM_LATENCY_MS = 20;
const P99_LIMIT_MS = 1000;
const ERROR_LIMIT = 0.001;

export interface Probe {
  rate: number;
  seconds: number;
  pass: boolean;
  p50: number | null;
  p99: number | null;
  max: number | null;
  errorRate: number;
  errors: Record<string, number>;
  achievedRps: number;
  serviceCpu: number | null;
  /** Service CPU seconds per successful request, in µs: what a request costs, whatever else runs. */
  serviceCpuPerRequestUs: number | null;
  upstreamCpu: number | null;
  generatorCpu: number | null;
  serviceRssMb: number | null;
  generatorLagP99: number | null;
  generatorLoopDelayMax: number | null;
}

/** Offers `rate` req/s for `seconds` of JSON cache misses through `target` and judges the result. */
export async function probe(
  stack: Stack,
  target: ReturnType<Stack["viaService"]>,
  rate: number,
  seconds: number,
  throughService = true,
): Promise<Probe> {
  const svcBefore = throughService ? stack.service.stats() : null;
  const upBefore = stack.upstream.stats();
  const cpuBefore = process.cpuUsage();
  const t0 = performance.now();
  const r = await runOpenLoop({
    durationMs: seconds * 1000,
    rate,
    send: async (_i, dueAt) => {
      const res = await target.postJson("/v1/messages", messageBody(nonce()), undefined, dueAt);
      return { ok: res.status === 200, status: res.status, error: res.error };
    },
  });
  const wall = performance.now() - t0;
  const svcAfter = throughService ? stack.service.stats() : null;
  const upAfter = stack.upstream.stats();
  const cpu = process.cpuUsage(cpuBefore);
  const lat = Array.from(r.latencyMs).filter((v) => Number.isFinite(v));
  const s = summarize(lat);
  let okCount = 0;
  for (const v of r.ok) okCount += v;
  const errorRate = r.offered ? 1 - okCount / r.offered : 1;
  const pass = errorRate < ERROR_LIMIT && Number.isFinite(s.p99) && s.p99 < P99_LIMIT_MS;
  return {
    rate,
    seconds,
    pass,
    p50: round(s.p50),
    p99: round(s.p99),
    max: round(s.max),
    errorRate: round(errorRate, 5) ?? 1,
    errors: mapToObject(r.errors),
    achievedRps: round(okCount / seconds, 1) ?? 0,
    serviceCpu: round(cpuShare(svcBefore, svcAfter, wall), 2),
    serviceCpuPerRequestUs:
      svcBefore && svcAfter && okCount > 0
        ? round(((svcAfter.cpuSeconds - svcBefore.cpuSeconds) / okCount) * 1e6, 0)
        : null,
    upstreamCpu: round(cpuShare(upBefore, upAfter, wall), 2),
    generatorCpu: round((cpu.user + cpu.system) / 1000 / wall, 2),
    serviceRssMb: round(svcAfter?.rssMb ?? Number.NaN, 1),
    generatorLagP99: round(summarize(r.sendLagMs).p99),
    generatorLoopDelayMax: round(r.generatorLoopDelay.max),
  };
}

export const throughputScenario: Scenario = {
  name: "throughput",
  title: "Sustained throughput of one process (upstream answers in 20 ms)",
  async run({ opts, id }) {
    const fullSeconds = opts.quick ? 3 : 30;
    const bracketSeconds = opts.quick ? 2 : 5;
    const settleMs = opts.quick ? 500 : 3000;
    return withStack(
      opts,
      id,
      "throughput",
      { behavior: { latencyMs: UPSTREAM_LATENCY_MS, minReplyChars: 400 } },
      {},
      async (stack) => {
        const target = stack.viaService(512, 10_000);
        const probes: Probe[] = [];
        const run = async (rate: number, seconds: number) => {
          const p = await probe(stack, target, rate, seconds);
          probes.push(p);
          progress(
            opts,
            `  ${p.pass ? "pass" : "FAIL"} ${fmtNum(rate)} req/s × ${seconds} s: p50 ${fmtMs(p.p50 ?? NaN, 1)} p99 ${fmtMs(p.p99 ?? NaN, 1)}, errors ${(p.errorRate * 100).toFixed(3)} %, ` +
              `service CPU ${p.serviceCpu ?? "?"} cores, upstream ${p.upstreamCpu ?? "?"}, generator ${p.generatorCpu ?? "?"}`,
          );
          await sleep(settleMs);
          return p;
        };

        progress(opts, `  warm-up: 200 req/s for ${opts.quick ? 2 : 10} s`);
        await probe(stack, target, 200, opts.quick ? 2 : 10);
        await sleep(settleMs);

        // Bracket with short probes: double until one fails.
        let lo = 0;
        let hi = 0;
        for (let rate = opts.quick ? 200 : 250; rate <= 32_000; rate *= 2) {
          const p = await run(rate, bracketSeconds);
          if (p.pass) lo = rate;
          else {
            hi = rate;
            break;
          }
        }
        if (hi === 0) hi = lo * 2;

        // Narrow with full-length probes; only these count.
        let best: Probe | undefined;
        const resolution = (x: number) => Math.max(opts.quick ? 100 : 25, Math.round(x * 0.04));
        let low = Math.max(0, Math.round(lo * 0.5));
        if (lo > 0) {
          const p = await run(lo, fullSeconds);
          if (p.pass) {
            best = p;
            low = lo;
          } else hi = lo;
        }
        const steps = opts.quick ? 1 : 8;
        for (let i = 0; i < steps && hi - low > resolution(low); i++) {
          const mid = Math.round((low + hi) / 2 / 5) * 5;
          if (mid <= low || mid >= hi) break;
          const p = await run(mid, fullSeconds);
          if (p.pass) {
            low = mid;
            if (!best || mid > best.rate) best = p;
          } else hi = mid;
        }

        // Is the rig (generator + fake) the limit? Offer 1.5× the result to the fake directly.
        let directCheck: Probe | undefined;
        if (best) {
          const direct = stack.direct(512, 10_000);
          const rate = Math.round(best.rate * 1.5);
          directCheck = await probe(stack, direct, rate, Math.min(10, fullSeconds), false);
          progress(
            opts,
            `  direct to the fake at ${fmtNum(rate)} req/s: p99 ${fmtMs(directCheck.p99 ?? NaN, 1)}, errors ${(directCheck.errorRate * 100).toFixed(3)} %`,
          );
        }

        const found = best?.rate ?? 0;
        const notes: string[] = [];
        if (best && (best.generatorLagP99 ?? 0) > 50) {
          notes.push(
            `The generator ran late (send-lag p99 ${fmtMs(best.generatorLagP99 ?? NaN)}): it may be the limit, not the service.`,
          );
        }
        if (directCheck && !directCheck.pass) {
          notes.push(
            `Calling the fake directly at 1.5× the found rate also failed (p99 ${fmtMs(directCheck.p99 ?? NaN)}, errors ${(directCheck.errorRate * 100).toFixed(2)} %): on this machine the generator and the fake compete with the service for the same cores, so the figure is a lower bound.`,
          );
        }
        const lowestFail = probes.filter((p) => !p.pass).sort((a, b) => a.rate - b.rate)[0];
        const cpuPerRequest = median(
          probes.map((p) => p.serviceCpuPerRequestUs ?? Number.NaN).filter(Number.isFinite),
        );
        return {
          method: [
            `Fake upstream answers every request after ${UPSTREAM_LATENCY_MS} ms (400-character replies). Every request is a cache MISS with auth, rate limits, budgets, cache write and ledger on.`,
            `Open-loop constant-rate generator (undici, up to 512 connections); latency counted from each request's due time, so queueing is never hidden.`,
            `Search: ${bracketSeconds}-s probes doubling from ${opts.quick ? 200 : 250} req/s until one fails, then a binary search with ${fullSeconds}-s probes (resolution ~4 %). A probe passes with p99 < ${P99_LIMIT_MS} ms and errors < ${ERROR_LIMIT * 100} %; only ${fullSeconds}-s passes count.`,
            `CPU shares are per process over the probe (1.00 = one core busy).`,
          ],
          figures: {
            sustainedRps: found,
            serviceCpuPerRequestUs: round(cpuPerRequest, 0),
            probeSeconds: fullSeconds,
            atSustainedRate: best ?? null,
            directCheck: directCheck ?? null,
            probes,
          },
          table: [
            ["**sustained rate (held for " + fullSeconds + " s)**", `${fmtNum(found)} req/s`],
            [
              "p50 / p99 at that rate",
              best ? `${fmtMs(best.p50 ?? NaN, 1)} / ${fmtMs(best.p99 ?? NaN, 1)}` : "n/a",
            ],
            ["errors at that rate", best ? `${(best.errorRate * 100).toFixed(3)} %` : "n/a"],
            [
              "CPU at that rate: service / fake upstream / generator",
              best
                ? `${best.serviceCpu} / ${best.upstreamCpu} / ${best.generatorCpu} cores`
                : "n/a",
            ],
            ["service RSS at that rate", best ? `${best.serviceRssMb} MB` : "n/a"],
            [
              "service CPU per request, median over probes (→ requests per CPU-second)",
              Number.isFinite(cpuPerRequest)
                ? `${Math.round(cpuPerRequest)} µs (→ ${fmtNum(1e6 / cpuPerRequest)} req/s if it had a whole core)`
                : "n/a",
            ],
            [
              "lowest failing rate (probe length)",
              lowestFail
                ? `${fmtNum(lowestFail.rate)} req/s (${lowestFail.seconds} s)`
                : "none failed",
            ],
            [
              "direct to the fake at 1.5×",
              directCheck
                ? `p99 ${fmtMs(directCheck.p99 ?? NaN, 1)}, errors ${(directCheck.errorRate * 100).toFixed(3)} %`
                : "n/a",
            ],
            [
              "probes",
              probes.map((p) => `${p.rate}${p.pass ? "✓" : "✗"}(${p.seconds}s)`).join(" "),
            ],
          ],
          targets: [
            {
              name: "Sustained throughput per process (p99 < 1 s, errors < 0.1 %)",
              target: "≥ 1,500 req/s",
              measured: `${fmtNum(found)} req/s`,
              pass: found >= 1500,
            },
          ],
          notes,
        };
      },
    );
  },
};
