/**
 * 1. Added latency at concurrency 1: what the service adds over calling the fake upstream
 * directly, for /v1/messages JSON (full response) and SSE (time to the first delta), with the
 * whole production path on: API-key auth, rate limits and budgets in Redis, the response cache
 * (every request a MISS: each prompt carries a fresh nonce, so the lookup misses and the answer
 * is written), the usage ledger in Postgres.
 *
 * A third path, the floor proxy (bench/support/floor-proxy.ts), is measured beside them: an
 * API-key check, one Redis round trip before the upstream (admission + cache lookup), one after
 * (settle, not awaited), raw pass-through. On a small VM every process hop can wait for a vCPU
 * wake-up; the floor shows what any gateway with shared-Redis controls adds on this machine, so
 * the service's own cost can be told from the rig's.
 *
 * Direct, floor and service calls take turns (the order rotates every iteration), one at a time,
 * so drift of the machine affects all three alike. Added pN = pN(service) − pN(direct), per
 * round; likewise floor added = pN(floor) − pN(direct) and the service's excess over the floor =
 * pN(service) − pN(floor). The report gives the median over rounds.
 */
import { header, type Target } from "../lib/http";
import { messageBody, nonce, progress, withStack } from "../lib/harness";
import { overRounds, round, summarize, type OverRounds, type Summary } from "../lib/stats";
import { fmtMs, type Scenario } from "../lib/types";

interface Side {
  json: number[];
  ttft: number[];
}

/** pN(path) − pN(baseline) per round, for JSON and time to first token. */
interface Gaps {
  jsonP50: number[];
  jsonP99: number[];
  ttftP50: number[];
  ttftP99: number[];
}
const gaps = (): Gaps => ({ jsonP50: [], jsonP99: [], ttftP50: [], ttftP99: [] });

function addGap(into: Gaps, [json, ttft]: [Summary, Summary], [bJson, bTtft]: [Summary, Summary]) {
  into.jsonP50.push(json.p50 - bJson.p50);
  into.jsonP99.push(json.p99 - bJson.p99);
  into.ttftP50.push(ttft.p50 - bTtft.p50);
  into.ttftP99.push(ttft.p99 - bTtft.p99);
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
        const floor = await stack.viaFloor(1);
        // Direct and service, as before; the floor proxy's own, kept apart.
        const anomalies = { notMiss: 0, errors: 0 };
        const floorAnomalies = { notMiss: 0, errors: 0 };

        type Path = "direct" | "floor" | "service";
        const one = async (path: Path, stream: boolean): Promise<number> => {
          const t: Target = path === "direct" ? direct : path === "floor" ? floor : service;
          const a = path === "floor" ? floorAnomalies : anomalies;
          const body = messageBody(nonce(), { stream });
          const r = stream
            ? await t.postSse("/v1/messages", body)
            : await t.postJson("/v1/messages", body);
          if (r.status !== 200 || r.error) a.errors++;
          if (path !== "direct" && header(r.headers, "x-cache") !== "MISS") a.notMiss++;
          return "ttftMs" in r ? r.ttftMs : r.ms;
        };
        const ORDER: readonly Path[] = ["direct", "floor", "service"];
        /** One request on each path, the order rotated by i so each path takes each position alike. */
        const turn = async (i: number, stream: boolean, sides: Record<Path, Side>) => {
          const key = stream ? "ttft" : "json";
          for (let k = 0; k < ORDER.length; k++) {
            const path = ORDER[(i + k) % ORDER.length]!;
            sides[path][key].push(await one(path, stream));
          }
        };
        const newSides = (): Record<Path, Side> => ({
          direct: { json: [], ttft: [] },
          floor: { json: [], ttft: [] },
          service: { json: [], ttft: [] },
        });

        progress(opts, `  warm-up: ${warmup} JSON + ${warmup} SSE turns (direct, floor, service)`);
        for (let i = 0; i < warmup; i++) {
          await turn(i, false, newSides());
          await turn(i, true, newSides());
        }
        anomalies.errors = 0;
        anomalies.notMiss = 0;
        floorAnomalies.errors = 0;
        floorAnomalies.notMiss = 0;

        // The service's CPU time per request: unlike latency, barely moved by other load on the machine.
        const cpuBefore = stack.service.stats();
        const floorCpuBefore = stack.floor?.stats() ?? null;
        const perRoundFigures: Array<Record<string, number | null>> = [];
        const add = gaps();
        const floorAdd = gaps();
        const overFloor = gaps();
        const abs = {
          directJsonP50: [] as number[],
          directJsonP99: [] as number[],
          serviceJsonP50: [] as number[],
          serviceJsonP99: [] as number[],
          directTtftP50: [] as number[],
          directTtftP99: [] as number[],
          serviceTtftP50: [] as number[],
          serviceTtftP99: [] as number[],
          floorJsonP50: [] as number[],
          floorJsonP99: [] as number[],
          floorTtftP50: [] as number[],
          floorTtftP99: [] as number[],
        };
        for (let r = 0; r < rounds; r++) {
          const sides = newSides();
          for (let i = 0; i < perRound; i++) await turn(i, false, sides);
          for (let i = 0; i < perRound; i++) await turn(i, true, sides);
          const dj = summarize(sides.direct.json);
          const sj = summarize(sides.service.json);
          const fj = summarize(sides.floor.json);
          const dt = summarize(sides.direct.ttft);
          const st = summarize(sides.service.ttft);
          const ft = summarize(sides.floor.ttft);
          addGap(add, [sj, st], [dj, dt]);
          addGap(floorAdd, [fj, ft], [dj, dt]);
          addGap(overFloor, [sj, st], [fj, ft]);
          abs.directJsonP50.push(dj.p50);
          abs.directJsonP99.push(dj.p99);
          abs.serviceJsonP50.push(sj.p50);
          abs.serviceJsonP99.push(sj.p99);
          abs.directTtftP50.push(dt.p50);
          abs.directTtftP99.push(dt.p99);
          abs.serviceTtftP50.push(st.p50);
          abs.serviceTtftP99.push(st.p99);
          abs.floorJsonP50.push(fj.p50);
          abs.floorJsonP99.push(fj.p99);
          abs.floorTtftP50.push(ft.p50);
          abs.floorTtftP99.push(ft.p99);
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
            floorJsonP50: round(fj.p50),
            floorJsonP99: round(fj.p99),
            floorTtftP50: round(ft.p50),
            floorTtftP99: round(ft.p99),
          });
          progress(
            opts,
            `  round ${r + 1}/${rounds}: JSON added p50 ${fmtMs(sj.p50 - dj.p50, 3)} p99 ${fmtMs(sj.p99 - dj.p99, 3)}; ` +
              `TTFT added p50 ${fmtMs(st.p50 - dt.p50, 3)} p99 ${fmtMs(st.p99 - dt.p99, 3)} ` +
              `(floor adds: JSON p50 ${fmtMs(fj.p50 - dj.p50, 3)} p99 ${fmtMs(fj.p99 - dj.p99, 3)}; ` +
              `TTFT p50 ${fmtMs(ft.p50 - dt.p50, 3)} p99 ${fmtMs(ft.p99 - dt.p99, 3)})`,
          );
        }
        const cpuAfter = stack.service.stats();
        const floorCpuAfter = stack.floor?.stats() ?? null;
        const serviceRequests = rounds * perRound * 2;
        const cpuPerRequestUs =
          cpuBefore && cpuAfter
            ? ((cpuAfter.cpuSeconds - cpuBefore.cpuSeconds) / serviceRequests) * 1e6
            : Number.NaN;
        const floorCpuPerRequestUs =
          floorCpuBefore && floorCpuAfter
            ? ((floorCpuAfter.cpuSeconds - floorCpuBefore.cpuSeconds) / serviceRequests) * 1e6
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
        const over = (o: typeof add) => ({
          jsonP50: overRounds(o.jsonP50),
          jsonP99: overRounds(o.jsonP99),
          ttftP50: overRounds(o.ttftP50),
          ttftP99: overRounds(o.ttftP99),
        });
        const rounded = (o: ReturnType<typeof over>) => ({
          jsonP50: m(o.jsonP50),
          jsonP99: m(o.jsonP99),
          ttftP50: m(o.ttftP50),
          ttftP99: m(o.ttftP99),
        });
        const floorAdded = over(floorAdd);
        const serviceOverFloor = over(overFloor);
        const pair = (p50: OverRounds, p99: OverRounds) =>
          `${fmtMs(p50.median, 3)} / ${fmtMs(p99.median, 3)}`;
        const med = (xs: number[]) => overRounds(xs).median;
        return {
          method: [
            `Fake upstream with no artificial latency (replies of 400 characters: ~100 output tokens, 25 SSE deltas), so the difference is the service's own work.`,
            `${rounds} round(s) × ${perRound} JSON turns + ${perRound} SSE turns, after ${warmup} warm-up turns of each; one request at a time, a turn being one direct, one floor-proxy and one via-service request, in an order that rotates every turn.`,
            `Every service request is a cache MISS (fresh prompt per request; x-cache checked), with budgets, rate limits (Redis) and the usage ledger (Postgres) enabled.`,
            `Added pN = pN(via service) − pN(direct) within a round; figures are the median over rounds (min–max in latest.json).`,
            `Floor proxy (bench/support/floor-proxy.ts, its own process, the service's node flags): the least any gateway with shared-Redis controls can do: API-key check, one Redis round trip before the upstream (one script: per-minute request counter + cache lookup by body hash), the raw body to the upstream, its answer passed through (JSON parsed for usage; SSE chunk by chunk), one fire-and-forget round trip after (spend counter; JSON answer cached). On this VM every process hop can wait for a vCPU wake-up, so floor added = pN(floor) − pN(direct) is what any such gateway adds here; service over floor = pN(service) − pN(floor) is the service's own excess. Targets are judged on the service's added figures.`,
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
            floorAddedMs: rounded(floorAdded),
            serviceOverFloorMs: rounded(serviceOverFloor),
            floorCpuPerRequestUs: Number.isFinite(floorCpuPerRequestUs)
              ? Math.round(floorCpuPerRequestUs)
              : null,
            floorAnomalies,
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
              "JSON floor proxy p50 / p99",
              `${fmtMs(med(abs.floorJsonP50), 3)} / ${fmtMs(med(abs.floorJsonP99), 3)}`,
            ],
            [
              "JSON via service p50 / p99",
              `${fmtMs(med(abs.serviceJsonP50), 3)} / ${fmtMs(med(abs.serviceJsonP99), 3)}`,
            ],
            [
              "**JSON added p50 / p99**",
              `${fmtMs(added.jsonP50.median, 3)} / ${fmtMs(added.jsonP99.median, 3)}`,
            ],
            ["JSON floor added p50 / p99", pair(floorAdded.jsonP50, floorAdded.jsonP99)],
            [
              "JSON service over floor p50 / p99",
              pair(serviceOverFloor.jsonP50, serviceOverFloor.jsonP99),
            ],
            [
              "TTFT direct p50 / p99",
              `${fmtMs(med(abs.directTtftP50), 3)} / ${fmtMs(med(abs.directTtftP99), 3)}`,
            ],
            [
              "TTFT floor proxy p50 / p99",
              `${fmtMs(med(abs.floorTtftP50), 3)} / ${fmtMs(med(abs.floorTtftP99), 3)}`,
            ],
            [
              "TTFT via service p50 / p99",
              `${fmtMs(med(abs.serviceTtftP50), 3)} / ${fmtMs(med(abs.serviceTtftP99), 3)}`,
            ],
            [
              "**TTFT added p50 / p99**",
              `${fmtMs(added.ttftP50.median, 3)} / ${fmtMs(added.ttftP99.median, 3)}`,
            ],
            ["TTFT floor added p50 / p99", pair(floorAdded.ttftP50, floorAdded.ttftP99)],
            [
              "TTFT service over floor p50 / p99",
              pair(serviceOverFloor.ttftP50, serviceOverFloor.ttftP99),
            ],
            [
              "service CPU time per request (JSON and SSE misses, all work included)",
              `${Number.isFinite(cpuPerRequestUs) ? Math.round(cpuPerRequestUs) : "n/a"} µs`,
            ],
            [
              "floor proxy CPU time per request (same requests)",
              `${Number.isFinite(floorCpuPerRequestUs) ? Math.round(floorCpuPerRequestUs) : "n/a"} µs`,
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
          notes: [
            ...(anomalies.errors + anomalies.notMiss > 0
              ? [
                  `${anomalies.errors} errors and ${anomalies.notMiss} responses that were not a cache MISS during measurement.`,
                ]
              : []),
            ...(floorAnomalies.errors + floorAnomalies.notMiss > 0
              ? [
                  `Floor proxy: ${floorAnomalies.errors} errors and ${floorAnomalies.notMiss} responses that were not a cache MISS during measurement.`,
                ]
              : []),
          ],
        };
      },
    );
  },
};
