import {
  environmentFromProcess,
  environmentFromStackName,
  environmentOfResource,
  environmentOfStack,
  parseEnvironment,
} from "../../infra/policy/environment";
import { TAGS, aws, gcp, res } from "./fixtures";

test("environment names and their aliases", () => {
  expect(
    ["dev", "Development", "staging", "stage", "stg", "prod", "PRODUCTION", "prd"].map(
      parseEnvironment,
    ),
  ).toEqual(["dev", "dev", "staging", "staging", "staging", "prod", "prod", "prod"]);
  expect(parseEnvironment("qa")).toBeUndefined();
  expect(parseEnvironment(3)).toBeUndefined();
});

test("a stack name's suffix", () => {
  expect(environmentFromStackName("eks-prod")).toBe("prod");
  expect(environmentFromStackName("lambda_staging")).toBe("staging");
  expect(environmentFromStackName("dev")).toBe("dev");
  expect(environmentFromStackName("prod-sandbox")).toBeUndefined();
  expect(environmentFromStackName(undefined)).toBeUndefined();
});

describe("what the Pulumi CLI hands the pack's process", () => {
  test("an explicit override wins", () => {
    expect(
      environmentFromProcess({
        AGENT_POLICY_ENVIRONMENT: "staging",
        PULUMI_CONFIG: '{"agent:environment":"prod"}',
        PULUMI_STACK: "x-dev",
      }),
    ).toEqual({ environment: "staging", source: "AGENT_POLICY_ENVIRONMENT" });
  });

  test("then the stack config's <project>:environment, which the program tags resources with", () => {
    expect(
      environmentFromProcess({
        PULUMI_PROJECT: "agent",
        PULUMI_CONFIG: '{"agent:environment":"prod","aws:region":"us-east-1"}',
        PULUMI_STACK: "eks-dev",
      }),
    ).toEqual({ environment: "prod", source: "stack config agent:environment" });
    expect(
      environmentFromProcess({
        PULUMI_NODEJS_PROJECT: "other",
        PULUMI_CONFIG: '{"other:environment":"staging"}',
      }),
    ).toEqual({ environment: "staging", source: "stack config other:environment" });
  });

  test("then the stack name; unreadable config is skipped", () => {
    expect(
      environmentFromProcess({ PULUMI_CONFIG: "not json", PULUMI_STACK: "lambda-staging" }),
    ).toEqual({ environment: "staging", source: "stack name lambda-staging" });
    expect(
      environmentFromProcess({
        PULUMI_CONFIG: '{"agent:environment":"qa"}',
        PULUMI_NODEJS_STACK: "vm-gcp-prod",
      }).environment,
    ).toBe("prod");
  });

  test("nothing resolves to nothing (the pack then decides per resource)", () => {
    expect(environmentFromProcess({})).toEqual({});
  });
});

test("per resource: the environment tag or label, else the URN's stack name", () => {
  expect(environmentOfResource(aws.rds({ tags: { ...TAGS, environment: "staging" } }))).toBe(
    "staging",
  );
  expect(environmentOfResource(gcp.redis({ labels: { environment: "dev" } }))).toBe("dev");
  expect(environmentOfResource(gcp.sql({ settings: { userLabels: { environment: "dev" } } }))).toBe(
    "dev",
  );
  expect(
    environmentOfResource({
      urn: "urn:pulumi:eks-staging::agent::kubernetes:apps/v1:Deployment::d",
      props: {},
    }),
  ).toBe("staging");
  expect(
    environmentOfResource({ urn: "urn:pulumi:sandbox::agent::x::y", props: {} }),
  ).toBeUndefined();
});

test("per stack: the most common tag, else the stack name", () => {
  const dev = { tags: { ...TAGS, environment: "dev" } };
  expect(environmentOfStack([aws.rds(dev), aws.redis(dev), aws.lambda()])).toBe("dev");
  expect(
    environmentOfStack([
      res(
        "kubernetes:apps/v1:Deployment",
        {},
        { urn: "urn:pulumi:eks-prod::agent::kubernetes:apps/v1:Deployment::d" },
      ),
    ]),
  ).toBe("prod");
  expect(environmentOfStack([])).toBeUndefined();
});
