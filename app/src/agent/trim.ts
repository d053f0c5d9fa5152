/**
 * History trimming: keep a long session's conversation within a token budget
 * (SESSION_HISTORY_TOKEN_BUDGET) by dropping its oldest turns.
 *
 * What is kept is always a valid Messages API conversation and always a suffix of the history:
 * - it starts at a user message that holds no tool_result blocks (the start of a user turn), so it
 *   starts with a user message and no tool_result is separated from the tool_use it answers;
 * - the newest user turn is never dropped, even when it alone exceeds the budget (`overBudget`).
 *
 * Where to cut is chosen so the prompt cache keeps working: cutting one turn at a time would move
 * the start of the conversation on every turn, and a moved start is a different prefix, so nothing
 * would ever be read from the cache again. Instead the amount to drop is rounded up to a quarter of
 * the budget, and the cut is the first turn start past that amount. The cut then stays put while
 * the conversation grows by up to a quarter of the budget, and every call in that stretch reuses
 * the same cached prefix. Pure: no I/O, same input, same output.
 */
import { estimateMessageTokens } from "../llm/prompt-cache";
import type { HistoryMessage } from "./history";

export interface TrimResult<M> {
  /** The kept suffix of the history (the same message objects). */
  messages: M[];
  /** How many messages were dropped from the front. */
  dropped: number;
  /** Estimated tokens of what was kept. */
  tokens: number;
  /** True when even the newest turn alone exceeds the budget (it is kept whole regardless). */
  overBudget: boolean;
}

/** A user message with no tool results starts a turn: the conversation may begin there. */
export function isTurnStart(message: HistoryMessage): boolean {
  return message.role === "user" && !message.content.some((b) => b.type === "tool_result");
}

/**
 * Drop the oldest turns until the estimated tokens fit `budgetTokens`. A budget of 0 (or less)
 * disables trimming.
 */
export function trimHistory<M extends HistoryMessage>(
  history: readonly M[],
  budgetTokens: number,
): TrimResult<M> {
  const sizes = history.map((m) => estimateMessageTokens(m));
  const total = sizes.reduce((a, b) => a + b, 0);
  if (budgetTokens <= 0 || total <= budgetTokens) {
    return { messages: [...history], dropped: 0, tokens: total, overBudget: false };
  }
  // Rounded up to whole steps, so the cut moves only every `step` tokens of growth.
  const step = Math.max(1, Math.floor(budgetTokens / 4));
  const target = Math.ceil((total - budgetTokens) / step) * step;

  let droppedTokens = 0;
  let lastStart = -1;
  let lastStartDropped = 0;
  for (let i = 0; i < history.length; i++) {
    if (i > 0 && isTurnStart(history[i]!)) {
      lastStart = i;
      lastStartDropped = droppedTokens;
      if (droppedTokens >= target) break;
    }
    droppedTokens += sizes[i]!;
  }
  if (lastStart <= 0) {
    // No later turn starts: the whole history is one turn and cannot be cut.
    return { messages: [...history], dropped: 0, tokens: total, overBudget: true };
  }
  const tokens = total - lastStartDropped;
  return {
    messages: history.slice(lastStart),
    dropped: lastStart,
    tokens,
    overBudget: tokens > budgetTokens,
  };
}
