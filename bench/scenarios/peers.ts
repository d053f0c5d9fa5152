/**
 * 9. Side by side with a peer: the service against the open-source Portkey gateway
 * (@portkey-ai/gateway, run as `npx @portkey-ai/gateway` runs it), the floor proxy and the direct
 * path, on one fake upstream answering in 20 ms, with the same load generator, in one run.
 *
 * Each round measures every path in turn (the order rotates by round, so drift of the machine
 * falls on all alike):
 * - concurrency 1: `perPath` JSON requests one at a time; added p50 = p50(path) − p50(direct);
 * - 256 connections, closed loop: 256 workers send JSON requests back to back for `seconds`;
 *   req/s of 200s, errors, and the path's process CPU time per request.
 * Every request is a fresh prompt (a cache miss on the service, whose controls are all on:
 * API keys, rate limits and budgets in Redis, the response cache, the ledger in Postgres).
 * Portkey has none of those controls in its open-source gateway: it is the lighter peer.
 * Figures are medians over rounds; ratios are of the medians.
 */
import { messageBody, nonce, progress, withStack, type Stack } from "../lib/harness";
import type { Target } from "../lib/http";
import { CONNECT_TIMEOUT_MS, closedLoop } from "../lib/closed-loop";
import type { ProcStats } from "../lib/procs";
import { overRounds, round, summarize } from "../lib/stats";
import { fmtMs, fmtNum, type Scenario } from "../lib/types";
import { UPSTREAM_LATENCY_MS } from "./throughput";

const PATHS = ["direct", "floor", "portkey", "service"] as const;
type PathName = (typeof PATHS)[number];
const CONNECTIONS = 256;

/** 256 workers, each sending the next request as soon as its previous one answered. */
function load(target: Target, seconds: number, stats: () => ProcStats | null) {
  return closedLoop(
    async () => (await target.postJson("/v1/messages", messageBody(nonce()))).status,
    { workers: CONNECTIONS, seconds, stats },
  );
}

export const peersScenario: Scenario = {
  name: "peers",
  title: "Side by side: the service, the Portkey gateway, the floor proxy (20 ms upstream)",
  async run({ opts, id }) {
    const rounds = opts.quick ? 1 : opts.rounds;
    const perPath = opts.quick ? 50 : 400;
    const seconds = opts.quick ? 2 : 15;
    return withStack(
      opts,
      id,
      "peers",
      { behavior: { latencyMs: UPSTREAM_LATENCY_MS, minReplyChars: 400 } },
      {},
      async (stack: Stack) => {
        const one: Record<PathName, Target> = {
          direct: stack.direct(1),
          floor: await stack.viaFloor(1),
          portkey: await stack.viaPortkey(1),
          service: stack.viaService(1),
        };
        const many: Record<PathName, Target> = {
          direct: stack.direct(CONNECTIONS, 10_000),
          floor: await stack.viaFloor(CONNECTIONS, 10_000),
          portkey: await stack.viaPortkey(CONNECTIONS, 10_000),
          service: stack.viaService(CONNECTIONS, 10_000),
        };
        const processOf: Record<PathName, () => ProcStats | null> = {
          direct: () => stack.upstream.stats(),
          floor: () => stack.floor?.stats() ?? null,
          portkey: () => stack.portkey?.stats() ?? null,
          service: () => stack.service.stats(),
        };
        const series = () => Object.fromEntries(PATHS.map((p) => [p, [] as number[]]));
        const p50 = series();
        const added = series();
        const rps = series();
        const cpu = series();
        const connectMs = series();
        const counts = () =>
          Object.fromEntries(PATHS.map((p) => [p, 0])) as Record<PathName, number>;
        const connectErrors = counts();
        const errors = counts();
        const notReady = counts();
        const wrongStatus = counts();

        // Warm-up: every path serves some requests before anything is measured.
        for (const path of PATHS) {
          for (let i = 0; i < (opts.quick ? 20 : 200); i++)
            await one[path].postJson("/v1/messages", messageBody(nonce()));
          await load(many[path], opts.quick ? 1 : 3, processOf[path]);
        }

        for (let r = 0; r < rounds; r++) {
          const order = PATHS.map((_, k) => PATHS[(r + k) % PATHS.length]!);
          const lat = Object.fromEntries(PATHS.map((p) => [p, [] as number[]]));
          for (let i = 0; i < perPath; i++) {
            for (const path of order) {
              const res = await one[path].postJson("/v1/messages", messageBody(nonce()));
              if (res.status !== 200) wrongStatus[path]++;
              lat[path]!.push(res.ms);
            }
          }
          for (const path of PATHS) p50[path]!.push(summarize(lat[path]!).p50);
          for (const path of PATHS) added[path]!.push(p50[path]!.at(-1)! - p50.direct!.at(-1)!);
          for (const path of order) {
            const l = await load(many[path], seconds, processOf[path]);
            rps[path]!.push(l.rps);
            errors[path] += l.errors;
            connectMs[path]!.push(l.connectMs);
            connectErrors[path] += l.connectErrors;
            if (l.ready < CONNECTIONS) notReady[path] += CONNECTIONS - l.ready;
            if (l.cpuPerRequestUs !== null) cpu[path]!.push(l.cpuPerRequestUs);
          }
          progress(
            opts,
            `  round ${r + 1}/${rounds}: ` +
              PATHS.map(
                (p) =>
                  `${p} ${fmtNum(rps[p]!.at(-1))} req/s, added p50 ${fmtMs(added[p]!.at(-1), 2)}`,
              ).join("; "),
          );
        }

        const med = (xs: number[]) => overRounds(xs).median;
        const ratio = (a: number, b: number) => (b > 0 ? a / b : Number.NaN);
        const throughputRatio = ratio(med(rps.service!), med(rps.portkey!));
        const addedRatio = ratio(med(added.service!), med(added.portkey!));
        const cpuRatio = ratio(med(cpu.service!), med(cpu.floor!));
        const x = (v: number) => (Number.isFinite(v) ? `×${v.toFixed(2)}` : "n/a");
        const perPathFigures = Object.fromEntries(
          PATHS.map((p) => [
            p,
            {
              rps: round(med(rps[p]!), 1),
              rpsRounds: rps[p]!.map((v) => round(v, 1)),
              p50Ms: round(med(p50[p]!)),
              addedP50Ms: round(med(added[p]!)),
              cpuPerRequestUs: round(med(cpu[p]!), 0),
              errors: errors[p],
              connectMs: round(med(connectMs[p]!), 0),
              connectErrors: connectErrors[p],
              nonOkAtConcurrency1: wrongStatus[p],
            },
          ]),
        );
        return {
          method: [
            `One fake upstream answering every request in ${UPSTREAM_LATENCY_MS} ms (replies of 400 characters). Paths: direct (the baseline), the floor proxy, the open-source Portkey gateway (@portkey-ai/gateway, its Node server, provider anthropic with the fake as custom host, no cache), and the service with every control on (API keys, rate limits and budgets in Redis, the response cache, the ledger in Postgres). The floor proxy, Portkey and the service run in their own processes with the image's node flags.`,
            `${rounds} round(s); in each, the paths take turns in an order that rotates by round: ${perPath} JSON requests per path at concurrency 1 (added p50 = p50(path) − p50(direct)), then ${CONNECTIONS} connections in a closed loop for ${seconds} s per path (req/s of 200 answers; CPU time of the path's process per request). The ${seconds} s start once every connection has answered a request (the workers send meanwhile, uncounted): between its turns a path's connections idle for a minute, and Portkey's Node server closes idle ones after 5 s, so it accepts the whole pool again each turn; how long each path takes to have all ${CONNECTIONS} answered is its "connect" figure. Every request is a fresh prompt. Medians over rounds; the ratios are of the medians.`,
          ],
          figures: {
            rounds,
            connections: CONNECTIONS,
            secondsPerLoad: seconds,
            paths: perPathFigures,
            ratios: {
              throughputServiceOverPortkey: round(throughputRatio),
              addedP50ServiceOverPortkey: round(addedRatio),
              cpuPerRequestServiceOverFloor: round(cpuRatio),
            },
          },
          table: [
            ...PATHS.map((p): [string, string] => [
              `${p}: req/s at ${CONNECTIONS} connections / errors`,
              `${fmtNum(med(rps[p]!))} / ${errors[p]}`,
            ]),
            ...PATHS.map((p): [string, string] => [
              `${p}: connect, until all ${CONNECTIONS} answered (median) / errors meanwhile`,
              `${fmtNum(med(connectMs[p]!))} ms / ${connectErrors[p]}`,
            ]),
            ...PATHS.filter((p) => p !== "direct").map((p): [string, string] => [
              `${p}: added p50 at c=1 / CPU per request`,
              `${fmtMs(med(added[p]!), 2)} / ${fmtNum(med(cpu[p]!))} µs`,
            ]),
            ["**service ÷ Portkey, throughput**", x(throughputRatio)],
            ["**service ÷ Portkey, added p50 at c=1**", x(addedRatio)],
            ["**service ÷ floor proxy, CPU per request**", x(cpuRatio)],
          ],
          targets: [
            {
              name: `Throughput at ${CONNECTIONS} connections, every control on, vs Portkey (0 errors)`,
              target: "≥ ×2.00",
              measured: `${x(throughputRatio)} (${errors.service + connectErrors.service} errors)`,
              pass: Number.isFinite(throughputRatio)
                ? throughputRatio >= 2 && errors.service + connectErrors.service === 0
                : null,
            },
            {
              name: "Added p50 at c=1 (JSON, cache miss) vs Portkey's",
              target: "≤ ×0.50",
              measured: x(addedRatio),
              pass: Number.isFinite(addedRatio) ? addedRatio <= 0.5 : null,
            },
            {
              name: "CPU time per request vs the floor proxy's",
              target: "≤ ×1.50",
              measured: x(cpuRatio),
              pass: Number.isFinite(cpuRatio) ? cpuRatio <= 1.5 : null,
            },
          ],
          notes: [
            ...PATHS.filter((p) => wrongStatus[p] > 0).map(
              (p) => `${p}: ${wrongStatus[p]} answers other than 200 at concurrency 1.`,
            ),
            ...PATHS.filter((p) => notReady[p] > 0).map(
              (p) =>
                `${p}: ${notReady[p]} connection(s) in all had not answered within ${CONNECT_TIMEOUT_MS / 1000} s when a loop's measurement began.`,
            ),
          ],
        };
      },
    );
  },
};
