/**
 * 3. Cache-hit latency: a repeated request answered from the response cache (Redis), at
 * concurrency 1. No upstream call is involved, so this is an absolute figure, shown next to the
 * floor of the HTTP stack (GET /health through the same client) and to the floor proxy's own hits
 * (bench/support/floor-proxy.ts: one Redis round trip, the cached bytes back) for scale.
 */
import { header } from "../lib/http";
import { messageBody, nonce, progress, withStack } from "../lib/harness";
import { overRounds, round, summarize } from "../lib/stats";
import { fmtMs, type Scenario } from "../lib/types";

export const cacheScenario: Scenario = {
  name: "cache",
  title: "Cache-hit latency at concurrency 1",
  async run({ opts, id }) {
    const rounds = opts.quick ? 1 : opts.rounds;
    const perRound = opts.quick ? 200 : 3000;
    const warmup = opts.quick ? 50 : 500;
    const distinct = 32;
    return withStack(opts, id, "cache", { behavior: { minReplyChars: 400 } }, {}, async (stack) => {
      const service = stack.viaService(1);
      const jsonBodies = Array.from({ length: distinct }, () => messageBody(nonce()));
      const sseBodies = Array.from({ length: distinct }, () =>
        messageBody(nonce(), { stream: true }),
      );
      // Prime: the first call of each prompt is the MISS that fills the cache.
      for (const b of jsonBodies) {
        const r = await service.postJson("/v1/messages", b);
        if (r.status !== 200)
          throw new Error(`priming the cache failed: HTTP ${r.status} ${r.body.slice(0, 300)}`);
      }
      for (const b of sseBodies) {
        const r = await service.postSse("/v1/messages", b);
        if (r.status !== 200 || r.error)
          throw new Error(`priming the cache (SSE) failed: ${r.error ?? r.status}`);
      }
      const floor = await stack.viaFloor(1);
      for (const b of jsonBodies) {
        const r = await floor.postJson("/v1/messages", b);
        if (r.status !== 200)
          throw new Error(
            `priming the floor proxy failed: HTTP ${r.status} ${r.body.slice(0, 300)}`,
          );
      }
      // The answer is written to Redis after the response: give the last writes a moment.
      await new Promise((r) => setTimeout(r, 200));

      const anomalies = { notHit: 0, errors: 0 };
      const hitJson = async (i: number) => {
        const r = await service.postJson("/v1/messages", jsonBodies[i % distinct]!);
        if (r.status !== 200) anomalies.errors++;
        else if (header(r.headers, "x-cache") !== "HIT") anomalies.notHit++;
        return r.ms;
      };
      const hitSse = async (i: number) => {
        const r = await service.postSse("/v1/messages", sseBodies[i % distinct]!);
        if (r.status !== 200 || r.error) anomalies.errors++;
        else if (header(r.headers, "x-cache") !== "HIT") anomalies.notHit++;
        return r.totalMs;
      };
      const health = async () => (await service.get("/health")).ms;
      const floorAnomalies = { notHit: 0, errors: 0 };
      const hitFloor = async (i: number) => {
        const r = await floor.postJson("/v1/messages", jsonBodies[i % distinct]!);
        if (r.status !== 200) floorAnomalies.errors++;
        else if (header(r.headers, "x-cache") !== "HIT") floorAnomalies.notHit++;
        return r.ms;
      };

      for (let i = 0; i < warmup; i++) {
        await hitJson(i);
        await hitSse(i);
        await health();
      }
      for (let i = 0; i < warmup; i++) await hitFloor(i);
      anomalies.errors = 0;
      anomalies.notHit = 0;
      floorAnomalies.errors = 0;
      floorAnomalies.notHit = 0;

      const fig = {
        jsonP50: [] as number[],
        jsonP99: [] as number[],
        sseP50: [] as number[],
        sseP99: [] as number[],
        healthP50: [] as number[],
        healthP99: [] as number[],
        floorJsonP50: [] as number[],
        floorJsonP99: [] as number[],
      };
      for (let r = 0; r < rounds; r++) {
        const json: number[] = [];
        const sse: number[] = [];
        const h: number[] = [];
        const f: number[] = [];
        for (let i = 0; i < perRound; i++) {
          json.push(await hitJson(i));
          sse.push(await hitSse(i));
          h.push(await health());
        }
        // The floor proxy's hits in a block of their own: interleaved, each would run between two
        // of the service's requests and change what those measure.
        for (let i = 0; i < perRound; i++) f.push(await hitFloor(i));
        const sj = summarize(json);
        const ss = summarize(sse);
        const sh = summarize(h);
        fig.jsonP50.push(sj.p50);
        fig.jsonP99.push(sj.p99);
        fig.sseP50.push(ss.p50);
        fig.sseP99.push(ss.p99);
        fig.healthP50.push(sh.p50);
        fig.healthP99.push(sh.p99);
        const sf = summarize(f);
        fig.floorJsonP50.push(sf.p50);
        fig.floorJsonP99.push(sf.p99);
        progress(
          opts,
          `  round ${r + 1}/${rounds}: JSON hit p50 ${fmtMs(sj.p50, 3)} p99 ${fmtMs(sj.p99, 3)}; SSE replay p99 ${fmtMs(ss.p99, 3)}; /health p99 ${fmtMs(sh.p99, 3)}; floor proxy hit p99 ${fmtMs(sf.p99, 3)}`,
        );
      }
      const o = Object.fromEntries(Object.entries(fig).map(([k, v]) => [k, overRounds(v)]));
      const p99 = o.jsonP99!.median;
      return {
        method: [
          `${distinct} distinct prompts, each sent once to fill the cache (MISS), then requested again and again at concurrency 1: every measured response is a HIT (x-cache checked), answered from Redis.`,
          `${rounds} round(s) × ${perRound} JSON hits + ${perRound} SSE replays + ${perRound} GET /health (the HTTP floor: routing, request id, no auth, no Redis) then, in a block of their own, ${perRound} JSON hits on the floor proxy (the same prompts; one Redis round trip that counts the request and reads the cached answer, then the bytes back: what any gateway with a shared Redis cache takes on this machine), after ${warmup} warm-up iterations of each.`,
          `Figures are the median over rounds of each round's p50 / p99; time is to the last byte of the response.`,
        ],
        figures: {
          rounds,
          requestsPerRound: perRound,
          ms: Object.fromEntries(
            Object.entries(o).map(([k, v]) => [
              k,
              { median: round(v.median), min: round(v.min), max: round(v.max) },
            ]),
          ),
          anomalies,
          floorAnomalies,
        },
        table: [
          ["**JSON cache hit p50 / p99**", `${fmtMs(o.jsonP50!.median, 3)} / ${fmtMs(p99, 3)}`],
          [
            "SSE cache replay p50 / p99 (whole stream)",
            `${fmtMs(o.sseP50!.median, 3)} / ${fmtMs(o.sseP99!.median, 3)}`,
          ],
          [
            "GET /health p50 / p99 (HTTP floor)",
            `${fmtMs(o.healthP50!.median, 3)} / ${fmtMs(o.healthP99!.median, 3)}`,
          ],
          [
            "floor proxy JSON hit p50 / p99 (one Redis round trip)",
            `${fmtMs(o.floorJsonP50!.median, 3)} / ${fmtMs(o.floorJsonP99!.median, 3)}`,
          ],
          ["errors / non-HIT responses", `${anomalies.errors} / ${anomalies.notHit}`],
        ],
        targets: [
          {
            name: "Cache-hit p99 (JSON, c=1)",
            target: "≤ 2 ms",
            measured: fmtMs(p99, 3),
            pass: Number.isFinite(p99) && anomalies.errors === 0 ? p99 <= 2 : null,
          },
        ],
        notes:
          anomalies.errors + anomalies.notHit > 0
            ? [
                `${anomalies.errors} errors and ${anomalies.notHit} non-HIT responses during measurement.`,
              ]
            : [],
      };
    });
  },
};
