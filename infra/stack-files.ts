/**
 * Reads `stacks/Pulumi.<stack>.yaml` the way the Pulumi CLI hands config to a program: every
 * value a string (objects and arrays as JSON), secure values flagged as secret. Used by the
 * offline plan and the tests, which run the program under the mock runtime without a CLI.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import type { RawStackConfig } from "./config";

export const STACKS_DIR = join(__dirname, "..", "stacks");

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
      values[key] = typeof value === "string" ? value : JSON.stringify(value);
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
