/**
 * What a client is told when a budget cannot cover its request: HTTP 429 `budget_exceeded`
 * naming the budget, its limit, what is spent and held, and when it resets, with the headers
 * that tell the official SDK whether retrying can help.
 */
import { ApiError } from "../errors";
import type { BudgetWindow } from "./alerts";
import { usd, type LineState } from "./engine";
import { BUDGET_KINDS, type BudgetName } from "./kinds";

export interface Refusal {
  budget: BudgetName;
  scopeId: string;
  limitUsd: number;
  window: BudgetWindow | null;
  state: LineState | null;
  /** µ$ the request asked to hold. */
  requested: number;
  /** The budget would cover the request once requests in flight settle. */
  retryable: boolean;
  /** Replaces the default advice when retrying cannot help (e.g. which batch request is too large). */
  hint?: string;
}

export function budgetExceeded(r: Refusal, now: number): ApiError {
  const resetsAt = r.window?.end ?? null;
  const { label, advice } = BUDGET_KINDS[r.budget];
  const state = r.state
    ? ` ($${money(usd(r.state.spent))} spent, $${money(usd(r.state.reserved))} held by requests in flight)`
    : "";
  const when = r.retryable
    ? "it will fit once requests in flight finish; retry shortly"
    : (r.hint ?? (resetsAt ? `it resets at ${resetsAt}` : advice));
  const message = `${label} of $${money(r.limitUsd)} cannot cover this request (up to $${money(usd(r.requested))})${state}: ${when}`;
  const headers: Record<string, string> = {};
  if (r.retryable) headers["retry-after"] = "1";
  else {
    // The official SDK retries 429s unless told not to; an exhausted budget will not recover by retrying.
    headers["x-should-retry"] = "false";
    if (resetsAt)
      headers["retry-after"] = String(Math.max(1, Math.ceil((Date.parse(resetsAt) - now) / 1000)));
  }
  const details = {
    budget: r.budget,
    scope_id: r.scopeId,
    limit_usd: r.limitUsd,
    spent_usd: r.state ? usd(r.state.spent) : null,
    reserved_usd: r.state ? usd(r.state.reserved) : null,
    requested_usd: usd(r.requested),
    resets_at: resetsAt,
    window: r.window,
    retryable: r.retryable,
  };
  return new ApiError(429, "budget_exceeded", message, headers, details);
}

export function money(n: number): string {
  if (n === 0) return "0";
  if (Math.abs(n) >= 1) return n.toFixed(2);
  return String(Number(n.toPrecision(3)));
}
