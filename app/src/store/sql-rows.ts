/**
 * What the SQL store's modules share about values: the identifiers the schema accepts, the rows
 * the drivers return, and timestamps handed out in ISO 8601.
 */
import type { SqlClient } from "./types";

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
