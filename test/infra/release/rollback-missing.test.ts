/**
 * A rollback to a release the stack's storage does not hold fails the deployment with a message
 * that names `agent:release`, the storage, and what it does hold (issue 15). The program runs in
 * a child process: it fails the way `pulumi up` would, at its first unhandled rejection.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";

const ROOT = join(__dirname, "..", "..", "..");
const HELD = `sha256:${"be".repeat(32)}`;
const WANTED = `sha256:${"ef".repeat(32)}`;

function renderChild(stack: string, overrides: object, stored: string[]) {
  // The exit status is not the verdict: Pulumi's runtime flags the promises a failed program
  // leaves behind when the process exits. The child prints the verdict.
  const child = spawnSync(
    join(ROOT, "node_modules", ".bin", "tsx"),
    [
      join(ROOT, "test/support/render-child.ts"),
      stack,
      JSON.stringify(overrides),
      JSON.stringify(stored),
    ],
    { cwd: ROOT, encoding: "utf8", timeout: 120_000 },
  );
  return JSON.parse(child.stdout) as { ok: boolean; error?: string };
}

test("the program fails, naming agent:release and what the repository holds", () => {
  const result = renderChild("vm-gcp-prod", { "agent:release": WANTED }, [HELD]);
  expect(result.ok).toBe(false);
  expect(result.error).toMatch(
    new RegExp(
      `agent:release ${WANTED} is not in Artifact Registry repository .*/agent-vm-gcp-prod/agent, which holds ${HELD}: choose one of those`,
    ),
  );
}, 150_000);

test("the same rollback renders once the repository holds the release", () => {
  expect(renderChild("vm-gcp-prod", { "agent:release": WANTED }, [HELD, WANTED])).toEqual({
    ok: true,
  });
}, 150_000);
