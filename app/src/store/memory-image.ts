/**
 * The image `memory://` stores start from: the files of a migrated, empty in-memory database, so
 * that every store but the first of the process skips initdb and the migrations (see openStore).
 *
 * The first such store makes it, unless a source was set before: the tests set one
 * (test/support/pglite-image.ts), an image made once per test run, so that no test file pays for
 * initdb. This module imports nothing, so setting a source costs nothing.
 */
import type { PgliteImage } from "./pglite";

let image: Promise<PgliteImage | undefined> | undefined;
let source: (() => Promise<PgliteImage>) | undefined;

/**
 * Take the image from `load` (called once, when the first `memory://` store opens) instead of
 * making it. It must hold a migrated, empty database of the same PGlite version; one missing
 * later migrations still works, each store then applies them. If `load` fails, the first store
 * makes the image as usual.
 */
export function setMemoryImageSource(load: () => Promise<PgliteImage>): void {
  source = load;
  image = undefined;
}

/** The image to start a `memory://` store from, if there is one yet. */
export async function memoryImage(): Promise<PgliteImage | undefined> {
  if (!image && source) image = source().catch(() => undefined);
  return image;
}

/**
 * Keep `take()` as the image, unless another store has provided one meanwhile. Called right after
 * migrating, before anything is written; a failed image only costs later stores their head start.
 */
export async function rememberMemoryImage(take: () => Promise<PgliteImage>): Promise<void> {
  if (image && (await image)) return;
  image = take().catch(() => undefined);
  await image;
}
