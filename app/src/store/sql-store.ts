/**
 * The Store over any SqlClient: the same SQL runs on PostgreSQL and on PGlite. Sessions, API keys
 * and idempotency keys live here; the usage ledger with budget overrides (sql-ledger.ts) and
 * message batches (sql-batches.ts) have modules of their own.
 */
import { migrate } from "./migrations";
import { SqlAdmin } from "./sql-admin";
import { SqlBatches } from "./sql-batches";
import { SqlLedger } from "./sql-ledger";
import {
  iso,
  isoOrNull,
  issueKey,
  sha256Hex,
  single,
  UUID,
  validUserId,
  type Row,
} from "./sql-rows";
import {
  ConcurrentAppendError,
  type ApiKeyRecord,
  type BatchItem,
  type BatchPatch,
  type BatchRecord,
  type BatchStatus,
  type BatchResultInput,
  type BatchResultRow,
  type BatchSummary,
  type BudgetOverrides,
  type ContentBlock,
  type IdempotencyClaim,
  type IdempotencyClaimResult,
  type IdempotencyRecord,
  type IdempotentResponse,
  type NewBatch,
  type NewSession,
  type Session,
  type SpendFilter,
  type SqlClient,
  type Store,
  type StoredMessage,
  type StoreLogger,
  type UsageEntry,
  type UserBudgetName,
  type UserTeam,
} from "./types";

export interface SqlStoreOptions {
  /** A key's last_used_at is written at most this often, keeping writes off most lookups. @default 300000 */
  lastUsedRefreshMs?: number;
  /** Where failed last_used_at writes are reported. @default console.warn */
  logger?: StoreLogger;
}

const SESSION_COLUMNS = "id, user_id, model, system, metadata, created_at, updated_at";
const KEY_COLUMNS = "id, user_id, name, prefix, created_at, revoked_at, last_used_at";

export { sha256Hex };

export class SqlStore implements Store {
  readonly kind: Store["kind"];
  private readonly lastUsedRefreshSeconds: number;
  private readonly logger: StoreLogger;
  private readonly ledger: SqlLedger;
  private readonly batches: SqlBatches;
  readonly admin: SqlAdmin;

  constructor(
    private readonly db: SqlClient,
    options: SqlStoreOptions = {},
  ) {
    this.kind = db.kind;
    this.lastUsedRefreshSeconds = (options.lastUsedRefreshMs ?? 300_000) / 1000;
    this.logger = options.logger ?? { warn: (obj, msg) => console.warn(msg, obj) };
    this.ledger = new SqlLedger(db);
    this.batches = new SqlBatches(db);
    this.admin = new SqlAdmin(db);
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

  // the usage ledger and budget overrides (sql-ledger.ts)
  recordUsage(entries: UsageEntry[]): Promise<void> {
    return this.ledger.recordUsage(entries);
  }

  listUsage(filter: {
    userId?: string;
    sessionId?: string;
    sinceIso?: string;
  }): Promise<UsageEntry[]> {
    return this.ledger.listUsage(filter);
  }

  sumUsageCost(filter: SpendFilter): Promise<number> {
    return this.ledger.sumUsageCost(filter);
  }

  getBudgetOverrides(userId: string): Promise<BudgetOverrides> {
    return this.ledger.getBudgetOverrides(userId);
  }

  getUserTeam(userId: string): Promise<UserTeam | null> {
    return this.admin.getUserTeam(userId);
  }

  setBudgetOverride(
    userId: string,
    budget: UserBudgetName,
    limitUsd: number | null,
  ): Promise<void> {
    return this.ledger.setBudgetOverride(userId, budget, limitUsd);
  }

  deleteBudgetOverride(userId: string, budget: UserBudgetName): Promise<boolean> {
    return this.ledger.deleteBudgetOverride(userId, budget);
  }

  // API keys
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
    validUserId(userId);
    const { key, hash, shown } = issueKey("ak_");
    const { rows } = await this.db.query<Row>(
      `WITH u AS (INSERT INTO users (id) VALUES ($1) ON CONFLICT DO NOTHING)
       INSERT INTO api_keys (user_id, key_hash, prefix, name) VALUES ($1, $2, $3, $4)
       RETURNING ${KEY_COLUMNS}`,
      [userId, hash, shown, name ?? null],
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

  async getApiKey(id: string): Promise<ApiKeyRecord | null> {
    if (!UUID.test(id)) return null;
    const { rows } = await this.db.query<Row>(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE id = $1`, [
      id,
    ]);
    return rows[0] ? toKeyRecord(rows[0]) : null;
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

  // message batches (sql-batches.ts)
  createBatch(input: NewBatch): Promise<BatchRecord> {
    return this.batches.create(input);
  }

  getBatch(id: string, userId?: string): Promise<BatchRecord | null> {
    return this.batches.get(id, userId);
  }

  updateBatch(id: string, patch: BatchPatch, leaseOwner?: string): Promise<boolean> {
    return this.batches.update(id, patch, leaseOwner);
  }

  deleteBatch(id: string, where?: { userId?: string; status?: BatchStatus }): Promise<boolean> {
    return this.batches.delete(id, where);
  }

  listBatches(
    userId: string,
    page: { limit: number; afterId?: string; beforeId?: string },
  ): Promise<{ batches: BatchRecord[]; hasMore: boolean } | null> {
    return this.batches.list(userId, page);
  }

  claimBatches(
    owner: string,
    options: { leaseMs: number; limit: number; id?: string },
  ): Promise<BatchRecord[]> {
    return this.batches.claim(owner, options);
  }

  listBatchItems(
    batchId: string,
    options: { pendingOnly?: boolean; afterSeq?: number; limit: number },
  ): Promise<BatchItem[]> {
    return this.batches.listItems(batchId, options);
  }

  saveBatchResults(batchId: string, results: BatchResultInput[]): Promise<string[]> {
    return this.batches.saveResults(batchId, results);
  }

  summarizeBatchResults(batchId: string): Promise<BatchSummary> {
    return this.batches.summarizeResults(batchId);
  }

  listBatchResults(
    batchId: string,
    options: { afterSeq?: number; limit: number },
  ): Promise<BatchResultRow[]> {
    return this.batches.listResults(batchId, options);
  }
}

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
