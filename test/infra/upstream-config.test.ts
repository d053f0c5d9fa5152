/**
 * `agent:upstream` (issue 16): Claude from the Anthropic API with a key, from Bedrock on AWS or
 * Vertex AI on GCP with the workload's identity and no key. Every mistake names the key.
 */
import { parseStackConfig, type RawStackConfig } from "../../infra/config";
import { problems } from "./config-problems";
import { bedrockModels, vertexModels } from "../../components/upstream";

const BASE = {
  "agent:environment": "dev",
  "agent:owner": "team",
  "agent:costCenter": "cc-1",
  "agent:alertEmails": '["oncall@acme.test"]',
};
const AWS = { ...BASE, "aws:region": "us-east-1", "agent:target": "lambda" };
const GCP = {
  ...BASE,
  "gcp:region": "us-central1",
  "gcp:project": "acme-agent-dev",
  "agent:target": "cloudrun",
  "agent:billingAccount": "000000-000000-000000",
};
const raw = (values: Record<string, string>): RawStackConfig => ({
  stack: "s-dev",
  values,
  secretKeys: values["agent:anthropicApiKey"] ? ["agent:anthropicApiKey"] : [],
});

test("anthropic (the default) needs the key, and says how to set it", () => {
  expect(parseStackConfig(raw({ ...AWS, "agent:anthropicApiKey": "sk-x" })).upstream).toEqual({
    kind: "anthropic",
  });
  expect(problems(raw(AWS))).toEqual([
    expect.stringMatching(
      /^agent:anthropicApiKey is required with agent:upstream anthropic.*pulumi config set --secret agent:anthropicApiKey/,
    ),
  ]);
});

test("bedrock on AWS: no key, the Region's own geography, every model of the table", () => {
  const c = parseStackConfig(raw({ ...AWS, "agent:upstream": "bedrock" }));
  expect(c.anthropicApiKey).toBeUndefined();
  expect(c.upstream).toEqual({ kind: "bedrock", profile: "us", models: bedrockModels() });
  const eu = parseStackConfig(
    raw({ ...AWS, "aws:region": "eu-west-1", "agent:upstream": "bedrock" }),
  );
  expect(eu.upstream).toMatchObject({ profile: "eu" });
});

test("vertex on GCP: no key, the global endpoint unless a location is set", () => {
  const c = parseStackConfig(raw({ ...GCP, "agent:upstream": "vertex" }));
  expect(c.upstream).toEqual({ kind: "vertex", region: "global", models: vertexModels() });
  expect(
    parseStackConfig(raw({ ...GCP, "agent:upstream": "vertex", "agent:vertexRegion": "us-east5" }))
      .upstream,
  ).toMatchObject({ region: "us-east5" });
});

test("a key with a cloud upstream, the wrong cloud, a geography that does not serve the Region, a location without Claude: refused", () => {
  expect(
    problems(raw({ ...AWS, "agent:upstream": "bedrock", "agent:anthropicApiKey": "sk-x" })),
  ).toEqual([
    expect.stringMatching(
      /^agent:anthropicApiKey is set, but agent:upstream bedrock calls Claude with the workload's own identity: remove it/,
    ),
  ]);
  expect(problems(raw({ ...GCP, "agent:upstream": "bedrock" }))).toEqual([
    expect.stringMatching(
      /^agent:upstream bedrock runs on aws, and this stack is on gcp: use vertex or anthropic/,
    ),
  ]);
  expect(
    problems(
      raw({
        ...AWS,
        "aws:region": "eu-west-1",
        "agent:upstream": "bedrock",
        "agent:bedrockProfile": "us",
      }),
    ),
  ).toEqual([
    expect.stringMatching(
      /^agent:bedrockProfile is us, whose inference profiles cannot be called from eu-west-1/,
    ),
  ]);
  expect(
    problems(raw({ ...GCP, "agent:upstream": "vertex", "agent:vertexRegion": "us-central1" })),
  ).toEqual([
    expect.stringMatching(
      /^agent:vertexRegion is us-central1, where Vertex AI serves no Claude model/,
    ),
  ]);
  expect(
    problems(raw({ ...AWS, "agent:anthropicApiKey": "sk-x", "agent:bedrockProfile": "us" })),
  ).toEqual([
    expect.stringMatching(
      /^agent:bedrockProfile and agent:vertexRegion apply to agent:upstream bedrock or vertex/,
    ),
  ]);
  expect(problems(raw({ ...AWS, "agent:upstream": "openai" }))[0]).toMatch(/agent:upstream/);
});
