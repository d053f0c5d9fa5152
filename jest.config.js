/**
 * Jest runs TypeScript through SWC (no type-checking: `npm run typecheck` does that).
 *
 * Two tiers: the fast one (`npm test`, what CI runs: every unit and integration test) and the
 * slow one (`npm run test:slow`: whole-program runs such as the esbuild bundles, the plan and
 * preflight CLIs over rendered stacks, the benchmark's smoke run), files named `*.slow.test.ts`.
 * `TEST_TIER=all` runs both.
 */
const tier = process.env.TEST_TIER ?? "fast";
if (!["fast", "slow", "all"].includes(tier))
  throw new Error(`TEST_TIER must be fast, slow or all (got ${tier})`);

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  testMatch: tier === "slow" ? ["**/*.slow.test.ts"] : ["**/*.test.ts"],
  testPathIgnorePatterns:
    tier === "fast" ? ["/node_modules/", "\\.slow\\.test\\.ts$"] : ["/node_modules/"],
  transform: {
    "^.+\\.(t|j)s$": [
      "@swc/jest",
      { jsc: { parser: { syntax: "typescript" }, target: "es2022" }, module: { type: "commonjs" } },
    ],
    "/@electric-sql/pglite/dist/.+\\.cjs$": [
      "@swc/jest",
      { jsc: { parser: { syntax: "ecmascript" }, target: "es2022" }, module: { type: "commonjs" } },
    ],
  },
  // PGlite loads its parts with dynamic import(), which jest's CommonJS sandbox refuses, and
  // jose is ECMAScript modules only: compiling them with SWC turns both into CommonJS.
  transformIgnorePatterns: ["/node_modules/(?!(@electric-sql/pglite|jose)/)"],
  moduleFileExtensions: ["ts", "js", "cjs", "json"],
  // One migrated PGlite image per run (cached by PGlite version and migrations), which every
  // file's `memory://` stores start from, rather than each file running initdb; and Node's
  // default stack depth (see test/support/setup-stack-traces.ts).
  globalSetup: "<rootDir>/test/support/global-setup.ts",
  setupFiles: [
    "<rootDir>/test/support/setup-pglite-image.ts",
    "<rootDir>/test/support/setup-stack-traces.ts",
  ],
  testTimeout: 30000,
  // Three workers on this project's two cores: test files wait on sockets, timers and child
  // processes for a good part of their time, and a third worker fills it. Measured with the
  // whole fast tier (CI=true, warm transform cache): 217 s against 274 s with two workers.
  maxWorkers: 3,
};
