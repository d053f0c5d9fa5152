/** What every rollback render (`agent:release` on a promoted stack) must show (issue 15). */
import { outputOf } from "../../support/pulumi";
import type { RenderedStack } from "../../support/render-stack";

export function rollbackAssertions(get: () => RenderedStack, release: string): void {
  test("the source stack is not read: no StackReference, nothing copied, nothing built", () => {
    const s = get();
    expect(s.config.promoteFrom).toBeDefined();
    for (const type of [
      "pulumi:pulumi:StackReference",
      "aws:s3/objectCopy:ObjectCopy",
      "docker:index/image:Image",
      "aws:s3/bucketObjectv2:BucketObjectv2",
    ]) {
      expect(s.q.findByType(type).map((r) => r.name)).toEqual([]);
    }
    // The only commands a rollback runs are rollout drivers (progressive delivery), no copy.
    const copies = s.q
      .findByType("command:local:Command")
      .filter((r) => String((r.inputs as { create?: string }).create).includes("crane"));
    expect(copies.map((r) => r.name)).toEqual([]);
  });

  test("the stack deploys and exports the pinned release, and records it as a rollback", async () => {
    const s = get();
    expect(await outputOf(s.outputs.artifactDigest)).toBe(release);
    const history = await outputOf(s.outputs.releases);
    expect(history.at(-1)).toMatchObject({
      release,
      kind: "rollback",
      source: s.config.stack,
    });
    expect(history.at(-1)!.at).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(history.at(-1)!.commit).toMatch(/^([0-9a-f]{40}|unknown)$/);
  });
}
