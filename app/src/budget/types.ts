/** The budget service's public shapes: its options, what `reserve` answers, GET /v1/usage. */
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { ApiError } from "../errors";
import type { ModelCatalog } from "../llm/models";
import type { Store } from "../store/types";
import type { AlertDispatcher, BudgetWindow } from "./alerts";
import type { BudgetLimits, BudgetName } from "./kinds";
import type { Reservation } from "./reservation";

export type BudgetStore = Pick<Store, "sumUsageCost" | "getBudgetOverrides" | "getUserTeam">;

export interface BudgetServiceOptions {
  limits: BudgetLimits;
  catalog: ModelCatalog;
  store: BudgetStore;
  logger: Logger;
  /** Shared counters across replicas; without it budgets are counted in this process. */
  redis?: Redis;
  /** Where alerts go. @default a dispatcher logging alerts, posting to `webhookUrl` when given */
  alerts?: AlertDispatcher;
  webhookUrl?: string;
  /** @default 900000 (BUDGET_RESERVATION_TTL_SECONDS) */
  reservationTtlMs?: number;
  /** @default 0.25 (BUDGET_DEGRADED_SHARE) */
  degradedShare?: number;
  /** How long a user's overrides are cached; bounds how long a changed override takes. @default 30000 */
  overrideCacheMs?: number;
  /** Redis key hash tag; tests use their own. @default "budget" */
  keyTag?: string;
  /** A Redis or ledger call slower than this counts as failed (degraded mode). @default 1000 */
  redisTimeoutMs?: number;
  /** A session's counter is dropped after this long unused (and re-seeded when used). @default 7 days */
  sessionIdleMs?: number;
  now?: () => number;
}

/** A fixed hold (`reserveHold`): a batch's worst case. */
export interface HoldRequest {
  /** Unique per hold; `settleHold` settles it by this id. */
  id: string;
  userId: string;
  amountUsd: number;
  /** How long before an unsettled hold is released (longer than the work it covers). */
  ttlMs: number;
  /** What a refusal tells the client to do. */
  hint?: string;
  /** The requests the hold covers: each must fit the per-request budget on its own. */
  requests?: ReadonlyArray<{ name: string; amountUsd: number }>;
}

export interface ReserveOptions {
  /**
   * The hold leaves before the caller knows it will spend anything (POST /v1/messages sends it
   * with the rate-limit admission and the response-cache lookup, one round trip). A refusal is
   * then neither counted nor reported to refusal listeners until the caller confirms it with
   * `report()`, and a hold the caller does not use goes back with `release`. A 100 % alert the
   * refusal finds due is sent at once: it describes the budget, not this request.
   */
  speculative?: boolean;
}

export type ReserveResult =
  | {
      ok: true;
      reservation: Reservation;
      /** max_tokens to send: the request's, or less when a budget capped it (`cappedBy`). */
      maxTokens: number;
      cappedBy: BudgetName | null;
    }
  | {
      ok: false;
      error: ApiError;
      /** Counts and reports a speculative refusal (once); a no-op otherwise. */
      report: () => void;
    };

export interface RefusalEvent {
  budget: BudgetName;
  scopeId: string;
  userId: string;
  /** The budget would cover the request once requests in flight settle. */
  retryable: boolean;
}

/** What `usageFor` reports per budget (the JSON of GET /v1/usage). */
export interface BudgetUsage {
  budget: BudgetName;
  scope_id: string;
  limit_usd: number;
  /** Null for the request budget, which has no running total. */
  spent_usd: number | null;
  reserved_usd: number | null;
  remaining_usd: number;
  window: BudgetWindow | null;
  resets_at: string | null;
  source: "default" | "override" | "team";
}

export interface UsageReport {
  object: "usage";
  user_id: string;
  session_id: string | null;
  at: string;
  /** Where the counters came from: shared Redis, this process (embedded), or this process while Redis is down. */
  mode: "redis" | "embedded" | "degraded";
  budgets: BudgetUsage[];
}
