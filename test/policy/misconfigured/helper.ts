/**
 * A normal stack, rendered, then deliberately broken by mutating the recorded inputs (a public
 * database, a plaintext secret in an environment variable, unbounded scaling): the pack must
 * catch each with a message that says what to change, at mandatory level in prod.
 */
import type { PolicyResource } from "../../../infra/policy/types";
import {
  evaluatePolicies,
  formatViolation,
  toPolicyResource,
  type Violation,
} from "../../../infra/policy/runner";
import { stackRenderer, TEST_ANTHROPIC_KEY } from "../../support/render-stack";
import { readPolicyConfig } from "../stack-policies";

export { TEST_ANTHROPIC_KEY };

export interface Breakage {
  /** Mutates the (copied) resources in place. */
  apply(resources: PolicyResource[]): void;
  /** The violations it must cause: policy, logical resource name, message pattern. */
  expect: Array<{ policy: string; name: string; message: RegExp }>;
}

export function one(resources: PolicyResource[], type: string): PolicyResource {
  const found = resources.filter((r) => r.type === type);
  if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}`);
  return found[0]!;
}

export function describeMisconfigured(stack: string, breakages: Record<string, Breakage>): void {
  const render = stackRenderer(stack);
  let resources: PolicyResource[];
  let environment: "dev" | "staging" | "prod";
  const run = (rs: PolicyResource[]): Violation[] =>
    evaluatePolicies(rs, { environment, config: readPolicyConfig(environment) });
  const copy = () => resources.map((r) => ({ ...r, props: structuredClone(r.props) }));

  beforeAll(async () => {
    const s = await render();
    resources = s.q.all().map(toPolicyResource);
    environment = s.config.environment;
  }, 120_000);

  describe(`misconfigured ${stack}`, () => {
    test("as rendered, it has no mandatory violations", () => {
      expect(
        run(resources)
          .filter((v) => v.level === "mandatory")
          .map(formatViolation),
      ).toEqual([]);
    });

    for (const [title, b] of Object.entries(breakages)) {
      test(`${title} is caught, mandatory, with what to change`, () => {
        const broken = copy();
        b.apply(broken);
        const before = new Set(run(resources).map(formatViolation));
        const added = run(broken).filter((v) => !before.has(formatViolation(v)));
        for (const e of b.expect) {
          const hit = added.find(
            (v) => v.policy === e.policy && v.name === e.name && e.message.test(v.message),
          );
          expect(hit ? "caught" : { missing: e, added: added.map(formatViolation) }).toBe("caught");
          expect(hit!.level).toBe("mandatory");
        }
        // Nothing else: each breakage is reported by the rules meant for it.
        expect(
          added.filter((v) => !b.expect.some((e) => e.policy === v.policy)).map(formatViolation),
        ).toEqual([]);
      });
    }

    test("all of it at once is still caught in full", () => {
      const broken = copy();
      for (const b of Object.values(breakages)) b.apply(broken);
      const found = run(broken);
      for (const e of Object.values(breakages).flatMap((b) => b.expect)) {
        expect(
          found.some(
            (v) => v.policy === e.policy && v.name === e.name && e.message.test(v.message),
          ),
        ).toBe(true);
      }
    });
  });
}
