/** The Store over any SqlClient: the same SQL runs on PostgreSQL and on PGlite. */
import { createHash, randomBytes } from "node:crypto";
import { migrate } from "./migrations";
import {
  ConcurrentAppendError,
  type ApiKeyRecord,
  type ContentBlock,
  type NewSession,
  type Session,
  type SqlClient,
  type Store,
  type StoredMessage,
  type StoreLogger,
  type UsageEntry,
  type UsageStatus,
  type BudgetOverrides,
  type SpendFilter,
  type UserBudgetName,
  type IdempotencyClaim,
  type IdempotencyClaimResult,
  type IdempotencyRecord,
  type IdempotentResponse,
} from "./types";
import type {
  BatchCounts,
  BatchItem,
  BatchPatch,
  BatchRecord,
  BatchResultInput,
  BatchResultRow,
  BatchResultType,
  BatchSummary,
  NewBatch,
} from "./types";

export interface SqlStoreOptions {
  /** A key's last_used_at is written at most this often, keeping writes off most lookups. @default 300000 */
  lastUsedRefreshMs?: number;
  /** Where failed last_used_at writes are reported. @default console.warn */
  logger?: StoreLogger;
}

/** Same rule as AGENT_API_KEYS, so database and static users look alike. */
const USER_ID = /^[A-Za-z0-9._@-]{1,128}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const STATUSES: ReadonlySet<UsageStatus> = new Set([
  "ok",
  "error",
  "aborted",
  "cached",
  "rejected",
]);
/** Characters of a key kept in clear for display: "ak_" and 8 random characters (48 bits). */
const KEY_PREFIX_LENGTH = 11;
const BUDGET_NAMES: ReadonlySet<UserBudgetName> = new Set(["request", "session", "user_daily"]);
/** PostgreSQL's limit on bind parameters in one statement. */
const MAX_PARAMS = 65_535;

const SESSION_COLUMNS = "id, user_id, model, system, metadata, created_at, updated_at";
const KEY_COLUMNS = "id, user_id, name, prefix, created_at, revoked_at, last_used_at";
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

type Row = Record<string, unknown>;
type Query = Pick<SqlClient, "query">;

export const sha256Hex = (s: string) => createHash("sha256").update(s).digest("hex");

export class SqlStore implements Store {
  readonly kind: Store["kind"];
  private readonly lastUsedRefreshSeconds: number;
  private readonly logger: StoreLogger;

  constructor(
    private readonly db: SqlClient,
    options: SqlStoreOptions = {},
  ) {
    this.kind = db.kind;
    this.lastUsedRefreshSeconds = (options.lastUsedRefreshMs ?? 300_000) / 1000;
    this.logger = options.logger ?? { warn: (obj, msg) => console.warn(msg, obj) };
  }

  async migrate(): Promise<void> {
    await migrate(this.db);
  }

  async ping(): Promise<void> {
    await this.db.query("SELECT 1");
  }

  close(): Promise<void> {
    return this.db.close();
  }

  async createSession(input: NewSession): Promise<Session> {
    // Users authenticated by AGENT_API_KEYS have no row yet: create it in the same statement.
    const { rows } = await this.db.query<Row>(
      `WITH u AS (INSERT INTO users (id) VALUES ($1) ON CONFLICT DO NOTHING)
       INSERT INTO sessions (user_id, model, system, metadata) VALUES ($1, $2, $3, $4::jsonb)
       RETURNING ${SESSION_COLUMNS}`,
      [
        input.userId,
        input.model ?? null,
        input.system ?? null,
        JSON.stringify(input.metadata ?? {}),
      ],
    );
    return toSession(single(rows));
  }

  async getSession(id: string, userId: string): Promise<Session | null> {
    if (!UUID.test(id)) return null;
    const { rows } = await this.db.query<Row>(
      `SELECT ${SESSION_COLUMNS} FROM sessions WHERE id = $1 AND user_id = $2`,
      [id, userId],
    );
    return rows[0] ? toSession(rows[0]) : null;
  }

  async setSessionModel(id: string, model: string): Promise<void> {
    const { rows } = UUID.test(id)
      ? await this.db.query(
          `UPDATE sessions SET model = $2, updated_at = now() WHERE id = $1 RETURNING id`,
          [id, model],
        )
      : { rows: [] };
    if (rows.length === 0) throw new Error(`session ${id} not found`);
  }

  async appendMessages(
    sessionId: string,
    expectedNextSeq: number,
    messages: Array<{ role: "user" | "assistant"; content: ContentBlock[]; model?: string | null }>,
  ): Promise<void> {
    if (!Number.isSafeInteger(expectedNextSeq) || expectedNextSeq < 0) {
      throw new RangeError(
        `expectedNextSeq must be a non-negative integer, got ${expectedNextSeq}`,
      );
    }
    if (messages.length === 0) return;
    if (!UUID.test(sessionId)) throw new Error(`session ${sessionId} not found`);
    try {
      await this.db.transaction(async (tx) => {
        // The row lock queues concurrent appenders; each then reads the history as committed by
        // the one before it, so a stale expectedNextSeq is caught here rather than by luck.
        const session = await tx.query(
          `UPDATE sessions SET updated_at = now() WHERE id = $1 RETURNING id`,
          [sessionId],
        );
        if (session.rows.length === 0) throw new Error(`session ${sessionId} not found`);
        const { rows } = await tx.query<Row>(
          `SELECT coalesce(max(seq) + 1, 0) AS next FROM messages WHERE session_id = $1`,
          [sessionId],
        );
        if (Number(single(rows).next) !== expectedNextSeq)
          throw new ConcurrentAppendError(sessionId);
        const params: unknown[] = [sessionId];
        const values = messages.map((m, i) => {
          const at = params.push(
            expectedNextSeq + i,
            m.role,
            JSON.stringify(m.content),
            m.model ?? null,
          );
          return `($1, $${at - 3}, $${at - 2}, $${at - 1}::jsonb, $${at})`;
        });
        await tx.query(
          `INSERT INTO messages (session_id, seq, role, content, model) VALUES ${values.join(", ")}`,
          params,
        );
      });
    } catch (err) {
      // The primary key (session_id, seq) is the last line of defence should the lock be bypassed.
      if ((err as { code?: string }).code === "23505") throw new ConcurrentAppendError(sessionId);
      throw err;
    }
  }

  async listMessages(sessionId: string): Promise<StoredMessage[]> {
    if (!UUID.test(sessionId)) return [];
    const { rows } = await this.db.query<Row>(
      `SELECT seq, role, content, model, created_at FROM messages WHERE session_id = $1 ORDER BY seq`,
      [sessionId],
    );
    return rows.map((r) => ({
      seq: Number(r.seq),
      role: r.role as StoredMessage["role"],
      content: r.content as ContentBlock[],
      model: (r.model as string | null) ?? null,
      createdAt: iso(r.created_at),
    }));
  }

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
      if (!BUDGET_NAMES.has(r.budget as UserBudgetName)) continue;
      out[r.budget as UserBudgetName] = r.limit_usd === null ? null : Number(r.limit_usd);
    }
    return out;
  }

  async setBudgetOverride(
    userId: string,
    budget: UserBudgetName,
    limitUsd: number | null,
  ): Promise<void> {
    if (!USER_ID.test(userId)) {
      throw new Error(`invalid user id "${userId}": use 1 to 128 letters, digits, or . _ @ -`);
    }
    if (!BUDGET_NAMES.has(budget)) {
      throw new RangeError(`unknown budget "${budget}": use ${[...BUDGET_NAMES].join(", ")}`);
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

  async findUserByApiKey(key: string): Promise<string | null> {
    const { rows } = await this.db.query<Row>(
      `SELECT id, user_id, (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2)) AS stale
       FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL`,
      [sha256Hex(key), this.lastUsedRefreshSeconds],
    );
    const row = rows[0];
    if (!row) return null;
    if (row.stale === true) {
      // The condition is repeated so replicas racing on the same key write once between them.
      // A failed write is not worth failing authentication for.
      await this.db
        .query(
          `UPDATE api_keys SET last_used_at = now()
           WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))`,
          [row.id, this.lastUsedRefreshSeconds],
        )
        .catch((err: Error) =>
          this.logger.warn({ err: err.message }, "could not update api key last_used_at"),
        );
    }
    return String(row.user_id);
  }

  async createApiKey(
    userId: string,
    name?: string,
  ): Promise<{ key: string; record: ApiKeyRecord }> {
    if (!USER_ID.test(userId)) {
      throw new Error(`invalid user id "${userId}": use 1 to 128 letters, digits, or . _ @ -`);
    }
    const key = `ak_${randomBytes(32).toString("base64url")}`;
    const { rows } = await this.db.query<Row>(
      `WITH u AS (INSERT INTO users (id) VALUES ($1) ON CONFLICT DO NOTHING)
       INSERT INTO api_keys (user_id, key_hash, prefix, name) VALUES ($1, $2, $3, $4)
       RETURNING ${KEY_COLUMNS}`,
      [userId, sha256Hex(key), key.slice(0, KEY_PREFIX_LENGTH), name ?? null],
    );
    return { key, record: toKeyRecord(single(rows)) };
  }

  async listApiKeys(userId?: string): Promise<ApiKeyRecord[]> {
    const { rows } =
      userId === undefined
        ? await this.db.query<Row>(`SELECT ${KEY_COLUMNS} FROM api_keys ORDER BY created_at, id`)
        : await this.db.query<Row>(
            `SELECT ${KEY_COLUMNS} FROM api_keys WHERE user_id = $1 ORDER BY created_at, id`,
            [userId],
          );
    return rows.map(toKeyRecord);
  }

  async revokeApiKey(id: string): Promise<boolean> {
    if (!UUID.test(id)) return false;
    const { rows } = await this.db.query(
      `UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING id`,
      [id],
    );
    return rows.length > 0;
  }

  // idempotency keys
  async claimIdempotencyKey(claim: IdempotencyClaim): Promise<IdempotencyClaimResult> {
    for (let tries = 0; tries < 3; tries++) {
      // One statement decides, so two replicas racing on a key cannot both win it.
      const { rows } = await this.db.query(
        `INSERT INTO idempotency_keys AS k (user_id, key, request_hash, state, locked_until, expires_at)
         VALUES ($1, $2, $3, 'in_progress', now() + make_interval(secs => $5), now() + make_interval(secs => $4))
         ON CONFLICT (user_id, key) DO UPDATE SET
           request_hash = EXCLUDED.request_hash, state = 'in_progress', status = NULL, headers = NULL,
           body = NULL, locked_until = EXCLUDED.locked_until, created_at = now(), expires_at = EXCLUDED.expires_at
         WHERE k.expires_at <= now()
            OR (k.state = 'in_progress' AND k.locked_until <= now() AND k.request_hash = EXCLUDED.request_hash)
         RETURNING 1 AS claimed`,
        [claim.userId, claim.key, claim.requestHash, claim.ttlSeconds, claim.lockSeconds],
      );
      if (rows.length > 0) return { claimed: true };
      const held = await this.db.query<Row>(
        `SELECT state, request_hash, status, headers, body, created_at, expires_at
         FROM idempotency_keys WHERE user_id = $1 AND key = $2`,
        [claim.userId, claim.key],
      );
      const r = held.rows[0];
      // Released between the two statements: try to claim again.
      if (!r) continue;
      return {
        claimed: false,
        record: {
          state: r.state as IdempotencyRecord["state"],
          requestHash: String(r.request_hash),
          response:
            r.state === "completed"
              ? {
                  status: Number(r.status),
                  headers: (r.headers as Record<string, string> | null) ?? {},
                  body: String(r.body ?? ""),
                }
              : null,
          createdAt: iso(r.created_at),
          expiresAt: iso(r.expires_at),
        },
      };
    }
    throw new Error(`idempotency key ${claim.key} keeps changing hands; retry`);
  }

  async completeIdempotencyKey(
    userId: string,
    key: string,
    response: IdempotentResponse,
  ): Promise<boolean> {
    const { rows } = await this.db.query(
      `UPDATE idempotency_keys SET state = 'completed', status = $3, headers = $4::jsonb, body = $5
       WHERE user_id = $1 AND key = $2 AND state = 'in_progress' RETURNING 1 AS done`,
      [userId, key, response.status, JSON.stringify(response.headers), response.body],
    );
    return rows.length > 0;
  }

  async releaseIdempotencyKey(userId: string, key: string): Promise<void> {
    await this.db.query(
      `DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND state = 'in_progress'`,
      [userId, key],
    );
  }

  async purgeIdempotencyKeys(limit = 1000): Promise<number> {
    const { rows } = await this.db.query(
      `DELETE FROM idempotency_keys WHERE (user_id, key) IN (
         SELECT user_id, key FROM idempotency_keys WHERE expires_at <= now() LIMIT $1
       ) RETURNING 1 AS gone`,
      [limit],
    );
    return rows.length;
  }

  // batches
  async createBatch(input: NewBatch): Promise<BatchRecord> {
    if (!UUID.test(input.id)) throw new Error(`batch id must be a UUID, got "${input.id}"`);
    if (input.requests.length === 0) throw new RangeError("a batch needs at least one request");
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query<Row>(
        `INSERT INTO batches (id, user_id, status, mode, synthetic, request_count, processing, reserved_usd, next_poll_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7, now() + make_interval(secs => $8))
         RETURNING ${BATCH_COLUMNS}`,
        [
          input.id,
          input.userId,
          input.status,
          input.mode,
          input.synthetic,
          input.requests.length,
          input.reservedUsd,
          (input.nextPollInMs ?? 0) / 1000,
        ],
      );
      const perStatement = Math.floor(MAX_PARAMS / 3) - 1;
      for (let start = 0; start < input.requests.length; start += perStatement) {
        const params: unknown[] = [input.id];
        const values = input.requests.slice(start, start + perStatement).map((r, i) => {
          const at = params.push(start + i, r.customId, JSON.stringify(r.params));
          return `($1, $${at - 2}, $${at - 1}, $${at}::jsonb)`;
        });
        await tx.query(
          `INSERT INTO batch_results (batch_id, seq, custom_id, params) VALUES ${values.join(", ")}`,
          params,
        );
      }
      return toBatch(single(rows));
    });
  }

  async getBatch(id: string, userId?: string): Promise<BatchRecord | null> {
    if (!UUID.test(id)) return null;
    const { rows } =
      userId === undefined
        ? await this.db.query<Row>(`SELECT ${BATCH_COLUMNS} FROM batches WHERE id = $1`, [id])
        : await this.db.query<Row>(
            `SELECT ${BATCH_COLUMNS} FROM batches WHERE id = $1 AND user_id = $2`,
            [id, userId],
          );
    return rows[0] ? toBatch(rows[0]) : null;
  }

  async updateBatch(id: string, patch: BatchPatch, leaseOwner?: string): Promise<boolean> {
    if (!UUID.test(id)) return false;
    const params: unknown[] = [id];
    const set: string[] = ["updated_at = now()"];
    if (patch.status !== undefined) {
      set.push(`status = $${params.push(patch.status)}`);
      if (patch.status === "ended") set.push("ended_at = coalesce(ended_at, now())");
    }
    if (patch.upstreamId !== undefined) set.push(`upstream_id = $${params.push(patch.upstreamId)}`);
    if (patch.counts !== undefined) {
      for (const k of COUNT_KEYS) set.push(`${k} = $${params.push(patch.counts[k])}`);
    }
    if (patch.costUsd !== undefined) set.push(`cost_usd = $${params.push(patch.costUsd)}`);
    if (patch.error !== undefined) set.push(`error = $${params.push(patch.error)}`);
    if (patch.nextPollInMs !== undefined)
      set.push(
        `next_poll_at = now() + make_interval(secs => $${params.push(patch.nextPollInMs / 1000)})`,
      );
    if (patch.resetAttempts) set.push("poll_attempts = 0");
    if (patch.renewLeaseMs !== undefined)
      set.push(
        `lease_until = now() + make_interval(secs => $${params.push(patch.renewLeaseMs / 1000)})`,
      );
    if (patch.releaseLease) set.push("lease_owner = NULL", "lease_until = NULL");
    const owned =
      leaseOwner === undefined
        ? ""
        : ` AND lease_owner = $${params.push(leaseOwner)} AND lease_until > now()`;
    const { rows } = await this.db.query(
      `UPDATE batches SET ${set.join(", ")} WHERE id = $1${owned} RETURNING id`,
      params,
    );
    return rows.length > 0;
  }

  async deleteBatch(id: string): Promise<void> {
    if (!UUID.test(id)) return;
    await this.db.query(`DELETE FROM batches WHERE id = $1`, [id]);
  }

  async claimBatches(
    owner: string,
    options: { leaseMs: number; limit: number; id?: string },
  ): Promise<BatchRecord[]> {
    if (options.id !== undefined && !UUID.test(options.id)) return [];
    const params: unknown[] = [owner, options.leaseMs / 1000, options.limit];
    const only = options.id === undefined ? "" : ` AND id = $${params.push(options.id)}`;
    // SKIP LOCKED: replicas claiming at the same moment take different batches instead of
    // queueing; the lease then keeps the batch theirs after this statement commits.
    const { rows } = await this.db.query<Row>(
      `UPDATE batches SET lease_owner = $1, lease_until = now() + make_interval(secs => $2),
         poll_attempts = poll_attempts + 1
       WHERE id IN (
         SELECT id FROM batches
         WHERE status <> 'ended' AND next_poll_at <= now()
           AND (lease_until IS NULL OR lease_until < now())${only}
         ORDER BY next_poll_at
         LIMIT $3
         FOR UPDATE SKIP LOCKED)
       RETURNING ${BATCH_COLUMNS}`,
      params,
    );
    return rows.map(toBatch);
  }

  async listBatchItems(
    batchId: string,
    options: { pendingOnly?: boolean; afterSeq?: number; limit: number },
  ): Promise<BatchItem[]> {
    if (!UUID.test(batchId)) return [];
    const { rows } = await this.db.query<Row>(
      `SELECT seq, custom_id, params FROM batch_results
       WHERE batch_id = $1 AND seq > $2 ${options.pendingOnly ? "AND result_type IS NULL" : ""}
       ORDER BY seq LIMIT $3`,
      [batchId, options.afterSeq ?? -1, options.limit],
    );
    return rows.map((r) => ({
      seq: Number(r.seq),
      customId: String(r.custom_id),
      params: (r.params as Record<string, unknown> | null) ?? null,
    }));
  }

  async saveBatchResults(batchId: string, results: BatchResultInput[]): Promise<string[]> {
    if (results.length === 0 || !UUID.test(batchId)) return [];
    const rows = results.map((r) => {
      const tokens = [
        r.inputTokens,
        r.outputTokens,
        r.cacheCreationInputTokens,
        r.cacheReadInputTokens,
      ];
      if (!tokens.every((t) => Number.isSafeInteger(t) && t >= 0))
        throw new RangeError(
          `batch result ${r.customId}: token counts must be non-negative integers`,
        );
      if (!Number.isFinite(r.costUsd) || r.costUsd < 0)
        throw new RangeError(`batch result ${r.customId}: costUsd must be a non-negative number`);
      return {
        custom_id: r.customId,
        type: r.type,
        result: r.result,
        model: r.model,
        input_tokens: r.inputTokens,
        output_tokens: r.outputTokens,
        cache_creation_input_tokens: r.cacheCreationInputTokens,
        cache_read_input_tokens: r.cacheReadInputTokens,
        cost_usd: r.costUsd,
      };
    });
    // One statement per call; "result_type IS NULL" makes a replayed result (a resumed batch,
    // two replicas) a no-op, and RETURNING tells the caller which ones are new.
    const { rows: stored } = await this.db.query<Row>(
      `UPDATE batch_results r SET result_type = x.type, result = x.result, model = x.model,
         input_tokens = x.input_tokens, output_tokens = x.output_tokens,
         cache_creation_input_tokens = x.cache_creation_input_tokens,
         cache_read_input_tokens = x.cache_read_input_tokens, cost_usd = x.cost_usd,
         params = NULL, completed_at = now()
       FROM jsonb_to_recordset($2::jsonb) AS x(custom_id text, type text, result jsonb, model text,
         input_tokens bigint, output_tokens bigint, cache_creation_input_tokens bigint,
         cache_read_input_tokens bigint, cost_usd numeric)
       WHERE r.batch_id = $1 AND r.custom_id = x.custom_id AND r.result_type IS NULL
       RETURNING r.custom_id`,
      [batchId, JSON.stringify(rows)],
    );
    return stored.map((r) => String(r.custom_id));
  }

  async summarizeBatchResults(batchId: string): Promise<BatchSummary> {
    const counts: BatchCounts = {
      processing: 0,
      succeeded: 0,
      errored: 0,
      canceled: 0,
      expired: 0,
    };
    if (!UUID.test(batchId)) return { counts, costUsd: 0 };
    const { rows } = await this.db.query<Row>(
      `SELECT coalesce(result_type, 'processing') AS type, count(*) AS n, coalesce(sum(cost_usd), 0) AS cost
       FROM batch_results WHERE batch_id = $1 GROUP BY 1`,
      [batchId],
    );
    let costUsd = 0;
    for (const r of rows) {
      counts[String(r.type) as keyof BatchCounts] = Number(r.n);
      costUsd += Number(r.cost);
    }
    return { counts, costUsd };
  }

  async listBatchResults(
    batchId: string,
    options: { afterSeq?: number; limit: number },
  ): Promise<BatchResultRow[]> {
    if (!UUID.test(batchId)) return [];
    const { rows } = await this.db.query<Row>(
      `SELECT seq, custom_id, result_type, result FROM batch_results
       WHERE batch_id = $1 AND seq > $2 AND result_type IS NOT NULL ORDER BY seq LIMIT $3`,
      [batchId, options.afterSeq ?? -1, options.limit],
    );
    return rows.map((r) => ({
      seq: Number(r.seq),
      customId: String(r.custom_id),
      type: r.result_type as BatchResultType,
      result: r.result as Record<string, unknown>,
    }));
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

function validIso(value: string, name: string): string {
  const t = Date.parse(value);
  if (Number.isNaN(t))
    throw new RangeError(`${name} must be an ISO 8601 timestamp, got "${value}"`);
  return new Date(t).toISOString();
}

function single(rows: Row[]): Row {
  const row = rows[0];
  if (!row) throw new Error("expected a row from the database, got none");
  return row;
}

/** Drivers return timestamptz as Date (pg, PGlite) or as text: always hand out ISO strings. */
function iso(value: unknown): string {
  return (value instanceof Date ? value : new Date(String(value))).toISOString();
}

const isoOrNull = (value: unknown) => (value === null || value === undefined ? null : iso(value));

function toSession(r: Row): Session {
  return {
    id: String(r.id),
    userId: String(r.user_id),
    model: (r.model as string | null) ?? null,
    system: (r.system as string | null) ?? null,
    metadata: (r.metadata as Record<string, unknown> | null) ?? {},
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
  };
}

function toKeyRecord(r: Row): ApiKeyRecord {
  return {
    id: String(r.id),
    userId: String(r.user_id),
    name: (r.name as string | null) ?? null,
    prefix: String(r.prefix),
    createdAt: iso(r.created_at),
    revokedAt: isoOrNull(r.revoked_at),
    lastUsedAt: isoOrNull(r.last_used_at),
  };
}

// ---- batches ---------------------------------------------------------------------------------

const COUNT_KEYS = ["processing", "succeeded", "errored", "canceled", "expired"] as const;
const BATCH_COLUMNS =
  "id, user_id, status, mode, synthetic, upstream_id, request_count, processing, succeeded, errored, " +
  "canceled, expired, reserved_usd, cost_usd, error, poll_attempts, next_poll_at, created_at, updated_at, ended_at";

function toBatch(r: Row): BatchRecord {
  return {
    id: String(r.id),
    userId: String(r.user_id),
    status: r.status as BatchRecord["status"],
    mode: r.mode as BatchRecord["mode"],
    synthetic: r.synthetic === true,
    upstreamId: (r.upstream_id as string | null) ?? null,
    requestCount: Number(r.request_count),
    counts: {
      processing: Number(r.processing),
      succeeded: Number(r.succeeded),
      errored: Number(r.errored),
      canceled: Number(r.canceled),
      expired: Number(r.expired),
    },
    reservedUsd: Number(r.reserved_usd),
    costUsd: Number(r.cost_usd),
    error: (r.error as string | null) ?? null,
    pollAttempts: Number(r.poll_attempts),
    nextPollAt: iso(r.next_poll_at),
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
    endedAt: isoOrNull(r.ended_at),
  };
}
