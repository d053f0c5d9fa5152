/**
 * The rollout driver's entry: the plan from AGENT_ROLLOUT_PLAN (a clear error naming it), exit
 * codes, timestamped progress lines, and the command `pulumi up` runs (DRIVER_COMMAND).
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import {
  CodeDeployClient,
  CreateDeploymentCommand,
  GetDeploymentCommand,
} from "@aws-sdk/client-codedeploy";
import { GetAliasCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { defaultGates, ROLLOUT_PLAN_ENV } from "../../components/release/rollout-plan";
import { EXIT, main, parsePlan, PlanError, type DriverDeps } from "../../infra/rollout/cli";
import { fakeClock } from "./fake-gcp";

const ROOT = join(__dirname, "..", "..");

const lambdaPlan = {
  kind: "lambda-codedeploy",
  region: "us-east-1",
  application: "agent-app",
  deploymentGroup: "agent-dg",
  functionName: "agent-fn",
  alias: "live",
  targetVersion: "13",
};

function capture() {
  const out = { stdout: "", stderr: "" };
  return {
    out,
    io: { stdout: (t: string) => (out.stdout += t), stderr: (t: string) => (out.stderr += t) },
  };
}

describe("parsePlan", () => {
  it.each([
    [undefined, /AGENT_ROLLOUT_PLAN is not set/],
    ["  ", /AGENT_ROLLOUT_PLAN is not set/],
    ["{kind: cloud-run}", /AGENT_ROLLOUT_PLAN is not valid JSON/],
    [JSON.stringify({ kind: "ecs" }), /AGENT_ROLLOUT_PLAN is not a valid rollout plan: kind: /],
    [
      JSON.stringify({ ...lambdaPlan, targetVersion: undefined }),
      /AGENT_ROLLOUT_PLAN is not a valid rollout plan: targetVersion: /,
    ],
  ])("rejects %j naming the variable", (raw, message) => {
    expect(() => parsePlan(raw)).toThrow(PlanError);
    expect(() => parsePlan(raw)).toThrow(message);
  });

  it("checks the steps with the stack config's rules and the gates' consistency", () => {
    const plan = {
      kind: "cloud-run",
      project: "p",
      region: "r",
      service: "s",
      steps: [{ percent: 0, minutes: 5 }],
      gates: { ...defaultGates(1000), badMinutes: 4, windowMinutes: 3 },
    };
    expect(() => parsePlan(JSON.stringify(plan))).toThrow(
      /steps: steps\[0\]\.percent is 0: use a whole number from 1 to 99.*gates\.badMinutes: badMinutes must not exceed windowMinutes/,
    );
  });

  it("accepts each kind's plan as the components write it", () => {
    expect(parsePlan(JSON.stringify(lambdaPlan))).toEqual(lambdaPlan);
    const mig = {
      kind: "gce-mig",
      project: "p",
      region: "r",
      instanceGroupManager: "m",
      instanceTemplate: "projects/p/global/instanceTemplates/t",
      urlMap: "u",
      steps: [{ percent: 10, minutes: 5 }],
      gates: defaultGates(1500),
    };
    expect(parsePlan(JSON.stringify(mig))).toEqual(mig);
  });
});

describe("main", () => {
  const codeDeployMock = mockClient(CodeDeployClient);
  const lambdaMock = mockClient(LambdaClient);
  beforeEach(() => {
    codeDeployMock.reset();
    lambdaMock.reset();
  });
  const deps: DriverDeps = {
    clock: fakeClock(),
    awsPollMs: 1000,
    aws: {
      codeDeploy: (region) => ({
        codeDeploy: new CodeDeployClient({ region }),
        lambda: new LambdaClient({ region }),
      }),
    },
  };

  it("exits 2 with a message naming AGENT_ROLLOUT_PLAN when the plan is bad", async () => {
    const { out, io } = capture();
    expect(await main({ [ROLLOUT_PLAN_ENV]: '{"kind":"nope"}' }, deps, io)).toBe(EXIT.badPlan);
    expect(out.stderr).toMatch(/^rollout: AGENT_ROLLOUT_PLAN is not a valid rollout plan/);
    expect(out.stdout).toBe("");
  });

  it("exits 0 with timestamped progress lines when the release is rolled out", async () => {
    lambdaMock.on(GetAliasCommand).resolves({ FunctionVersion: "12" });
    codeDeployMock.on(CreateDeploymentCommand).resolves({ deploymentId: "d-1" });
    codeDeployMock.on(GetDeploymentCommand).resolves({ deploymentInfo: { status: "Succeeded" } });
    const { out, io } = capture();

    expect(await main({ [ROLLOUT_PLAN_ENV]: JSON.stringify(lambdaPlan) }, deps, io)).toBe(EXIT.ok);
    const lines = out.stdout.trimEnd().split("\n");
    expect(lines.every((l) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /.test(l))).toBe(true);
    expect(lines.at(-1)).toMatch(/rollout: done: Lambda agent-fn:live: version 13$/);
    expect(out.stderr).toBe("");
  });

  it("exits 1 saying what rolled back and why", async () => {
    lambdaMock.on(GetAliasCommand).resolves({ FunctionVersion: "12" });
    codeDeployMock.on(CreateDeploymentCommand).resolves({ deploymentId: "d-1" });
    codeDeployMock.on(GetDeploymentCommand).resolves({
      deploymentInfo: {
        status: "Failed",
        errorInformation: { code: "ALARM_ACTIVE", message: "alarm agent-gate-5xx" },
        rollbackInfo: { rollbackDeploymentId: "d-2" },
      },
    });
    const { out, io } = capture();
    expect(await main({ [ROLLOUT_PLAN_ENV]: JSON.stringify(lambdaPlan) }, deps, io)).toBe(
      EXIT.failed,
    );
    expect(out.stderr).toMatch(
      /^rollout rolled back or not rolled out: .*ALARM_ACTIVE: alarm agent-gate-5xx.*rolled the alias back to version 12/,
    );
  });
});

describe("the command pulumi up runs", () => {
  it("runs only when executed directly, and fails on a missing plan naming the variable", () => {
    // Importing the module above ran nothing (no exit code was set).
    expect(process.exitCode).toBeUndefined();
    const env = { ...process.env };
    delete env[ROLLOUT_PLAN_ENV];
    const res = spawnSync(
      process.execPath,
      [join(ROOT, "node_modules", "tsx", "dist", "cli.mjs"), "infra/rollout/cli.ts"],
      { cwd: ROOT, env, encoding: "utf8", timeout: 60_000 },
    );
    expect(res.stderr).toContain("AGENT_ROLLOUT_PLAN is not set");
    expect(res.status).toBe(EXIT.badPlan);
  });
});
