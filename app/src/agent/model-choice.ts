/**
 * Which model runs a session's turn, and which part of the history it sees. Kept in one module so
 * that model routing (by task, budget or availability) has a single place to change.
 *
 * Sessions are sticky: a session created with `model: "auto"` or a tier alias (or with none while
 * DEFAULT_MODEL is one) is routed on its first turn, and the routed model is stored on the session
 * (`store.setSessionModel`), so later turns run on the same model and read its warm prompt cache.
 */
import type { AppConfig } from "../config";
import type { ModelCatalog } from "../llm/models";
import { estimateRequestTokens } from "../llm/prompt-cache";
import { isRoutingAlias, routeModel, type RouteDecision } from "../llm/router";
import type { Session, Store } from "../store/types";
import type { HistoryMessage } from "./history";
import { trimHistory } from "./trim";

export interface SessionTurnPlan extends RouteDecision {
  /** The conversation to send: the history trimmed to SESSION_HISTORY_TOKEN_BUDGET, then the new message. */
  conversation: HistoryMessage[];
  /** Messages of the stored history left out of this turn's requests. */
  droppedMessages: number;
}

export interface SessionTurnDeps {
  config: Pick<AppConfig, "DEFAULT_MODEL" | "SESSION_HISTORY_TOKEN_BUDGET">;
  catalog: ModelCatalog;
  store: Pick<Store, "setSessionModel">;
}

/**
 * Route the turn (sticky) and trim its history. `conversation` is the stored history followed by
 * the user's new message. The first routed turn of a session pins its model on the session; the
 * session object passed in is updated to match.
 */
export async function prepareSessionTurn(
  session: Pick<Session, "id" | "model" | "system">,
  conversation: readonly HistoryMessage[],
  deps: SessionTurnDeps,
  turn: { maxTokens: number; tools?: readonly unknown[] },
): Promise<SessionTurnPlan> {
  const wanted = session.model ?? deps.config.DEFAULT_MODEL;
  const fixedTokens =
    estimateRequestTokens({ system: session.system, tools: turn.tools, messages: [] }) +
    turn.maxTokens;
  const route = routeModel(
    {
      model: wanted,
      max_tokens: turn.maxTokens,
      system: session.system,
      tools: turn.tools,
      messages: conversation,
    },
    deps.catalog,
    { pinnedModel: session.model },
  );
  if (isRoutingAlias(wanted) && session.model !== route.model) {
    await deps.store.setSessionModel(session.id, route.model);
    session.model = route.model;
  }
  // The budget never exceeds what the model's context window leaves after system, tools and output.
  const window = deps.catalog.get(route.model)?.contextWindow;
  let budget = deps.config.SESSION_HISTORY_TOKEN_BUDGET;
  if (budget > 0 && window !== undefined)
    budget = Math.max(1, Math.min(budget, window - fixedTokens));
  const trimmed = trimHistory(conversation, budget);
  return { ...route, conversation: trimmed.messages, droppedMessages: trimmed.dropped };
}
