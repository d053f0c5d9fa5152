/**
 * 5. Memory of one service process (resident set size, from /proc): idle after start-up, steady
 * under a mixed load, and over a soak, whose slope must be flat. Also RSS after the load stops.
 *
 * Load: a constant rate (half the sustained rate found by the throughput scenario, at most 500
 * req/s) of 70 % JSON cache misses, 20 % cache hits (a pool of 64 prompts) and 10 % streamed
 * misses, upstream answering in 20 ms. The first fifth of the soak (at most 60 s) is warm-up:
 * the slope is a least-squares fit over the rest, sampled every second.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { messageBody, nonce, progress, withStack } from "../lib/harness";
import { mapToObject, runOpenLoop } from "../lib/open-loop";
import { median, round, slope, summarize } from "../lib/stats";
import { fmtNum, type Scenario } from "../lib/types";
import { UPSTREAM_LATENCY_MS } from "./throughput";

export const FLAT_SLOPE_MB_PER_MIN = 1;
const IDLE_LIMIT_MB = 100;

export const memoryScenario: Scenario = {
  name: "memory",
  title: "Memory: idle, under load, and over a soak",
  async run({ opts, id, earlier }) {
    const sustained = Number(
      (earlier.get("throughput")?.figures as { sustainedRps?: number } | undefined)?.sustainedRps ??
        0,
    );
    const rate = opts.quick
      ? 100
      : Math.max(50, Math.min(500, Math.floor((sustained > 0 ? sustained / 2 : 500) / 10) * 10));
    const soakMs = opts.soakSeconds * 1000;
    // The soak is measured once the heap has found its working size: under this load V8 grows
    // the young and old generations for about two minutes (a least-squares slope over that rise
    // would read as a leak). The warm-up runs at the same load, before the measured soak.
    const warmupMs = opts.quick ? soakMs / 5 : 120_000;
    return withStack(
      opts,
      id,
      "memory",
      { behavior: { latencyMs: UPSTREAM_LATENCY_MS, minReplyChars: 400 } },
      {},
      async (stack) => {
        const rss = () => stack.service.stats()?.rssMb ?? Number.NaN;
        // Idle: what the process holds right after start-up, once it has settled.
        await sleep(opts.quick ? 1000 : 5000);
        const idleSamples: number[] = [];
        for (let i = 0; i < 5; i++) {
          idleSamples.push(rss());
          await sleep(opts.quick ? 100 : 1000);
        }
        const idle = median(idleSamples);
        progress(
          opts,
          `  idle RSS ${idle.toFixed(1)} MB; soak: ${rate} req/s for ${Math.round(warmupMs / 1000)} s of warm-up, then ${opts.soakSeconds} s measured`,
        );

        const target = stack.viaService(256, 10_000);
        const hitPool = Array.from({ length: 64 }, () => messageBody(nonce()));
        for (const b of hitPool) await target.postJson("/v1/messages", b);

        const samples: Array<{ t: number; rssMb: number }> = [];
        const t0 = performance.now();
        const sampler = setInterval(
          () => samples.push({ t: (performance.now() - t0) / 1000, rssMb: rss() }),
          1000,
        );
        let lastReport = 0;
        const reporter = setInterval(() => {
          const last = samples[samples.length - 1];
          if (last && last.t - lastReport >= 60) {
            lastReport = last.t;
            progress(opts, `  t=${Math.round(last.t)} s RSS ${last.rssMb.toFixed(1)} MB`);
          }
        }, 5000);
        const result = await runOpenLoop({
          durationMs: warmupMs + soakMs,
          rate,
          send: async (i, dueAt) => {
            const kind = i % 10;
            if (kind === 0) {
              const res = await target.postSse(
                "/v1/messages",
                messageBody(nonce(), { stream: true }),
                {},
                dueAt,
              );
              return { ok: res.status === 200 && !res.error, status: res.status, error: res.error };
            }
            const body = kind <= 2 ? hitPool[i % hitPool.length]! : messageBody(nonce());
            const res = await target.postJson("/v1/messages", body, undefined, dueAt);
            return { ok: res.status === 200, status: res.status, error: res.error };
          },
        });
        clearInterval(sampler);
        clearInterval(reporter);
        const end = rss();
        await target.close();
        // After the load: idle again (keep-alive connections closed), the heap free to shrink.
        await sleep(opts.quick ? 2000 : 15_000);
        const afterLoad = rss();

        const steadySamples = samples.filter((s) => s.t * 1000 >= warmupMs);
        const steady = median(steadySamples.map((s) => s.rssMb));
        // A robust view of the same question: the median of the first and of the last minute.
        const minuteMedian = (from: number) =>
          median(steadySamples.filter((s) => s.t >= from && s.t < from + 60).map((s) => s.rssMb));
        const firstMinute = minuteMedian(warmupMs / 1000);
        const lastMinute = minuteMedian(warmupMs / 1000 + opts.soakSeconds - 60);
        const perSecond = slope(
          steadySamples.map((s) => s.t),
          steadySamples.map((s) => s.rssMb),
        );
        const perMinute = perSecond * 60;
        const lat = summarize(Array.from(result.latencyMs).filter(Number.isFinite));
        let ok = 0;
        for (const v of result.ok) ok += v;
        const peak = stack.service.stats()?.hwmMb ?? Number.NaN;
        const notes: string[] = [];
        if (opts.soakSeconds < 120)
          notes.push(
            `A ${opts.soakSeconds}-s soak is too short for the slope to mean much (smoke run).`,
          );
        return {
          method: [
            `Idle: median of 5 RSS samples after start-up (database and Redis connected, no traffic yet).`,
            `Soak: ${fmtNum(rate)} req/s, open loop: 70 % JSON cache misses, 20 % cache hits (64 prompts), 10 % streamed misses; upstream answers in ${UPSTREAM_LATENCY_MS} ms. ${Math.round(warmupMs / 1000)} s of warm-up at that load (V8 sizes its heap meanwhile), then the measured ${opts.soakSeconds} s.`,
            `Steady RSS: median of the per-second samples of the measured soak; slope: least-squares fit over the same samples. Flat: |slope| ≤ ${FLAT_SLOPE_MB_PER_MIN} MB/min. RSS swings with each full garbage collection, so the first and last minutes' medians are shown too.`,
          ],
          figures: {
            idleRssMb: round(idle, 1),
            steadyRssMb: round(steady, 1),
            endOfSoakRssMb: round(end, 1),
            afterLoadRssMb: round(afterLoad, 1),
            peakRssMb: round(peak, 1),
            slopeMbPerMin: round(perMinute, 3),
            firstMinuteRssMb: round(firstMinute, 1),
            lastMinuteRssMb: round(lastMinute, 1),
            warmupSeconds: Math.round(warmupMs / 1000),
            soakSeconds: opts.soakSeconds,
            soakRps: rate,
            soakRequests: result.offered,
            soakErrors: result.offered - ok,
            soakErrorKinds: mapToObject(result.errors),
            soakLatencyMs: { p50: round(lat.p50), p99: round(lat.p99), max: round(lat.max) },
            samples: samples.map((s) => [round(s.t, 1), round(s.rssMb, 1)]),
          },
          table: [
            ["**idle RSS**", `${idle.toFixed(1)} MB`],
            ["**steady RSS under load**", `${steady.toFixed(1)} MB at ${fmtNum(rate)} req/s`],
            [
              "**soak slope**",
              `${perMinute >= 0 ? "+" : ""}${perMinute.toFixed(2)} MB/min over ${opts.soakSeconds} s`,
            ],
            [
              "RSS median, first / last minute of the measured soak",
              `${firstMinute.toFixed(1)} / ${lastMinute.toFixed(1)} MB`,
            ],
            [
              "RSS at the end of the soak / 15 s after / peak",
              `${end.toFixed(1)} / ${afterLoad.toFixed(1)} / ${peak.toFixed(1)} MB`,
            ],
            [
              "soak: requests / errors / p99",
              `${fmtNum(result.offered)} / ${result.offered - ok} / ${lat.p99.toFixed(1)} ms`,
            ],
          ],
          targets: [
            {
              name: "Idle RSS",
              target: `< ${IDLE_LIMIT_MB} MB`,
              measured: `${idle.toFixed(1)} MB`,
              pass: Number.isFinite(idle) ? idle < IDLE_LIMIT_MB : null,
            },
            {
              name: `RSS flat over the soak (${opts.soakSeconds} s)`,
              target: `|slope| ≤ ${FLAT_SLOPE_MB_PER_MIN} MB/min`,
              measured: `${perMinute >= 0 ? "+" : ""}${perMinute.toFixed(2)} MB/min`,
              pass: Number.isFinite(perMinute)
                ? Math.abs(perMinute) <= FLAT_SLOPE_MB_PER_MIN
                : null,
            },
          ],
          notes,
        };
      },
    );
  },
};
