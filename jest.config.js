/** Jest runs TypeScript through SWC (no type-checking: `npm run typecheck` does that). */
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  testMatch: ["**/*.test.ts"],
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
  // PGlite loads its parts with dynamic import(), which jest's CommonJS sandbox refuses;
  // compiling it with SWC turns those into require().
  transformIgnorePatterns: ["/node_modules/(?!@electric-sql/pglite/)"],
  moduleFileExtensions: ["ts", "js", "cjs", "json"],
  testTimeout: 30000,
  // Pulumi mock programs and embedded Postgres are heavy; two cores, two workers.
  maxWorkers: 2,
};
