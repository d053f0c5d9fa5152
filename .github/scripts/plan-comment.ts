/**
 * Turns the JSON of `npm run plan -- --all --json` into the one pull-request comment that
 * carries the cost and policy summary, and keeps it one comment: a hidden marker finds the
 * previous comment, which is edited in place instead of adding another.
 *
 * The comment stays under GitHub's limit of 65,536 characters per comment: sections are added
 * in order of importance (the per-stack table, then policy violations, then cost breakdowns),
 * row by row, and whatever does not fit is counted in a note that points to the workflow run,
 * whose step summary gets the full report.
 *
 * Usage (in the pull-request workflow):
 *   tsx .github/scripts/plan-comment.ts --plan plan.json [--log plan.log] [--plan-exit-code N]
 *     [--stacks-dir stacks] [--post] [--summary] [--out comment.md] [--fail-on-mandatory]
 *   --stacks-dir    read each stack's agent:environment and agent:monthlyBudgetUsd from its
 *                   Pulumi.<stack>.yaml (the plan JSON carries neither)
 *   --post          create or update the comment (GITHUB_TOKEN, GITHUB_REPOSITORY, PR_NUMBER;
 *                   GITHUB_API_URL defaults to https://api.github.com)
 *   --summary       append the full, untruncated report to $GITHUB_STEP_SUMMARY
 *   --fail-on-mandatory  exit 3 (after posting) when a mandatory policy is violated
 * Exit: 0; 3 mandatory violations (with --fail-on-mandatory); 4 the plan JSON is missing or
 * unreadable (the comment then says so, with the plan's log); 2 bad usage or a GitHub error.
 *
 * The plan JSON is what infra/plan/format.ts `toJson` prints:
 *   { "stacks": [
 *     { "name": "lambda-dev", "target": "lambda", "cloud": "aws",
 *       "resources": [ { "type": "...", "name": "...", "parent": "..." } ],
 *       "policy": { "violations": [ { "policy": "...", "level": "mandatory|advisory",
 *                                     "resource": "...", "message": "..." } ] },
 *       "cost": { "monthlyUsd": 96.5, "items": [ { "type": "...", "name": "...",
 *                 "pricing": "priced|free|not-priced", "monthlyUsd": 12.41, "detail": "..." } ] } },
 *     { "name": "eks-dev", "error": "why it could not be rendered" } ] }
 * A few aliases are accepted too (stack/stackName, violations at the top level, resourceCount,
 * budgetUsd, environment, a top-level array, "stacks" keyed by name), so that a small change
 * in the plan's output does not silently empty the comment; a document with no stacks at all
 * is reported as a failed plan.
 */
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";

/** GitHub rejects issue and pull-request comments longer than this. */
export const GITHUB_COMMENT_LIMIT = 65_536;
/** What this script allows itself: the limit less a margin for GitHub's own normalisation. */
export const DEFAULT_MAX_LENGTH = 65_000;
/** The hidden first line by which the previous comment is found. */
export const MARKER =
  "<!-- agent-plan-comment: cost and policy summary (edited in place by .github/scripts/plan-comment.ts) -->";
/** $GITHUB_STEP_SUMMARY takes up to 1 MiB per step. */
const STEP_SUMMARY_LIMIT = 1_000_000;

export interface CostItem {
  resource: string;
  type?: string;
  monthlyUsd: number;
  /** "priced", "free" or "not-priced" (no list price known: the total is a lower bound). */
  pricing?: string;
  note?: string;
}

export interface Violation {
  policy: string;
  level: string;
  message: string;
  resource?: string;
}

export interface StackPlan {
  stack: string;
  target?: string;
  cloud?: string;
  environment?: string;
  resources?: number;
  monthlyUsd?: number;
  budgetUsd?: number;
  costItems: CostItem[];
  violations: Violation[];
  error?: string;
}

export interface RenderContext {
  /** Commit the plan was made for. */
  sha?: string;
  /** Link to the workflow run, where the full report is. */
  runUrl?: string;
  /** Exit code of the plan command; non-zero is shown even when the JSON parsed. */
  planExitCode?: number;
  /** Last lines of the plan's stderr, shown when the plan failed. */
  log?: string;
  /** @default DEFAULT_MAX_LENGTH; Infinity renders everything (the step summary). */
  maxLength?: number;
  /** The preflight's findings (`npm run plan -- --preflight --json`), when it ran. */
  findings?: PreflightFinding[];
}

/** One finding of the preflight, as `--json` prints it. */
export interface PreflightFinding {
  severity: "blocker" | "warning";
  rule: string;
  stack: string;
  resource: string;
  message: string;
  fix: string;
}

/** The preflight's findings from the plan JSON: undefined when the plan ran without it. */
export function normalizeFindings(doc: unknown): PreflightFinding[] | undefined {
  const list = isObject(doc) ? doc.findings : undefined;
  if (!Array.isArray(list)) return undefined;
  return list.filter(isObject).map((f) => ({
    severity: f.severity === "blocker" ? "blocker" : "warning",
    rule: str(f.rule) ?? "unknown",
    stack: str(f.stack) ?? "",
    resource: str(f.resource) ?? "",
    message: str(f.message) ?? "",
    fix: str(f.fix) ?? "",
  }));
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json =>
  typeof v === "object" && v !== null && !Array.isArray(v);

function pick(o: Json, ...keys: string[]): unknown {
  for (const k of keys) if (o[k] !== undefined && o[k] !== null) return o[k];
  return undefined;
}
function str(v: unknown): string | undefined {
  return typeof v === "string" && v.length > 0 ? v : typeof v === "number" ? String(v) : undefined;
}
function num(v: unknown): number | undefined {
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v);
  return undefined;
}

function normalizeViolation(v: unknown): Violation {
  if (!isObject(v)) return { policy: "unknown", level: "mandatory", message: String(v) };
  return {
    policy: str(pick(v, "policy", "policyName", "name", "rule")) ?? "unknown",
    level: (str(pick(v, "level", "enforcementLevel", "severity")) ?? "mandatory").toLowerCase(),
    message: str(pick(v, "message", "description", "detail")) ?? "",
    resource: str(pick(v, "resource", "urn", "resourceName")),
  };
}

function normalizeCostItem(v: unknown): CostItem | undefined {
  if (!isObject(v)) return undefined;
  const monthlyUsd = num(pick(v, "monthlyUsd", "monthly", "usd", "costUsd", "cost"));
  if (monthlyUsd === undefined) return undefined;
  return {
    resource: str(pick(v, "resource", "name", "urn", "component")) ?? "?",
    type: str(pick(v, "type", "resourceType", "kind")),
    monthlyUsd,
    pricing: str(pick(v, "pricing")),
    note: str(pick(v, "detail", "note", "notes", "assumption", "basis")),
  };
}

function normalizeStack(raw: unknown, key?: string): StackPlan {
  if (!isObject(raw)) throw new Error(`plan entry ${key ?? ""} is not an object`);
  const stack = str(pick(raw, "stack", "name", "stackName")) ?? key;
  if (!stack)
    throw new Error(`plan entry without a stack name: ${JSON.stringify(raw).slice(0, 200)}`);
  const cost = pick(raw, "cost", "costs", "estimate");
  const costObj = isObject(cost) ? cost : {};
  const items = pick(costObj, "items", "lines", "resources", "breakdown") ?? pick(raw, "costItems");
  const policy = pick(raw, "policy", "policies");
  const violations =
    pick(raw, "violations", "policyViolations") ??
    (isObject(policy)
      ? pick(policy, "violations", "results")
      : Array.isArray(policy)
        ? policy
        : undefined);
  const resources = pick(raw, "resources", "resourceCount");
  return {
    stack,
    target: str(pick(raw, "target")),
    cloud: str(pick(raw, "cloud")),
    environment: str(pick(raw, "environment", "env")),
    resources: Array.isArray(resources) ? resources.length : num(resources),
    monthlyUsd:
      num(cost) ??
      num(pick(costObj, "monthlyUsd", "totalMonthlyUsd", "total", "monthly")) ??
      num(pick(raw, "monthlyCostUsd", "monthlyUsd")),
    budgetUsd:
      num(pick(raw, "budgetUsd", "monthlyBudgetUsd", "budget")) ??
      num(pick(costObj, "budgetUsd", "monthlyBudgetUsd")),
    costItems: Array.isArray(items)
      ? items.map(normalizeCostItem).filter((i): i is CostItem => i !== undefined)
      : [],
    violations: Array.isArray(violations) ? violations.map(normalizeViolation) : [],
    error: str(pick(raw, "error", "failure")),
  };
}

/** The plan CLI's JSON -> one entry per stack. Throws on a document with no stacks in it. */
export function normalizePlan(doc: unknown): StackPlan[] {
  let entries: Array<[string | undefined, unknown]>;
  const list = Array.isArray(doc)
    ? doc
    : isObject(doc)
      ? pick(doc, "stacks", "results", "plans")
      : undefined;
  if (Array.isArray(list)) entries = list.map((e) => [undefined, e]);
  else if (isObject(list)) entries = Object.entries(list);
  else throw new Error('the plan JSON has no stacks: expected an array or an object with "stacks"');
  if (entries.length === 0) throw new Error("the plan JSON lists no stacks");
  return entries.map(([k, v]) => normalizeStack(v, k));
}

/**
 * Fills in what the plan JSON does not carry (the environment and the monthly budget) from
 * `<dir>/Pulumi.<stack>.yaml`. Stacks without a file are left as they are.
 */
export function enrichFromStackFiles(plans: StackPlan[], dir: string): StackPlan[] {
  return plans.map((p) => {
    if (!/^[A-Za-z0-9_.-]+$/.test(p.stack)) return p;
    const file = join(dir, `Pulumi.${p.stack}.yaml`);
    if (!existsSync(file)) return p;
    const doc = parseYaml(readFileSync(file, "utf8")) as {
      config?: Record<string, unknown>;
    } | null;
    const config = doc?.config ?? {};
    return {
      ...p,
      environment: p.environment ?? str(config["agent:environment"]),
      budgetUsd: p.budgetUsd ?? num(config["agent:monthlyBudgetUsd"]),
    };
  });
}

const usd = (n: number | undefined) =>
  n === undefined
    ? "–"
    : `$${n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;

/** Table cells: one line, no pipes, no HTML that could close the <details> around it. */
export function cell(s: string | undefined, max = 300): string {
  if (!s) return "";
  let t = s
    .replace(/\r?\n/g, " ")
    .replace(/\\/g, "\\\\")
    .replace(/\|/g, "\\|")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .trim();
  if (t.length > max) t = `${t.slice(0, max - 1)}…`;
  return t;
}

const isMandatory = (v: Violation) => v.level === "mandatory" || v.level === "error";
export const countMandatory = (plans: StackPlan[]) =>
  plans.reduce((n, p) => n + p.violations.filter(isMandatory).length, 0);

function status(p: StackPlan): string {
  if (p.error) return "❌ plan failed";
  const m = p.violations.filter(isMandatory).length;
  const a = p.violations.length - m;
  if (m > 0) return `❌ ${m} mandatory${a ? `, ${a} advisory` : ""}`;
  if (a > 0) return `⚠️ ${a} advisory`;
  return "✅";
}

interface Section {
  head: string;
  rows: string[];
  tail: string;
  /** What is counted as left out when rows do not fit, e.g. "stacks" or "violations". */
  unit: string;
  /** The line that says, inside the section, how many rows were left out. @default a table row */
  more?: (n: number) => string;
}

const size = (s: string) => Buffer.byteLength(s, "utf8");

/**
 * Renders the comment. Never longer than `maxLength` (measured in UTF-8 bytes, which is never
 * less than GitHub's character count).
 */
export function renderComment(plans: StackPlan[] | undefined, ctx: RenderContext = {}): string {
  const maxLength = ctx.maxLength ?? DEFAULT_MAX_LENGTH;
  const sections: Section[] = [];
  const title = "## Plan: cost and policy";
  const meta = [
    ctx.sha && `commit \`${ctx.sha.slice(0, 12)}\``,
    plans && `${plans.length} stack${plans.length === 1 ? "" : "s"}`,
    ctx.runUrl && `[workflow run](${ctx.runUrl})`,
  ].filter(Boolean);
  let header = `${MARKER}\n${title}\n\n`;
  if (meta.length > 0) header += `<sub>${meta.join(" · ")}</sub>\n\n`;

  // Exit 3 is the preflight's blockers, reported in their own section below.
  const blocked =
    ctx.planExitCode === 3 && Boolean(ctx.findings?.some((f) => f.severity === "blocker"));
  const failed = ctx.planExitCode !== undefined && ctx.planExitCode !== 0 && !blocked;
  if (!plans) {
    header += `❌ **The plan did not produce a report** (exit code ${ctx.planExitCode ?? "unknown"}).\n\n`;
    if (ctx.log) sections.push(logSection(ctx.log));
    return fit(header, sections, ctx, maxLength);
  }

  const total = plans.reduce((s, p) => s + (p.monthlyUsd ?? 0), 0);
  const mandatory = countMandatory(plans);
  const advisory = plans.reduce((n, p) => n + p.violations.length, 0) - mandatory;
  const errors = plans.filter((p) => p.error).length;
  const verdict =
    errors > 0 || mandatory > 0 || failed
      ? `❌ ${[errors && `${errors} stack(s) failed to plan`, mandatory && `${mandatory} mandatory violation(s)`, failed && !errors && !mandatory && `plan exited with ${ctx.planExitCode}`].filter(Boolean).join(", ")}`
      : "✅ no mandatory violations";
  header += `**Estimated total: ${usd(total)}/month** across ${plans.length} stack(s) · policy: ${verdict}${advisory ? `, ${advisory} advisory` : ""}\n\n`;
  const findings = ctx.findings;
  if (findings) {
    const blockers = findings.filter((f) => f.severity === "blocker");
    const warnings = findings.length - blockers.length;
    header += `**Preflight** (what the clouds would refuse on \`pulumi up\`): ${blockers.length ? `❌ ${blockers.length} blocker(s)` : "✅ no blockers"}${warnings ? `, ${warnings} warning(s)` : ""}\n\n`;
    // Blockers first, open: they are what a first deploy would hit.
    for (const [severity, open] of [
      ["blocker", true],
      ["warning", false],
    ] as const) {
      const list = findings.filter((f) => f.severity === severity);
      if (list.length === 0) continue;
      sections.push({
        head: `<details${open ? " open" : ""}><summary><b>Preflight ${severity}s</b> (${list.length})</summary>\n\n| rule | stack | resource | finding | fix |\n|---|---|---|---|---|\n`,
        rows: list.map(
          (f) =>
            `| \`${cell(f.rule, 60)}\` | \`${cell(f.stack, 100)}\` | ${cell(f.resource, 200)} | ${cell(f.message, 600)} | ${cell(f.fix, 400)} |\n`,
        ),
        tail: "\n</details>\n\n",
        unit: "findings",
      });
    }
  }

  sections.push({
    head: "| stack | target | env | resources | est. $/month | budget $/month | policy |\n|---|---|---|---:|---:|---:|---|\n",
    rows: plans.map((p) => {
      const target = [p.target, p.cloud && `(${p.cloud})`].filter(Boolean).join(" ");
      const over =
        p.monthlyUsd !== undefined && p.budgetUsd !== undefined && p.monthlyUsd > p.budgetUsd
          ? " ⚠️ over budget"
          : "";
      const unpriced = p.costItems.filter((i) => i.pricing === "not-priced").length;
      const cost = `${usd(p.monthlyUsd)}${unpriced ? ` (+${unpriced} not priced)` : ""}${over}`;
      return `| \`${cell(p.stack, 100)}\` | ${cell(target)} | ${cell(p.environment)} | ${p.resources ?? "–"} | ${cost} | ${usd(p.budgetUsd)} | ${status(p)} |\n`;
    }),
    tail: "\n",
    unit: "stacks",
  });

  const broken = plans.filter((p) => p.error);
  if (broken.length > 0) {
    sections.push({
      head: "### Stacks that could not be planned\n\n",
      rows: broken.map((p) => `- \`${cell(p.stack, 100)}\`: ${cell(p.error, 2000)}\n`),
      tail: "\n",
      unit: "stacks",
      more: (n) => `- … ${n} more (truncated)\n`,
    });
  }

  // Mandatory first: they block the merge.
  for (const p of plans
    .filter((q) => q.violations.length > 0)
    .sort((a, b) => countMandatory([b]) - countMandatory([a]))) {
    const sorted = [...p.violations].sort(
      (a, b) => Number(isMandatory(b)) - Number(isMandatory(a)),
    );
    sections.push({
      head: `<details${countMandatory([p]) > 0 ? " open" : ""}><summary><b>${cell(p.stack, 100)}</b>: ${status(p)}</summary>\n\n| level | policy | resource | message |\n|---|---|---|---|\n`,
      rows: sorted.map(
        (v) =>
          `| ${isMandatory(v) ? "🛑 mandatory" : `⚠️ ${cell(v.level, 40)}`} | \`${cell(v.policy, 100)}\` | ${cell(v.resource, 200)} | ${cell(v.message, 600)} |\n`,
      ),
      tail: "\n</details>\n\n",
      unit: "violations",
    });
  }

  for (const p of plans.filter((q) => q.costItems.length > 0)) {
    sections.push({
      head: `<details><summary>Cost of <b>${cell(p.stack, 100)}</b>: ${usd(p.monthlyUsd)}/month</summary>\n\n| resource | type | $/month | note |\n|---|---|---:|---|\n`,
      rows: costRows(p.costItems),
      tail: "\n</details>\n\n",
      unit: "cost lines",
    });
  }

  // The log explains a failure the report does not (exit 1 is the mandatory violations above).
  if (failed && ctx.log && errors === 0 && mandatory === 0) sections.push(logSection(ctx.log));
  return fit(header, sections, ctx, maxLength);
}

/**
 * One row per priced line, lines that differ only by resource name (twelve alarms at $0.10)
 * grouped into one; then what has no list price; then all free resources as a single row.
 */
export function costRows(items: readonly CostItem[]): string[] {
  const groups = new Map<string, { items: CostItem[]; total: number }>();
  for (const i of items.filter((x) => x.pricing !== "free")) {
    const key = [i.pricing ?? "priced", i.type ?? "", i.monthlyUsd, i.note ?? ""].join("\u0000");
    const g = groups.get(key) ?? { items: [], total: 0 };
    g.items.push(i);
    g.total = Math.round((g.total + i.monthlyUsd) * 100) / 100;
    groups.set(key, g);
  }
  const unpriced = (g: { items: CostItem[] }) => g.items[0]!.pricing === "not-priced";
  const rows = [...groups.values()]
    .sort((a, b) => Number(unpriced(a)) - Number(unpriced(b)) || b.total - a.total)
    .map(({ items: group, total }) => {
      const first = group[0]!;
      const names = group.map((i) => i.resource).join(", ");
      const what = group.length > 1 ? `${group.length} × ${names}` : names;
      const price = unpriced({ items: group })
        ? "not priced"
        : group.length > 1
          ? `${usd(total)} (${group.length} × ${usd(first.monthlyUsd)})`
          : usd(total);
      return `| ${cell(what, 200)} | ${cell(first.type, 120)} | ${price} | ${cell(first.note, 300)} |\n`;
    });
  const free = items.filter((x) => x.pricing === "free");
  if (free.length > 0) {
    const types = [
      ...new Set(free.map((i) => (i.type ?? "").split(":").pop()!).filter(Boolean)),
    ].sort();
    const what = `${free.length} resource${free.length === 1 ? "" : "s"} without charge`;
    rows.push(`| ${what} | ${cell(types.join(", "), 300)} | free | |\n`);
  }
  return rows;
}

function logSection(log: string): Section {
  // A fence longer than any backtick run inside keeps the log from closing it.
  const longest = Math.max(2, ...(log.match(/`+/g) ?? []).map((m) => m.length));
  const fence = "`".repeat(longest + 1);
  const lines = log.replace(/\r\n/g, "\n").split("\n").slice(-200);
  return {
    head: `<details open><summary>Plan output (last lines)</summary>\n\n${fence}text\n`,
    rows: lines.map((l) => `${l}\n`),
    tail: `${fence}\n</details>\n\n`,
    unit: "log lines",
    more: (n) => `… ${n} more log lines (truncated)\n`,
  };
}

function moreLine(s: Section, n: number): string {
  return s.more ? s.more(n) : `| … ${n} more ${s.unit} (truncated) |\n`;
}

function fit(header: string, sections: Section[], ctx: RenderContext, maxLength: number): string {
  const note = (omitted: Map<string, number>) => {
    const what = [...omitted].map(([unit, n]) => `${n} ${unit}`).join(", ");
    const where = ctx.runUrl
      ? `the [workflow run](${ctx.runUrl}) summary`
      : "the workflow run summary";
    return `> [!NOTE]\n> Truncated to stay under GitHub's ${GITHUB_COMMENT_LIMIT.toLocaleString("en-US")}-character comment limit: ${what} left out. The full report is in ${where}.\n`;
  };
  // Room for the note with generous counts, so adding it can never overflow.
  const reserve = size(
    note(
      new Map([
        ["stacks", 1e9],
        ["violations", 1e9],
        ["cost lines", 1e9],
        ["log lines", 1e9],
      ]),
    ),
  );
  const budget = maxLength - reserve;
  if (size(header) > budget)
    throw new Error(`maxLength ${maxLength} is too small for the comment header`);

  let out = header;
  let used = size(header);
  const omitted = new Map<string, number>();
  const omit = (unit: string, n: number) =>
    n > 0 && omitted.set(unit, (omitted.get(unit) ?? 0) + n);
  for (const s of sections) {
    // Room for row i, the tail, and the "n more" line when rows remain after row i.
    const fits = (bodySize: number, i: number) =>
      used +
        bodySize +
        size(s.rows[i] ?? "") +
        size(s.tail) +
        (i + 1 < s.rows.length ? size(moreLine(s, s.rows.length - i - 1)) : 0) <=
      budget;
    // A section is shown with at least one row or not at all, and is always closed (its tail).
    if (s.rows.length === 0 || !fits(size(s.head), 0)) {
      omit(s.unit, s.rows.length);
      continue;
    }
    let body = s.head;
    let bodySize = size(body);
    let shown = 0;
    while (shown < s.rows.length && fits(bodySize, shown)) {
      body += s.rows[shown];
      bodySize += size(s.rows[shown]!);
      shown++;
    }
    if (shown < s.rows.length) body += moreLine(s, s.rows.length - shown);
    omit(s.unit, s.rows.length - shown);
    out += body + s.tail;
    used = size(out);
  }
  if (omitted.size > 0) out += note(omitted);
  return out;
}

// ---------------------------------------------------------------------------------------------
// GitHub: find the previous comment by its marker, then edit it (or create the first one).

export interface GitHubTarget {
  token: string;
  /** "owner/name" */
  repository: string;
  issueNumber: number;
  /** @default https://api.github.com */
  apiUrl?: string;
  fetch?: typeof fetch;
}

export interface UpsertResult {
  action: "created" | "updated";
  id: number;
  url?: string;
  /** Older copies (from runs that raced) that were deleted to keep a single comment. */
  deleted: number[];
}

interface IssueComment {
  id: number;
  body?: string;
  html_url?: string;
}

async function github<T>(
  t: GitHubTarget,
  method: string,
  url: string,
  body?: unknown,
): Promise<{ data: T; link: string | null }> {
  const res = await (t.fetch ?? fetch)(url, {
    method,
    headers: {
      accept: "application/vnd.github+json",
      authorization: `Bearer ${t.token}`,
      "x-github-api-version": "2022-11-28",
      "user-agent": "agent-platform-plan-comment",
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) {
    const text = await res.text().catch(() => "");
    throw new Error(`GitHub ${method} ${url} answered ${res.status}: ${text.slice(0, 500)}`);
  }
  const data = (res.status === 204 ? undefined : await res.json()) as T;
  return { data, link: res.headers.get("link") };
}

function nextLink(link: string | null): string | undefined {
  return link
    ?.split(",")
    .map((p) => /<([^>]+)>\s*;\s*rel="next"/.exec(p)?.[1])
    .find(Boolean);
}

/** Every comment of the issue or pull request whose body starts with the marker, oldest first. */
export async function findMarkedComments(
  t: GitHubTarget,
  marker = MARKER,
): Promise<IssueComment[]> {
  const api = (t.apiUrl ?? "https://api.github.com").replace(/\/$/, "");
  let url: string | undefined =
    `${api}/repos/${t.repository}/issues/${t.issueNumber}/comments?per_page=100`;
  const found: IssueComment[] = [];
  for (let page = 0; url && page < 100; page++) {
    const { data, link }: { data: IssueComment[]; link: string | null } = await github<
      IssueComment[]
    >(t, "GET", url);
    found.push(
      ...data.filter((c) => typeof c.body === "string" && c.body.trimStart().startsWith(marker)),
    );
    url = nextLink(link);
  }
  return found;
}

export async function upsertComment(
  t: GitHubTarget,
  body: string,
  marker = MARKER,
): Promise<UpsertResult> {
  if (!body.startsWith(marker))
    throw new Error("the comment body must start with the marker, or the next run cannot find it");
  if (body.length > GITHUB_COMMENT_LIMIT)
    throw new Error(`comment of ${body.length} characters exceeds GitHub's limit`);
  const api = (t.apiUrl ?? "https://api.github.com").replace(/\/$/, "");
  const [first, ...extra] = await findMarkedComments(t, marker);
  const deleted: number[] = [];
  for (const c of extra) {
    await github(t, "DELETE", `${api}/repos/${t.repository}/issues/comments/${c.id}`);
    deleted.push(c.id);
  }
  if (first) {
    const { data } = await github<IssueComment>(
      t,
      "PATCH",
      `${api}/repos/${t.repository}/issues/comments/${first.id}`,
      { body },
    );
    return { action: "updated", id: data.id, url: data.html_url, deleted };
  }
  const { data } = await github<IssueComment>(
    t,
    "POST",
    `${api}/repos/${t.repository}/issues/${t.issueNumber}/comments`,
    { body },
  );
  return { action: "created", id: data.id, url: data.html_url, deleted };
}

// ---------------------------------------------------------------------------------------------
// CLI

interface Options {
  plan?: string;
  stacksDir?: string;
  log?: string;
  planExitCode?: number;
  out?: string;
  post: boolean;
  summary: boolean;
  failOnMandatory: boolean;
}

export function parseArgs(argv: string[]): Options {
  const o: Options = { post: false, summary: false, failOnMandatory: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--plan") o.plan = value();
    else if (a === "--stacks-dir") o.stacksDir = value();
    else if (a === "--log") o.log = value();
    else if (a === "--out") o.out = value();
    else if (a === "--plan-exit-code") {
      const v = value();
      o.planExitCode = v === "" ? undefined : Number(v);
      if (o.planExitCode !== undefined && !Number.isInteger(o.planExitCode))
        throw new Error(`--plan-exit-code ${v} is not an integer`);
    } else if (a === "--post") o.post = true;
    else if (a === "--summary") o.summary = true;
    else if (a === "--fail-on-mandatory") o.failOnMandatory = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!o.plan) throw new Error("--plan <file> is required");
  return o;
}

function readTail(file: string | undefined, maxChars = 20_000): string | undefined {
  if (!file) return undefined;
  try {
    const text = readFileSync(file, "utf8");
    return text.length > maxChars ? text.slice(-maxChars) : text;
  } catch {
    return undefined;
  }
}

function loadPlan(file: string): {
  plans?: StackPlan[];
  findings?: PreflightFinding[];
  problem?: string;
} {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    return { problem: `cannot read ${file}: ${(err as Error).message}` };
  }
  try {
    const doc: unknown = JSON.parse(text);
    return { plans: normalizePlan(doc), findings: normalizeFindings(doc) };
  } catch (err) {
    return { problem: `${file}: ${(err as Error).message}` };
  }
}

function prNumber(env: NodeJS.ProcessEnv): number | undefined {
  const direct = Number(env.PR_NUMBER);
  if (Number.isInteger(direct) && direct > 0) return direct;
  if (!env.GITHUB_EVENT_PATH) return undefined;
  try {
    const event = JSON.parse(readFileSync(env.GITHUB_EVENT_PATH, "utf8")) as {
      pull_request?: { number?: number };
    };
    return event.pull_request?.number;
  } catch {
    return undefined;
  }
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const o = parseArgs(argv);
  const loaded = loadPlan(o.plan!);
  const problem = loaded.problem;
  const plans =
    loaded.plans && o.stacksDir ? enrichFromStackFiles(loaded.plans, o.stacksDir) : loaded.plans;
  const runUrl =
    env.GITHUB_SERVER_URL && env.GITHUB_REPOSITORY && env.GITHUB_RUN_ID
      ? `${env.GITHUB_SERVER_URL}/${env.GITHUB_REPOSITORY}/actions/runs/${env.GITHUB_RUN_ID}`
      : undefined;
  const log = [problem, readTail(o.log)].filter(Boolean).join("\n");
  const ctx: RenderContext = {
    sha: env.PR_HEAD_SHA || env.GITHUB_SHA,
    runUrl,
    planExitCode: o.planExitCode ?? (plans ? undefined : 1),
    log: log || undefined,
    findings: loaded.findings,
  };
  const body = renderComment(plans, ctx);
  if (o.out) writeFileSync(o.out, body);
  if (o.summary && env.GITHUB_STEP_SUMMARY) {
    const full = renderComment(plans, { ...ctx, maxLength: STEP_SUMMARY_LIMIT });
    appendFileSync(env.GITHUB_STEP_SUMMARY, full.slice(MARKER.length + 1));
  }
  if (o.post) {
    const issueNumber = prNumber(env);
    if (!env.GITHUB_TOKEN || !env.GITHUB_REPOSITORY || !issueNumber) {
      throw new Error(
        "--post needs GITHUB_TOKEN, GITHUB_REPOSITORY and PR_NUMBER (or a pull_request event)",
      );
    }
    const r = await upsertComment(
      {
        token: env.GITHUB_TOKEN,
        repository: env.GITHUB_REPOSITORY,
        issueNumber,
        apiUrl: env.GITHUB_API_URL,
      },
      body,
    );
    process.stdout.write(
      `${r.action} comment ${r.id}${r.url ? ` (${r.url})` : ""}${r.deleted.length ? `; deleted duplicates ${r.deleted.join(", ")}` : ""}\n`,
    );
  }
  if (problem) {
    process.stderr.write(`${problem}\n`);
    return 4;
  }
  if (o.failOnMandatory && plans) {
    const m = countMandatory(plans);
    if (m > 0) {
      process.stderr.write(`${m} mandatory policy violation(s)\n`);
      return 3;
    }
  }
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${(err as Error).message}\n`);
      process.exit(2);
    },
  );
}
