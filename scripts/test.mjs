#!/usr/bin/env node
/**
 * `npm test`: the typecheck (`tsc --noEmit`) and the fast tier (`jest`) side by side, rather than
 * one after the other: jest's workers wait on sockets and timers for a good part of the run, and
 * the typecheck fills that time. Arguments go to jest (`npm test -- test/app/auth.test.ts`).
 * jest's output streams as it comes; the typecheck's is printed once it ends. Exits non-zero if
 * either fails.
 */
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);
/** A package's script, found from its package.json (their `exports` do not list the bin files). */
const bin = (pkg, file) => path.join(path.dirname(require.resolve(`${pkg}/package.json`)), file);

function run(args, options) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, options);
    let output = "";
    child.stdout?.on("data", (d) => (output += d));
    child.stderr?.on("data", (d) => (output += d));
    child.on("close", (code, signal) => resolve({ code: code ?? (signal ? 1 : 0), output }));
  });
}

const typecheck = run([bin("typescript", "bin/tsc"), "--noEmit", "-p", "tsconfig.json"], {
  stdio: ["ignore", "pipe", "pipe"],
});
const tests = run([bin("jest", "bin/jest.js"), ...process.argv.slice(2)], { stdio: "inherit" });

const [types, jest] = await Promise.all([typecheck, tests]);
if (types.code !== 0) {
  process.stderr.write(`\ntypecheck (tsc --noEmit) failed:\n${types.output}\n`);
} else {
  process.stderr.write("typecheck (tsc --noEmit): no errors\n");
}
process.exit(types.code !== 0 ? types.code : jest.code);
