/**
 * The usage ledger (the record of spend: budgets are seeded from its sums) and per-user budget
 * overrides, over any SqlClient.
 */
import { isUserBudgetName, USER_BUDGET_NAMES } from "../budget/kinds";
import type {
  BudgetOverrides,
  SpendFilter,
  SqlClient,
  UsageEntry,
  UsageStatus,
  UserBudgetName,
} from "./types";
import { iso, MAX_PARAMS, UUID, validIso, validUserId, type Query, type Row } from "./sql-rows";

const STATUSES: ReadonlySet<UsageStatus> = new Set([
  "ok",
  "error",
  "aborted",
  "cached",
  "rejected",
]);

const USAGE_COLUMNS = [
  "request_id",
  "user_id",
  "session_id",
  "model",
  "input_tokens",
  "output_tokens",
  "cache_creation_input_tokens",
  "cache_read_input_tokens",
  "cost_usd",
  "status",
  "kind",
  "latency_ms",
  "created_at",
] as const;

export class SqlLedger {
  constructor(private readonly db: SqlClient) {}

  async recordUsage(entries: UsageEntry[]): Promise<void> {
    if (entries.length === 0) return;
    // Reject the whole batch before writing anything: a database error on one row would fail it anyway.
    const rows = entries.map(usageParams);
    const perStatement = Math.floor(MAX_PARAMS / USAGE_COLUMNS.length);
    if (rows.length <= perStatement) return insertUsage(this.db, rows);
    // Larger batches need several statements; one transaction keeps the batch all-or-nothing,
    // so a caller retrying a failed batch never records part of it twice.
    await this.db.transaction(async (tx) => {
      for (let i = 0; i < rows.length; i += perStatement)
        await insertUsage(tx, rows.slice(i, i + perStatement));
    });
  }

  async listUsage(filter: {
    userId?: string;
    sessionId?: string;
    sinceIso?: string;
  }): Promise<UsageEntry[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.userId !== undefined) where.push(`user_id = $${params.push(filter.userId)}`);
    if (filter.sessionId !== undefined) {
      if (!UUID.test(filter.sessionId)) return [];
      where.push(`session_id = $${params.push(filter.sessionId)}`);
    }
    if (filter.sinceIso !== undefined)
      where.push(`created_at >= $${params.push(validIso(filter.sinceIso, "sinceIso"))}`);
    const { rows } = await this.db.query<Row>(
      `SELECT ${USAGE_COLUMNS.join(", ")} FROM usage_ledger
       ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY created_at, id`,
      params,
    );
    return rows.map((r) => ({
      requestId: String(r.request_id),
      userId: String(r.user_id),
      sessionId: (r.session_id as string | null) ?? null,
      model: String(r.model),
      inputTokens: Number(r.input_tokens),
      outputTokens: Number(r.output_tokens),
      cacheCreationInputTokens: Number(r.cache_creation_input_tokens),
      cacheReadInputTokens: Number(r.cache_read_input_tokens),
      costUsd: Number(r.cost_usd),
      status: r.status as UsageStatus,
      kind: String(r.kind),
      latencyMs: r.latency_ms === null ? undefined : Number(r.latency_ms),
      createdAt: iso(r.created_at),
    }));
  }

  async sumUsageCost(filter: SpendFilter): Promise<number> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.userId !== undefined) where.push(`user_id = $${params.push(filter.userId)}`);
    if (filter.sessionId !== undefined) {
      if (!UUID.test(filter.sessionId)) return 0;
      where.push(`session_id = $${params.push(filter.sessionId)}`);
    }
    if (filter.teamId !== undefined) {
      if (!UUID.test(filter.teamId)) return 0;
      where.push(
        `user_id IN (SELECT user_id FROM team_members WHERE team_id = $${params.push(filter.teamId)})`,
      );
    }
    if (filter.sinceIso !== undefined)
      where.push(`created_at >= $${params.push(validIso(filter.sinceIso, "sinceIso"))}`);
    if (filter.untilIso !== undefined)
      where.push(`created_at < $${params.push(validIso(filter.untilIso, "untilIso"))}`);
    const { rows } = await this.db.query<Row>(
      `SELECT coalesce(sum(cost_usd), 0) AS total FROM usage_ledger
       ${where.length ? `WHERE ${where.join(" AND ")}` : ""}`,
      params,
    );
    return Number(rows[0]?.total ?? 0);
  }

  async getBudgetOverrides(userId: string): Promise<BudgetOverrides> {
    const { rows } = await this.db.query<Row>(
      `SELECT budget, limit_usd FROM budget_overrides WHERE user_id = $1`,
      [userId],
    );
    const out: BudgetOverrides = {};
    for (const r of rows) {
      const budget = String(r.budget);
      if (isUserBudgetName(budget)) out[budget] = r.limit_usd === null ? null : Number(r.limit_usd);
    }
    return out;
  }

  async setBudgetOverride(
    userId: string,
    budget: UserBudgetName,
    limitUsd: number | null,
  ): Promise<void> {
    validUserId(userId);
    if (!isUserBudgetName(budget)) {
      throw new RangeError(`unknown budget "${budget}": use ${USER_BUDGET_NAMES.join(", ")}`);
    }
    if (limitUsd !== null && !(Number.isFinite(limitUsd) && limitUsd >= 0)) {
      throw new RangeError(`limitUsd must be a non-negative number or null, got ${limitUsd}`);
    }
    await this.db.query(
      `INSERT INTO budget_overrides (user_id, budget, limit_usd) VALUES ($1, $2, $3)
       ON CONFLICT (user_id, budget) DO UPDATE SET limit_usd = EXCLUDED.limit_usd, updated_at = now()`,
      [userId, budget, limitUsd],
    );
  }

  async deleteBudgetOverride(userId: string, budget: UserBudgetName): Promise<boolean> {
    const { rows } = await this.db.query(
      `DELETE FROM budget_overrides WHERE user_id = $1 AND budget = $2 RETURNING user_id`,
      [userId, budget],
    );
    return rows.length > 0;
  }
}

async function insertUsage(db: Query, rows: unknown[][]): Promise<void> {
  const params: unknown[] = [];
  const values = rows.map((row) => {
    const p = row.map((v) => `$${params.push(v)}`);
    // created_at is the last column: default to the write time when the caller gave none.
    p[p.length - 1] = `coalesce(${p[p.length - 1]}::timestamptz, now())`;
    return `(${p.join(", ")})`;
  });
  await db.query(
    `INSERT INTO usage_ledger (${USAGE_COLUMNS.join(", ")}) VALUES ${values.join(", ")}`,
    params,
  );
}

/** One entry as parameters in USAGE_COLUMNS order; throws on values the schema would reject. */
function usageParams(e: UsageEntry): unknown[] {
  const bad = (what: string) => new RangeError(`usage entry for request ${e.requestId}: ${what}`);
  const tokens = [
    e.inputTokens,
    e.outputTokens,
    e.cacheCreationInputTokens,
    e.cacheReadInputTokens,
  ];
  if (!tokens.every((t) => Number.isSafeInteger(t) && t >= 0))
    throw bad("token counts must be non-negative integers");
  if (!Number.isFinite(e.costUsd) || e.costUsd < 0)
    throw bad(`costUsd must be a non-negative number, got ${e.costUsd}`);
  if (!STATUSES.has(e.status)) throw bad(`unknown status "${e.status}"`);
  if (e.sessionId != null && !UUID.test(e.sessionId))
    throw bad(`sessionId "${e.sessionId}" is not a session id`);
  if (e.latencyMs !== undefined && !(Number.isFinite(e.latencyMs) && e.latencyMs >= 0))
    throw bad("latencyMs must be non-negative");
  return [
    e.requestId,
    e.userId,
    e.sessionId ?? null,
    e.model,
    ...tokens,
    e.costUsd,
    e.status,
    e.kind ?? "messages",
    // Durations from performance.now() are fractional; the column is whole milliseconds.
    e.latencyMs === undefined ? null : Math.round(e.latencyMs),
    e.createdAt === undefined ? null : validIso(e.createdAt, "createdAt"),
  ];
}
