/**
 * jest setupFiles, in every test file: `memory://` stores start from the run's PGlite image (see
 * pglite-image.ts) instead of the first of them running initdb. Reading the file waits until a
 * test opens such a store; a missing or unreadable file only means that store runs initdb.
 */
import { readFile } from "node:fs/promises";
import { setMemoryImageSource } from "../../app/src/store/memory-image";

// PGLITE_IMAGE_ENV of pglite-image.ts, which is not imported: it loads PGlite itself.
const file = process.env.AGENT_TEST_PGLITE_IMAGE;
if (file) setMemoryImageSource(async () => new Blob([await readFile(file)]));
