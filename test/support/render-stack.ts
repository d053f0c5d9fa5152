/**
 * Renders a whole stack from `stacks/Pulumi.<stack>.yaml` through `infra/program.ts` under the
 * mock runtime, as `pulumi up` would run it, minus the cloud. One stack per test file: Pulumi's
 * runtime state is module-global and jest gives each file its own.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setupPulumiMocks, registerComputedOutputs, renderInStack, resources, type ResourceQuery } from "./pulumi";
import { parseStackConfig, type StackConfig } from "../../infra/config";
import { readStackFile } from "../../infra/stack-files";
import type { ExportedArtifact } from "../../infra/artifact";
import type { ProgramOutputs } from "../../infra/program";

export const TEST_ANTHROPIC_KEY = "sk-ant-api03-stack-render-test-key-000000000000";
export const PROMOTED_DIGEST = `sha256:${"c0ffee".repeat(10)}abcd`;

/** What a promoted stack's StackReference answers: the source stack's exported artifact. */
export function exportedArtifactOf(source: string): ExportedArtifact {
  if (source.includes("lambda")) {
    return { kind: "lambda-zip", location: `s3://agent-artifacts-1234567/lambda/${"ab".repeat(32)}.zip`, sha256: "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=" };
  }
  // Where the source stack's registry lives: Artifact Registry for GCP stacks, ECR for AWS ones.
  const registry = /gcp|cloudrun/.test(source)
    ? "us-central1-docker.pkg.dev/acme-agent-dev/agent-image/agent"
    : "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent-image-1234567";
  return { kind: "image", imageRef: `${registry}@${PROMOTED_DIGEST}`, digest: PROMOTED_DIGEST };
}

export interface RenderedStack {
  config: StackConfig;
  outputs: ProgramOutputs;
  q: ResourceQuery;
}

/**
 * Call at the top of a test file (it sets the mocks before anything is constructed), then
 * `await` the returned promise in `beforeAll`.
 */
export function stackRenderer(stack: string, overrides: Record<string, string> = {}): () => Promise<RenderedStack> {
  // A stand-in Lambda bundle: the real one is built by `npm run build`.
  const dir = mkdtempSync(join(tmpdir(), "agent-stack-"));
  const bundle = join(dir, "lambda.zip");
  writeFileSync(bundle, "PK\u0005\u0006" + "\u0000".repeat(18));
  const raw = readStackFile(stack, { secrets: { "agent:anthropicApiKey": TEST_ANTHROPIC_KEY } });
  const values = { ...raw.values, ...overrides };
  const config = parseStackConfig({ ...raw, values });
  if (config.target === "lambda" && !config.promoteFrom) config.lambdaBundlePath = bundle;
  const region = values["aws:region"] ?? values["gcp:region"] ?? "us-east-1";
  setupPulumiMocks({ stack, config: values, secretKeys: raw.secretKeys, region });
  registerComputedOutputs("pulumi:pulumi:StackReference", (ctx) => {
    const name = String(ctx.plainInputs.name);
    return { id: name, name, outputs: { artifact: exportedArtifactOf(name) }, secretOutputNames: [] };
  });
  return async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require("./pulumi-gcp-outputs");
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require("./pulumi-target-outputs");
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { program } = require("../../infra/program") as typeof import("../../infra/program");
    const outputs = await renderInStack(() => program(config));
    return { config, outputs, q: resources };
  };
}
