/**
 * Persistence contract. Two implementations share one SQL schema: `pg` (production) and
 * PGlite (embedded default, when DATABASE_URL is unset).
 */

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

export interface Store {
  readonly kind: "postgres" | "pglite";
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
  listUsage(filter: { userId?: string; sessionId?: string; sinceIso?: string }): Promise<UsageEntry[]>;

  /** Resolve a presented API key to its user, or null. Keys are stored as SHA-256 hashes. */
  findUserByApiKey(key: string): Promise<string | null>;
  /** Create a key; the plaintext is returned once and never stored. */
  createApiKey(userId: string, name?: string): Promise<{ key: string; record: ApiKeyRecord }>;
  listApiKeys(userId?: string): Promise<ApiKeyRecord[]>;
  revokeApiKey(id: string): Promise<boolean>;
}

/** Thrown by appendMessages when the history moved underneath the writer. */
export class ConcurrentAppendError extends Error {
  constructor(sessionId: string) {
    super(`session ${sessionId} was modified concurrently`);
    this.name = "ConcurrentAppendError";
  }
}
