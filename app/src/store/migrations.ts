/**
 * Versioned schema migrations, shared by PostgreSQL and PGlite.
 *
 * To change the schema, append a migration with the next version; never edit or reorder one
 * that has shipped, since databases record only the version number. Each statement is a separate
 * string because PGlite's extended-protocol `query` runs one statement at a time.
 *
 * Planned additions (not needed yet): `user_budgets (user_id -> users, daily/monthly limits)`,
 * `idempotency_keys (user_id, key, request_hash, response, expires_at)` and
 * `batches (id, user_id, status, counts, timestamps)`. The ledger already carries `request_id`
 * and `kind`, so batch and idempotent requests fit it without change.
 */
import { overridableCheck } from "../budget/kinds";
import type { SqlClient } from "./types";

export interface Migration {
  version: number;
  name: string;
  statements: string[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "users, api keys, sessions, messages, usage ledger",
    statements: [
      `CREATE TABLE users (
        id text PRIMARY KEY,
        created_at timestamptz NOT NULL DEFAULT now()
      )`,
      `CREATE TABLE api_keys (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        key_hash text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
        prefix text NOT NULL,
        name text,
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz,
        last_used_at timestamptz
      )`,
      `CREATE INDEX api_keys_user_idx ON api_keys (user_id, created_at)`,
      `CREATE TABLE sessions (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        model text,
        system text,
        metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`,
      `CREATE INDEX sessions_user_idx ON sessions (user_id, created_at)`,
      // The primary key is what makes two writers appending at the same position conflict.
      `CREATE TABLE messages (
        session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        seq integer NOT NULL CHECK (seq >= 0),
        role text NOT NULL CHECK (role IN ('user', 'assistant')),
        content jsonb NOT NULL,
        model text,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (session_id, seq)
      )`,
      // No foreign keys: the ledger is an append-only spend record that must accept writes for
      // users known only from AGENT_API_KEYS and must outlive deleted sessions.
      `CREATE TABLE usage_ledger (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        request_id text NOT NULL,
        user_id text NOT NULL,
        session_id uuid,
        model text NOT NULL,
        input_tokens bigint NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
        output_tokens bigint NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
        cache_creation_input_tokens bigint NOT NULL DEFAULT 0 CHECK (cache_creation_input_tokens >= 0),
        cache_read_input_tokens bigint NOT NULL DEFAULT 0 CHECK (cache_read_input_tokens >= 0),
        cost_usd numeric(20, 10) NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
        status text NOT NULL CHECK (status IN ('ok', 'error', 'aborted', 'cached', 'rejected')),
        kind text NOT NULL DEFAULT 'messages',
        latency_ms integer,
        created_at timestamptz NOT NULL DEFAULT now()
      )`,
      // INCLUDE lets per-user-per-day and per-session spend sums run as index-only scans.
      `CREATE INDEX usage_ledger_user_time_idx ON usage_ledger (user_id, created_at) INCLUDE (cost_usd)`,
      `CREATE INDEX usage_ledger_session_idx ON usage_ledger (session_id, created_at) INCLUDE (cost_usd)
        WHERE session_id IS NOT NULL`,
      `CREATE INDEX usage_ledger_request_idx ON usage_ledger (request_id)`,
    ],
  },
  {
    version: 100,
    name: "per-user budget overrides, ledger index for deployment-wide daily spend",
    statements: [
      // No foreign key to users, like the ledger: users known only from AGENT_API_KEYS have no row.
      // A NULL limit means "no limit of this kind for this user", overriding a configured default.
      `CREATE TABLE budget_overrides (
        user_id text NOT NULL,
        budget text NOT NULL CHECK (${overridableCheck(100)}),
        limit_usd numeric(20, 10) CHECK (limit_usd IS NULL OR limit_usd >= 0),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (user_id, budget)
      )`,
      // The deployment's daily budget is re-seeded from the sum over all users for a UTC day.
      `CREATE INDEX usage_ledger_time_idx ON usage_ledger (created_at) INCLUDE (cost_usd)`,
    ],
  },
  {
    version: 200,
    name: "idempotency keys",
    statements: [
      // Scoped per user; no foreign key, as users known only from AGENT_API_KEYS have no row.
      // A row is in_progress while its request runs (locked_until bounds a crashed replica's
      // hold) and completed once a 2xx response is stored; failed requests delete their row.
      `CREATE TABLE idempotency_keys (
        user_id text NOT NULL,
        key text NOT NULL,
        request_hash text NOT NULL,
        state text NOT NULL CHECK (state IN ('in_progress', 'completed')),
        status integer,
        headers jsonb,
        body text,
        locked_until timestamptz NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        PRIMARY KEY (user_id, key)
      )`,
      `CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at)`,
    ],
  },
  {
    version: 300,
    name: "message batches and their results",
    statements: [
      // No foreign key to users, like the ledger: users known only from AGENT_API_KEYS have no row.
      // The lease (lease_owner, lease_until) is what lets exactly one replica work on a batch at a
      // time without holding a transaction open across upstream calls; a replica that dies simply
      // lets its lease run out and another resumes the batch.
      `CREATE TABLE batches (
        id uuid PRIMARY KEY,
        user_id text NOT NULL,
        status text NOT NULL CHECK (status IN ('submitting', 'in_progress', 'ended')),
        mode text NOT NULL CHECK (mode IN ('upstream', 'local')),
        synthetic boolean NOT NULL DEFAULT false,
        upstream_id text UNIQUE,
        request_count integer NOT NULL CHECK (request_count > 0),
        processing integer NOT NULL DEFAULT 0 CHECK (processing >= 0),
        succeeded integer NOT NULL DEFAULT 0 CHECK (succeeded >= 0),
        errored integer NOT NULL DEFAULT 0 CHECK (errored >= 0),
        canceled integer NOT NULL DEFAULT 0 CHECK (canceled >= 0),
        expired integer NOT NULL DEFAULT 0 CHECK (expired >= 0),
        reserved_usd numeric(20, 10) NOT NULL DEFAULT 0 CHECK (reserved_usd >= 0),
        cost_usd numeric(20, 10) NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
        error text,
        poll_attempts integer NOT NULL DEFAULT 0,
        next_poll_at timestamptz NOT NULL DEFAULT now(),
        lease_owner text,
        lease_until timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        ended_at timestamptz
      )`,
      `CREATE INDEX batches_user_idx ON batches (user_id, created_at)`,
      // The poller's scan: only unfinished batches, by when they are due.
      `CREATE INDEX batches_due_idx ON batches (next_poll_at) WHERE status <> 'ended'`,
      // One row per request: params until the result is in (then dropped: prompts can hold
      // personal data), the result as the Message Batches API shapes it, and its usage.
      `CREATE TABLE batch_results (
        batch_id uuid NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
        seq integer NOT NULL CHECK (seq >= 0),
        custom_id text NOT NULL,
        params jsonb,
        result_type text CHECK (result_type IN ('succeeded', 'errored', 'canceled', 'expired')),
        result jsonb,
        model text,
        input_tokens bigint NOT NULL DEFAULT 0,
        output_tokens bigint NOT NULL DEFAULT 0,
        cache_creation_input_tokens bigint NOT NULL DEFAULT 0,
        cache_read_input_tokens bigint NOT NULL DEFAULT 0,
        cost_usd numeric(20, 10) NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
        completed_at timestamptz,
        PRIMARY KEY (batch_id, seq),
        UNIQUE (batch_id, custom_id)
      )`,
    ],
  },
  {
    version: 301,
    name: "batch cancellation",
    statements: [
      // The inline CHECK of migration 300 got Postgres's default name, <table>_<column>_check.
      `ALTER TABLE batches DROP CONSTRAINT batches_status_check`,
      `ALTER TABLE batches ADD CONSTRAINT batches_status_check
        CHECK (status IN ('submitting', 'in_progress', 'canceling', 'ended'))`,
      `ALTER TABLE batches ADD COLUMN cancel_initiated_at timestamptz`,
    ],
  },
  {
    version: 400,
    name: "teams, admin keys, audit log",
    statements: [
      // A team's limits are its budgets (budget/kinds.ts, `teamLimit`); NULL: no limit of that kind.
      `CREATE TABLE teams (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 128),
        daily_usd numeric(20, 10) CHECK (daily_usd IS NULL OR daily_usd > 0),
        monthly_usd numeric(20, 10) CHECK (monthly_usd IS NULL OR monthly_usd > 0),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`,
      // The primary key is what keeps a user in at most one team. No foreign key to users, like
      // the ledger: users known only from AGENT_API_KEYS have no row. Deleting a team frees its members.
      `CREATE TABLE team_members (
        user_id text PRIMARY KEY,
        team_id uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
        added_at timestamptz NOT NULL DEFAULT now()
      )`,
      `CREATE INDEX team_members_team_idx ON team_members (team_id)`,
      // Operators' keys for /v1/admin, stored as hashes like users' keys; apart from them, so a
      // user key can never be promoted by a row in the wrong table.
      `CREATE TABLE admin_keys (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL,
        key_hash text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
        prefix text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz
      )`,
      // Append-only: who (the admin's name), what (action and target), when, from where.
      `CREATE TABLE admin_audit (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT now(),
        admin text NOT NULL,
        action text NOT NULL,
        target text,
        ip text,
        user_agent text,
        details jsonb NOT NULL DEFAULT '{}'::jsonb
      )`,
      `CREATE INDEX admin_audit_at_idx ON admin_audit (at)`,
    ],
  },
  {
    version: 401,
    name: "operator console OIDC sign-in",
    statements: [
      // A sign-in under way (console/oidc.ts): keyed by the state's hash, taken (deleted) by the
      // callback, so a state works once and on any replica; ten minutes at most.
      `CREATE TABLE oidc_logins (
        state_hash text PRIMARY KEY CHECK (state_hash ~ '^[0-9a-f]{64}$'),
        browser_hash text NOT NULL,
        nonce text NOT NULL,
        code_verifier text NOT NULL,
        redirect_uri text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL
      )`,
      `CREATE INDEX oidc_logins_expires_idx ON oidc_logins (expires_at)`,
      // Console sessions from an OIDC sign-in: the token's hash only, like admin keys; the admin's
      // name (the audit log's) is the e-mail the ID token carried.
      `CREATE TABLE console_sessions (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        token_hash text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
        email text NOT NULL,
        subject text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        revoked_at timestamptz
      )`,
      `CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at)`,
    ],
  },
];

/** Arbitrary constant shared by every replica: the advisory lock that serialises migrations. */
const MIGRATION_LOCK_KEY = 7_204_311_905;

/**
 * Apply pending migrations in one transaction under a transaction-scoped advisory lock, so
 * replicas starting together queue behind the first and then find nothing left to do. A failing
 * migration rolls back entirely. Returns the versions this call applied.
 *
 * Every start but the first finds the schema in place: one read answers that, without the
 * transaction, the lock and the DDL (six round trips, on every Lambda cold start). It needs no
 * lock: a version row commits with its migration's statements, so one that is visible is done.
 */
export async function migrate(
  client: Pick<SqlClient, "transaction"> & Partial<Pick<SqlClient, "query">>,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<number[]> {
  assertOrdered(migrations);
  if (client.query && (await allApplied(client.query.bind(client), migrations))) return [];
  return client.transaction(async (tx) => {
    // Schema changes can outlast the pool's statement timeout, and so can waiting for the lock.
    await tx.query("SET LOCAL statement_timeout = '10min'");
    await tx.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK_KEY]);
    await tx.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    // Read under the lock: another replica may have finished migrating while we waited.
    const { rows } = await tx.query<{ version: number }>("SELECT version FROM schema_migrations");
    const applied = new Set(rows.map((r) => Number(r.version)));
    const done: number[] = [];
    for (const m of migrations) {
      if (applied.has(m.version)) continue;
      for (const statement of m.statements) {
        try {
          await tx.query(statement);
        } catch (err) {
          throw new Error(`migration ${m.version} (${m.name}) failed: ${(err as Error).message}`, {
            cause: err,
          });
        }
      }
      await tx.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [
        m.version,
        m.name,
      ]);
      done.push(m.version);
    }
    return done;
  });
}

/** False when anything is missing, including the table itself (a fresh database) or read access to it. */
async function allApplied(
  query: SqlClient["query"],
  migrations: readonly Migration[],
): Promise<boolean> {
  let rows: Array<{ version: number }>;
  try {
    ({ rows } = await query<{ version: number }>("SELECT version FROM schema_migrations"));
  } catch {
    return false; // the locked path below creates the table, or reports why it cannot
  }
  const applied = new Set(rows.map((r) => Number(r.version)));
  return migrations.every((m) => applied.has(m.version));
}

function assertOrdered(migrations: readonly Migration[]): void {
  migrations.forEach((m, i) => {
    const prev = migrations[i - 1];
    if (!Number.isInteger(m.version) || m.version < 1 || (prev && m.version <= prev.version)) {
      throw new Error(
        `migration versions must be positive integers in increasing order (at "${m.name}")`,
      );
    }
  });
}
