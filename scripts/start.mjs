#!/usr/bin/env node
/**
 * `npm start`: builds the Node server bundle (scripts/build.mjs buildServerBundle, the same
 * options as dist/server/index.js) unless the one built last time is still up to date, and runs
 * it in this very process: no tsx, no second Node process, no compiler left in memory.
 *
 * The bundle goes to node_modules/.cache/agent-platform/start/ (git-ignored with node_modules/),
 * which `npm run build` never empties, so the two can run side by side. It is up to date when
 * every file the last build read (its metafile's inputs, node_modules included), the build
 * scripts, tsconfig.json, esbuild's version and the bundle itself have the size and mtime they
 * had then: about 2,000 stat calls (~20 ms) instead of a ~1.6 s build. Files are written aside
 * and renamed, so a concurrent `npm start` never runs half a bundle.
 *
 * Options: --rebuild builds even when the bundle is up to date. The service's node flags are
 * those of app/Dockerfile's CMD, given in package.json's start script (they must be set when
 * node starts); `SIGINT` and `SIGTERM` are handled by the bundle (app/entrypoints/server.ts).
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const START_DIR = path.join(root, "node_modules", ".cache", "agent-platform", "start");
const BUNDLE = path.join(START_DIR, "index.js");
const STAMP = path.join(START_DIR, "inputs.json");
/** Read by the build, but not listed among the bundle's inputs. */
const BUILD_FILES = [
  "scripts/build.mjs",
  "scripts/start.mjs",
  "tsconfig.json",
  "package.json",
  "node_modules/esbuild/package.json",
];

/** [size, mtime] of a file relative to the repository, or null when it is gone. */
function fingerprint(rel) {
  try {
    const st = fs.statSync(path.join(root, rel));
    return [st.size, st.mtimeMs];
  } catch {
    return null;
  }
}

function same(a, b) {
  return a !== null && b !== null && a[0] === b[0] && a[1] === b[1];
}

/** True when the stamp the last build left matches every file it names, the bundle included. */
export function upToDate() {
  let stamp;
  try {
    stamp = JSON.parse(fs.readFileSync(STAMP, "utf8"));
  } catch {
    return false;
  }
  if (!stamp || typeof stamp.files !== "object") return false;
  for (const rel of [...BUILD_FILES, path.relative(root, BUNDLE)]) {
    if (!(rel in stamp.files)) return false;
  }
  for (const [rel, print] of Object.entries(stamp.files)) {
    if (!same(fingerprint(rel), print)) return false;
  }
  return true;
}

/** Builds the bundle into START_DIR; each file written aside, then renamed into place. */
export async function buildBundle() {
  const { buildServerBundle } = await import(
    pathToFileURL(path.join(root, "scripts", "build.mjs")).href
  );
  const esbuild = await import("esbuild");
  try {
    // Warnings are for `npm run build`, which someone reads: here they would print on every start.
    const result = await buildServerBundle(BUNDLE, { write: false, logLevel: "error" });
    fs.mkdirSync(START_DIR, { recursive: true });
    for (const file of result.outputFiles) {
      const aside = `${file.path}.${process.pid}.tmp`;
      fs.writeFileSync(aside, file.contents);
      fs.renameSync(aside, file.path);
    }
    const files = {};
    for (const rel of [
      ...Object.keys(result.metafile.inputs),
      ...BUILD_FILES,
      path.relative(root, BUNDLE),
    ]) {
      const print = fingerprint(rel);
      if (print) files[rel] = print; // virtual inputs (esbuild's own) have no file
    }
    const aside = `${STAMP}.${process.pid}.tmp`;
    fs.writeFileSync(aside, JSON.stringify({ files }) + "\n");
    fs.renameSync(aside, STAMP);
  } finally {
    // The build service is a child process: stopped, it holds no memory or handle of this one.
    await esbuild.stop();
  }
}

export async function start({ rebuild = false } = {}) {
  if (rebuild || !upToDate()) await buildBundle();
  // CommonJS (the bundle's format): its main() starts the service and installs its signal handlers.
  await import(pathToFileURL(BUNDLE).href);
}

const invokedDirectly =
  process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  start({ rebuild: process.argv.includes("--rebuild") }).catch((err) => {
    process.stderr.write(`npm start failed: ${err?.stack ?? err}\n`);
    process.exit(1);
  });
}
