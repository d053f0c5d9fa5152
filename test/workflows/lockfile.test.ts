/**
 * `npm ci` installs exactly the lock file and refuses one that lacks an entry for any package the
 * tree could install, on any platform (npm 11: "Missing: @swc/core-darwin-arm64@... from lock
 * file"). A lock written on one machine after `npm install` with only that platform's optional
 * binaries present breaks `npm ci` in the Dockerfile and every workflow. These tests read the lock
 * the way npm's resolver does: every dependency edge, optional ones included, must land on an entry.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(__dirname, "..", "..");

interface LockEntry {
  version?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  dev?: boolean;
  optional?: boolean;
}

interface Lock {
  lockfileVersion: number;
  packages: Record<string, LockEntry>;
}

/** Where node's resolution finds `dep` from the package at `from` (nested first, then up). */
function resolveInLock(lock: Lock, from: string, dep: string): string | undefined {
  let dir = from;
  for (;;) {
    const candidate = dir ? `${dir}/node_modules/${dep}` : `node_modules/${dep}`;
    if (lock.packages[candidate]) return candidate;
    if (!dir) return undefined;
    const at = dir.lastIndexOf("/node_modules/");
    dir = at < 0 ? "" : dir.slice(0, at);
  }
}

/** Every dependency edge (regular and optional; peers only when not optional) with no entry. */
function missingEntries(lock: Lock): string[] {
  const missing: string[] = [];
  for (const [path, entry] of Object.entries(lock.packages)) {
    const deps = { ...entry.dependencies, ...entry.optionalDependencies };
    for (const dep of Object.keys(deps)) {
      if (!resolveInLock(lock, path, dep)) missing.push(`${dep} (needed by ${path || "the root"})`);
    }
  }
  return missing;
}

describe("package-lock.json (npm ci installs from it alone)", () => {
  const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as Lock;

  it("is a v3 lock whose root matches package.json", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
    };
    expect(lock.lockfileVersion).toBe(3);
    const root = lock.packages[""] as LockEntry & { devDependencies?: Record<string, string> };
    expect(root.dependencies).toEqual(pkg.dependencies);
    expect(root.devDependencies).toEqual(pkg.devDependencies);
  });

  it("has an entry for every platform's optional binaries (@swc/core-*, @unrs/resolver-binding-*, @esbuild/*)", () => {
    expect(missingEntries(lock)).toEqual([]);
    // The families that broke npm ci once: each must list more than this machine's platform.
    for (const family of ["@swc/core-", "@unrs/resolver-binding-", "@esbuild/"]) {
      const entries = Object.keys(lock.packages).filter((p) =>
        p.startsWith(`node_modules/${family}`),
      );
      expect(entries.some((p) => /darwin/.test(p))).toBe(true);
      expect(entries.some((p) => /win32/.test(p))).toBe(true);
    }
  });

  it("finds a missing optional binary (so the check above can fail)", () => {
    const broken: Lock = {
      lockfileVersion: 3,
      packages: {
        "": { dependencies: { "@swc/core": "^1" } },
        "node_modules/@swc/core": {
          version: "1.0.0",
          optionalDependencies: {
            "@swc/core-linux-x64-gnu": "1.0.0",
            "@swc/core-darwin-arm64": "1.0.0",
          },
        },
        "node_modules/@swc/core-linux-x64-gnu": { version: "1.0.0", optional: true },
      },
    };
    expect(missingEntries(broken)).toEqual([
      "@swc/core-darwin-arm64 (needed by node_modules/@swc/core)",
    ]);
  });

  it(".ci/run installs with npm ci alone (no npm install fallback that would hide a broken lock)", () => {
    const script = readFileSync(join(ROOT, ".ci", "run"), "utf8");
    const code = script
      .split("\n")
      .filter((l) => !l.trim().startsWith("#"))
      .join("\n");
    expect(code).toMatch(/^npm ci\b/m);
    expect(code).not.toMatch(/npm install/);
  });
});
