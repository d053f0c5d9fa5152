/**
 * Constructing a PolicyPack starts a gRPC server, and loading @pulumi/policy pulls its server
 * module in: the rules, the runner and everything the plan uses must do neither. Checked in a
 * fresh Node process (jest's module registry would hide what Node really loads).
 */
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const ROOT = join(__dirname, "../..");
const POLICY = join(ROOT, "infra/policy");

function loadedBy(modules: string[], then = ""): string[] {
  const script = `${modules.map((m) => `require(${JSON.stringify(join(ROOT, m))});`).join("")}${then}
process.stdout.write(JSON.stringify(Object.keys(require.cache).filter((k) => k.includes("@pulumi/policy") || k.includes("infra/policy/index") || k.includes("infra/policy/pack"))));`;
  const out = execFileSync(process.execPath, ["-r", "tsx/cjs", "-e", script], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 60_000,
  });
  return (JSON.parse(out) as string[]).map((k) => relative(ROOT, k));
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return f === "node_modules" ? [] : sources(p);
    return p.endsWith(".ts") ? [p] : [];
  });
}

test("the runner, the rules, the config and the cost hook load no @pulumi/policy and not the pack", () => {
  expect(
    loadedBy([
      "infra/policy/runner.ts",
      "infra/policy/rules/index.ts",
      "infra/policy/config.ts",
      "infra/policy/cost-hook.ts",
      "infra/policy/environment.ts",
    ]),
  ).toEqual([]);
}, 60_000);

test("the check would notice: the adapter does load @pulumi/policy's server module, without starting it", () => {
  // buildPolicies() runs, the process exits on its own (a started server would keep it alive).
  const loaded = loadedBy(
    ["infra/policy/pack.ts"],
    "require(" +
      JSON.stringify(join(ROOT, "infra/policy/pack.ts")) +
      ").buildPolicies({ usePlanCostModel: false });",
  );
  expect(loaded).toEqual(
    expect.arrayContaining(["node_modules/@pulumi/policy/server.js", "infra/policy/pack.ts"]),
  );
  expect(loaded.some((k) => k.includes("infra/policy/index"))).toBe(false);
}, 60_000);

test("only index.ts constructs a PolicyPack, only index.ts and pack.ts import @pulumi/policy, and nothing imports index.ts", () => {
  const files = sources(POLICY);
  const code = (f: string) =>
    readFileSync(f, "utf8")
      .replace(/\/\*[\s\S]*?\*\//g, "")
      .replace(/^\s*\/\/.*$/gm, "");
  const importsOf = (f: string) =>
    [...code(f).matchAll(/(?:from|require\()\s*["']([^"']+)["']/g)].map((m) => m[1]!);
  const rel = (f: string) => relative(POLICY, f);
  expect(files.filter((f) => /new\s+PolicyPack\s*\(/.test(code(f))).map(rel)).toEqual(["index.ts"]);
  expect(
    files
      .filter((f) => importsOf(f).some((i) => i.startsWith("@pulumi/policy")))
      .map(rel)
      .sort(),
  ).toEqual(["index.ts", "pack.ts"]);
  const importersOfIndex = files.filter((f) =>
    importsOf(f).some((i) => {
      if (!i.startsWith(".")) return false;
      const target = join(f, "..", i);
      return (
        target === POLICY || target === join(POLICY, "index") || target === join(POLICY, "index.ts")
      );
    }),
  );
  expect(importersOfIndex.map(rel)).toEqual([]);
  // The tests hold to it too.
  const testFiles = sources(__dirname);
  expect(
    testFiles
      .filter((f) => importsOf(f).some((i) => /infra\/policy(\/index)?$/.test(i)))
      .map((f) => relative(ROOT, f)),
  ).toEqual([]);
});
