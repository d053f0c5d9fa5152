/** The preflight's findings as text, for people (the CLI and the pull-request comment). Pure. */
import { summarize, type Finding, type QuotaUse } from "./checks";

const MARK = { blocker: "✗ blocker", warning: "! warning" } as const;

/** Quota use per AWS account and region, one line each. */
export function formatQuotaUse(rows: readonly QuotaUse[]): string {
  if (rows.length === 0) return "";
  const lines = ["Quota use per AWS account and region (used / limit):"];
  for (const r of rows) {
    lines.push(
      `  ${r.account}, ${r.region}: VPCs ${r.vpcs.used}/${r.vpcs.limit}, Elastic IPs ${r.elasticIps.used}/${r.elasticIps.limit}, reserved Lambda concurrency ${r.lambdaReserved.used}/${r.lambdaReserved.limit} (${r.source === "live" ? "the account's limits" : "default limits"}; ${r.stacks.join(", ")})`,
    );
  }
  return lines.join("\n");
}

export function formatFindings(
  findings: readonly Finding[],
  stackCount: number,
  live: boolean,
  quotas: readonly QuotaUse[] = [],
): string {
  const { blockers, warnings } = summarize(findings);
  const head = `━━ Preflight: ${blockers} blocker${blockers === 1 ? "" : "s"}, ${warnings} warning${warnings === 1 ? "" : "s"} across ${stackCount} stack${stackCount === 1 ? "" : "s"} (${live ? "live: the clouds' answers" : "offline: documented defaults; --live asks the clouds"}) ━━`;
  const lines = [head];
  if (findings.length === 0) lines.push("Nothing the clouds are known to refuse.");
  for (const f of findings) {
    lines.push(`${MARK[f.severity]}  ${f.rule}  ${f.stack}  ${f.resource}`);
    lines.push(`    ${f.message}`);
    lines.push(`    fix: ${f.fix}`);
  }
  const usage = formatQuotaUse(quotas);
  if (usage) lines.push(usage);
  return lines.join("\n");
}
