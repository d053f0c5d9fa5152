/**
 * Claude on the cloud's own endpoints (issue 16): the Bedrock invoke policy names the configured
 * models and inference profiles only, a geography must serve the stack's Region, and the service
 * gets the variables its upstream needs.
 */
import {
  BEDROCK_GEO_REGIONS,
  bedrockInvokePolicy,
  bedrockInvokedId,
  bedrockModels,
  bedrockProblems,
  defaultBedrockProfile,
  upstreamEnv,
  vertexModels,
} from "../../components/upstream";
import MODEL_TABLE from "../../app/config/models.json";

const SONNET = {
  modelId: "anthropic.claude-sonnet-4-6",
  geos: ["global", "us", "eu", "jp"] as const,
};
const OPUS = {
  modelId: "anthropic.claude-opus-4-5-20251101-v1:0",
  geos: ["global", "us", "eu"] as const,
};

describe("the Bedrock invoke policy (least privilege, no wildcard)", () => {
  test("through a geography: the profiles, then the models in every destination Region only through them", () => {
    const policy = bedrockInvokePolicy({
      region: "us-east-1",
      accountId: "123456789012",
      profile: "us",
      models: [SONNET, OPUS],
    });
    const [profiles, models, count] = policy.Statement as {
      Action: string[];
      Resource: string[];
      Condition?: { StringEquals: Record<string, string[]> };
    }[];
    expect(profiles!.Action).toEqual([
      "bedrock:InvokeModel",
      "bedrock:InvokeModelWithResponseStream",
    ]);
    expect(profiles!.Resource).toEqual([
      "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-6",
      "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-4-5-20251101-v1:0",
    ]);
    expect(models!.Resource).toHaveLength(2 * BEDROCK_GEO_REGIONS.us.length);
    expect(models!.Resource).toContain(
      "arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-sonnet-4-6",
    );
    expect(models!.Condition!.StringEquals["bedrock:InferenceProfileArn"]).toEqual(
      profiles!.Resource,
    );
    // count_tokens: CountTokens on the base models in the stack's Region.
    expect(count).toEqual({
      Sid: "CountTokens",
      Effect: "Allow",
      Action: ["bedrock:CountTokens"],
      Resource: [
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-6",
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-opus-4-5-20251101-v1:0",
      ],
    });
    for (const s of policy.Statement as { Action: string[]; Resource: string[] }[]) {
      for (const r of [...s.Action, ...s.Resource]) expect(r).not.toContain("*");
    }
  });

  test("global: the source Region's model and the Region-less model ARN", () => {
    const policy = bedrockInvokePolicy({
      region: "eu-west-1",
      accountId: "1",
      profile: "global",
      models: [SONNET],
    });
    expect((policy.Statement[1] as { Resource: string[] }).Resource).toEqual([
      "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-sonnet-4-6",
      "arn:aws:bedrock:::foundation-model/anthropic.claude-sonnet-4-6",
    ]);
  });

  test("none: the base models in the stack's Region, no profile", () => {
    const policy = bedrockInvokePolicy({
      region: "us-west-2",
      accountId: "1",
      profile: "none",
      models: [SONNET],
    });
    expect(policy.Statement).toEqual([
      expect.objectContaining({
        Action: ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
        Resource: ["arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-sonnet-4-6"],
      }),
      expect.objectContaining({ Action: ["bedrock:CountTokens"] }),
    ]);
    expect(bedrockInvokedId("none", SONNET.modelId)).toBe("anthropic.claude-sonnet-4-6");
    expect(bedrockInvokedId("eu", SONNET.modelId)).toBe("eu.anthropic.claude-sonnet-4-6");
  });
});

describe("geographies", () => {
  test("a stack calls its own geography by default", () => {
    expect(defaultBedrockProfile("us-east-2")).toBe("us");
    expect(defaultBedrockProfile("eu-west-1")).toBe("eu");
    expect(defaultBedrockProfile("ap-northeast-1")).toBe("jp");
    expect(defaultBedrockProfile("ap-south-1")).toBe("apac");
    expect(defaultBedrockProfile("sa-east-1")).toBe("global");
  });

  test("a geography that does not serve the Region, or a model without that profile, is refused naming the key", () => {
    expect(bedrockProblems("eu-west-1", "us", [SONNET])).toEqual([
      expect.stringMatching(
        /^agent:bedrockProfile is us, whose inference profiles cannot be called from eu-west-1.*use eu/,
      ),
    ]);
    expect(bedrockProblems("ap-northeast-1", "jp", [SONNET, OPUS])).toEqual([
      expect.stringMatching(/anthropic\.claude-opus-4-5-20251101-v1:0 has no jp inference profile/),
    ]);
    expect(bedrockProblems("us-east-1", "us", [SONNET, OPUS])).toEqual([]);
    expect(bedrockProblems("us-east-1", "none", [])).toEqual([
      expect.stringMatching(/no Bedrock model ids/),
    ]);
  });
});

test("the service's variables per upstream", () => {
  expect(upstreamEnv({ kind: "anthropic" })).toEqual({});
  expect(upstreamEnv({ kind: "bedrock", profile: "us", models: [SONNET] })).toEqual({
    LLM_UPSTREAM: "bedrock",
    BEDROCK_INFERENCE_PROFILE: "us",
  });
  expect(
    upstreamEnv({ kind: "vertex", region: "global", models: ["claude-sonnet-4-6"] }, "proj-1"),
  ).toEqual({
    LLM_UPSTREAM: "vertex",
    ANTHROPIC_VERTEX_PROJECT_ID: "proj-1",
    CLOUD_ML_REGION: "global",
  });
});

test("every model of the service's table has a Bedrock and a Vertex id (app/config/models.json)", () => {
  const table = MODEL_TABLE;
  expect(bedrockModels()).toHaveLength(table.models.length);
  expect(vertexModels()).toHaveLength(table.models.length);
  for (const m of bedrockModels()) {
    expect(m.modelId).toMatch(/^anthropic\.claude-/);
    expect(m.geos.length).toBeGreaterThan(0);
  }
});
