/** Message batches and their results, over any SqlClient (the life cycle is batch/service.ts). */
import type {
  BatchCounts,
  BatchItem,
  BatchPatch,
  BatchRecord,
  BatchResultInput,
  BatchResultRow,
  BatchResultType,
  BatchStatus,
  BatchSummary,
  NewBatch,
  SqlClient,
} from "./types";
import { iso, isoOrNull, MAX_PARAMS, single, UUID, type Row } from "./sql-rows";

export class SqlBatches {
  constructor(private readonly db: SqlClient) {}

  async create(input: NewBatch): Promise<BatchRecord> {
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

  async get(id: string, userId?: string): Promise<BatchRecord | null> {
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

  async update(id: string, patch: BatchPatch, leaseOwner?: string): Promise<boolean> {
    if (!UUID.test(id)) return false;
    const params: unknown[] = [id];
    const set: string[] = ["updated_at = now()"];
    if (patch.status !== undefined) {
      set.push(`status = $${params.push(patch.status)}`);
      if (patch.status === "ended") set.push("ended_at = coalesce(ended_at, now())");
      if (patch.status === "canceling")
        set.push("cancel_initiated_at = coalesce(cancel_initiated_at, now())");
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
    const inStatus =
      patch.ifStatus === undefined ? "" : ` AND status = ANY($${params.push(patch.ifStatus)})`;
    const { rows } = await this.db.query(
      `UPDATE batches SET ${set.join(", ")} WHERE id = $1${owned}${inStatus} RETURNING id`,
      params,
    );
    return rows.length > 0;
  }

  async delete(
    id: string,
    where: { userId?: string; status?: BatchStatus } = {},
  ): Promise<boolean> {
    if (!UUID.test(id)) return false;
    const params: unknown[] = [id];
    let sql = `DELETE FROM batches WHERE id = $1`;
    if (where.userId !== undefined) sql += ` AND user_id = $${params.push(where.userId)}`;
    if (where.status !== undefined) sql += ` AND status = $${params.push(where.status)}`;
    const { rows } = await this.db.query(`${sql} RETURNING id`, params);
    return rows.length > 0;
  }

  async list(
    userId: string,
    page: { limit: number; afterId?: string; beforeId?: string },
  ): Promise<{ batches: BatchRecord[]; hasMore: boolean } | null> {
    const cursor = page.beforeId ?? page.afterId;
    const params: unknown[] = [userId, page.limit + 1];
    let after = "";
    if (cursor !== undefined) {
      if (!UUID.test(cursor)) return null;
      const { rows } = await this.db.query(`SELECT 1 FROM batches WHERE id = $1 AND user_id = $2`, [
        cursor,
        userId,
      ]);
      if (rows.length === 0) return null;
      // Newest first: the page after the cursor is older, the page before it newer (nearest first,
      // then turned around). (created_at, id) orders batches created in the same instant too.
      after = ` AND (created_at, id) ${page.beforeId ? ">" : "<"}
        (SELECT created_at, id FROM batches WHERE id = $${params.push(cursor)})`;
    }
    const order = page.beforeId ? "ASC" : "DESC";
    const { rows } = await this.db.query<Row>(
      `SELECT ${BATCH_COLUMNS} FROM batches WHERE user_id = $1${after}
       ORDER BY created_at ${order}, id ${order} LIMIT $2`,
      params,
    );
    const batches = rows.slice(0, page.limit).map(toBatch);
    if (page.beforeId) batches.reverse();
    return { batches, hasMore: rows.length > page.limit };
  }

  async claim(
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

  async listItems(
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

  async saveResults(batchId: string, results: BatchResultInput[]): Promise<string[]> {
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

  async summarizeResults(batchId: string): Promise<BatchSummary> {
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

  async listResults(
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

const COUNT_KEYS = ["processing", "succeeded", "errored", "canceled", "expired"] as const;
const BATCH_COLUMNS =
  "id, user_id, status, mode, synthetic, upstream_id, request_count, processing, succeeded, errored, " +
  "canceled, expired, reserved_usd, cost_usd, error, poll_attempts, next_poll_at, created_at, updated_at, ended_at, " +
  "cancel_initiated_at";

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
    cancelInitiatedAt: isoOrNull(r.cancel_initiated_at),
  };
}
