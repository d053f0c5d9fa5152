/**
 * One migrated, empty PGlite image for the whole test run, so that no test file pays for initdb
 * (about 3 s of CPU each on this project's 2-core machine) before its first `memory://` store.
 *
 * jest's globalSetup (test/support/global-setup.ts) makes the image, or finds it in a cache
 * outside the repository keyed by the PGlite version and the migrations, and names its file in
 * AGENT_TEST_PGLITE_IMAGE; each test file's setup (test/support/setup-pglite-image.ts) hands it to
 * the store as the image `memory://` stores start from (app/src/store/memory-image.ts). Stores
 * still run the migrations, which find the schema in place.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { MIGRATIONS, migrate } from "../../app/src/store/migrations";
import { createPgliteClient } from "../../app/src/store/pglite";
import { MEMORY_DATA_DIR } from "../../app/src/store/types";

export const PGLITE_IMAGE_ENV = "AGENT_TEST_PGLITE_IMAGE";

/** Where cached images live: the system's temporary directory, never the repository. */
const CACHE_DIR = path.join(os.tmpdir(), "agent-platform-test-cache");

function pgliteVersion(): string {
  // The package's exports hide package.json; it sits above dist/, where the entry point is.
  const entry = require.resolve("@electric-sql/pglite");
  const manifest = path.join(path.dirname(entry), "..", "package.json");
  return (JSON.parse(fs.readFileSync(manifest, "utf8")) as { version: string }).version;
}

/** The image's file: made now unless an image of the same PGlite and migrations is cached. */
export async function pgliteImageFile(): Promise<string> {
  const version = pgliteVersion();
  const key = createHash("sha256")
    .update(JSON.stringify({ version, migrations: MIGRATIONS }))
    .digest("hex")
    .slice(0, 16);
  const file = path.join(CACHE_DIR, `pglite-${version}-${key}.tar`);
  if (fs.existsSync(file)) return file;

  const client = await createPgliteClient(MEMORY_DATA_DIR);
  let image: Blob;
  try {
    await migrate(client);
    image = await client.image();
  } finally {
    await client.close();
  }
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  // Written aside and renamed, so a concurrent run never reads half a file.
  const partial = `${file}.${process.pid}.partial`;
  fs.writeFileSync(partial, Buffer.from(await image.arrayBuffer()));
  fs.renameSync(partial, file);
  // Images of other migrations or PGlite versions are stale (41 MB each): a run still using one
  // that goes only makes its stores run initdb (the source fails, see memory-image.ts).
  for (const old of fs.readdirSync(CACHE_DIR)) {
    if (/^pglite-.*\.tar$/.test(old) && path.join(CACHE_DIR, old) !== file)
      fs.rmSync(path.join(CACHE_DIR, old), { force: true });
  }
  return file;
}
