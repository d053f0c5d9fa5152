/** jest globalSetup: runs once per test run, before the workers start (they inherit its env). */
import { PGLITE_IMAGE_ENV, pgliteImageFile } from "./pglite-image";

export default async function globalSetup(): Promise<void> {
  process.env[PGLITE_IMAGE_ENV] ??= await pgliteImageFile();
}
