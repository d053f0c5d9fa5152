/**
 * 1. Added latency at concurrency 1: what the service adds over calling the fake upstream
 * directly, for /v1/messages JSON (full response) and SSE (time to the first delta), with the
 * whole production path on: API-key auth, rate limits and budgets in Redis, the response cache
 * (every request a MISS: each prompt carries a fresh nonce, so the lookup misses and the answer
 * is written), the usage ledger in Postgres.
 *
 * Direct and service calls alternate (and swap order every iteration), one at a time, so drift
 * of the machine affects both sides alike. Added pN = pN(service) − pN(direct), per round; the
 * report gives the median over rounds.
 */
import { header, type Target } from "../lib/http";
import { messageBody, nonce, progress, withStack } from "../lib/harness";
import { overRounds, round, summarize, type OverRounds } from "../lib/stats";
import { fmtMs, type Scenario } from "../lib/types";

interface Side {
  json: number[];
  ttft: number[];
}

export const latencyScenario: Scenario = {
  name: "latency",
  title: "Added latency at concurrency 1 (cache MISS, budgets, rate limits, ledger on)",
  async run({ opts, id }) {
    const rounds = opts.quick ? 1 : opts.rounds;
    const perRound = opts.quick ? 150 : 2000;
    const warmup = opts.quick ? 50 : 500;
    return withStack(
      opts,
      id,
      "latency",
      { behavior: { minReplyChars: 400 } },
      {},
      async (stack) => {
        const direct = stack.direct(1);
        const service = stack.viaService(1);
        const anomalies = { notMiss: 0, errors: 0 };

        const one = async (t: Target, isService: boolean, stream: boolean): Promise<number> => {
          const body = messageBody(nonce(), { stream });
          if (!stream) {
            const r = await t.postJson("/v1/messages", body);
            if (r.status !== 200) anomalies.errors++;
            if (isService && header(r.headers, "x-cache") !== "MISS") anomalies.notMiss++;
            return r.ms;
          }
          const r = await t.postSse("/v1/messages", body);
          if (r.status !== 200 || r.error) anomalies.errors++;
          if (isService && header(r.headers, "x-cache") !== "MISS") anomalies.notMiss++;
          return r.ttftMs;
        };
        const pair = async (i: number, stream: boolean, d: Side, s: Side) => {
          const key = stream ? "ttft" : "json";
          if (i % 2 === 0) {
            d[key].push(await one(direct, false, stream));
            s[key].push(await one(service, true, stream));
          } else {
            s[key].push(await one(service, true, stream));
            d[key].push(await one(direct, false, stream));
          }
        };

        progress(opts, `  warm-up: ${warmup} JSON + ${warmup} SSE pairs`);
        const scratch: Side = { json: [], ttft: [] };
        for (let i = 0; i < warmup; i++) {
          await pair(i, false, scratch, { json: [], ttft: [] });
          await pair(i, true, scratch, { json: [], ttft: [] });
        }
        anomalies.errors = 0;
        anomalies.notMiss = 0;

        // The service's CPU time per request: unlike latency, barely moved by other load on the machine.
        const cpuBefore = stack.service.stats();
        const perRoundFigures: Array<Record<string, number | null>> = [];
        const add = {
          jsonP50: [] as number[],
          jsonP99: [] as number[],
          ttftP50: [] as number[],
          ttftP99: [] as number[],
        };
        const abs = {
          directJsonP50: [] as number[],
          directJsonP99: [] as number[],
          serviceJsonP50: [] as number[],
          serviceJsonP99: [] as number[],
          directTtftP50: [] as number[],
          directTtftP99: [] as number[],
          serviceTtftP50: [] as number[],
          serviceTtftP99: [] as number[],
        };
        for (let r = 0; r < rounds; r++) {
          const d: Side = { json: [], ttft: [] };
          const s: Side = { json: [], ttft: [] };
          for (let i = 0; i < perRound; i++) await pair(i, false, d, s);
          for (let i = 0; i < perRound; i++) await pair(i, true, d, s);
          const dj = summarize(d.json);
          const sj = summarize(s.json);
          const dt = summarize(d.ttft);
          const st = summarize(s.ttft);
          add.jsonP50.push(sj.p50 - dj.p50);
          add.jsonP99.push(sj.p99 - dj.p99);
          add.ttftP50.push(st.p50 - dt.p50);
          add.ttftP99.push(st.p99 - dt.p99);
          abs.directJsonP50.push(dj.p50);
          abs.directJsonP99.push(dj.p99);
          abs.serviceJsonP50.push(sj.p50);
          abs.serviceJsonP99.push(sj.p99);
          abs.directTtftP50.push(dt.p50);
          abs.directTtftP99.push(dt.p99);
          abs.serviceTtftP50.push(st.p50);
          abs.serviceTtftP99.push(st.p99);
          perRoundFigures.push({
            round: r + 1,
            directJsonP50: round(dj.p50),
            directJsonP99: round(dj.p99),
            serviceJsonP50: round(sj.p50),
            serviceJsonP99: round(sj.p99),
            directTtftP50: round(dt.p50),
            directTtftP99: round(dt.p99),
            serviceTtftP50: round(st.p50),
            serviceTtftP99: round(st.p99),
          });
          progress(
            opts,
            `  round ${r + 1}/${rounds}: JSON added p50 ${fmtMs(sj.p50 - dj.p50, 3)} p99 ${fmtMs(sj.p99 - dj.p99, 3)}; ` +
              `TTFT added p50 ${fmtMs(st.p50 - dt.p50, 3)} p99 ${fmtMs(st.p99 - dt.p99, 3)}`,
          );
        }
        const cpuAfter = stack.service.stats();
        const serviceRequests = rounds * perRound * 2;
        const cpuPerRequestUs =
          cpuBefore && cpuAfter
            ? ((cpuAfter.cpuSeconds - cpuBefore.cpuSeconds) / serviceRequests) * 1e6
            : Number.NaN;
        const m = (o: OverRounds) => ({
          median: round(o.median),
          min: round(o.min),
          max: round(o.max),
        });
        const added = {
          jsonP50: overRounds(add.jsonP50),
          jsonP99: overRounds(add.jsonP99),
          ttftP50: overRounds(add.ttftP50),
          ttftP99: overRounds(add.ttftP99),
        };
        const med = (xs: number[]) => overRounds(xs).median;
        return {
          method: [
            `Fake upstream with no artificial latency (replies of 400 characters: ~100 output tokens, 25 SSE deltas), so the difference is the service's own work.`,
            `${rounds} round(s) × ${perRound} JSON pairs + ${perRound} SSE pairs, after ${warmup} warm-up pairs of each; one request at a time, direct and via-service alternating.`,
            `Every service request is a cache MISS (fresh prompt per request; x-cache checked), with budgets, rate limits (Redis) and the usage ledger (Postgres) enabled.`,
            `Added pN = pN(via service) − pN(direct) within a round; figures are the median over rounds (min–max in latest.json).`,
          ],
          figures: {
            rounds,
            requestsPerRoundPerPath: perRound,
            addedMs: {
              jsonP50: m(added.jsonP50),
              jsonP99: m(added.jsonP99),
              ttftP50: m(added.ttftP50),
              ttftP99: m(added.ttftP99),
            },
            absoluteMsMedianOverRounds: Object.fromEntries(
              Object.entries(abs).map(([k, v]) => [k, round(med(v))]),
            ),
            perRound: perRoundFigures,
            anomalies,
          },
          table: [
            [
              "JSON direct p50 / p99",
              `${fmtMs(med(abs.directJsonP50), 3)} / ${fmtMs(med(abs.directJsonP99), 3)}`,
            ],
            [
              "JSON via service p50 / p99",
              `${fmtMs(med(abs.serviceJsonP50), 3)} / ${fmtMs(med(abs.serviceJsonP99), 3)}`,
            ],
            [
              "**JSON added p50 / p99**",
              `${fmtMs(added.jsonP50.median, 3)} / ${fmtMs(added.jsonP99.median, 3)}`,
            ],
            [
              "TTFT direct p50 / p99",
              `${fmtMs(med(abs.directTtftP50), 3)} / ${fmtMs(med(abs.directTtftP99), 3)}`,
            ],
            [
              "TTFT via service p50 / p99",
              `${fmtMs(med(abs.serviceTtftP50), 3)} / ${fmtMs(med(abs.serviceTtftP99), 3)}`,
            ],
            [
              "**TTFT added p50 / p99**",
              `${fmtMs(added.ttftP50.median, 3)} / ${fmtMs(added.ttftP99.median, 3)}`,
            ],
            [
              "service CPU time per request (JSON and SSE misses, all work included)",
              `${Number.isFinite(cpuPerRequestUs) ? Math.round(cpuPerRequestUs) : "n/a"} µs`,
            ],
            ["errors / non-MISS responses", `${anomalies.errors} / ${anomalies.notMiss}`],
          ],
          targets: [
            {
              name: "Added p99 at c=1, JSON",
              target: "≤ 1 ms",
              measured: fmtMs(added.jsonP99.median, 3),
              pass: Number.isFinite(added.jsonP99.median) ? added.jsonP99.median <= 1 : null,
            },
            {
              name: "Added p99 at c=1, time to first token (SSE)",
              target: "≤ 2 ms",
              measured: fmtMs(added.ttftP99.median, 3),
              pass: Number.isFinite(added.ttftP99.median) ? added.ttftP99.median <= 2 : null,
            },
          ],
          notes:
            anomalies.errors + anomalies.notMiss > 0
              ? [
                  `${anomalies.errors} errors and ${anomalies.notMiss} responses that were not a cache MISS during measurement.`,
                ]
              : [],
        };
      },
    );
  },
};
