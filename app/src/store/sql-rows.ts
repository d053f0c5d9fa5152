/**
 * What the SQL store's modules share about values: the identifiers the schema accepts, the rows
 * the drivers return, and timestamps handed out in ISO 8601.
 */
import { createHash, randomBytes } from "node:crypto";
import type { SqlClient } from "./types";

export const sha256Hex = (s: string) => createHash("sha256").update(s).digest("hex");

/** Characters of a key kept in clear for display: its prefix and 8 random characters (48 bits). */
const SHOWN_RANDOM_CHARS = 8;

/**
 * A new key as the service issues them: `prefix` and 32 random bytes in base64url (auth.ts
 * recognises the shape), with what is stored of it: its SHA-256 and the characters shown in lists.
 */
export function issueKey(prefix: "ak_" | "adm_" | "cs_"): {
  key: string;
  hash: string;
  shown: string;
} {
  const key = `${prefix}${randomBytes(32).toString("base64url")}`;
  return { key, hash: sha256Hex(key), shown: key.slice(0, prefix.length + SHOWN_RANDOM_CHARS) };
}

export type Row = Record<string, unknown>;
export type Query = Pick<SqlClient, "query">;

/** Same rule as AGENT_API_KEYS, so database and static users look alike. */
const USER_ID = /^[A-Za-z0-9._@-]{1,128}$/;
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** PostgreSQL's limit on bind parameters in one statement. */
export const MAX_PARAMS = 65_535;

export function validUserId(userId: string): void {
  if (!USER_ID.test(userId)) {
    throw new Error(`invalid user id "${userId}": use 1 to 128 letters, digits, or . _ @ -`);
  }
}

export function validIso(value: string, name: string): string {
  const t = Date.parse(value);
  if (Number.isNaN(t))
    throw new RangeError(`${name} must be an ISO 8601 timestamp, got "${value}"`);
  return new Date(t).toISOString();
}

export function single(rows: Row[]): Row {
  const row = rows[0];
  if (!row) throw new Error("expected a row from the database, got none");
  return row;
}

/** Drivers return timestamptz as Date (pg, PGlite) or as text: always hand out ISO strings. */
export function iso(value: unknown): string {
  return (value instanceof Date ? value : new Date(String(value))).toISOString();
}

export const isoOrNull = (value: unknown) =>
  value === null || value === undefined ? null : iso(value);
