/**
 * Batches through the budgets: a batch holds its worst case (every request's estimated input
 * plus max_tokens, at the batch price) on the user's and the deployment's daily budgets before
 * anything is stored or sent upstream, and each of its requests must fit the per-request budget.
 * A refusal is the same 429 `budget_exceeded` a Messages request gets, and the upstream is never
 * called. The hold lives until the batch ends (results come within 24 hours) and is settled to
 * the batch's real cost by whichever replica finishes it, possibly after a restart: it is found
 * again from the batch id, the user and the time it was taken.
 */
import type { BatchBudgetHooks } from "../batch/service";
import type { BudgetService } from "./budgets";

/** The Message Batches API ends every batch within 24 hours; the poller may take a while longer. */
export const BATCH_HOLD_TTL_MS = 26 * 3600_000;

export const batchHoldId = (batchId: string) => `batch.${batchId}`;

export function batchBudgetHooks(budgets: BudgetService): BatchBudgetHooks {
  return {
    async reserveBatch({ userId, batchId, worstCaseUsd, requests }) {
      const held = await budgets.reserveHold({
        id: batchHoldId(batchId),
        userId,
        amountUsd: worstCaseUsd,
        ttlMs: BATCH_HOLD_TTL_MS,
        requests: requests.map((r) => ({ name: r.customId, amountUsd: r.worstCaseUsd })),
        hint: "lower max_tokens or send fewer requests in this batch",
      });
      if (!held.ok) throw held.error;
    },
    async settleBatch({ userId, batchId, reservedUsd, actualUsd }, { createdAt }) {
      await budgets.settleHold({
        id: batchHoldId(batchId),
        userId,
        heldAt: Date.parse(createdAt),
        reservedUsd,
        actualUsd,
      });
    },
  };
}
