/**
 * lambda-dev on Amazon Bedrock (issue 16): every assertion a stack passes, and the upstream's
 * own: no Anthropic key anywhere, the function's role may invoke exactly the table's models
 * through the stack Region's inference profiles, and the service is told to use them.
 */
import { describeStack, sharedRender } from "../stack-assertions";
import { describeStackPolicies } from "../../policy/stack-policies";
import { bedrockModels } from "../../../components/upstream";
import type { RenderedStack } from "../../support/render-stack";

const render = sharedRender("lambda-dev", { "agent:upstream": "bedrock" });
describeStack("lambda-dev", render);
describeStackPolicies("lambda-dev", render);

describe("lambda-dev on Bedrock", () => {
  let s: RenderedStack;
  beforeAll(async () => {
    s = await render();
  }, 120_000);

  test("no Anthropic key is required, stored or referenced", () => {
    expect(s.config.upstream).toMatchObject({ kind: "bedrock", profile: "us" });
    // Nothing for the preflight to ask for either.
    expect(s.secretsUnset).toEqual([]);
    const secrets = s.q.findByType("aws:secretsmanager/secret:Secret").map((r) => r.name);
    expect(secrets.filter((n) => /anthropic/.test(n))).toEqual([]);
    const env = (
      s.q.findByType("aws:lambda/function:Function")[0]!.inputs as {
        environment: { variables: Record<string, string> };
      }
    ).environment.variables;
    expect(env).toMatchObject({ LLM_UPSTREAM: "bedrock", BEDROCK_INFERENCE_PROFILE: "us" });
    // The zip's Bedrock build (scripts/build.mjs): the default one is built without it.
    expect(s.q.findByType("aws:lambda/function:Function")[0]!.inputs.handler).toBe(
      "bedrock.handler",
    );
    expect(Object.keys(env).filter((k) => k.startsWith("ANTHROPIC_API_KEY"))).toEqual([]);
  });

  test("the function's role invokes the table's models through their us. profiles only: no wildcard", () => {
    const policies = s.q
      .findByType("aws:iam/rolePolicy:RolePolicy")
      .filter((p) => p.name.endsWith("-bedrock"));
    expect(policies).toHaveLength(1);
    // The function's own role: the one Lambda assumes.
    const role = s.q
      .findByType("aws:iam/role:Role")
      .find((r) => JSON.stringify(r.inputs.assumeRolePolicy).includes("lambda.amazonaws.com"));
    expect(policies[0]!.inputs.role).toBe(role?.state.name);
    const doc = JSON.parse(String(policies[0]!.inputs.policy)) as {
      Statement: { Action: string[]; Resource: string[]; Condition?: unknown }[];
    };
    const profiles = bedrockModels().map(
      (m) => `arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.${m.modelId}`,
    );
    expect(doc.Statement[0]!.Resource).toEqual(profiles);
    expect(doc.Statement[1]!.Condition).toEqual({
      StringEquals: { "bedrock:InferenceProfileArn": profiles },
    });
    expect(doc.Statement.map((st) => st.Action)).toEqual([
      ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
      ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
      ["bedrock:CountTokens"],
    ]);
    for (const st of doc.Statement) for (const r of st.Resource) expect(r).not.toContain("*");
  });
});
