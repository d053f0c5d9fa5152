/**
 * Renders one stack in a process of its own and prints `{"ok":true}` or `{"ok":false,"error":...}`:
 * for tests of programs that fail. A failing program ends at its first unhandled rejection, and
 * jest claims unhandled rejections for itself, so such renders cannot run inside a test file.
 *
 *   tsx test/support/render-child.ts <stack> '<overrides json>' '<stored releases json>'
 */
import { stackRenderer } from "../../infra/plan/render";

async function main(): Promise<void> {
  const [stack, overrides = "{}", stored] = process.argv.slice(2);
  if (!stack) throw new Error("usage: render-child.ts <stack> [overrides] [stored releases]");
  const render = stackRenderer(stack, JSON.parse(overrides) as Record<string, string>, {
    storedReleases: stored ? (JSON.parse(stored) as string[]) : undefined,
  });
  try {
    await render();
    process.stdout.write(JSON.stringify({ ok: true }));
  } catch (e) {
    process.stdout.write(JSON.stringify({ ok: false, error: (e as Error).message ?? String(e) }));
  }
  process.exit(0);
}

void main();
