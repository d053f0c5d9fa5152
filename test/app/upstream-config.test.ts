/**
 * Choosing an upstream: LLM_UPSTREAM and the variables each upstream needs, checked at boot with a
 * message naming the variable; the model table's cloud entries (the ids infra scopes IAM to); each
 * cloud's prices; the features a cloud lacks.
 */
import { loadConfig, ConfigError } from "../../app/src/config";
import { createDeps } from "../../app/src/bootstrap";
import { bedrockModelId } from "../../app/src/llm/bedrock";
import { unsupportedFeature } from "../../app/src/llm/features";
import { ModelCatalog, modelTableSchema } from "../../app/src/llm/models";
import { checkUpstream, createUpstreamProvider, upstreamPricing } from "../../app/src/llm/upstream";
import { vertexModelId } from "../../app/src/llm/vertex";
import { BEDROCK_GEOS } from "../../app/src/llm/upstream-kinds";
import defaultTable from "../../app/config/models.json";

const issuesOf = (fn: () => unknown): Array<{ variable: string; message: string }> => {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  throw new Error("expected a ConfigError");
};

describe("LLM_UPSTREAM and the variables each upstream needs", () => {
  it("defaults to the Anthropic API, with Bedrock's us profile ready", () => {
    const config = loadConfig({});
    expect(config.LLM_UPSTREAM).toBe("anthropic");
    expect(config.BEDROCK_INFERENCE_PROFILE).toBe("us");
  });

  it.each([
    ["LLM_UPSTREAM", "azure"],
    ["BEDROCK_INFERENCE_PROFILE", "mars"],
    ["AWS_REGION", "virginia"],
    ["CLOUD_ML_REGION", "US East"],
    ["ANTHROPIC_VERTEX_PROJECT_ID", "My_Project"],
    ["ANTHROPIC_BEDROCK_BASE_URL", "bedrock.internal"],
  ])("a bad %s stops the start naming the variable", (variable, value) => {
    const issues = issuesOf(() => loadConfig({ [variable]: value }));
    expect(issues.map((i) => i.variable)).toEqual([variable]);
  });

  it("bedrock needs AWS_REGION, vertex needs CLOUD_ML_REGION: reported before anything opens", async () => {
    const catalog = ModelCatalog.load();
    expect(issuesOf(() => checkUpstream(loadConfig({ LLM_UPSTREAM: "bedrock" }), catalog))).toEqual(
      [
        {
          variable: "AWS_REGION",
          message: expect.stringMatching(/required with LLM_UPSTREAM=bedrock/),
        },
      ],
    );
    expect(
      issuesOf(() => checkUpstream(loadConfig({ LLM_UPSTREAM: "vertex" }), catalog)).map(
        (i) => i.variable,
      ),
    ).toEqual(["CLOUD_ML_REGION"]);
    // createDeps refuses the same way, before a database or Redis is opened.
    await expect(
      createDeps(
        loadConfig({ LLM_UPSTREAM: "bedrock", DATABASE_URL: "postgres://nowhere.invalid/x" }),
      ),
    ).rejects.toBeInstanceOf(ConfigError);
  });

  it("the Lambda zip's default build (built without Bedrock) refuses bedrock, naming the handler to run", async () => {
    const catalog = ModelCatalog.load();
    const config = loadConfig({ LLM_UPSTREAM: "bedrock", AWS_REGION: "us-east-1" });
    expect(() => checkUpstream(config, catalog)).not.toThrow();
    process.env.AGENT_BUNDLE_WITHOUT_BEDROCK = "1";
    try {
      expect(issuesOf(() => checkUpstream(config, catalog))).toEqual([
        {
          variable: "LLM_UPSTREAM",
          message: expect.stringContaining("run bedrock.handler from the same zip") as string,
        },
      ]);
      await expect(createUpstreamProvider(config, catalog)).rejects.toBeInstanceOf(ConfigError);
    } finally {
      delete process.env.AGENT_BUNDLE_WITHOUT_BEDROCK;
    }
  });

  it("a Bedrock profile some model lacks is refused, naming the models and the profiles that work", () => {
    const catalog = ModelCatalog.load();
    const [issue] = issuesOf(() =>
      checkUpstream(
        loadConfig({
          LLM_UPSTREAM: "bedrock",
          AWS_REGION: "ap-northeast-1",
          BEDROCK_INFERENCE_PROFILE: "jp",
        }),
        catalog,
      ),
    );
    expect(issue!.variable).toBe("BEDROCK_INFERENCE_PROFILE");
    expect(issue!.message).toMatch(
      /claude-haiku-4-5, claude-opus-4-5 have no jp inference profile/,
    );
    expect(issue!.message).toMatch(/use global, us, eu, none/);
    expect(() =>
      checkUpstream(
        loadConfig({
          LLM_UPSTREAM: "bedrock",
          AWS_REGION: "eu-west-1",
          BEDROCK_INFERENCE_PROFILE: "none",
        }),
        catalog,
      ),
    ).not.toThrow();
  });

  it("a model without an entry for the chosen cloud is refused under LLM_UPSTREAM", () => {
    const table = structuredClone(defaultTable) as { models: Array<Record<string, unknown>> };
    delete table.models[1]!.vertex;
    const [issue] = issuesOf(() =>
      checkUpstream(
        loadConfig({ LLM_UPSTREAM: "vertex", CLOUD_ML_REGION: "global" }),
        ModelCatalog.load(table),
      ),
    );
    expect(issue).toEqual({
      variable: "LLM_UPSTREAM",
      message: expect.stringMatching(/gives claude-sonnet-4-6 no vertex.modelId/),
    });
  });

  it("the cloud upstreams need no ANTHROPIC_API_KEY and never fall back to the offline model", async () => {
    const catalog = ModelCatalog.load();
    expect(await createUpstreamProvider(loadConfig({}), catalog)).toBeNull();
    const bedrock = await createUpstreamProvider(
      loadConfig({ LLM_UPSTREAM: "bedrock", AWS_REGION: "us-east-1" }),
      catalog,
      {
        bedrockCredentials: () =>
          Promise.resolve({ accessKeyId: "AKIA0000", secretAccessKey: "s" }),
      },
    );
    expect(bedrock).toMatchObject({ synthetic: false, upstream: "bedrock" });
  });
});

describe("the model table's cloud entries", () => {
  const catalog = ModelCatalog.load();

  it("every model has a base Bedrock id, its profile geographies and a Vertex id", () => {
    expect(modelTableSchema.safeParse(defaultTable).success).toBe(true);
    for (const m of catalog.table.models) {
      expect(m.bedrock?.modelId).toMatch(/^anthropic\.claude-/);
      expect(BEDROCK_GEOS.some((g) => m.bedrock!.modelId.startsWith(`${g}.`))).toBe(false);
      expect(m.bedrock?.geos).toContain("global");
      expect(m.vertex?.modelId).toMatch(/^claude-/);
    }
  });

  it("a geography prefix in bedrock.modelId is refused (geos lists those)", () => {
    const table = structuredClone(defaultTable) as {
      models: Array<{ bedrock: { modelId: string } }>;
    };
    table.models[0]!.bedrock.modelId = "us.anthropic.claude-haiku-4-5-20251001-v1:0";
    expect(() => ModelCatalog.load(table)).toThrow(/bedrock\.modelId: must be the base model id/);
  });

  it("maps table ids (and dated snapshots) to the id each cloud is called with", () => {
    expect(bedrockModelId(catalog, "claude-sonnet-4-6", "us")).toBe(
      "us.anthropic.claude-sonnet-4-6",
    );
    expect(bedrockModelId(catalog, "claude-haiku-4-5-20251001", "global")).toBe(
      "global.anthropic.claude-haiku-4-5-20251001-v1:0",
    );
    expect(bedrockModelId(catalog, "claude-opus-4-5", "none")).toBe(
      "anthropic.claude-opus-4-5-20251101-v1:0",
    );
    expect(bedrockModelId(catalog, "anthropic.some-other-model", "us")).toBe(
      "anthropic.some-other-model",
    );
    expect(vertexModelId(catalog, "claude-haiku-4-5")).toBe("claude-haiku-4-5@20251001");
    expect(vertexModelId(catalog, "claude-sonnet-4-6")).toBe("claude-sonnet-4-6");
  });
});

describe("each cloud's prices", () => {
  const priced = (env: Record<string, string>) =>
    ModelCatalog.load(undefined, upstreamPricing(loadConfig(env))).prices("claude-sonnet-4-6");

  it("charge the list prices on the Anthropic API and on the clouds' global endpoints", () => {
    expect(priced({}).inputPerMTok).toBe(3);
    expect(
      priced({ LLM_UPSTREAM: "bedrock", BEDROCK_INFERENCE_PROFILE: "global" }).inputPerMTok,
    ).toBe(3);
    expect(priced({ LLM_UPSTREAM: "vertex", CLOUD_ML_REGION: "global" }).outputPerMTok).toBe(15);
  });

  it("add the regional premium to every price of geographic and regional calls", () => {
    const regional: Array<Record<string, string>> = [
      { LLM_UPSTREAM: "bedrock", BEDROCK_INFERENCE_PROFILE: "eu" },
      { LLM_UPSTREAM: "bedrock", BEDROCK_INFERENCE_PROFILE: "none" },
      { LLM_UPSTREAM: "vertex", CLOUD_ML_REGION: "europe-west1" },
    ];
    for (const env of regional) {
      expect(priced(env)).toMatchObject({
        inputPerMTok: 3.3,
        outputPerMTok: 16.5,
        cacheWritePerMTok: 4.125,
        cacheWrite1hPerMTok: 6.6,
        cacheReadPerMTok: 0.33,
      });
    }
  });
});

describe("features a cloud lacks", () => {
  const body = { model: "claude-sonnet-4-6", messages: [{ role: "user", content: "hi" }] };

  it("betas the cloud does not serve, by name, on Bedrock and Vertex only", () => {
    expect(
      unsupportedFeature("bedrock", body, { beta: "context-1m-2025-08-07, skills-2025-10-02" }),
    ).toMatch(
      /^anthropic-beta: skills-2025-10-02 \(Agent Skills\) is not available on the bedrock upstream/,
    );
    expect(unsupportedFeature("anthropic", body, { beta: "files-api-2025-04-14" })).toBeUndefined();
    expect(unsupportedFeature("vertex", body, { beta: "context-1m-2025-08-07" })).toBeUndefined();
  });

  it("Files API references anywhere in the messages, tool results included", () => {
    const nested = {
      ...body,
      messages: [
        {
          role: "user",
          content: [
            {
              type: "tool_result",
              tool_use_id: "t",
              content: [{ type: "image", source: { type: "file", file_id: "f" } }],
            },
          ],
        },
      ],
    };
    expect(unsupportedFeature("vertex", nested)).toMatch(
      /^messages\.0\.content\.0\.content\.0\.source: the Files API/,
    );
    expect(unsupportedFeature("anthropic", nested)).toBeUndefined();
  });
});
