/**
 * `agent:release` on a promoted EKS stack (issue 15): a rollback deploys a digest from the stack's
 * own ECR repository, without reading the source stack and without copying anything.
 */
import { invocationsOf, outputOf } from "../../support/pulumi";
import { stackRenderer, type RenderedStack } from "../../support/render-stack";
import { rollbackAssertions } from "./rollback-assertions";

const RELEASE = `sha256:${"5e".repeat(32)}`;
const OLDER = `sha256:${"0d".repeat(32)}`;
const render = stackRenderer(
  "eks-prod",
  { "agent:release": RELEASE },
  { storedReleases: [OLDER, RELEASE] },
);
let s: RenderedStack;
beforeAll(async () => {
  s = await render();
}, 120_000);

rollbackAssertions(() => s, RELEASE);

test("the pod template runs the release from the stack's own repository", async () => {
  const repo = s.q.findOne("aws:ecr/repository:Repository").state.repositoryUrl as string;
  const images = s.q
    .all()
    .filter((r) => r.type.startsWith("kubernetes:") && JSON.stringify(r.inputs).includes(RELEASE));
  expect(images.length).toBeGreaterThan(0);
  for (const r of images) expect(JSON.stringify(r.inputs)).toContain(`${repo}@${RELEASE}`);
  expect((await outputOf(s.outputs.artifact)).kind).toBe("image");
});

test("the check lists the stack's own repository, by its name", () => {
  const calls = invocationsOf("aws:ecr/getImages:getImages");
  const repo = s.q.findOne("aws:ecr/repository:Repository").state.name;
  expect(calls.map((c) => c.inputs.repositoryName)).toEqual([repo]);
});
