/**
 * Renders a whole stack from `stacks/Pulumi.<stack>.yaml` through `infra/program.ts` under the
 * mock runtime, as `pulumi up` would run it, minus the cloud. One stack per process (or per jest
 * test file): Pulumi's runtime state is module-global.
 *
 * What the CLI would supply and the repository does not hold is filled in: encrypted config with
 * a placeholder, the Lambda bundle with a stand-in zip (the real one is built by `npm run build`),
 * and a promoted stack's StackReference with the source stack's exported artifact.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  setupPulumiMocks,
  registerComputedOutputs,
  renderInStack,
  resources,
  type ResourceQuery,
} from "./mock-runtime";
import { parseStackConfig, type StackConfig } from "../config";
import { readStackFile } from "../stack-files";
import type { ExportedArtifact } from "../artifact";
import type { ProgramOutputs } from "../program";

/** The placeholder for `agent:anthropicApiKey` (stack files never hold the real one). */
export const TEST_ANTHROPIC_KEY = "sk-ant-api03-stack-render-test-key-000000000000";
export const PROMOTED_DIGEST = `sha256:${"c0ffee".repeat(10)}abcd`;

/** What a promoted stack's StackReference answers: the source stack's exported artifact. */
export function exportedArtifactOf(source: string): ExportedArtifact {
  if (source.includes("lambda")) {
    return {
      kind: "lambda-zip",
      location: `s3://agent-artifacts-1234567/lambda/${"ab".repeat(32)}.zip`,
      sha256: "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=",
    };
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

export interface StackRendererOptions {
  /** Directory holding `Pulumi.<stack>.yaml`. @default the repository's `stacks/` */
  dir?: string;
}

/**
 * Call at the top of a test file or worker (it sets the mocks before anything is constructed),
 * then `await` the returned function's promise.
 */
export function stackRenderer(
  stack: string,
  overrides: Record<string, string> = {},
  options: StackRendererOptions = {},
): () => Promise<RenderedStack> {
  // A stand-in Lambda bundle: the real one is built by `npm run build`.
  const dir = mkdtempSync(join(tmpdir(), "agent-stack-"));
  const bundle = join(dir, "lambda.zip");
  writeFileSync(bundle, "PK\u0005\u0006" + "\u0000".repeat(18));
  const raw = readStackFile(stack, {
    dir: options.dir,
    secrets: { "agent:anthropicApiKey": TEST_ANTHROPIC_KEY },
  });
  const values = { ...raw.values, ...overrides };
  const config = parseStackConfig({ ...raw, values });
  if (config.target === "lambda" && !config.promoteFrom) config.lambdaBundlePath = bundle;
  const region = values["aws:region"] ?? values["gcp:region"] ?? "us-east-1";
  setupPulumiMocks({ stack, config: values, secretKeys: raw.secretKeys, region });
  registerComputedOutputs("pulumi:pulumi:StackReference", (ctx) => {
    const name = String(ctx.plainInputs.name);
    return {
      id: name,
      name,
      outputs: { artifact: exportedArtifactOf(name) },
      secretOutputNames: [],
    };
  });
  return async () => {
    // Required lazily: these register on the runtime that setupPulumiMocks just configured, and
    // the program's modules read config at import.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require("./mock-outputs-gcp");
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require("./mock-outputs-targets");
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { program } = require("../program") as typeof import("../program");
    const outputs = await renderInStack(() => program(config));
    return { config, outputs, q: resources };
  };
}
