/** The preflight's findings as text, for people (the CLI and the pull-request comment). Pure. */
import { summarize, type Finding } from "./checks";

const MARK = { blocker: "✗ blocker", warning: "! warning" } as const;

export function formatFindings(
  findings: readonly Finding[],
  stackCount: number,
  live: boolean,
): string {
  const { blockers, warnings } = summarize(findings);
  const head = `━━ Preflight: ${blockers} blocker${blockers === 1 ? "" : "s"}, ${warnings} warning${warnings === 1 ? "" : "s"} across ${stackCount} stack${stackCount === 1 ? "" : "s"} (${live ? "live: the clouds' answers" : "offline: documented defaults; --live asks the clouds"}) ━━`;
  if (findings.length === 0) return `${head}\nNothing the clouds are known to refuse.`;
  const lines = [head];
  for (const f of findings) {
    lines.push(`${MARK[f.severity]}  ${f.rule}  ${f.stack}  ${f.resource}`);
    lines.push(`    ${f.message}`);
    lines.push(`    fix: ${f.fix}`);
  }
  return lines.join("\n");
}
