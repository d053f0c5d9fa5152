/**
 * Enforcement levels per environment: security mandatory everywhere, cost advisory in dev and
 * mandatory in prod; the per-environment config files carry exactly those levels and valid
 * thresholds; config overrides win, as in CrossGuard.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { RULES, ruleNamed } from "../../infra/policy/rules";
import {
  levelFor,
  policyConfigFor,
  validatePolicyConfig,
  type PolicyConfigFile,
} from "../../infra/policy/config";
import { buildPolicies } from "../../infra/policy/pack";
import { evaluatePolicies } from "../../infra/policy/runner";
import { ENVIRONMENTS, type Environment } from "../../infra/policy/types";
import { aws } from "./fixtures";

const SECURITY_DOMAINS = ["data", "compute", "kubernetes", "secrets", "supply-chain"];
/** Rules whose subject only exists in some environments, and how. */
const ENVIRONMENT_SPECIFIC: Record<string, Record<Environment, string>> = {
  "prod-deletion-protection": { dev: "disabled", staging: "disabled", prod: "mandatory" },
  "prod-min-capacity": { dev: "disabled", staging: "disabled", prod: "mandatory" },
  "k8s-hpa-min-replicas": { dev: "disabled", staging: "disabled", prod: "mandatory" },
  "k8s-pdb-in-prod": { dev: "disabled", staging: "disabled", prod: "mandatory" },
  "redis-backups": { dev: "disabled", staging: "advisory", prod: "mandatory" },
  "images-pinned-by-digest": { dev: "advisory", staging: "mandatory", prod: "mandatory" },
  "eks-api-endpoint-restricted": { dev: "advisory", staging: "advisory", prod: "mandatory" },
  "alarms-present": { dev: "advisory", staging: "mandatory", prod: "mandatory" },
};

const readConfig = (env: Environment) =>
  JSON.parse(
    readFileSync(join(__dirname, "../../infra/policy/config", `${env}.json`), "utf8"),
  ) as PolicyConfigFile;

test("the pack has at least 25 rules, in every domain, for both clouds and Kubernetes", () => {
  expect(RULES.length).toBeGreaterThanOrEqual(25);
  expect(new Set(RULES.map((r) => r.domain))).toEqual(
    new Set([...SECURITY_DOMAINS, "operations", "cost"]),
  );
  const types = RULES.flatMap((r) => (r.kind === "resource" && r.types !== "*" ? r.types : []));
  for (const prefix of ["aws:", "gcp:", "kubernetes:"])
    expect(types.some((t) => t.startsWith(prefix))).toBe(true);
});

describe("levels per environment", () => {
  test.each(
    RULES.filter((r) => SECURITY_DOMAINS.includes(r.domain) || r.domain === "operations").map(
      (r) => [r.name],
    ),
  )("security/operations rule %s is mandatory everywhere, unless environment-specific", (name) => {
    const rule = ruleNamed(name)!;
    expect(rule.enforcement).toEqual(
      ENVIRONMENT_SPECIFIC[name] ?? { dev: "mandatory", staging: "mandatory", prod: "mandatory" },
    );
  });

  test.each(RULES.filter((r) => r.domain === "cost").map((r) => [r.name]))(
    "cost rule %s is advisory in dev and mandatory in staging and prod",
    (name) => {
      expect(ruleNamed(name)!.enforcement).toEqual({
        dev: "advisory",
        staging: "mandatory",
        prod: "mandatory",
      });
    },
  );

  test("every environment-specific rule is mandatory in prod", () => {
    for (const name of Object.keys(ENVIRONMENT_SPECIFIC))
      expect(ruleNamed(name)!.enforcement.prod).toBe("mandatory");
  });

  test("the runner reports at the environment's level", () => {
    const big = [aws.rds({ instanceClass: "db.r7g.16xlarge", publiclyAccessible: true })];
    const levels = (env: Environment) =>
      Object.fromEntries(
        evaluatePolicies(big, { environment: env })
          .filter((v) => ["allowed-database-sizes", "database-not-public"].includes(v.policy))
          .map((v) => [v.policy, v.level]),
      );
    expect(levels("dev")).toEqual({
      "allowed-database-sizes": "advisory",
      "database-not-public": "mandatory",
    });
    expect(levels("prod")).toEqual({
      "allowed-database-sizes": "mandatory",
      "database-not-public": "mandatory",
    });
  });
});

describe("policy config files", () => {
  test.each(ENVIRONMENTS.map((e) => [e]))(
    "config/%s.json is what the rules say (regenerate with npx tsx infra/policy/config/generate.ts)",
    (env) => {
      expect(readConfig(env)).toEqual(JSON.parse(JSON.stringify(policyConfigFor(env))));
    },
  );

  test.each(ENVIRONMENTS.map((e) => [e]))(
    "config/%s.json is valid and sets every rule's level for its environment",
    (env) => {
      const file = readConfig(env);
      expect(validatePolicyConfig(file)).toEqual([]);
      for (const rule of RULES) {
        expect({
          rule: rule.name,
          level: (file[rule.name] as { enforcementLevel: string }).enforcementLevel,
        }).toEqual({ rule: rule.name, level: rule.enforcement[env] });
      }
      expect((file["environment-consistent"] as { environment: string }).environment).toBe(env);
    },
  );

  test("cost limits and sizes tighten from prod to dev", () => {
    const limit = (env: Environment) =>
      (readConfig(env)["monthly-cost-limit"] as { monthlyLimitUsd: number }).monthlyLimitUsd;
    expect(limit("dev")).toBeLessThan(limit("staging"));
    expect(limit("staging")).toBeLessThan(limit("prod"));
    const types = (env: Environment) =>
      (readConfig(env)["allowed-instance-sizes"] as { awsInstanceTypes: string[] })
        .awsInstanceTypes;
    expect(types("dev")).not.toContain("m7g.large");
    expect(types("prod")).toContain("m7g.large");
  });

  test("invalid configs are refused with what is wrong", () => {
    expect(
      validatePolicyConfig({
        "no-such-policy": "mandatory",
        "database-backups": {
          enforcementLevel: "fatal" as never,
          minRetentionDays: 0,
          colour: "red",
        },
        "monthly-cost-limit": { monthlyLimitUsd: "lots" },
        "allowed-instance-sizes": { awsInstanceTypes: [] },
        all: "sometimes" as never,
      }),
    ).toEqual([
      '"no-such-policy" is not a policy of this pack',
      "database-backups.enforcementLevel must be one of advisory, mandatory, remediate, disabled",
      "database-backups.minRetentionDays must be >= 1",
      "database-backups.colour is not a setting of this policy (settings: minRetentionDays, requirePointInTimeRecovery)",
      "monthly-cost-limit.monthlyLimitUsd must be a number",
      "allowed-instance-sizes.awsInstanceTypes needs at least 1 item(s)",
      '"all" must be one of advisory, mandatory, remediate, disabled',
    ]);
    expect(() =>
      evaluatePolicies([], {
        environment: "dev",
        config: { "monthly-cost-limit": { monthlyLimitUsd: -1 } },
      }),
    ).toThrow(/Invalid policy config:\n {2}monthly-cost-limit.monthlyLimitUsd must be >= 0/);
  });
});

describe("config overrides levels as CrossGuard does", () => {
  const rule = ruleNamed("database-not-public")!;
  test("a rule's own level beats 'all', which beats the rule's default", () => {
    expect(levelFor(rule, "prod")).toBe("mandatory");
    expect(levelFor(rule, "prod", { all: "advisory" })).toBe("advisory");
    expect(
      levelFor(rule, "prod", {
        all: { enforcementLevel: "disabled" },
        "database-not-public": "mandatory",
      }),
    ).toBe("mandatory");
    expect(
      levelFor(rule, "prod", { "database-not-public": { enforcementLevel: "remediate" } }),
    ).toBe("mandatory");
  });

  test("the runner reports at the configured level, and not at all when disabled", () => {
    const db = [aws.rds({ publiclyAccessible: true })];
    const only = (config: PolicyConfigFile) =>
      evaluatePolicies(db, { environment: "prod", config, rules: [rule] }).map((v) => v.level);
    expect(only({ "database-not-public": "advisory" })).toEqual(["advisory"]);
    expect(only({ "database-not-public": { enforcementLevel: "disabled" } })).toEqual([]);
  });
});

describe("the CrossGuard policies carry the same levels", () => {
  const levels = (env?: Environment) =>
    Object.fromEntries(
      buildPolicies({ environment: env, usePlanCostModel: false }).map((p) => [
        p.name,
        p.enforcementLevel,
      ]),
    );

  test.each(ENVIRONMENTS.map((e) => [e]))("in %s", (env) => {
    expect(levels(env)).toEqual(Object.fromEntries(RULES.map((r) => [r.name, r.enforcement[env]])));
  });

  test("with the environment unknown at start-up, the strictest level (each validation then skips environments where the rule is off)", () => {
    const saved = { ...process.env };
    try {
      for (const k of [
        "AGENT_POLICY_ENVIRONMENT",
        "PULUMI_CONFIG",
        "PULUMI_STACK",
        "PULUMI_NODEJS_STACK",
      ])
        delete process.env[k];
      const l = levels(undefined);
      expect(l["monthly-cost-limit"]).toBe("mandatory");
      expect(l["prod-deletion-protection"]).toBe("mandatory");
      expect(l["images-pinned-by-digest"]).toBe("mandatory");
    } finally {
      process.env = saved;
    }
  });

  test("every policy declares its thresholds as a config schema without defaults (those depend on the environment)", () => {
    for (const p of buildPolicies({ environment: "prod", usePlanCostModel: false })) {
      const rule = ruleNamed(p.name)!;
      if (!rule.config) {
        expect(p.configSchema).toBeUndefined();
        continue;
      }
      expect(Object.keys(p.configSchema!.properties).sort()).toEqual(
        Object.keys(rule.config.schema).sort(),
      );
      expect(JSON.stringify(p.configSchema)).not.toContain('"default"');
      expect(p.configSchema!.properties).not.toHaveProperty("enforcementLevel");
    }
  });
});

test("the README's rule table matches the rules", () => {
  const readme = readFileSync(join(__dirname, "../../infra/policy/README.md"), "utf8").replace(
    / +/g,
    " ",
  );
  for (const r of RULES) {
    expect(readme).toContain(
      `| \`${r.name}\` | ${r.domain} | ${r.enforcement.dev} | ${r.enforcement.staging} | ${r.enforcement.prod} |`,
    );
  }
});
