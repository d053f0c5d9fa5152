/** `agent:release` on a promoted Cloud Run stack (issue 15): its own Artifact Registry repository. */
import { imageRepositoryPath } from "../../../components/gcp/image";
import { stackRenderer, type RenderedStack } from "../../support/render-stack";
import { rollbackAssertions } from "./rollback-assertions";

const RELEASE = `sha256:${"a1".repeat(32)}`;
const render = stackRenderer("cloudrun-prod", { "agent:release": RELEASE.slice(7) });
let s: RenderedStack;
beforeAll(async () => {
  s = await render();
}, 120_000);

rollbackAssertions(() => s, RELEASE);

test("the service runs the release from the stack's own repository, in its own project", () => {
  const repo = s.q.findOne("gcp:artifactregistry/repository:Repository").inputs;
  expect(repo.project).toBe(s.config.cloud === "gcp" ? s.config.gcpProject : undefined);
  const service = s.q.findOne("gcp:cloudrunv2/service:Service").inputs as any;
  expect(service.template.containers[0].image).toBe(
    `${imageRepositoryPath(String(repo.location), String(repo.project), String(repo.repositoryId))}@${RELEASE}`,
  );
});
