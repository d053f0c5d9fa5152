/** SqlClient over a `pg` connection pool: the production driver. */
import { Pool, type PoolClient, type PoolConfig, type QueryResultRow } from "pg";
import type { SqlClient, StoreLogger } from "./types";

export interface PostgresOptions {
  /** @default 10 */
  max?: number;
  /** Shown in pg_stat_activity. @default "agent-service" */
  applicationName?: string;
  /** Server-side limit on one statement. @default 30000 */
  statementTimeoutMs?: number;
  /** How long to wait for a connection (new or from the pool). @default 5000 */
  connectionTimeoutMs?: number;
  /** @default 30000 */
  idleTimeoutMs?: number;
  /** Where idle-connection errors go. @default console.warn */
  logger?: StoreLogger;
  /** Password when the URL carries none (deployed targets read it from the secret store). */
  password?: string;
}

/**
 * Pool settings for a connection URL. `sslmode` keeps its libpq meaning (`require` encrypts
 * without verifying the certificate; `verify-full` verifies it): node-postgres otherwise treats
 * `require` as `verify-full`, which rejects the private CAs of RDS and Cloud SQL.
 */
export function poolConfig(url: string, options: PostgresOptions = {}): PoolConfig {
  const parsed = new URL(url);
  if (parsed.searchParams.has("sslmode") && !parsed.searchParams.has("uselibpqcompat")) {
    parsed.searchParams.set("uselibpqcompat", "true");
  }
  const statementTimeout = options.statementTimeoutMs ?? 30_000;
  return {
    connectionString: parsed.toString(),
    max: options.max ?? 10,
    application_name: options.applicationName ?? "agent-service",
    statement_timeout: statementTimeout,
    // A transaction left open by a crashed request must not hold locks for long.
    idle_in_transaction_session_timeout: 60_000,
    // statement_timeout cannot fire when the server is unreachable; this client-side limit can.
    query_timeout: statementTimeout + 5_000,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 5_000,
    idleTimeoutMillis: options.idleTimeoutMs ?? 30_000,
    // Managed databases sit behind NATs and load balancers that drop silent connections.
    keepAlive: true,
    ...(options.password && !parsed.password ? { password: options.password } : {}),
  };
}

export function createPostgresClient(url: string, options: PostgresOptions = {}): SqlClient {
  const pool = new Pool(poolConfig(url, options));
  const logger = options.logger ?? { warn: (obj: object, msg?: string) => console.warn(msg, obj) };
  // Without a listener, an idle client's error (database restart, failover) is an uncaught
  // 'error' event and kills the process. The pool drops that client and makes a new one later.
  pool.on("error", (err) => logger.warn({ err: err.message }, "postgres: idle connection error"));

  let closing: Promise<void> | undefined;
  const query = async <T>(runner: Pool | PoolClient, text: string, params?: unknown[]) => {
    const result = await runner.query<QueryResultRow>(text, params);
    return { rows: result.rows as T[] };
  };

  return {
    kind: "postgres",
    query: (text, params) => query(pool, text, params),
    async transaction(fn) {
      const conn = await pool.connect();
      let broken: Error | undefined;
      try {
        await conn.query("BEGIN");
        const result = await fn({ query: (text, params) => query(conn, text, params) });
        await conn.query("COMMIT");
        return result;
      } catch (err) {
        try {
          await conn.query("ROLLBACK");
        } catch (rollbackErr) {
          // The connection state is unknown: destroy it rather than return it to the pool.
          broken = rollbackErr as Error;
        }
        throw err;
      } finally {
        conn.release(broken);
      }
    },
    close() {
      closing ??= pool.end();
      return closing;
    },
  };
}
