/**
 * Text and JSON renderings of a plan. Pure: plans in, strings and objects out.
 */
import type { Environment } from "../../components/contracts";
import { DEFAULT_PRICES, type CostItem, type PriceTable } from "./cost";
import type { PlanResource } from "./tree";
import type { StackPlan } from "./types";

export interface StackFailure {
  name: string;
  error: string;
}

/** A plan as printed: what the worker reported plus what the program logged while rendering. */
export interface PrintedPlan extends StackPlan {
  messages: string[];
}

export function formatUsd(n: number): string {
  return `$${n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

export const isMandatory = (v: { level: string }) => v.level === "mandatory";

// ---------------------------------------------------------------------------------------------
// JSON: exactly the documented shape

export interface JsonStack {
  name: string;
  target: string;
  cloud: string;
  resources: { type: string; name: string; parent: string | null }[];
  policy: { violations: { policy: string; level: string; resource: string; message: string }[] };
  cost: { monthlyUsd: number; items: CostItem[] };
}

export function toJson(
  plans: readonly StackPlan[],
  failures: readonly StackFailure[] = [],
): { stacks: (JsonStack | StackFailure)[] } {
  const stacks: (JsonStack | StackFailure)[] = plans.map((p) => ({
    name: p.name,
    target: p.target,
    cloud: p.cloud,
    resources: p.resources.map((r) => ({ type: r.type, name: r.name, parent: r.parent })),
    policy: {
      violations: p.policy.violations.map((v) => ({
        policy: v.policy,
        level: v.level,
        resource: v.resource,
        message: v.message,
      })),
    },
    cost: { monthlyUsd: p.cost.monthlyUsd, items: p.cost.items },
  }));
  stacks.push(...failures.map((f) => ({ name: f.name, error: f.error })));
  return { stacks: stacks.sort((a, b) => a.name.localeCompare(b.name, "en")) };
}

// ---------------------------------------------------------------------------------------------
// Text

/** Box-drawing tree from the depth-first list `resourceTree` returns. */
export function formatTree(resources: readonly PlanResource[]): string[] {
  const lines: string[] = [];
  const lastAt: boolean[] = [];
  resources.forEach((r, i) => {
    let last = true;
    for (let j = i + 1; j < resources.length; j++) {
      if (resources[j]!.depth < r.depth) break;
      if (resources[j]!.depth === r.depth) {
        last = false;
        break;
      }
    }
    lastAt[r.depth] = last;
    let prefix = "";
    for (let d = 1; d < r.depth; d++) prefix += lastAt[d] ? "   " : "│  ";
    if (r.depth > 0) prefix += last ? "└─ " : "├─ ";
    lines.push(`${prefix}${r.type} ${r.name}${r.settings ? `  (${r.settings})` : ""}`);
  });
  return lines;
}

interface ItemGroup {
  type: string;
  names: string[];
  pricing: CostItem["pricing"];
  each: number;
  total: number;
  detail: string;
}

/** Items with the same type, price and arithmetic (twelve alarms...) print as one line. */
function groupItems(items: readonly CostItem[]): ItemGroup[] {
  const groups = new Map<string, ItemGroup>();
  for (const i of items) {
    const key = `${i.pricing}\u0000${i.type}\u0000${i.monthlyUsd}\u0000${i.detail}`;
    const g = groups.get(key) ?? {
      type: i.type,
      names: [],
      pricing: i.pricing,
      each: i.monthlyUsd,
      total: 0,
      detail: i.detail,
    };
    g.names.push(i.name);
    g.total = Math.round((g.total + i.monthlyUsd) * 100) / 100;
    groups.set(key, g);
  }
  return [...groups.values()].sort(
    (a, b) =>
      b.total - a.total ||
      a.type.localeCompare(b.type, "en") ||
      a.names[0]!.localeCompare(b.names[0]!, "en"),
  );
}

function formatCost(plan: StackPlan): string[] {
  const out = [
    `Estimated cost: ${formatUsd(plan.cost.monthlyUsd)} / month` +
      ` (${formatUsd(plan.alwaysOnMonthlyUsd)} always-on, the figure the monthly-cost-limit policy checks)`,
  ];
  const groups = groupItems(plan.cost.items);
  const priced = groups.filter((g) => g.pricing === "priced");
  const width = Math.max(0, ...priced.map((g) => formatUsd(g.total).length));
  for (const g of priced) {
    const who =
      g.names.length === 1
        ? `${g.type} ${g.names[0]}`
        : `${g.names.length} x ${g.type} (${formatUsd(g.each)} each)`;
    out.push(`  ${formatUsd(g.total).padStart(width)}  ${who}`);
    out.push(`  ${" ".repeat(width)}    ${g.detail}`);
  }
  const notPriced = groups.filter((g) => g.pricing === "not-priced");
  for (const g of notPriced) {
    const who = g.names.length === 1 ? `${g.type} ${g.names[0]}` : `${g.names.length} x ${g.type}`;
    out.push(`  ${"not priced".padStart(width)}  ${who}: ${g.detail}`);
  }
  const free = plan.cost.items.filter((i) => i.pricing === "free").length;
  if (free)
    out.push(
      `  ${"free".padStart(width)}  ${free} resource${free === 1 ? "" : "s"} that cost nothing by themselves (IAM, networking plumbing, Kubernetes objects...)`,
    );
  return out;
}

function formatPolicy(plan: StackPlan): string[] {
  const v = plan.policy.violations;
  if (v.length === 0) return ["Policy: no violations"];
  const mandatory = v.filter(isMandatory).length;
  const out = [`Policy: ${mandatory} mandatory, ${v.length - mandatory} advisory`];
  const sorted = [...v].sort(
    (a, b) =>
      Number(isMandatory(b)) - Number(isMandatory(a)) ||
      a.policy.localeCompare(b.policy, "en") ||
      a.resource.localeCompare(b.resource, "en"),
  );
  for (const x of sorted) {
    const where = x.type && x.name ? `${x.type} ${x.name}` : x.resource;
    out.push(
      `  ${isMandatory(x) ? "✗" : "!"} ${x.level.padEnd(9)} ${x.policy}${where ? `  ${where}` : ""}`,
    );
    out.push(`      ${x.message}`);
  }
  return out;
}

export interface StackTextOptions {
  /** Print the resource tree. @default true */
  tree?: boolean;
  prices?: PriceTable;
}

export function formatStack(plan: PrintedPlan, options: StackTextOptions = {}): string {
  const prices = options.prices ?? DEFAULT_PRICES;
  const tableRegion = plan.cloud === "gcp" ? prices.gcp.region : prices.aws.region;
  const lines = [
    `━━ ${plan.name}: ${plan.target} on ${plan.cloud}, ${plan.environment}, ${plan.region} ━━`,
  ];
  if (plan.region !== tableRegion)
    lines.push(`note: prices are ${tableRegion} list prices; this stack runs in ${plan.region}`);
  if (options.tree !== false) {
    lines.push(
      "",
      `Resources (${plan.resources.length})`,
      ...formatTree(plan.resources).map((l) => `  ${l}`),
    );
  } else {
    lines.push("", `Resources: ${plan.resources.length}`);
  }
  lines.push("", ...formatPolicy(plan), "", ...formatCost(plan));
  if (plan.messages.length)
    lines.push("", "Program messages:", ...plan.messages.map((m) => `  ${m}`));
  return lines.join("\n");
}

export function formatSummary(
  plans: readonly StackPlan[],
  failures: readonly StackFailure[],
): string {
  const rows: string[][] = [
    ["stack", "target", "cloud", "env", "resources", "mandatory", "advisory", "monthly"],
  ];
  const all = [
    ...plans.map((p) => ({ name: p.name, plan: p })),
    ...failures.map((f) => ({ name: f.name, plan: undefined })),
  ].sort((a, b) => a.name.localeCompare(b.name, "en"));
  for (const { name, plan } of all) {
    if (!plan) {
      rows.push([name, "-", "-", "-", "-", "-", "-", "FAILED"]);
      continue;
    }
    const mandatory = plan.policy.violations.filter(isMandatory).length;
    rows.push([
      name,
      plan.target,
      plan.cloud,
      plan.environment,
      String(plan.resources.length),
      String(mandatory),
      String(plan.policy.violations.length - mandatory),
      formatUsd(plan.cost.monthlyUsd),
    ]);
  }
  const total = plans.reduce((n, p) => n + p.cost.monthlyUsd, 0);
  rows.push(["total", "", "", "", "", "", "", formatUsd(Math.round(total * 100) / 100)]);
  const numeric = new Set([4, 5, 6, 7]);
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => (numeric.has(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

const USAGE_KEYS = [
  "requestsPerMonth",
  "lambdaAvgDurationMs",
  "cloudRunBusyInstanceHours",
  "natDataGbPerMonth",
  "loadBalancerAvgLcu",
  "loadBalancerDataGbPerMonth",
  "appLogGbPerMonth",
  "eksControlPlaneLogGbPerMonth",
  "flowLogGbPerMonth",
  "registryStorageGb",
] as const;

/** Where the prices come from and the usage behind the usage-driven charges. */
export function formatAssumptions(
  environments: readonly Environment[],
  prices: PriceTable = DEFAULT_PRICES,
): string {
  const envs = (["dev", "staging", "prod"] as const).filter((e) => environments.includes(e));
  const lines = [
    `Prices: list prices taken on ${prices.takenOn} (AWS ${prices.aws.region}, GCP ${prices.gcp.region}) from infra/plan/prices.json; ${prices.hoursPerMonth} hours a month.`,
    ...prices.notes.map((n) => `  - ${n}`),
  ];
  if (envs.length === 0) return lines.join("\n");
  lines.push(`Usage assumptions (${envs.join(" / ")}):`);
  const rows = USAGE_KEYS.map((k) => [
    k,
    envs.map((e) => prices.usage[e][k].toLocaleString("en-US")).join(" / "),
    prices.usage.descriptions[k],
  ]);
  const w0 = Math.max(...rows.map((r) => r[0]!.length));
  const w1 = Math.max(...rows.map((r) => r[1]!.length));
  for (const [k, v, d] of rows) lines.push(`  ${k!.padEnd(w0)}  ${v!.padStart(w1)}  ${d}`);
  return lines.join("\n");
}
