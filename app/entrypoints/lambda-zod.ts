/**
 * Imported first by the Lambda entrypoint, before any schema exists. By default zod compiles a
 * parser for each object schema with `new Function` when it is first used: about 2 ms each for
 * the configuration and the request schemas, on the cold start's critical path, to save a
 * fraction of a microsecond per parse afterwards (measured: ~5 µs a Messages request either way).
 * A sandbox serving one request at a time never earns that back, so the Lambda bundle runs zod's
 * interpreter, which validates exactly the same.
 */
import * as z from "zod";

z.config({ jitless: true });
