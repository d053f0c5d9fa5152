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
import { parseStackConfig, type RawStackConfig, type StackConfig } from "../config";
import {
  readOfflineSamples,
  readStackFile,
  stackFileKeys,
  withOfflineSamples,
} from "../stack-files";
import type { ExportedArtifact } from "../artifact";
import type { ProgramOutputs } from "../program";
import { gcpResourceId } from "../naming";
import { bundleKey } from "../../components/aws/lambda-bundle";

/** The placeholder for `agent:anthropicApiKey` (stack files never hold the real one). */
export const TEST_ANTHROPIC_KEY = "sk-ant-api03-stack-render-test-key-000000000000";
/** Secrets every stack needs, which stack files hold only once a user sets them. */
const REQUIRED_SECRETS = ["agent:anthropicApiKey"];
export const PROMOTED_DIGEST = `sha256:${"c0ffee".repeat(10)}abcd`;

/**
 * What a promoted stack's StackReference answers: the artifact the source stack would export,
 * in the registry its own config (with the offline samples) puts it in.
 */
export function exportedArtifactOf(source: string, dir?: string): ExportedArtifact {
  const name = source.split("/").at(-1)!;
  if (name.includes("lambda")) {
    // Content-addressed, as LambdaBundle uploads it: the key is the SHA-256 in hex.
    const sha256 = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
    return {
      kind: "lambda-zip",
      location: `s3://agent-artifacts-1234567/${bundleKey(sha256)}`,
      sha256,
    };
  }
  let values: Record<string, string> = {};
  try {
    const raw = readStackFile(name, {
      dir,
      secrets: { "agent:anthropicApiKey": TEST_ANTHROPIC_KEY },
    });
    values = withOfflineSamples(raw, readOfflineSamples(dir)).raw.values;
  } catch {
    // A source outside the stacks directory: a registry of the same cloud, in general terms.
  }
  // Where the source stack's registry lives: Artifact Registry for GCP stacks, ECR for AWS ones.
  const registry =
    values["gcp:project"] || /gcp|cloudrun/.test(name)
      ? `${values["gcp:region"] ?? "us-central1"}-docker.pkg.dev/${values["gcp:project"] ?? "source-project"}/${gcpResourceId(`agent-${name}`)}/agent`
      : `123456789012.dkr.ecr.${values["aws:region"] ?? "us-east-1"}.amazonaws.com/agent-image-repo-1234567`;
  return { kind: "image", imageRef: `${registry}@${PROMOTED_DIGEST}`, digest: PROMOTED_DIGEST };
}

export interface RenderedStack {
  config: StackConfig;
  /** Required keys the stack file leaves unset that the render took from the offline samples. */
  sampled: string[];
  /** The stack file's own plain values (no samples, no secrets). */
  fileValues: Record<string, string>;
  /** Required secrets the stack file does not hold (the render supplied stand-ins). */
  secretsUnset: string[];
  outputs: ProgramOutputs;
  q: ResourceQuery;
}

export interface StackRendererOptions {
  /** Directory holding `Pulumi.<stack>.yaml`. @default the repository's `stacks/` */
  dir?: string;
  /**
   * What the stack's own registry or bucket holds (image digests, bundle SHA-256s), for a
   * rollback's check. @default the release `agent:release` names (the offline plan cannot look)
   */
  storedReleases?: string[];
}

/**
 * Call at the top of a test file or worker (it sets the mocks before anything is constructed),
 * then `await` the returned function's promise.
 */
/**
 * A stack on Bedrock or Vertex stores no Anthropic key (infra/config-upstream.ts refuses one):
 * the stand-in goes, unless the stack file itself sets a key (then the config says what to fix).
 */
function withoutUnneededKey(
  raw: RawStackConfig,
  overrides: Record<string, string>,
  fileKeys: readonly string[],
): RawStackConfig {
  const key = "agent:anthropicApiKey";
  const upstream = overrides["agent:upstream"] ?? raw.values["agent:upstream"] ?? "anthropic";
  if (upstream === "anthropic" || fileKeys.includes(key)) return raw;
  const { [key]: _standIn, ...values } = raw.values;
  return { ...raw, values, secretKeys: raw.secretKeys.filter((k) => k !== key) };
}

export function stackRenderer(
  stack: string,
  overrides: Record<string, string> = {},
  options: StackRendererOptions = {},
): () => Promise<RenderedStack> {
  // A stand-in Lambda bundle: the real one is built by `npm run build`.
  const dir = mkdtempSync(join(tmpdir(), "agent-stack-"));
  const bundle = join(dir, "lambda.zip");
  writeFileSync(bundle, "PK\u0005\u0006" + "\u0000".repeat(18));
  const file = stackFileKeys(stack, options.dir);
  const raw = withoutUnneededKey(
    readStackFile(stack, {
      dir: options.dir,
      secrets: { "agent:anthropicApiKey": TEST_ANTHROPIC_KEY },
    }),
    overrides,
    file.keys,
  );
  const fileValues = Object.fromEntries(
    Object.entries(raw.values).filter(([k]) => file.keys.includes(k) && !file.secure.includes(k)),
  );
  // A stack on Bedrock or Vertex needs no Anthropic key (withoutUnneededKey).
  const secretsUnset = REQUIRED_SECRETS.filter(
    (k) => !file.secure.includes(k) && (k !== "agent:anthropicApiKey" || k in raw.values),
  );
  const sampledStack = withOfflineSamples(
    { ...raw, values: { ...raw.values, ...overrides } },
    readOfflineSamples(options.dir),
  );
  const values = sampledStack.raw.values;
  const config = parseStackConfig(sampledStack.raw);
  if (config.target === "lambda" && !config.promoteFrom) config.lambdaBundlePath = bundle;
  const region = values["aws:region"] ?? values["gcp:region"] ?? "us-east-1";
  setupPulumiMocks({ stack, config: values, secretKeys: raw.secretKeys, region });
  registerComputedOutputs("pulumi:pulumi:StackReference", (ctx) => {
    const name = String(ctx.plainInputs.name);
    return {
      id: name,
      name,
      outputs: { artifact: exportedArtifactOf(name, options.dir) },
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
    const release = require("./mock-outputs-release") as typeof import("./mock-outputs-release");
    // Offline, a rollback's release is taken to be in the stack's storage (`--live` would look).
    release.setStoredReleases(options.storedReleases ?? (config.release ? [config.release] : []));
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { program } = require("../program") as typeof import("../program");
    const outputs = await renderInStack(() => program(config));
    return {
      config,
      sampled: sampledStack.sampled,
      fileValues,
      secretsUnset,
      outputs,
      q: resources,
    };
  };
}
