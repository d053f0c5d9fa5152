/** `npm run release` (issue 15): list, roll back and resume one stack, through the Pulumi CLI. */
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ReleaseRecord } from "../../components/release/history";
import { parseArgs, pulumiRunner, run, type PulumiRunner } from "../../infra/release/cli";

const D1 = `sha256:${"1".repeat(64)}`;
const D2 = `sha256:${"2".repeat(64)}`;
const D3 = `sha256:${"3".repeat(64)}`;
const HISTORY: ReleaseRecord[] = [
  {
    release: D1,
    kind: "promotion",
    source: "eks-dev",
    at: "2026-12-01T10:00:00Z",
    commit: "a".repeat(40),
  },
  {
    release: D2,
    kind: "promotion",
    source: "eks-dev",
    at: "2026-12-02T10:00:00Z",
    commit: "b".repeat(40),
  },
  {
    release: D3,
    kind: "promotion",
    source: "eks-dev",
    at: "2026-12-03T10:00:00Z",
    commit: "c".repeat(40),
  },
];

/** A Pulumi CLI that answers `stack output releases` and records every call. */
function fakePulumi(history: ReleaseRecord[] | null = HISTORY) {
  const calls: string[][] = [];
  const runner: PulumiRunner = (args) => {
    calls.push(args);
    if (args[0] === "stack" && args[1] === "output") return history ? JSON.stringify(history) : "";
    return "";
  };
  const lines: string[] = [];
  const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
  return { calls, runner, io, lines };
}

test("list prints the history, newest last, the deployed one marked", () => {
  const f = fakePulumi();
  run(["list", "eks-prod"], f.runner, f.io);
  expect(f.calls).toEqual([["stack", "output", "releases", "--json", "--stack", "eks-prod"]]);
  expect(f.lines[0]).toBe("eks-prod: 3 release(s), * = deployed now");
  expect(f.lines.at(-1)).toMatch(
    new RegExp(
      `^3\\s+\\*\\s+${D3}\\s+promotion\\s+eks-dev\\s+2026-12-03T10:00:00Z\\s+cccccccccccc$`,
    ),
  );
  expect(f.lines[2]).not.toContain("*");
});

test("rollback without a release: the one before the current, pinned with agent:release, then pulumi up on that stack only", () => {
  const f = fakePulumi();
  run(["rollback", "eks-prod", "--", "--yes"], f.runner, f.io);
  expect(f.calls.slice(1)).toEqual([
    ["config", "set", "agent:release", D2, "--stack", "eks-prod"],
    ["up", "--stack", "eks-prod", "--yes"],
  ]);
  expect(f.lines.join("\n")).toContain("resume eks-prod");
});

test("rollback to a named release, in the hex form too; one not in the history is refused before anything changes", () => {
  const f = fakePulumi();
  run(["rollback", "eks-prod", "1".repeat(64)], f.runner, f.io);
  expect(f.calls[1]).toEqual(["config", "set", "agent:release", D1, "--stack", "eks-prod"]);

  const g = fakePulumi();
  expect(() => run(["rollback", "eks-prod", `sha256:${"9".repeat(64)}`], g.runner, g.io)).toThrow(
    /not in eks-prod's history: choose one that `npm run release -- list eks-prod` shows/,
  );
  expect(g.calls).toHaveLength(1);
});

test("a Lambda bundle's SHA-256 is accepted as hex or base64", () => {
  const sha = Buffer.from("4".repeat(64), "hex").toString("base64");
  const history = [
    { ...HISTORY[0]!, release: sha },
    { ...HISTORY[1]!, release: Buffer.from("5".repeat(64), "hex").toString("base64") },
  ];
  const f = fakePulumi(history);
  run(["rollback", "lambda-prod", "4".repeat(64)], f.runner, f.io);
  expect(f.calls[1]).toEqual(["config", "set", "agent:release", sha, "--stack", "lambda-prod"]);
});

test("nothing earlier, already running it, or no history: clear messages and no deploy", () => {
  const one = fakePulumi([HISTORY[0]!]);
  expect(() => run(["rollback", "eks-prod"], one.runner, one.io)).toThrow(/only one release/);
  const same = fakePulumi();
  run(["rollback", "eks-prod", D3], same.runner, same.io);
  expect(same.lines).toEqual([`eks-prod already runs ${D3}: nothing to do`]);
  expect(same.calls).toHaveLength(1);
  const none = fakePulumi(null);
  expect(() => run(["list", "eks-prod"], none.runner, none.io)).toThrow(
    /exports no release history/,
  );
});

test("resume removes the pin and deploys the source's artifact again", () => {
  const f = fakePulumi();
  run(["resume", "eks-prod"], f.runner, f.io);
  expect(f.calls).toEqual([
    ["config", "rm", "agent:release", "--stack", "eks-prod"],
    ["up", "--stack", "eks-prod"],
  ]);
});

test("bad usage names the commands", () => {
  for (const argv of [
    [],
    ["list"],
    ["deploy", "x"],
    ["list", "x", "y"],
    ["rollback", "x", "--force"],
  ]) {
    expect(() => parseArgs(argv)).toThrow(/usage: npm run release -- list <stack>/);
  }
});

test("the real runner drives the CLI named by PULUMI_BIN and fails on its exit code", () => {
  const dir = mkdtempSync(join(tmpdir(), "fake-pulumi-"));
  const log = join(dir, "calls.log");
  const bin = join(dir, "pulumi");
  writeFileSync(
    bin,
    `#!/bin/sh\necho "$*" >> '${log}'\nif [ "$1" = stack ]; then printf '%s' '${JSON.stringify(HISTORY)}'; fi\nif [ "$1" = up ]; then exit 3; fi\n`,
  );
  chmodSync(bin, 0o755);
  const runner = pulumiRunner(bin);
  const lines: string[] = [];
  expect(() =>
    run(["rollback", "eks-prod"], runner, { out: (l) => lines.push(l), err: (l) => lines.push(l) }),
  ).toThrow(/up --stack eks-prod failed \(exit 3\)/);
  expect(readFileSync(log, "utf8").trim().split("\n")).toEqual([
    "stack output releases --json --stack eks-prod",
    `config set agent:release ${D2} --stack eks-prod`,
    "up --stack eks-prod",
  ]);
  expect(() => pulumiRunner(join(dir, "missing"))(["version"], true)).toThrow(
    /install the Pulumi CLI/,
  );
});
