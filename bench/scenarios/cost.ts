/**
 * 8. Cost per interaction on the reference workload (bench/workload/reference.json, described
 * in bench/workload/generate.ts): the same sessions, turn by turn, through the service twice,
 * each time against a fresh fake upstream (whose prompt cache starts empty):
 *
 * - naive: the capable model for everything, no response cache (`cache-control: no-cache` and
 *   CACHE_TTL_SECONDS=0), no prompt caching (PROMPT_CACHING=false);
 * - defaults: the service as configured out of the box: response cache on, prompt caching on,
 *   `model: "auto"` so the router picks the tier per request.
 *
 * Dollars come from the usage the fake reports (input, output, cache-write and cache-read
 * tokens; the fake keeps one prompt cache per model with the API's 5-minute lifetime and applies
 * each model's minimum cacheable prefix from app/config/models.json) priced with ModelCatalog.
 * The report also says which models served the simple and the complex turns: the router sees
 * only the requests, never the workload's labels. A response-cache hit costs nothing. When "auto" is not routed yet
 * (the service answers with a model the table does not know, or refuses it), the defaults run
 * falls back to DEFAULT_MODEL and the report says so.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { ModelCatalog } from "../../app/src/llm/models";
import { header } from "../lib/http";
import { progress, withStack, type Stack } from "../lib/harness";
import { REPO_ROOT } from "../lib/procs";
import { round } from "../lib/stats";
import type { Scenario } from "../lib/types";
import type { Workload } from "../workload/generate";

export const WORKLOAD_FILE = path.join(REPO_ROOT, "bench", "workload", "reference.json");
const REDUCTION_TARGET = 0.7;
const PER_INTERACTION_TARGET_USD = 0.05;

interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
}
interface Interaction {
  session: string;
  turn: number;
  kind: string;
  model: string;
  hit: boolean;
  usage: Usage;
  costUsd: number;
}

interface RunTotals {
  interactions: number;
  costUsd: number;
  perInteractionUsd: number;
  responseCacheHits: number;
  byModel: Record<string, { interactions: number; costUsd: number }>;
  tokens: { input: number; output: number; cacheWrite: number; cacheRead: number };
}

function totals(rows: Interaction[]): RunTotals {
  const byModel: RunTotals["byModel"] = {};
  const tokens = { input: 0, output: 0, cacheWrite: 0, cacheRead: 0 };
  let cost = 0;
  for (const r of rows) {
    cost += r.costUsd;
    const key = r.hit ? "(response cache)" : r.model;
    const m = (byModel[key] ??= { interactions: 0, costUsd: 0 });
    m.interactions++;
    m.costUsd += r.costUsd;
    if (!r.hit) {
      tokens.input += r.usage.input_tokens;
      tokens.output += r.usage.output_tokens;
      tokens.cacheWrite += r.usage.cache_creation_input_tokens ?? 0;
      tokens.cacheRead += r.usage.cache_read_input_tokens ?? 0;
    }
  }
  for (const m of Object.values(byModel)) m.costUsd = round(m.costUsd, 4) ?? 0;
  return {
    interactions: rows.length,
    costUsd: round(cost, 4) ?? 0,
    perInteractionUsd: round(cost / Math.max(1, rows.length), 5) ?? 0,
    responseCacheHits: rows.filter((r) => r.hit).length,
    byModel,
    tokens,
  };
}

async function runWorkload(
  stack: Stack,
  workload: Workload,
  catalog: ModelCatalog,
  model: string,
  naive: boolean,
): Promise<Interaction[]> {
  const target = stack.viaService(1, 60_000);
  const rows: Interaction[] = [];
  for (const session of workload.sessions) {
    const history: Array<{ role: "user" | "assistant"; content: unknown }> = [];
    for (let t = 0; t < session.turns.length; t++) {
      const turn = session.turns[t]!;
      history.push({
        role: "user",
        content: `${turn.text} [[fake:{"minReplyChars":${turn.replyChars}}]]`,
      });
      const body = JSON.stringify({
        model,
        max_tokens: turn.maxTokens,
        system: workload.system,
        messages: history,
      });
      const res = await target.postJson(
        "/v1/messages",
        body,
        naive ? { "cache-control": "no-cache" } : undefined,
      );
      if (res.status !== 200) {
        throw new Error(
          `${session.id} turn ${t + 1}: HTTP ${res.status} ${res.error ?? ""} ${res.body.slice(0, 400)}`,
        );
      }
      const msg = JSON.parse(res.body) as {
        model: string;
        usage: Usage;
        content: Array<{ type: string; text?: string }>;
      };
      const hit = header(res.headers, "x-cache") === "HIT";
      rows.push({
        session: session.id,
        turn: t + 1,
        kind: turn.kind,
        model: msg.model,
        hit,
        usage: msg.usage,
        costUsd: hit ? 0 : catalog.costUsd(msg.model, msg.usage),
      });
      // The answer goes back into the conversation, as a client of the Messages API does.
      history.push({
        role: "assistant",
        content: msg.content
          .filter((b) => b.type === "text")
          .map((b) => ({ type: "text", text: b.text ?? "" })),
      });
    }
  }
  return rows;
}

export const costScenario: Scenario = {
  name: "cost",
  title: "Cost per interaction: naive vs the service's defaults (reference workload)",
  async run({ opts, id }) {
    const workload = JSON.parse(readFileSync(WORKLOAD_FILE, "utf8")) as Workload;
    const catalog = ModelCatalog.load();
    const minimums = Object.fromEntries(
      catalog.table.models.map((m) => [m.id, m.minCacheableTokens]),
    );
    const upstreamOptions = { minCacheableTokensByModel: minimums };
    const turns = workload.sessions.flatMap((s) => s.turns);
    const defaultModel = "claude-sonnet-4-6"; // the service's DEFAULT_MODEL default (app/src/config.ts)

    progress(
      opts,
      `  naive: ${workload.naiveModel} for everything, no response cache, no prompt caching`,
    );
    const naiveRows = await withStack(
      opts,
      id,
      "cost-naive",
      upstreamOptions,
      { CACHE_TTL_SECONDS: "0", PROMPT_CACHING: "false" },
      (stack) => runWorkload(stack, workload, catalog, workload.naiveModel, true),
    );

    let routing: { active: boolean; detail: string } = { active: false, detail: "" };
    const defaultRows = await withStack(
      opts,
      id,
      "cost-defaults",
      upstreamOptions,
      { CACHE_TTL_SECONDS: "3600" },
      async (stack) => {
        // Is model "auto" routed? One throwaway request, no system prompt (nothing for the prompt cache).
        const probe = await stack.viaService(1).postJson(
          "/v1/messages",
          JSON.stringify({
            model: "auto",
            max_tokens: 16,
            messages: [{ role: "user", content: "routing probe" }],
          }),
          { "cache-control": "no-cache" },
        );
        let served = "";
        try {
          served = (JSON.parse(probe.body) as { model?: string }).model ?? "";
        } catch {
          served = "";
        }
        routing =
          probe.status === 200 && catalog.get(served)
            ? {
                active: true,
                detail: `"auto" is routed (probe served by ${served}, x-agent-model ${header(probe.headers, "x-agent-model") ?? "-"})`,
              }
            : {
                active: false,
                detail:
                  probe.status === 200
                    ? `"auto" is not routed yet: the service passed it upstream unchanged (served model "${served}"), so the defaults run used DEFAULT_MODEL ${defaultModel}`
                    : `"auto" was refused (HTTP ${probe.status}): the defaults run used DEFAULT_MODEL ${defaultModel}`,
              };
        progress(opts, `  defaults: ${routing.detail}`);
        return runWorkload(stack, workload, catalog, routing.active ? "auto" : defaultModel, false);
      },
    );

    const naive = totals(naiveRows);
    const defaults = totals(defaultRows);
    const reduction = naive.costUsd > 0 ? 1 - defaults.costUsd / naive.costUsd : Number.NaN;
    const promptCachingActive = defaults.tokens.cacheRead + defaults.tokens.cacheWrite > 0;
    // What the response-cache hits would have cost in the naive run: the share of the saving they explain.
    const hitKeys = new Set(defaultRows.filter((r) => r.hit).map((r) => `${r.session}/${r.turn}`));
    const savedByHits = naiveRows
      .filter((r) => hitKeys.has(`${r.session}/${r.turn}`))
      .reduce((a, r) => a + r.costUsd, 0);
    progress(
      opts,
      `  naive $${naive.perInteractionUsd.toFixed(5)}/interaction, defaults $${defaults.perInteractionUsd.toFixed(5)}/interaction: ${(reduction * 100).toFixed(1)} % less`,
    );
    const fmtModels = (t: RunTotals) =>
      Object.entries(t.byModel)
        .map(([m, v]) => `${m} ${v.interactions} ($${v.costUsd.toFixed(3)})`)
        .join(", ");
    const byKind = (kind: string) => totals(defaultRows.filter((r) => r.kind === kind));
    const notes = [
      routing.active
        ? `Model routing was active: ${routing.detail}.`
        : `Model routing was NOT active: ${routing.detail}. The reduction shown is without model tiering; it will change once the router is wired into /v1/messages.`,
      promptCachingActive
        ? `Prompt caching was active: the fake reported ${defaults.tokens.cacheRead.toLocaleString("en-US")} cache-read and ${defaults.tokens.cacheWrite.toLocaleString("en-US")} cache-write tokens.`
        : `Prompt caching was NOT active on /v1/messages: no cache-read or cache-write tokens were reported (the service added no cache_control breakpoints).`,
    ];
    return {
      method: [
        `Workload "${workload.name}": ${workload.description}`,
        `${workload.sessions.length} sessions, ${turns.length} interactions (${turns.filter((t) => t.kind === "complex").length} complex, ${turns.filter((t) => t.role === "faq-opener").length} sessions opening with a frequently asked question, ${turns.filter((t) => t.role === "repeat").length} repeated questions); system prompt ~${Math.ceil(workload.system.length / 4).toLocaleString("en-US")} tokens. Sessions run one after another, turns in order, the client resending the conversation.`,
        `Naive: ${workload.naiveModel} for every call, cache-control: no-cache, CACHE_TTL_SECONDS=0, PROMPT_CACHING=false. Defaults: model "auto", response cache and prompt caching as configured by default. Each run against a fresh fake upstream that keeps a prompt cache per model (5-minute lifetime) and applies each model's minimum cacheable prefix.`,
        `Cost = ModelCatalog.costUsd(served model, reported usage) with app/config/models.json prices (taken ${catalog.table.pricesTakenOn}); a response-cache hit costs $0.`,
      ],
      figures: {
        workload: {
          name: workload.name,
          sessions: workload.sessions.length,
          interactions: turns.length,
        },
        routingActive: routing.active,
        routingDetail: routing.detail,
        promptCachingActive,
        naive,
        defaults,
        defaultsByKind: { simple: byKind("simple"), complex: byKind("complex") },
        reductionPercent: round(reduction * 100, 1),
        savedByResponseCacheUsd: round(savedByHits, 4),
        pricesTakenOn: catalog.table.pricesTakenOn,
      },
      table: [
        [
          "**naive: $/interaction**",
          `$${naive.perInteractionUsd.toFixed(5)} (total $${naive.costUsd.toFixed(4)} for ${naive.interactions})`,
        ],
        [
          "**defaults: $/interaction**",
          `$${defaults.perInteractionUsd.toFixed(5)} (total $${defaults.costUsd.toFixed(4)})`,
        ],
        ["**reduction**", `${(reduction * 100).toFixed(1)} %`],
        ["defaults: served by", fmtModels(defaults)],
        ["defaults: simple turns served by", fmtModels(byKind("simple"))],
        ["defaults: complex turns served by", fmtModels(byKind("complex"))],
        [
          "defaults: response-cache hits (naive cost of those turns)",
          `${defaults.responseCacheHits} ($${savedByHits.toFixed(4)})`,
        ],
        [
          "tokens naive: input / output / cache write / cache read",
          `${naive.tokens.input.toLocaleString("en-US")} / ${naive.tokens.output.toLocaleString("en-US")} / ${naive.tokens.cacheWrite.toLocaleString("en-US")} / ${naive.tokens.cacheRead.toLocaleString("en-US")}`,
        ],
        [
          "tokens defaults: input / output / cache write / cache read",
          `${defaults.tokens.input.toLocaleString("en-US")} / ${defaults.tokens.output.toLocaleString("en-US")} / ${defaults.tokens.cacheWrite.toLocaleString("en-US")} / ${defaults.tokens.cacheRead.toLocaleString("en-US")}`,
        ],
        [
          "model routing / prompt caching active",
          `${routing.active ? "yes" : "no"} / ${promptCachingActive ? "yes" : "no"}`,
        ],
      ],
      targets: [
        {
          name: "Cost reduction, defaults vs naive",
          target: `≥ ${REDUCTION_TARGET * 100} %`,
          measured: `${(reduction * 100).toFixed(1)} %`,
          pass: Number.isFinite(reduction) ? reduction >= REDUCTION_TARGET : null,
        },
        {
          name: "Cost per interaction with the defaults",
          target: `< $${PER_INTERACTION_TARGET_USD}`,
          measured: `$${defaults.perInteractionUsd.toFixed(5)}`,
          pass: defaults.perInteractionUsd < PER_INTERACTION_TARGET_USD,
        },
      ],
      notes,
    };
  },
};
