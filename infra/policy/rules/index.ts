/** Every rule of the pack, grouped by domain. Both engines (pack.ts, runner.ts) read this list. */
import type { Rule } from "../types";
import { computeRules } from "./compute";
import { costRules } from "./cost";
import { dataRules } from "./data";
import { kubernetesRules } from "./kubernetes";
import { operationsRules } from "./operations";
import { secretsRules } from "./secrets";
import { supplyChainRules } from "./supply-chain";

export const RULES: readonly Rule[] = [
  ...dataRules,
  ...computeRules,
  ...kubernetesRules,
  ...secretsRules,
  ...supplyChainRules,
  ...operationsRules,
  ...costRules,
];

const names = new Set<string>();
for (const rule of RULES) {
  if (names.has(rule.name))
    throw new Error(`Two policy rules are named "${rule.name}": rename one.`);
  if (!/^[a-z0-9-]+$/.test(rule.name) || rule.name === "all")
    throw new Error(
      `Policy rule name "${rule.name}" must be lowercase words joined by dashes, and not "all".`,
    );
  names.add(rule.name);
}

export function ruleNamed(name: string): Rule | undefined {
  return RULES.find((r) => r.name === name);
}
