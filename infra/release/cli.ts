/**
 * `npm run release -- <command> <stack> [release]`: releases for people, on top of the Pulumi CLI.
 *
 *   list <stack> [--json]          the stack's release history (`pulumi stack output releases`)
 *   rollback <stack> [release]     deploy an earlier release from the stack's own storage
 *                                  (`agent:release`, then `pulumi up`); without a release, the
 *                                  one before the current
 *   resume <stack>                 back to promotion: remove `agent:release`, then `pulumi up`
 *                                  (the stack deploys its source's artifact again)
 *
 * Extra arguments after `--` go to `pulumi up` (e.g. `--yes`, `--policy-pack infra/policy`).
 * `PULUMI_BIN` names the CLI (default `pulumi` on PATH). A rollback touches this stack only: it
 * reads nothing from the source stack, and the source keeps deploying as before.
 */
import { spawnSync } from "node:child_process";
import { previousRelease, releaseName, type ReleaseRecord } from "../../components/release/history";

export interface Io {
  out(line: string): void;
  err(line: string): void;
}

/** Runs the Pulumi CLI: its stdout when `capture`, else inherits the terminal. Throws on failure. */
export type PulumiRunner = (args: string[], capture: boolean) => string;

export function pulumiRunner(bin = process.env.PULUMI_BIN ?? "pulumi"): PulumiRunner {
  return (args, capture) => {
    const r = spawnSync(bin, args, {
      stdio: capture ? ["inherit", "pipe", "inherit"] : "inherit",
      encoding: "utf8",
    });
    if (r.error) {
      throw new Error(
        `could not run ${bin} (${r.error.message}): install the Pulumi CLI (https://www.pulumi.com/docs/install/) or set PULUMI_BIN`,
      );
    }
    if (r.status !== 0) throw new Error(`${bin} ${args.join(" ")} failed (exit ${r.status})`);
    return r.stdout ?? "";
  };
}

const USAGE = `usage: npm run release -- list <stack> [--json]
       npm run release -- rollback <stack> [release] [-- <pulumi up flags>]
       npm run release -- resume <stack> [-- <pulumi up flags>]`;

type Command =
  | { kind: "list"; stack: string; json: boolean }
  | { kind: "rollback"; stack: string; release?: string; upArgs: string[] }
  | { kind: "resume"; stack: string; upArgs: string[] };

export function parseArgs(argv: readonly string[]): Command {
  const dashes = argv.indexOf("--");
  const own = dashes < 0 ? [...argv] : argv.slice(0, dashes);
  const upArgs = dashes < 0 ? [] : argv.slice(dashes + 1);
  const flags = own.filter((a) => a.startsWith("-"));
  const [command, stack, release, ...rest] = own.filter((a) => !a.startsWith("-"));
  const unknownFlags = flags.filter((f) => !(command === "list" && f === "--json"));
  if (!stack || rest.length > 0 || unknownFlags.length > 0) throw new Error(USAGE);
  switch (command) {
    case "list":
      if (release) throw new Error(USAGE);
      return { kind: "list", stack, json: flags.includes("--json") };
    case "rollback":
      return { kind: "rollback", stack, release, upArgs };
    case "resume":
      if (release) throw new Error(USAGE);
      return { kind: "resume", stack, upArgs };
    default:
      throw new Error(USAGE);
  }
}

/** The stack's exported history; a clear error for a stack that has none. */
export function readHistory(pulumi: PulumiRunner, stack: string): ReleaseRecord[] {
  const raw = pulumi(["stack", "output", "releases", "--json", "--stack", stack], true).trim();
  const parsed: unknown = raw ? JSON.parse(raw) : undefined;
  if (!Array.isArray(parsed) || parsed.length === 0) {
    throw new Error(
      `stack ${stack} exports no release history: deploy it once with this version of the program (pulumi up -s ${stack})`,
    );
  }
  return parsed as ReleaseRecord[];
}

/** The history as a table, newest last, the current release marked. */
export function formatHistory(stack: string, history: readonly ReleaseRecord[]): string[] {
  const current = history.at(-1)?.release;
  const rows = history.map((r, i) => [
    String(i + 1),
    r.release === current && i === history.length - 1 ? "*" : "",
    r.release,
    r.kind,
    r.source,
    r.at,
    r.commit.slice(0, 12),
  ]);
  const header = ["#", "", "release", "kind", "source", "deployed at", "commit"];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((v, c) => v.padEnd(widths[c]!))
      .join("  ")
      .trimEnd();
  return [
    `${stack}: ${history.length} release(s), * = deployed now`,
    line(header),
    ...rows.map(line),
  ];
}

/**
 * The release to roll back to: the one named (as `list` prints it, or its hex form), which must be
 * in the history, or the one before the current.
 */
export function chooseRelease(
  stack: string,
  history: readonly ReleaseRecord[],
  wanted: string | undefined,
): ReleaseRecord {
  if (wanted === undefined) {
    const previous = previousRelease(history);
    if (!previous) {
      throw new Error(
        `stack ${stack} has deployed only one release (${history.at(-1)!.release}): there is nothing earlier to roll back to`,
      );
    }
    return previous;
  }
  const forms = new Set(
    [wanted, releaseName(wanted, "image"), releaseName(wanted, "zip")].filter(
      (f): f is string => f !== undefined,
    ),
  );
  const found = [...history].reverse().find((r) => forms.has(r.release));
  if (!found) {
    throw new Error(
      `release ${wanted} is not in ${stack}'s history: choose one that \`npm run release -- list ${stack}\` shows`,
    );
  }
  return found;
}

export function run(argv: readonly string[], pulumi: PulumiRunner, io: Io): void {
  const cmd = parseArgs(argv);
  const stackFlag = ["--stack", cmd.stack];
  if (cmd.kind === "list") {
    const history = readHistory(pulumi, cmd.stack);
    if (cmd.json) io.out(JSON.stringify(history, null, 2));
    else for (const l of formatHistory(cmd.stack, history)) io.out(l);
    return;
  }
  if (cmd.kind === "rollback") {
    const history = readHistory(pulumi, cmd.stack);
    const target = chooseRelease(cmd.stack, history, cmd.release);
    if (target.release === history.at(-1)!.release) {
      io.out(`${cmd.stack} already runs ${target.release}: nothing to do`);
      return;
    }
    io.out(
      `rolling ${cmd.stack} back to ${target.release} (${target.kind} from ${target.source}, deployed ${target.at}, commit ${target.commit.slice(0, 12)})`,
    );
    pulumi(["config", "set", "agent:release", target.release, ...stackFlag], false);
    pulumi(["up", ...stackFlag, ...cmd.upArgs], false);
    io.out(
      `${cmd.stack} runs ${target.release}. It stays pinned (agent:release in stacks/Pulumi.${cmd.stack}.yaml: commit it so the deploy workflow keeps it) until \`npm run release -- resume ${cmd.stack}\`.`,
    );
    return;
  }
  io.out(`${cmd.stack}: removing agent:release, deploying its source's artifact again`);
  pulumi(["config", "rm", "agent:release", ...stackFlag], false);
  pulumi(["up", ...stackFlag, ...cmd.upArgs], false);
}

if (require.main === module) {
  try {
    run(process.argv.slice(2), pulumiRunner(), {
      out: (l) => console.log(l),
      err: (l) => console.error(l),
    });
  } catch (e) {
    console.error((e as Error).message);
    process.exitCode = 1;
  }
}
