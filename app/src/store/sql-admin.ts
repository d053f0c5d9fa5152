/**
 * What the admin API keeps (migration 400), over any SqlClient: teams and who is in them, admin
 * keys (hashes only, like users' keys), the audit log of admin actions, and the ledger's totals
 * per user, team or model for chargeback.
 *
 * The ledger records users, not teams: a team's spend is its current members' rows. Moving a user
 * to another team moves their past rows with them in these sums (and in a team budget's window
 * when its counter is next seeded from the ledger); the live counters keep what was held.
 */
import type {
  AdminKeyRecord,
  AdminStore,
  AuditEntry,
  NewAuditEntry,
  NewTeam,
  OidcLogin,
  SqlClient,
  Team,
  UsageGroup,
  UsageGroupBy,
  UsageStatus,
  UserTeam,
} from "./types";
import { TeamNameTakenError } from "./types";
import {
  iso,
  isoOrNull,
  issueKey,
  sha256Hex,
  single,
  UUID,
  validIso,
  validUserId,
  type Row,
} from "./sql-rows";

const TEAM_COLUMNS = "id, name, daily_usd, monthly_usd, created_at, updated_at";
const ADMIN_KEY_COLUMNS = "id, name, prefix, created_at, revoked_at";

const isUniqueViolation = (err: unknown) =>
  typeof err === "object" && err !== null && "code" in err && err.code === "23505";

export class SqlAdmin implements AdminStore {
  constructor(private readonly db: SqlClient) {}

  // ---- teams ---------------------------------------------------------------------------------

  async createTeam(input: NewTeam): Promise<Team> {
    try {
      const { rows } = await this.db.query<Row>(
        `INSERT INTO teams (name, daily_usd, monthly_usd) VALUES ($1, $2, $3) RETURNING ${TEAM_COLUMNS}`,
        [input.name, input.dailyUsd ?? null, input.monthlyUsd ?? null],
      );
      return toTeam(single(rows));
    } catch (err) {
      if (isUniqueViolation(err)) throw new TeamNameTakenError(input.name);
      throw err;
    }
  }

  async listTeams(): Promise<Team[]> {
    const { rows } = await this.db.query<Row>(
      `SELECT ${TEAM_COLUMNS} FROM teams ORDER BY name, id`,
    );
    return rows.map(toTeam);
  }

  async getTeam(id: string): Promise<Team | null> {
    if (!UUID.test(id)) return null;
    const { rows } = await this.db.query<Row>(`SELECT ${TEAM_COLUMNS} FROM teams WHERE id = $1`, [
      id,
    ]);
    return rows[0] ? toTeam(rows[0]) : null;
  }

  async updateTeam(id: string, patch: Partial<NewTeam>): Promise<Team | null> {
    if (!UUID.test(id)) return null;
    const sets: string[] = [];
    const params: unknown[] = [id];
    if (patch.name !== undefined) sets.push(`name = $${params.push(patch.name)}`);
    if (patch.dailyUsd !== undefined) sets.push(`daily_usd = $${params.push(patch.dailyUsd)}`);
    if (patch.monthlyUsd !== undefined)
      sets.push(`monthly_usd = $${params.push(patch.monthlyUsd)}`);
    sets.push("updated_at = now()");
    try {
      const { rows } = await this.db.query<Row>(
        `UPDATE teams SET ${sets.join(", ")} WHERE id = $1 RETURNING ${TEAM_COLUMNS}`,
        params,
      );
      return rows[0] ? toTeam(rows[0]) : null;
    } catch (err) {
      if (isUniqueViolation(err) && patch.name !== undefined)
        throw new TeamNameTakenError(patch.name);
      throw err;
    }
  }

  async deleteTeam(id: string): Promise<boolean> {
    if (!UUID.test(id)) return false;
    const { rows } = await this.db.query(`DELETE FROM teams WHERE id = $1 RETURNING id`, [id]);
    return rows.length > 0;
  }

  async listTeamMembers(teamId: string): Promise<string[]> {
    if (!UUID.test(teamId)) return [];
    const { rows } = await this.db.query<Row>(
      `SELECT user_id FROM team_members WHERE team_id = $1 ORDER BY user_id`,
      [teamId],
    );
    return rows.map((r) => String(r.user_id));
  }

  async setUserTeam(userId: string, teamId: string | null): Promise<void> {
    validUserId(userId);
    if (teamId === null) {
      await this.db.query(`DELETE FROM team_members WHERE user_id = $1`, [userId]);
      return;
    }
    if (!UUID.test(teamId)) throw new RangeError(`team ${teamId} not found`);
    await this.db.query(
      `INSERT INTO team_members (user_id, team_id) VALUES ($1, $2)
       ON CONFLICT (user_id) DO UPDATE SET team_id = EXCLUDED.team_id, added_at = now()`,
      [userId, teamId],
    );
  }

  async getUserTeam(userId: string): Promise<UserTeam | null> {
    const { rows } = await this.db.query<Row>(
      `SELECT t.id, t.name, t.daily_usd, t.monthly_usd
       FROM team_members m JOIN teams t ON t.id = m.team_id WHERE m.user_id = $1`,
      [userId],
    );
    const r = rows[0];
    return r
      ? {
          id: String(r.id),
          name: String(r.name),
          dailyUsd: numberOrNull(r.daily_usd),
          monthlyUsd: numberOrNull(r.monthly_usd),
        }
      : null;
  }

  // ---- admin keys ----------------------------------------------------------------------------

  async createAdminKey(name: string): Promise<{ key: string; record: AdminKeyRecord }> {
    const { key, hash, shown } = issueKey("adm_");
    const { rows } = await this.db.query<Row>(
      `INSERT INTO admin_keys (name, key_hash, prefix) VALUES ($1, $2, $3) RETURNING ${ADMIN_KEY_COLUMNS}`,
      [name, hash, shown],
    );
    return { key, record: toAdminKey(single(rows)) };
  }

  async findAdminByKey(key: string): Promise<string | null> {
    const { rows } = await this.db.query<Row>(
      `SELECT name FROM admin_keys WHERE key_hash = $1 AND revoked_at IS NULL`,
      [sha256Hex(key)],
    );
    return rows[0] ? String(rows[0].name) : null;
  }

  async listAdminKeys(): Promise<AdminKeyRecord[]> {
    const { rows } = await this.db.query<Row>(
      `SELECT ${ADMIN_KEY_COLUMNS} FROM admin_keys ORDER BY created_at, id`,
    );
    return rows.map(toAdminKey);
  }

  async revokeAdminKey(id: string): Promise<boolean> {
    if (!UUID.test(id)) return false;
    const { rows } = await this.db.query(
      `UPDATE admin_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING id`,
      [id],
    );
    return rows.length > 0;
  }

  // ---- operator console sign-in (OIDC) ---------------------------------------------------------

  async saveOidcLogin(login: OidcLogin, max: number): Promise<boolean> {
    // Expired sign-ins go as new ones come; the cap bounds what an unauthenticated caller can add.
    const { rows } = await this.db.query<Row>(
      `WITH purged AS (DELETE FROM oidc_logins WHERE expires_at < now() RETURNING 1)
       INSERT INTO oidc_logins (state_hash, browser_hash, nonce, code_verifier, redirect_uri, expires_at)
       SELECT $1, $2, $3, $4, $5, $6::timestamptz
       WHERE (SELECT count(*) FROM oidc_logins WHERE expires_at >= now()) < $7
       RETURNING state_hash`,
      [
        sha256Hex(login.state),
        login.browserHash,
        login.nonce,
        login.codeVerifier,
        login.redirectUri,
        login.expiresAt,
        max,
      ],
    );
    return rows.length > 0;
  }

  async takeOidcLogin(state: string): Promise<OidcLogin | null> {
    const { rows } = await this.db.query<Row>(
      `DELETE FROM oidc_logins WHERE state_hash = $1
       RETURNING browser_hash, nonce, code_verifier, redirect_uri, expires_at, expires_at > now() AS live`,
      [sha256Hex(state)],
    );
    const r = rows[0];
    if (!r || r.live !== true) return null;
    return {
      state,
      browserHash: String(r.browser_hash),
      nonce: String(r.nonce),
      codeVerifier: String(r.code_verifier),
      redirectUri: String(r.redirect_uri),
      expiresAt: iso(r.expires_at),
    };
  }

  async createConsoleSession(input: {
    email: string;
    subject: string;
    expiresAt: string;
  }): Promise<{ token: string; expiresAt: string }> {
    const { key: token, hash } = issueKey("cs_");
    // Sessions a day past their end are of no use even to an investigation: the audit log has them.
    await this.db.query(`DELETE FROM console_sessions WHERE expires_at < now() - interval '1 day'`);
    const { rows } = await this.db.query<Row>(
      `INSERT INTO console_sessions (token_hash, email, subject, expires_at)
       VALUES ($1, $2, $3, $4::timestamptz) RETURNING expires_at`,
      [hash, input.email, input.subject, input.expiresAt],
    );
    return { token, expiresAt: iso(single(rows).expires_at) };
  }

  async findConsoleSession(token: string): Promise<{ email: string; expiresAt: string } | null> {
    const { rows } = await this.db.query<Row>(
      `SELECT email, expires_at FROM console_sessions
       WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > now()`,
      [sha256Hex(token)],
    );
    const r = rows[0];
    return r ? { email: String(r.email), expiresAt: iso(r.expires_at) } : null;
  }

  async revokeConsoleSession(token: string): Promise<boolean> {
    const { rows } = await this.db.query(
      `UPDATE console_sessions SET revoked_at = now()
       WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > now() RETURNING id`,
      [sha256Hex(token)],
    );
    return rows.length > 0;
  }

  // ---- audit log -----------------------------------------------------------------------------

  async recordAudit(entry: NewAuditEntry): Promise<void> {
    await this.db.query(
      `INSERT INTO admin_audit (admin, action, target, ip, user_agent, details)
       VALUES ($1, $2, $3, $4, $5, $6::jsonb)`,
      [
        entry.admin,
        entry.action,
        entry.target,
        entry.ip,
        entry.userAgent,
        JSON.stringify(entry.details),
      ],
    );
  }

  async listAudit(limit: number): Promise<AuditEntry[]> {
    const { rows } = await this.db.query<Row>(
      `SELECT id, at, admin, action, target, ip, user_agent, details
       FROM admin_audit ORDER BY at DESC, id DESC LIMIT $1`,
      [limit],
    );
    return rows.map((r) => ({
      id: String(r.id),
      at: iso(r.at),
      admin: String(r.admin),
      action: String(r.action),
      target: stringOrNull(r.target),
      ip: stringOrNull(r.ip),
      userAgent: stringOrNull(r.user_agent),
      details: isRecord(r.details) ? r.details : {},
    }));
  }

  // ---- chargeback ----------------------------------------------------------------------------

  async requestsByStatus(range: {
    sinceIso?: string;
    untilIso?: string;
  }): Promise<Array<{ status: UsageStatus; requests: number }>> {
    const { filter, params } = rangeFilter(range);
    const { rows } = await this.db.query<Row>(
      `SELECT l.status AS status, count(*) AS requests FROM usage_ledger l ${filter}
       GROUP BY l.status ORDER BY l.status`,
      params,
    );
    return rows.map((r) => ({
      status: String(r.status) as UsageStatus,
      requests: Number(r.requests),
    }));
  }

  async usageBy(
    groupBy: UsageGroupBy,
    range: { sinceIso?: string; untilIso?: string },
  ): Promise<UsageGroup[]> {
    const { filter, params } = rangeFilter(range);
    const sums = `count(*) AS requests, sum(l.input_tokens) AS input_tokens,
      sum(l.output_tokens) AS output_tokens,
      sum(l.cache_creation_input_tokens) AS cache_creation_input_tokens,
      sum(l.cache_read_input_tokens) AS cache_read_input_tokens, sum(l.cost_usd) AS cost_usd`;
    const query =
      groupBy === "team"
        ? `SELECT m.team_id AS key, t.name AS name, ${sums} FROM usage_ledger l
           LEFT JOIN team_members m ON m.user_id = l.user_id LEFT JOIN teams t ON t.id = m.team_id
           ${filter} GROUP BY m.team_id, t.name ORDER BY cost_usd DESC, key`
        : `SELECT l.${groupBy === "user" ? "user_id" : "model"} AS key, ${sums} FROM usage_ledger l
           ${filter} GROUP BY key ORDER BY cost_usd DESC, key`;
    const { rows } = await this.db.query<Row>(query, params);
    return rows.map((r) => ({
      key: stringOrNull(r.key),
      ...(groupBy === "team" ? { name: stringOrNull(r.name) } : {}),
      requests: Number(r.requests),
      inputTokens: Number(r.input_tokens),
      outputTokens: Number(r.output_tokens),
      cacheCreationInputTokens: Number(r.cache_creation_input_tokens),
      cacheReadInputTokens: Number(r.cache_read_input_tokens),
      costUsd: Number(r.cost_usd),
    }));
  }
}

/** The WHERE clause of a ledger time range: [sinceIso, untilIso) on `l.created_at`. */
function rangeFilter(range: { sinceIso?: string; untilIso?: string }): {
  filter: string;
  params: unknown[];
} {
  const where: string[] = [];
  const params: unknown[] = [];
  if (range.sinceIso !== undefined)
    where.push(`l.created_at >= $${params.push(validIso(range.sinceIso, "sinceIso"))}`);
  if (range.untilIso !== undefined)
    where.push(`l.created_at < $${params.push(validIso(range.untilIso, "untilIso"))}`);
  return { filter: where.length ? `WHERE ${where.join(" AND ")}` : "", params };
}

function toTeam(r: Row): Team {
  return {
    id: String(r.id),
    name: String(r.name),
    dailyUsd: numberOrNull(r.daily_usd),
    monthlyUsd: numberOrNull(r.monthly_usd),
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
  };
}

function toAdminKey(r: Row): AdminKeyRecord {
  return {
    id: String(r.id),
    name: String(r.name),
    prefix: String(r.prefix),
    createdAt: iso(r.created_at),
    revokedAt: isoOrNull(r.revoked_at),
  };
}

const numberOrNull = (v: unknown) => (v === null || v === undefined ? null : Number(v));
const stringOrNull = (v: unknown) => (v === null || v === undefined ? null : String(v));
const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
