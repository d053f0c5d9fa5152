/**
 * On the embedded defaults (no DATABASE_URL, no AGENT_API_KEYS) `npm start` must hand the user
 * a key that works. It is created once in the embedded database and its plaintext kept in
 * DATA_DIR (mode 0600), so every restart prints the same key.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Store } from "../src/store/types";

export const LOCAL_USER = "local";

export async function ensureLocalApiKey(store: Store, dataDir: string): Promise<string> {
  const file = join(dataDir, "local-api-key");
  const saved = await readFile(file, "utf8").then(
    (s) => s.trim(),
    () => "",
  );
  if (saved && (await store.findUserByApiKey(saved))) return saved;
  const { key } = await store.createApiKey(LOCAL_USER, "local development key");
  await mkdir(dataDir, { recursive: true });
  await writeFile(file, key + "\n", { mode: 0o600 });
  return key;
}

/**
 * The operator console's key on the same embedded defaults (when ADMIN_API_KEYS is unset): an
 * admin key kept hashed in the embedded database (`admin_keys`, like keys minted through the
 * admin API) and in plaintext in DATA_DIR (mode 0600), so every restart prints the same key.
 */
export async function ensureLocalAdminKey(store: Store, dataDir: string): Promise<string> {
  const file = join(dataDir, "local-admin-key");
  const saved = await readFile(file, "utf8").then(
    (s) => s.trim(),
    () => "",
  );
  if (saved && (await store.admin.findAdminByKey(saved))) return saved;
  const { key } = await store.admin.createAdminKey(LOCAL_USER);
  await mkdir(dataDir, { recursive: true });
  await writeFile(file, key + "\n", { mode: 0o600 });
  return key;
}
