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
