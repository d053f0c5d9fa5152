/**
 * Policy configuration: levels and thresholds per environment.
 *
 * Each rule states its level for dev, staging and prod and its thresholds' defaults per
 * environment. `config/<env>.json` are those values serialized in CrossGuard's policy config
 * format (`pulumi preview --policy-pack infra/policy --policy-pack-config infra/policy/config/prod.json`);
 * `npx tsx infra/policy/config/generate.ts` rewrites them and a test fails when they drift.
 *
 * A config (file or object) may override any rule's `enforcementLevel` and thresholds. The format
 * is CrossGuard's: `{ "all"?: level, "<rule>": level | { enforcementLevel?, ...thresholds } }`.
 */
import { RULES } from "./rules";
import { ENVIRONMENTS, type Environment, type JsonSchema, type Level, type Rule } from "./types";

export type ConfigLevel = Level | "remediate";
export type PolicyConfigEntry =
  ConfigLevel | ({ enforcementLevel?: ConfigLevel } & Record<string, unknown>);
export type PolicyConfigFile = Record<string, PolicyConfigEntry>;

const LEVEL_NAMES: readonly string[] = ["advisory", "mandatory", "remediate", "disabled"];

function isLevel(v: unknown): v is ConfigLevel {
  return typeof v === "string" && LEVEL_NAMES.includes(v);
}

/** Problems of a value against the schema subset rules use; empty when valid. */
export function schemaProblems(schema: JsonSchema, value: unknown, path: string): string[] {
  switch (schema.type) {
    case "number":
    case "integer": {
      if (typeof value !== "number" || !Number.isFinite(value)) return [`${path} must be a number`];
      if (schema.type === "integer" && !Number.isInteger(value))
        return [`${path} must be an integer`];
      if (schema.minimum !== undefined && value < schema.minimum)
        return [`${path} must be >= ${schema.minimum}`];
      if (schema.maximum !== undefined && value > schema.maximum)
        return [`${path} must be <= ${schema.maximum}`];
      return [];
    }
    case "boolean":
      return typeof value === "boolean" ? [] : [`${path} must be true or false`];
    case "string":
      if (typeof value !== "string") return [`${path} must be a string`];
      return schema.enum && !schema.enum.includes(value)
        ? [`${path} must be one of ${schema.enum.join(", ")}`]
        : [];
    case "array": {
      if (!Array.isArray(value)) return [`${path} must be a list`];
      if (schema.minItems !== undefined && value.length < schema.minItems)
        return [`${path} needs at least ${schema.minItems} item(s)`];
      return value.flatMap((v, i) => schemaProblems(schema.items, v, `${path}[${i}]`));
    }
  }
}

function entryOf(
  config: PolicyConfigFile | undefined,
  name: string,
): { level?: ConfigLevel; props: Record<string, unknown> } {
  const entry = config?.[name];
  if (entry === undefined) return { props: {} };
  if (typeof entry === "string") return { level: entry, props: {} };
  const { enforcementLevel, ...props } = entry;
  return { level: enforcementLevel, props };
}

/** Every problem of a policy config against the rules: unknown policies, bad levels, bad thresholds. */
export function validatePolicyConfig(
  config: PolicyConfigFile,
  rules: readonly Rule[] = RULES,
): string[] {
  const problems: string[] = [];
  for (const [name, entry] of Object.entries(config)) {
    if (name === "all") {
      const level = typeof entry === "string" ? entry : entry.enforcementLevel;
      if (!isLevel(level)) problems.push(`"all" must be one of ${LEVEL_NAMES.join(", ")}`);
      continue;
    }
    const rule = rules.find((r) => r.name === name);
    if (!rule) {
      problems.push(`"${name}" is not a policy of this pack`);
      continue;
    }
    const { level, props } = entryOf(config, name);
    if (level !== undefined && !isLevel(level))
      problems.push(`${name}.enforcementLevel must be one of ${LEVEL_NAMES.join(", ")}`);
    const schema = (rule.config?.schema ?? {}) as Record<string, JsonSchema>;
    for (const [key, value] of Object.entries(props)) {
      const s = schema[key];
      if (!s)
        problems.push(
          `${name}.${key} is not a setting of this policy (settings: ${Object.keys(schema).join(", ") || "none"})`,
        );
      else problems.push(...schemaProblems(s, value, `${name}.${key}`));
    }
  }
  return problems;
}

/** The level a rule runs at: the config's (the rule's, else "all"), else the rule's own for the environment. */
export function levelFor(rule: Rule, environment: Environment, config?: PolicyConfigFile): Level {
  const own = entryOf(config, rule.name).level;
  const all = config?.all;
  const allLevel = typeof all === "string" ? all : all?.enforcementLevel;
  const level = own ?? (isLevel(allLevel) ? allLevel : undefined) ?? rule.enforcement[environment];
  // Nothing here remediates: a remediate level reports like mandatory, as CrossGuard does.
  return level === "remediate" ? "mandatory" : level;
}

/** The rule's thresholds: its defaults for the environment, overridden by the given settings. */
export function effectiveConfig(
  rule: Rule,
  environment: Environment,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  const defaults = (rule.config?.defaults[environment] ?? {}) as Record<string, unknown>;
  const keys = Object.keys(rule.config?.schema ?? {});
  const picked = Object.fromEntries(
    Object.entries(overrides).filter(([k, v]) => keys.includes(k) && v !== undefined),
  );
  return { ...defaults, ...picked };
}

/** The thresholds a config sets for a rule (without its level). */
export function overridesFor(rule: Rule, config?: PolicyConfigFile): Record<string, unknown> {
  return entryOf(config, rule.name).props;
}

/** What `config/<environment>.json` holds: every rule's level and thresholds for that environment. */
export function policyConfigFor(
  environment: Environment,
  rules: readonly Rule[] = RULES,
): PolicyConfigFile {
  const out: PolicyConfigFile = {};
  for (const rule of rules) {
    out[rule.name] = {
      enforcementLevel: rule.enforcement[environment],
      ...effectiveConfig(rule, environment),
    };
  }
  return out;
}

/** CrossGuard's `configSchema` for a rule (no defaults: they depend on the environment, see `effectiveConfig`). */
export function configSchemaOf(rule: Rule): { properties: Record<string, JsonSchema> } | undefined {
  if (!rule.config) return undefined;
  return { properties: { ...(rule.config.schema as Record<string, JsonSchema>) } };
}

export { ENVIRONMENTS };
