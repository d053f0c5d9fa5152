/**
 * Persistence contract. Two implementations share one SQL schema: `pg` (production) and
 * PGlite (embedded default, when DATABASE_URL is unset).
 */
import type { UserBudgetName } from "../budget/kinds";

/** DATA_DIR value that keeps the embedded database in memory. */
export const MEMORY_DATA_DIR = "memory://";

/** Minimal SQL client both drivers satisfy. Parameters use $1, $2, ... placeholders. */
export interface SqlClient {
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<{ rows: T[] }>;
  /** Run `fn` in one transaction on one connection. */
  transaction<R>(fn: (tx: Pick<SqlClient, "query">) => Promise<R>): Promise<R>;
  close(): Promise<void>;
  readonly kind: "postgres" | "pglite";
}

/** Where the store reports problems it survives; pino's Logger fits. */
export interface StoreLogger {
  warn(obj: object, msg?: string): void;
}

/** A content block as the Anthropic Messages API defines it (text, tool_use, tool_result, ...). */
export type ContentBlock = Record<string, unknown> & { type: string };

export interface StoredMessage {
  /** Position in the session, starting at 0. */
  seq: number;
  role: "user" | "assistant";
  content: ContentBlock[];
  /** The model that produced an assistant message. */
  model: string | null;
  createdAt: string;
}

export interface Session {
  id: string;
  userId: string;
  /** Model the session is pinned to (sticky routing keeps the provider's prompt cache warm). */
  model: string | null;
  system: string | null;
  metadata: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

export interface NewSession {
  userId: string;
  model?: string | null;
  system?: string | null;
  metadata?: Record<string, unknown>;
}

export type UsageStatus = "ok" | "error" | "aborted" | "cached" | "rejected";

export interface UsageEntry {
  requestId: string;
  userId: string;
  sessionId?: string | null;
  model: string;
  inputTokens: number;
  outputTokens: number;
  cacheCreationInputTokens: number;
  cacheReadInputTokens: number;
  costUsd: number;
  status: UsageStatus;
  /** Route or purpose, e.g. "messages", "session", "batch". */
  kind?: string;
  latencyMs?: number;
  /**
   * When the usage happened (ISO 8601). Defaults to the time of the write; set it when entries
   * are queued, so a delayed or retried batch still counts toward the right day's budget.
   */
  createdAt?: string;
}

/** Budgets a user can have their own limit for (budget/kinds.ts: the deployment-wide daily budget cannot). */
export type { UserBudgetName };

/** A user's own limits in USD; `null` means no limit of that kind, absent means the configured default. */
export type BudgetOverrides = Partial<Record<UserBudgetName, number | null>>;

/** Which ledger rows a spend sum covers; `untilIso` is exclusive. */
export interface SpendFilter {
  userId?: string;
  sessionId?: string;
  /** The rows of the team's current members (the ledger records users, not teams). */
  teamId?: string;
  sinceIso?: string;
  untilIso?: string;
}

export interface ApiKeyRecord {
  id: string;
  userId: string;
  name: string | null;
  /** First characters of the key, safe to show. */
  prefix: string;
  createdAt: string;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

/** A team (admin API, migration 400): its members' requests also count against its budgets. */
export interface Team {
  id: string;
  name: string;
  /** The team's daily budget (`team_daily`); null: none. */
  dailyUsd: number | null;
  /** The team's monthly budget (`team_monthly`); null: none. */
  monthlyUsd: number | null;
  createdAt: string;
  updatedAt: string;
}

/** The team a user belongs to, as budgets need it. */
export type UserTeam = Pick<Team, "id" | "name" | "dailyUsd" | "monthlyUsd">;

export interface NewTeam {
  name: string;
  dailyUsd?: number | null;
  monthlyUsd?: number | null;
}

/** Thrown when a team name is taken. */
export class TeamNameTakenError extends Error {
  constructor(name: string) {
    super(`a team named "${name}" already exists`);
    this.name = "TeamNameTakenError";
  }
}

export interface AdminKeyRecord {
  id: string;
  name: string;
  prefix: string;
  createdAt: string;
  revokedAt: string | null;
}

/** One admin action: who, what, when, from where. */
export interface AuditEntry {
  id: string;
  at: string;
  admin: string;
  action: string;
  target: string | null;
  ip: string | null;
  userAgent: string | null;
  details: Record<string, unknown>;
}

export type NewAuditEntry = Omit<AuditEntry, "id" | "at">;

/** An OIDC sign-in under way: what the callback needs (console/oidc.ts). */
export interface OidcLogin {
  state: string;
  /** SHA-256 of the random value in the browser's sign-in cookie, binding the callback to it. */
  browserHash: string;
  nonce: string;
  codeVerifier: string;
  redirectUri: string;
  expiresAt: string;
}

export type UsageGroupBy = "user" | "team" | "model";

/** Ledger totals of one group (a user, a team, a model) over a time range. */
export interface UsageGroup {
  /** The user id, team id or model; null for the rows of users in no team (group_by=team). */
  key: string | null;
  /** The team's name (group_by=team). */
  name?: string | null;
  requests: number;
  inputTokens: number;
  outputTokens: number;
  cacheCreationInputTokens: number;
  cacheReadInputTokens: number;
  costUsd: number;
}

/** What the admin API keeps: teams and membership, admin keys, the audit log, chargeback sums. */
export interface AdminStore {
  createTeam(input: NewTeam): Promise<Team>;
  listTeams(): Promise<Team[]>;
  getTeam(id: string): Promise<Team | null>;
  /** Null when there is no such team. Absent fields keep their value; null lifts a limit. */
  updateTeam(id: string, patch: Partial<NewTeam>): Promise<Team | null>;
  /** Its members are then in no team. */
  deleteTeam(id: string): Promise<boolean>;
  listTeamMembers(teamId: string): Promise<string[]>;
  /** Put a user in a team (leaving any other), or in none with null. */
  setUserTeam(userId: string, teamId: string | null): Promise<void>;

  /** Create an admin key; the plaintext is returned once and never stored. */
  createAdminKey(name: string): Promise<{ key: string; record: AdminKeyRecord }>;
  /** The admin's name for a presented key, or null. */
  findAdminByKey(key: string): Promise<string | null>;
  listAdminKeys(): Promise<AdminKeyRecord[]>;
  revokeAdminKey(id: string): Promise<boolean>;

  /**
   * A sign-in under way (OIDC): kept until `takeOidcLogin` or `expiresAt`. False, and nothing
   * kept, when `max` sign-ins are already under way.
   */
  saveOidcLogin(login: OidcLogin, max: number): Promise<boolean>;
  /** The sign-in of this state, removed so it is taken once; null if unknown or expired. */
  takeOidcLogin(state: string): Promise<OidcLogin | null>;
  /** A console session for an admin signed in through OIDC: the token, shown once; its hash kept. */
  createConsoleSession(input: {
    email: string;
    subject: string;
    expiresAt: string;
  }): Promise<{ token: string; expiresAt: string }>;
  /** The session's e-mail and expiry, or null when unknown, expired or revoked. */
  findConsoleSession(token: string): Promise<{ email: string; expiresAt: string } | null>;
  /** False when there was no live session of this token. */
  revokeConsoleSession(token: string): Promise<boolean>;

  recordAudit(entry: NewAuditEntry): Promise<void>;
  /** Newest first. */
  listAudit(limit: number): Promise<AuditEntry[]>;

  /** Ledger rows per status (ok, cached, error, ...) over [sinceIso, untilIso): the console's request counts. */
  requestsByStatus(range: {
    sinceIso?: string;
    untilIso?: string;
  }): Promise<Array<{ status: UsageStatus; requests: number }>>;
  /** Ledger totals per group over [sinceIso, untilIso), by cost, highest first. */
  usageBy(
    groupBy: UsageGroupBy,
    range: { sinceIso?: string; untilIso?: string },
  ): Promise<UsageGroup[]>;
}

export interface Store {
  readonly kind: "postgres" | "pglite";
  /** Teams, admin keys, the audit log and chargeback sums (the admin API). */
  readonly admin: AdminStore;
  /** Apply pending migrations; idempotent and safe when several replicas start at once. */
  migrate(): Promise<void>;
  /** Cheap liveness query for /ready. Throws when the database does not answer. */
  ping(): Promise<void>;
  close(): Promise<void>;

  createSession(input: NewSession): Promise<Session>;
  /** Null when the session does not exist or belongs to another user. */
  getSession(id: string, userId: string): Promise<Session | null>;
  setSessionModel(id: string, model: string): Promise<void>;
  /**
   * Append messages at the end of the session's history, in order. Fails (and stores nothing)
   * if another writer appended concurrently, so histories never interleave.
   */
  appendMessages(
    sessionId: string,
    expectedNextSeq: number,
    messages: Array<{ role: "user" | "assistant"; content: ContentBlock[]; model?: string | null }>,
  ): Promise<void>;
  listMessages(sessionId: string): Promise<StoredMessage[]>;

  recordUsage(entries: UsageEntry[]): Promise<void>;
  listUsage(filter: {
    userId?: string;
    sessionId?: string;
    sinceIso?: string;
  }): Promise<UsageEntry[]>;
  /** Sum of cost_usd over the ledger rows the filter selects (budgets seed their counters from it). */
  sumUsageCost(filter: SpendFilter): Promise<number>;

  getBudgetOverrides(userId: string): Promise<BudgetOverrides>;
  /** The user's team with its limits, or null (budgets: team kinds). */
  getUserTeam(userId: string): Promise<UserTeam | null>;
  /** Set a user's own limit for one budget; `null` lifts that kind of limit for the user. */
  setBudgetOverride(userId: string, budget: UserBudgetName, limitUsd: number | null): Promise<void>;
  /** Drop a user's override, returning them to the configured default. */
  deleteBudgetOverride(userId: string, budget: UserBudgetName): Promise<boolean>;

  /** Resolve a presented API key to its user, or null. Keys are stored as SHA-256 hashes. */
  findUserByApiKey(key: string): Promise<string | null>;
  /** Create a key; the plaintext is returned once and never stored. */
  createApiKey(userId: string, name?: string): Promise<{ key: string; record: ApiKeyRecord }>;
  listApiKeys(userId?: string): Promise<ApiKeyRecord[]>;
  getApiKey(id: string): Promise<ApiKeyRecord | null>;
  revokeApiKey(id: string): Promise<boolean>;

  // idempotency keys (see IdempotencyRecord)
  /**
   * Take `key` for a request, or learn what already holds it. Claims when the key is unused,
   * expired, or held by a stale attempt of the same request (its lock ran out: a crashed replica).
   */
  claimIdempotencyKey(claim: IdempotencyClaim): Promise<IdempotencyClaimResult>;
  /** Store the response of a claimed key; false when the claim was lost meanwhile. */
  completeIdempotencyKey(
    userId: string,
    key: string,
    response: IdempotentResponse,
  ): Promise<boolean>;
  /** Give up a claim without a response (a failed request), so the client may retry with the same key. */
  releaseIdempotencyKey(userId: string, key: string): Promise<void>;
  /** Delete up to `limit` expired records; returns how many went. */
  purgeIdempotencyKeys(limit?: number): Promise<number>;

  // batches (see BatchRecord; migration 300)
  /** Insert a batch and its requests in one transaction. */
  createBatch(input: NewBatch): Promise<BatchRecord>;
  /** Null when the batch does not exist or (with `userId`) belongs to another user. */
  getBatch(id: string, userId?: string): Promise<BatchRecord | null>;
  /**
   * Change a batch. With `leaseOwner`, only while that owner holds the batch's lease; `releaseLease`
   * gives the lease up. Returns false when nothing was updated.
   */
  updateBatch(id: string, patch: BatchPatch, leaseOwner?: string): Promise<boolean>;
  /**
   * Delete a batch and its results (a submission the upstream refused; a client's DELETE), only
   * where `where` holds. Returns whether a batch went. Its ledger rows stay: the usage happened.
   */
  deleteBatch(id: string, where?: { userId?: string; status?: BatchStatus }): Promise<boolean>;
  /**
   * A user's batches, newest first, `limit` of them after (older than) or before (newer than) the
   * batch `afterId` / `beforeId`, and whether there are more that way. Null when the cursor is
   * not one of the user's batches.
   */
  listBatches(
    userId: string,
    page: { limit: number; afterId?: string; beforeId?: string },
  ): Promise<{ batches: BatchRecord[]; hasMore: boolean } | null>;
  /**
   * Lease up to `limit` batches that are due (not ended, next_poll_at passed, no live lease) to
   * `owner` for `leaseMs`, skipping rows other replicas are claiming (FOR UPDATE SKIP LOCKED).
   * With `id`, only that batch is considered.
   */
  claimBatches(
    owner: string,
    options: { leaseMs: number; limit: number; id?: string },
  ): Promise<BatchRecord[]>;
  /** Requests of a batch in order; `pendingOnly` leaves out those that have a result. */
  listBatchItems(
    batchId: string,
    options: { pendingOnly?: boolean; afterSeq?: number; limit: number },
  ): Promise<BatchItem[]>;
  /** Store results for requests that have none yet; returns the custom_ids actually stored. */
  saveBatchResults(batchId: string, results: BatchResultInput[]): Promise<string[]>;
  /** Results by type, requests still without one, and the summed cost. */
  summarizeBatchResults(batchId: string): Promise<BatchSummary>;
  /** Stored results in request order, after `afterSeq`. */
  listBatchResults(
    batchId: string,
    options: { afterSeq?: number; limit: number },
  ): Promise<BatchResultRow[]>;
}

/** Thrown by appendMessages when the history moved underneath the writer. */
export class ConcurrentAppendError extends Error {
  constructor(sessionId: string) {
    super(`session ${sessionId} was modified concurrently`);
    this.name = "ConcurrentAppendError";
  }
}

/** The response replayed for a repeated Idempotency-Key: status, a subset of headers, and the whole body. */
export interface IdempotentResponse {
  status: number;
  headers: Record<string, string>;
  /** JSON text, or the full SSE event stream text. */
  body: string;
}

export interface IdempotencyClaim {
  userId: string;
  key: string;
  /** Fingerprint of method, path and body: the same key with another request is a conflict. */
  requestHash: string;
  /** How long a completed response is replayed. */
  ttlSeconds: number;
  /** How long an unfinished claim blocks the key before another attempt may take it over. */
  lockSeconds: number;
}

export interface IdempotencyRecord {
  state: "in_progress" | "completed";
  requestHash: string;
  response: IdempotentResponse | null;
  createdAt: string;
  expiresAt: string;
}

export type IdempotencyClaimResult =
  { claimed: true } | { claimed: false; record: IdempotencyRecord };

// ---- batches ---------------------------------------------------------------------------------

/**
 * `submitting`: stored, not yet accepted upstream; `in_progress`: upstream (or the local worker)
 * is processing it; `canceling`: a cancel was asked for, requests not yet run are being canceled;
 * `ended`: every request has a result.
 */
export type BatchStatus = "submitting" | "in_progress" | "canceling" | "ended";
/** `upstream`: the Message Batches API; `local`: requests run one by one through the service's model provider. */
export type BatchMode = "upstream" | "local";
export type BatchResultType = "succeeded" | "errored" | "canceled" | "expired";

export interface BatchCounts {
  processing: number;
  succeeded: number;
  errored: number;
  canceled: number;
  expired: number;
}

export interface BatchRecord {
  id: string;
  userId: string;
  status: BatchStatus;
  mode: BatchMode;
  /** Answered by the offline synthetic model. */
  synthetic: boolean;
  upstreamId: string | null;
  requestCount: number;
  counts: BatchCounts;
  /** Worst-case cost held when the batch was accepted. */
  reservedUsd: number;
  /** Cost of the results stored so far. */
  costUsd: number;
  error: string | null;
  pollAttempts: number;
  nextPollAt: string;
  createdAt: string;
  updatedAt: string;
  endedAt: string | null;
  /** When a cancel was asked for. */
  cancelInitiatedAt: string | null;
}

export interface NewBatch {
  /** Chosen by the caller, so a budget hold can name it before the row exists. */
  id: string;
  userId: string;
  status: "submitting" | "in_progress";
  mode: BatchMode;
  synthetic: boolean;
  reservedUsd: number;
  /** When the poller first looks at it. @default now */
  nextPollInMs?: number;
  requests: Array<{ customId: string; params: Record<string, unknown> }>;
}

export interface BatchPatch {
  /** `canceling` also stamps cancel_initiated_at, `ended` ended_at (each once). */
  status?: BatchStatus;
  /** Only while the batch has one of these statuses (a cancel must not reopen an ended batch). */
  ifStatus?: readonly BatchStatus[];
  upstreamId?: string;
  counts?: BatchCounts;
  costUsd?: number;
  error?: string | null;
  /** Due again this many ms from now. */
  nextPollInMs?: number;
  /** Reset the poll attempt counter (the batch made progress). */
  resetAttempts?: boolean;
  /** Keep the lease this many ms from now (long work: a results download, local requests). */
  renewLeaseMs?: number;
  releaseLease?: boolean;
}

export interface BatchItem {
  seq: number;
  customId: string;
  /** Null once the request has its result (kept only as long as it is needed). */
  params: Record<string, unknown> | null;
}

export interface BatchResultInput {
  customId: string;
  type: BatchResultType;
  /** The whole result object as the Message Batches API shapes it: `{type, message}` or `{type, error}`. */
  result: Record<string, unknown>;
  model: string | null;
  inputTokens: number;
  outputTokens: number;
  cacheCreationInputTokens: number;
  cacheReadInputTokens: number;
  costUsd: number;
}

export interface BatchResultRow {
  seq: number;
  customId: string;
  type: BatchResultType;
  result: Record<string, unknown>;
}

export interface BatchSummary {
  counts: BatchCounts;
  costUsd: number;
}
