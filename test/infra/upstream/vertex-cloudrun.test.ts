/**
 * cloudrun-dev on Vertex AI (issue 16): every assertion a stack passes, and the upstream's own:
 * no Anthropic key anywhere, the service account may call Vertex AI, the API is enabled (and
 * never disabled on destroy), and the service is told its project and location.
 */
import { describeStack, sharedRender } from "../stack-assertions";
import { describeStackPolicies } from "../../policy/stack-policies";
import type { RenderedStack } from "../../support/render-stack";

const render = sharedRender("cloudrun-dev", { "agent:upstream": "vertex" });
describeStack("cloudrun-dev", render);
describeStackPolicies("cloudrun-dev", render);

describe("cloudrun-dev on Vertex AI", () => {
  let s: RenderedStack;
  beforeAll(async () => {
    s = await render();
  }, 120_000);

  test("no Anthropic key is required, stored or bound", () => {
    const secrets = s.q.findByType("gcp:secretmanager/secret:Secret").map((r) => r.name);
    expect(secrets.filter((n) => /anthropic/.test(n))).toEqual([]);
    const container = (
      s.q.findByType("gcp:cloudrunv2/service:Service")[0]!.inputs as {
        template: { containers: { envs: { name: string; value?: string }[] }[] };
      }
    ).template.containers[0]!;
    const env = Object.fromEntries(container.envs.map((e) => [e.name, e.value]));
    expect(env).toMatchObject({
      LLM_UPSTREAM: "vertex",
      ANTHROPIC_VERTEX_PROJECT_ID: "gcpProject" in s.config ? s.config.gcpProject : "",
      CLOUD_ML_REGION: "global",
    });
    expect(Object.keys(env).filter((k) => k.startsWith("ANTHROPIC_API_KEY"))).toEqual([]);
  });

  test("the service account is a Vertex AI user of the project, through the provider that waits for the API", () => {
    const grants = s.q
      .findByType("gcp:projects/iAMMember:IAMMember")
      .filter((m) => m.inputs.role === "roles/aiplatform.user");
    expect(grants).toHaveLength(1);
    const account = s.q.findByType("gcp:serviceaccount/account:Account")[0]!;
    expect(grants[0]!.inputs.member).toBe(account.state.member);
    const api = s.q
      .findByType("gcp:projects/service:Service")
      .find((a) => a.inputs.service === "aiplatform.googleapis.com");
    expect(api?.inputs.disableOnDestroy).toBe(false);
    expect(grants[0]!.options.provider).not.toBe("");
  });
});
