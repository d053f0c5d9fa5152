import { createHash } from "node:crypto";

/** JSON with object keys sorted at every depth, so equal requests hash equally. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return "[" + value.map(canonicalJson).join(",") + "]";
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonicalJson(obj[k])).join(",") + "}";
}

/**
 * Cache key: tenant + model + hash of the canonical request. The tenant is part of the key,
 * so one tenant's cached answer can never be served to another.
 */
export function responseCacheKey(tenant: string, model: string, body: unknown): string {
  const digest = createHash("sha256").update(canonicalJson(body)).digest("base64url");
  return `agent:rc:v1:${createHash("sha256").update(tenant).digest("base64url").slice(0, 22)}:${model}:${digest}`;
}
