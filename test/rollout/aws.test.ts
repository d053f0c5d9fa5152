/**
 * The AWS kinds with mocked SDK clients (aws-sdk-client-mock): the CodeDeploy deployment the
 * driver creates for a Lambda alias and how it reads its end, and the instance refresh it follows.
 */
import {
  AutoScalingClient,
  DescribeInstanceRefreshesCommand,
  type InstanceRefreshStatus,
} from "@aws-sdk/client-auto-scaling";
import {
  CodeDeployClient,
  CreateDeploymentCommand,
  GetDeploymentCommand,
} from "@aws-sdk/client-codedeploy";
import { GetAliasCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { parse } from "yaml";
import type { CodeDeployPlan, InstanceRefreshPlan } from "../../components/release/rollout-plan";
import {
  lambdaAppSpec,
  newestRefresh,
  runCodeDeploy,
  runInstanceRefresh,
} from "../../infra/rollout/aws";
import { RolloutFailed } from "../../infra/rollout/runtime";
import { fakeClock, rejection } from "./fake-gcp";

const codeDeployMock = mockClient(CodeDeployClient);
const lambdaMock = mockClient(LambdaClient);
const autoScalingMock = mockClient(AutoScalingClient);

let lines: string[];
beforeEach(() => {
  codeDeployMock.reset();
  lambdaMock.reset();
  autoScalingMock.reset();
  lines = [];
});

const deps = () => ({ clock: fakeClock(), log: (l: string) => lines.push(l), pollMs: 15_000 });

describe("Lambda through CodeDeploy", () => {
  const plan: CodeDeployPlan = {
    kind: "lambda-codedeploy",
    region: "us-east-1",
    application: "agent-app",
    deploymentGroup: "agent-dg",
    functionName: "agent-fn",
    alias: "live",
    targetVersion: "13",
  };
  const clients = () => ({
    codeDeploy: new CodeDeployClient({ region: "us-east-1" }),
    lambda: new LambdaClient({ region: "us-east-1" }),
  });

  it("creates a deployment with the alias's current version and resolves when it succeeds", async () => {
    lambdaMock.on(GetAliasCommand).resolves({ FunctionVersion: "12" });
    codeDeployMock.on(CreateDeploymentCommand).resolves({ deploymentId: "d-ABC" });
    codeDeployMock
      .on(GetDeploymentCommand)
      .resolvesOnce({ deploymentInfo: { status: "InProgress" } })
      .resolves({ deploymentInfo: { status: "Succeeded" } });

    await expect(runCodeDeploy(plan, clients(), deps())).resolves.toEqual({
      status: "rolled-out",
      detail: "Lambda agent-fn:live: version 13",
    });

    expect(lambdaMock.commandCalls(GetAliasCommand)[0]!.args[0].input).toEqual({
      FunctionName: "agent-fn",
      Name: "live",
    });
    const [create] = codeDeployMock.commandCalls(CreateDeploymentCommand);
    const input = create!.args[0].input;
    expect(input).toMatchObject({
      applicationName: "agent-app",
      deploymentGroupName: "agent-dg",
      revision: { revisionType: "AppSpecContent" },
    });
    const content = input.revision!.appSpecContent!.content!;
    expect(content.split("\n")[0]).toBe("version: 0.0");
    expect(parse(content)).toEqual({
      version: 0,
      Resources: [
        {
          "agent-fn": {
            Type: "AWS::Lambda::Function",
            Properties: {
              Name: "agent-fn",
              Alias: "live",
              CurrentVersion: "12",
              TargetVersion: "13",
            },
          },
        },
      ],
    });
    expect(codeDeployMock.commandCalls(GetDeploymentCommand)).toHaveLength(2);
    expect(codeDeployMock.commandCalls(GetDeploymentCommand)[0]!.args[0].input).toEqual({
      deploymentId: "d-ABC",
    });
    expect(lines).toContain("Lambda agent-fn:live: deployment d-ABC: InProgress");
  });

  it("rejects naming the rollback and its reason when the deployment failed", async () => {
    lambdaMock.on(GetAliasCommand).resolves({ FunctionVersion: "12" });
    codeDeployMock.on(CreateDeploymentCommand).resolves({ deploymentId: "d-ABC" });
    codeDeployMock.on(GetDeploymentCommand).resolves({
      deploymentInfo: {
        status: "Failed",
        errorInformation: {
          code: "ALARM_ACTIVE",
          message: "One or more alarms have been activated: agent-gate-5xx",
        },
        rollbackInfo: {
          rollbackDeploymentId: "d-ROLL",
          rollbackMessage: "Rollback of deployment d-ABC succeeded",
        },
      },
    });

    const err = await rejection(runCodeDeploy(plan, clients(), deps()));
    expect(err).toBeInstanceOf(RolloutFailed);
    expect(err.message).toBe(
      "Lambda agent-fn:live: deployment d-ABC Failed (ALARM_ACTIVE: One or more alarms have been activated: agent-gate-5xx); CodeDeploy rolled the alias back to version 12 (rollback deployment d-ROLL): Rollback of deployment d-ABC succeeded",
    );
  });

  it("says no rollback is recorded when a stopped deployment has none", async () => {
    lambdaMock.on(GetAliasCommand).resolves({ FunctionVersion: "12" });
    codeDeployMock.on(CreateDeploymentCommand).resolves({ deploymentId: "d-ABC" });
    codeDeployMock.on(GetDeploymentCommand).resolves({ deploymentInfo: { status: "Stopped" } });
    await expect(runCodeDeploy(plan, clients(), deps())).rejects.toThrow(
      /d-ABC Stopped \(no error information\); no rollback is recorded/,
    );
  });

  it("creates no deployment when the alias already points at the target version", async () => {
    lambdaMock.on(GetAliasCommand).resolves({ FunctionVersion: "13" });
    await expect(runCodeDeploy(plan, clients(), deps())).resolves.toMatchObject({
      status: "nothing-to-do",
    });
    expect(codeDeployMock.commandCalls(CreateDeploymentCommand)).toHaveLength(0);
    expect(codeDeployMock.commandCalls(GetDeploymentCommand)).toHaveLength(0);
  });

  it("quotes the AppSpec's values so versions stay strings", () => {
    const spec = parse(
      lambdaAppSpec({ functionName: "f", alias: "a", currentVersion: "1", targetVersion: "2" }),
    );
    expect(spec.Resources[0].f.Properties.CurrentVersion).toBe("1");
  });
});

describe("AWS VM group through instance refresh", () => {
  const plan: InstanceRefreshPlan = {
    kind: "aws-instance-refresh",
    region: "us-east-1",
    autoScalingGroupName: "agent-asg",
  };
  const client = () => new AutoScalingClient({ region: "us-east-1" });
  const started = new Date("2026-01-05T12:00:00Z");

  it("follows the newest refresh until Successful, printing its progress", async () => {
    autoScalingMock
      .on(DescribeInstanceRefreshesCommand)
      .resolvesOnce({
        InstanceRefreshes: [{ InstanceRefreshId: "ir-1", Status: "Pending" }],
      })
      .resolvesOnce({
        InstanceRefreshes: [
          {
            InstanceRefreshId: "ir-1",
            Status: "InProgress",
            PercentageComplete: 30,
            InstancesToUpdate: 7,
            StartTime: started,
            StatusReason: "Waiting for checkpoint",
          },
          {
            InstanceRefreshId: "ir-0",
            Status: "Successful",
            StartTime: new Date("2025-12-01T00:00:00Z"),
          },
        ],
      })
      .resolves({
        InstanceRefreshes: [
          {
            InstanceRefreshId: "ir-1",
            Status: "Successful",
            PercentageComplete: 100,
            InstancesToUpdate: 0,
            StartTime: started,
          },
        ],
      });

    await expect(runInstanceRefresh(plan, client(), deps())).resolves.toEqual({
      status: "rolled-out",
      detail: "Auto Scaling group agent-asg: instance refresh ir-1 successful",
    });
    expect(
      autoScalingMock.commandCalls(DescribeInstanceRefreshesCommand)[0]!.args[0].input,
    ).toEqual({
      AutoScalingGroupName: "agent-asg",
    });
    expect(lines).toContain(
      "Auto Scaling group agent-asg: instance refresh ir-1: InProgress, 30 % complete, 7 to update: Waiting for checkpoint",
    );
  });

  it("rejects with the status reason when the refresh was rolled back", async () => {
    autoScalingMock
      .on(DescribeInstanceRefreshesCommand)
      .resolvesOnce({
        InstanceRefreshes: [
          { InstanceRefreshId: "ir-1", Status: "InProgress", StartTime: started },
        ],
      })
      .resolves({
        InstanceRefreshes: [
          {
            InstanceRefreshId: "ir-1",
            Status: "RollbackSuccessful",
            StartTime: started,
            StatusReason: "Alarm agent-gate-5xx in ALARM: rolled back",
          },
        ],
      });
    const err = await rejection(runInstanceRefresh(plan, client(), deps()));
    expect(err).toBeInstanceOf(RolloutFailed);
    expect(err.message).toBe(
      "Auto Scaling group agent-asg: instance refresh ir-1 RollbackSuccessful, rolled back: the group runs its previous launch template again (Alarm agent-gate-5xx in ALARM: rolled back)",
    );
  });

  it.each<InstanceRefreshStatus>(["Failed", "Cancelled", "RollbackFailed"])(
    "rejects when the refresh ends %s",
    async (status) => {
      autoScalingMock
        .on(DescribeInstanceRefreshesCommand)
        .resolvesOnce({
          InstanceRefreshes: [
            { InstanceRefreshId: "ir-1", Status: "InProgress", StartTime: started },
          ],
        })
        .resolves({
          InstanceRefreshes: [
            { InstanceRefreshId: "ir-1", Status: status, StartTime: started, StatusReason: "why" },
          ],
        });
      await expect(runInstanceRefresh(plan, client(), deps())).rejects.toThrow(
        new RegExp(`ir-1 ${status}, .*\\(why\\)`),
      );
    },
  );

  it("exits without waiting when no refresh is in progress", async () => {
    autoScalingMock.on(DescribeInstanceRefreshesCommand).resolves({
      InstanceRefreshes: [{ InstanceRefreshId: "ir-0", Status: "Successful", StartTime: started }],
    });
    await expect(runInstanceRefresh(plan, client(), deps())).resolves.toMatchObject({
      status: "nothing-to-do",
    });
    autoScalingMock.on(DescribeInstanceRefreshesCommand).resolves({ InstanceRefreshes: [] });
    await expect(runInstanceRefresh(plan, client(), deps())).resolves.toMatchObject({
      status: "nothing-to-do",
    });
    expect(autoScalingMock.commandCalls(DescribeInstanceRefreshesCommand)).toHaveLength(2);
  });

  it("takes the newest refresh: one not started yet, then the latest StartTime", () => {
    expect(
      newestRefresh([
        { InstanceRefreshId: "old", StartTime: new Date("2025-01-01") },
        { InstanceRefreshId: "new", StartTime: new Date("2026-01-01") },
      ])?.InstanceRefreshId,
    ).toBe("new");
    expect(
      newestRefresh([
        { InstanceRefreshId: "a", StartTime: started },
        { InstanceRefreshId: "pending" },
      ])?.InstanceRefreshId,
    ).toBe("pending");
  });
});
