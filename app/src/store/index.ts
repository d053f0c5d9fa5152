/**
 * Opens the store the configuration asks for: PostgreSQL when DATABASE_URL is set, otherwise the
 * embedded PGlite database under DATA_DIR (`DATA_DIR=memory://` keeps it in memory).
 */
import path from "node:path";
import type { AppConfig } from "../config";
import { createPostgresClient } from "./postgres";
import { SqlStore } from "./sql-store";
import { MEMORY_DATA_DIR, type SqlClient, type Store, type StoreLogger } from "./types";
import type { PgliteClient } from "./pglite";
import { memoryImage, rememberMemoryImage } from "./memory-image";

export type StoreConfig = Pick<AppConfig, "DATABASE_URL" | "DATABASE_POOL_MAX" | "DATA_DIR"> &
  Partial<Pick<AppConfig, "DATABASE_PASSWORD">>;

export interface OpenStoreOptions {
  logger?: StoreLogger;
}

/** The PGlite files live in a subdirectory, leaving DATA_DIR free for other local state. */
export function pgliteDirectory(dataDir: string): string {
  return dataDir.startsWith(MEMORY_DATA_DIR) ? dataDir : path.join(dataDir, "pglite");
}

let pgliteModule: typeof import("./pglite") | undefined;

/**
 * Loaded on demand: deployed targets always have DATABASE_URL, and the Lambda bundle omits
 * PGlite (a CommonJS require keeps it lazy in tsx, jest and the esbuild bundles alike).
 */
function loadPglite(): typeof import("./pglite") {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (pgliteModule ??= require("./pglite") as typeof import("./pglite"));
}

/**
 * For a process stopping during start-up: an embedded database's first initialisation (initdb,
 * in a child process) under way is stopped, and the store being opened fails (pglite.ts
 * cancelInitdb). Nothing to do when PGlite was never loaded.
 */
export function cancelStoreInit(): void {
  pgliteModule?.cancelInitdb();
}

/** Open and migrate. The store is closed again if migrating fails, so nothing leaks. */
export async function openStore(
  config: StoreConfig,
  options: OpenStoreOptions = {},
): Promise<Store> {
  const inMemory = !config.DATABASE_URL && config.DATA_DIR.startsWith(MEMORY_DATA_DIR);
  // A migrated, empty database's files (memory-image.ts): made by the first `memory://` store of
  // the process, the next ones start as copies of it rather than running initdb and every
  // migration again (tests open dozens).
  const image = inMemory ? await memoryImage() : undefined;
  let pglite: PgliteClient | undefined;
  let client: SqlClient;
  if (config.DATABASE_URL) {
    client = createPostgresClient(config.DATABASE_URL, {
      max: config.DATABASE_POOL_MAX,
      logger: options.logger,
      password: config.DATABASE_PASSWORD,
    });
  } else {
    pglite = await loadPglite().createPgliteClient(pgliteDirectory(config.DATA_DIR), image);
    client = pglite;
  }
  const store = new SqlStore(client, { logger: options.logger });
  try {
    await store.migrate();
    // Taken before the caller can write, so the image is only ever of an empty database.
    const made = inMemory && !image ? pglite : undefined;
    if (made) await rememberMemoryImage(() => made.image());
  } catch (err) {
    await store.close().catch(() => {});
    throw err;
  }
  return store;
}

export { SqlStore, type SqlStoreOptions } from "./sql-store";
export { createPostgresClient, poolConfig, type PostgresOptions } from "./postgres";
export { migrate, MIGRATIONS, type Migration } from "./migrations";
export { setMemoryImageSource } from "./memory-image";
export * from "./types";
