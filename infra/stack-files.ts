/**
 * Reads `stacks/Pulumi.<stack>.yaml` the way the Pulumi CLI hands config to a program: every
 * value a string (objects and arrays as JSON), secure values flagged as secret. Used by the
 * offline plan and the tests, which run the program under the mock runtime without a CLI.
 *
 * Offline renders also need the values only a user can know (project, billing account, domain,
 * AMI...): `withOfflineSamples` fills exactly the required keys a stack leaves unset from
 * `stacks/offline-samples.yaml`, and says which ones it filled. `pulumi up` never reads samples.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import {
  parseStackConfig,
  StackConfigError,
  type ParseOptions,
  type RawStackConfig,
} from "./config";

export const STACKS_DIR = join(__dirname, "..", "stacks");
export const SAMPLES_FILE = "offline-samples.yaml";

export function listStacks(dir = STACKS_DIR): string[] {
  return readdirSync(dir)
    .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
    .filter((s): s is string => Boolean(s))
    .sort();
}

export interface ReadStackOptions {
  dir?: string;
  /**
   * Values for secrets the file does not hold (the CLI would decrypt them). Stack files in this
   * repository never contain secrets: users set them with `pulumi config set --secret`.
   */
  secrets?: Record<string, string>;
}

/** Config values as the CLI passes them: strings, with objects and arrays as JSON. */
function configValue(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

export function readStackFile(stack: string, options: ReadStackOptions = {}): RawStackConfig {
  const file = join(options.dir ?? STACKS_DIR, `Pulumi.${stack}.yaml`);
  const doc = (parse(readFileSync(file, "utf8")) ?? {}) as { config?: Record<string, unknown> };
  const values: Record<string, string> = {};
  const secretKeys: string[] = [];
  for (const [key, value] of Object.entries(doc.config ?? {})) {
    if (value && typeof value === "object" && "secure" in value) {
      secretKeys.push(key);
      const provided = options.secrets?.[key];
      if (provided === undefined) {
        throw new Error(
          `${file}: ${key} is encrypted; pass its value in options.secrets to render offline`,
        );
      }
      values[key] = provided;
    } else {
      values[key] = configValue(value);
    }
  }
  for (const [key, value] of Object.entries(options.secrets ?? {})) {
    if (values[key] === undefined) {
      values[key] = value;
      secretKeys.push(key);
    }
  }
  return { stack, values, secretKeys };
}

/** The keys a stack file sets, and which of them are encrypted (`secure:`). */
export function stackFileKeys(
  stack: string,
  dir = STACKS_DIR,
): { keys: string[]; secure: string[] } {
  const doc = (parse(readFileSync(join(dir, `Pulumi.${stack}.yaml`), "utf8")) ?? {}) as {
    config?: Record<string, unknown>;
  };
  const entries = Object.entries(doc.config ?? {});
  return {
    keys: entries.map(([k]) => k),
    secure: entries.filter(([, v]) => v && typeof v === "object" && "secure" in v).map(([k]) => k),
  };
}

/** Stack name (or "*") -> config key (`agent:eks.adminPrincipalArns` paths allowed) -> value. */
export type OfflineSamples = Record<string, Record<string, unknown>>;

export function readOfflineSamples(dir = STACKS_DIR): OfflineSamples {
  let text: string;
  try {
    text = readFileSync(join(dir, SAMPLES_FILE), "utf8");
  } catch {
    return {};
  }
  const doc = (parse(text) ?? {}) as unknown;
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) {
    throw new Error(
      `${join(dir, SAMPLES_FILE)}: expected a map of stack names (or "*") to config keys`,
    );
  }
  return doc as OfflineSamples;
}

/** The sample for `key` in `stack`: the stack's own first, then "*". */
export function sampleFor(samples: OfflineSamples, stack: string, key: string): unknown {
  return samples[stack]?.[key] ?? samples["*"]?.[key];
}

/**
 * `values` with `key` set, where a key may be a path into an object value
 * (`agent:eks.publicEndpointCidrs` sets `publicEndpointCidrs` inside `agent:eks`).
 */
export function setConfigPath(
  values: Record<string, string>,
  key: string,
  value: unknown,
): Record<string, string> {
  const colon = key.indexOf(":");
  const [first, ...path] = key.slice(colon + 1).split(".");
  const top = `${key.slice(0, colon + 1)}${first}`;
  if (path.length === 0) return { ...values, [top]: configValue(value) };
  const root = values[top] ? (JSON.parse(values[top]) as Record<string, unknown>) : {};
  let cur = root;
  for (const p of path.slice(0, -1)) {
    cur[p] = cur[p] && typeof cur[p] === "object" ? cur[p] : {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[path.at(-1)!] = value;
  return { ...values, [top]: JSON.stringify(root) };
}

export interface SampledStack {
  raw: RawStackConfig;
  /** Required keys the stack leaves unset that were filled from the samples. */
  sampled: string[];
  /** Required keys the stack leaves unset with no sample either. */
  unset: string[];
}

/**
 * Fills the required keys `raw` leaves unset from the samples, one round of the config check at
 * a time (a filled key can make another one required, as `domain` does `dnsZone`). Keys the
 * stack sets are never touched. Pure apart from the samples passed in.
 */
export function withOfflineSamples(
  raw: RawStackConfig,
  samples: OfflineSamples,
  options: ParseOptions = {},
): SampledStack {
  let current = raw;
  const sampled: string[] = [];
  const unset = new Set<string>();
  for (let round = 0; round < 10; round++) {
    let missing: string[];
    try {
      parseStackConfig(current, options);
      break;
    } catch (err) {
      if (!(err instanceof StackConfigError)) throw err;
      missing = err.missing.filter((k) => !sampled.includes(k) && !unset.has(k));
    }
    let filled = false;
    for (const key of missing) {
      const sample = sampleFor(samples, raw.stack, key);
      if (sample === undefined) {
        unset.add(key);
        continue;
      }
      current = { ...current, values: setConfigPath(current.values, key, sample) };
      sampled.push(key);
      filled = true;
    }
    if (!filled) break;
  }
  return { raw: current, sampled, unset: [...unset] };
}
