/**
 * The AWS kinds, where the platform runs the canary itself and the driver starts or follows it:
 *
 * - Lambda through CodeDeploy: the alias's current version (Lambda GetAlias,
 *   https://docs.aws.amazon.com/lambda/latest/api/API_GetAlias.html) and the target version go
 *   into an AppSpec (https://docs.aws.amazon.com/codedeploy/latest/userguide/reference-appspec-file-structure-resources.html,
 *   `version: 0.0`, one AWS::Lambda::Function resource with Name, Alias, CurrentVersion and
 *   TargetVersion), sent as the revision's AppSpecContent to CreateDeployment
 *   (https://docs.aws.amazon.com/codedeploy/latest/APIReference/API_CreateDeployment.html); the
 *   deployment group's configuration shifts the traffic and its alarms roll it back. GetDeployment
 *   (https://docs.aws.amazon.com/codedeploy/latest/APIReference/API_DeploymentInfo.html) is
 *   polled until Succeeded, or Failed / Stopped with errorInformation and rollbackInfo.
 * - AWS VM group through instance refresh: the refresh the launch template change started is
 *   followed with DescribeInstanceRefreshes
 *   (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_InstanceRefresh.html) until
 *   Successful, or Failed / Cancelled / RollbackSuccessful / RollbackFailed with its StatusReason.
 */
import {
  AutoScalingClient,
  DescribeInstanceRefreshesCommand,
  type InstanceRefresh,
} from "@aws-sdk/client-auto-scaling";
import {
  CodeDeployClient,
  CreateDeploymentCommand,
  GetDeploymentCommand,
  type DeploymentInfo,
} from "@aws-sdk/client-codedeploy";
import { GetAliasCommand, LambdaClient } from "@aws-sdk/client-lambda";
import type { CodeDeployPlan, InstanceRefreshPlan } from "../../components/release/rollout-plan";
import { pollUntil, RolloutFailed, type Clock, type Log, type RolloutOutcome } from "./runtime";

export interface AwsDeps {
  clock: Clock;
  log: Log;
  /** Between polls. @default 15 s */
  pollMs?: number;
  /**
   * The longest the platform's rollout may take. CodeDeploy and instance refresh end it
   * themselves; this only bounds a stuck one. @default 50 h (a 48 h step, the longest allowed)
   */
  timeoutMs?: number;
}

const DEFAULT_POLL_MS = 15_000;
const DEFAULT_TIMEOUT_MS = 50 * 60 * 60_000;

/**
 * The AppSpec of a Lambda deployment, as YAML: `version: 0.0` must stay 0.0 (JSON would print
 * it as 0), and the values are quoted so that a version such as 12 stays a string.
 */
export function lambdaAppSpec(p: {
  functionName: string;
  alias: string;
  currentVersion: string;
  targetVersion: string;
}): string {
  const q = (s: string) => JSON.stringify(s);
  return [
    "version: 0.0",
    "Resources:",
    `  - ${q(p.functionName)}:`,
    "      Type: AWS::Lambda::Function",
    "      Properties:",
    `        Name: ${q(p.functionName)}`,
    `        Alias: ${q(p.alias)}`,
    `        CurrentVersion: ${q(p.currentVersion)}`,
    `        TargetVersion: ${q(p.targetVersion)}`,
    "",
  ].join("\n");
}

export interface CodeDeployClients {
  codeDeploy: CodeDeployClient;
  lambda: LambdaClient;
}

export function codeDeployClients(region: string): CodeDeployClients {
  return { codeDeploy: new CodeDeployClient({ region }), lambda: new LambdaClient({ region }) };
}

export async function runCodeDeploy(
  plan: CodeDeployPlan,
  clients: CodeDeployClients,
  deps: AwsDeps,
): Promise<RolloutOutcome> {
  const { clock, log } = deps;
  const what = `Lambda ${plan.functionName}:${plan.alias}`;
  const alias = await clients.lambda.send(
    new GetAliasCommand({ FunctionName: plan.functionName, Name: plan.alias }),
  );
  const currentVersion = alias.FunctionVersion;
  if (!currentVersion) {
    throw new Error(`${what}: GetAlias returned no FunctionVersion`);
  }
  if (currentVersion === plan.targetVersion) {
    log(`${what} already points at version ${plan.targetVersion}: nothing to do`);
    return { status: "nothing-to-do", detail: `${what}: version ${plan.targetVersion}` };
  }
  const created = await clients.codeDeploy.send(
    new CreateDeploymentCommand({
      applicationName: plan.application,
      deploymentGroupName: plan.deploymentGroup,
      description: `${what}: version ${currentVersion} -> ${plan.targetVersion} (rollout driver)`,
      revision: {
        revisionType: "AppSpecContent",
        appSpecContent: {
          content: lambdaAppSpec({
            functionName: plan.functionName,
            alias: plan.alias,
            currentVersion,
            targetVersion: plan.targetVersion,
          }),
        },
      },
    }),
  );
  const id = created.deploymentId;
  if (!id) throw new Error(`${what}: CreateDeployment returned no deploymentId`);
  log(
    `${what}: CodeDeploy deployment ${id} started: version ${currentVersion} -> ${plan.targetVersion}`,
  );

  const info = await pollUntil(
    async (): Promise<DeploymentInfo | undefined> => {
      const { deploymentInfo } = await clients.codeDeploy.send(
        new GetDeploymentCommand({ deploymentId: id }),
      );
      const status = deploymentInfo?.status ?? "unknown";
      log(`${what}: deployment ${id}: ${status}`);
      return status === "Succeeded" || status === "Failed" || status === "Stopped"
        ? deploymentInfo
        : undefined;
    },
    {
      clock,
      intervalMs: deps.pollMs ?? DEFAULT_POLL_MS,
      timeoutMs: deps.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      what: `CodeDeploy deployment ${id}`,
    },
  );
  if (info?.status === "Succeeded") {
    return { status: "rolled-out", detail: `${what}: version ${plan.targetVersion}` };
  }
  throw new RolloutFailed(codeDeployFailure(what, id, currentVersion, info));
}

/** What the failure message says: CodeDeploy's error and whether (and how) it rolled back. */
export function codeDeployFailure(
  what: string,
  id: string,
  currentVersion: string,
  info: DeploymentInfo | undefined,
): string {
  const error = info?.errorInformation;
  const cause = error ? `${error.code ?? "error"}: ${error.message ?? ""}` : "no error information";
  const rollback = info?.rollbackInfo;
  const rolledBack = rollback
    ? `CodeDeploy rolled the alias back to version ${currentVersion}${rollback.rollbackDeploymentId ? ` (rollback deployment ${rollback.rollbackDeploymentId})` : ""}${rollback.rollbackMessage ? `: ${rollback.rollbackMessage}` : ""}`
    : `no rollback is recorded: check where the alias points`;
  return `${what}: deployment ${id} ${info?.status ?? "ended"} (${cause}); ${rolledBack}`;
}

const REFRESH_FAILED = new Set(["Failed", "Cancelled", "RollbackSuccessful", "RollbackFailed"]);
const REFRESH_ACTIVE = new Set([
  "Pending",
  "InProgress",
  "Cancelling",
  "RollbackInProgress",
  "Baking",
]);

/** The newest refresh: one not yet started first, then by StartTime. */
export function newestRefresh(refreshes: readonly InstanceRefresh[]): InstanceRefresh | undefined {
  return [...refreshes].sort(
    (a, b) =>
      (b.StartTime?.getTime() ?? Number.POSITIVE_INFINITY) -
      (a.StartTime?.getTime() ?? Number.POSITIVE_INFINITY),
  )[0];
}

export function autoScalingClient(region: string): AutoScalingClient {
  return new AutoScalingClient({ region });
}

export async function runInstanceRefresh(
  plan: InstanceRefreshPlan,
  autoScaling: AutoScalingClient,
  deps: AwsDeps,
): Promise<RolloutOutcome> {
  const { clock, log } = deps;
  const what = `Auto Scaling group ${plan.autoScalingGroupName}`;
  const describe = async () => {
    const out = await autoScaling.send(
      new DescribeInstanceRefreshesCommand({ AutoScalingGroupName: plan.autoScalingGroupName }),
    );
    return newestRefresh(out.InstanceRefreshes ?? []);
  };

  const first = await describe();
  if (!first || !REFRESH_ACTIVE.has(first.Status ?? "")) {
    const last = first
      ? ` (the newest, ${first.InstanceRefreshId}, is ${first.Status}${first.EndTime ? ` since ${first.EndTime.toISOString()}` : ""})`
      : "";
    log(`${what}: no instance refresh in progress${last}: nothing to follow`);
    return { status: "nothing-to-do", detail: `${what}: no instance refresh in progress` };
  }
  const id = first.InstanceRefreshId;
  const done = await pollUntil(
    async () => {
      const refresh = (await describe()) ?? first;
      if (refresh.InstanceRefreshId !== id) {
        throw new RolloutFailed(
          `${what}: instance refresh ${id} was replaced by ${refresh.InstanceRefreshId} (${refresh.Status}) while the driver followed it`,
        );
      }
      const reason = refresh.StatusReason ? `: ${refresh.StatusReason}` : "";
      log(
        `${what}: instance refresh ${id}: ${refresh.Status}, ${refresh.PercentageComplete ?? 0} % complete, ${refresh.InstancesToUpdate ?? "?"} to update${reason}`,
      );
      return REFRESH_ACTIVE.has(refresh.Status ?? "") ? undefined : refresh;
    },
    {
      clock,
      intervalMs: deps.pollMs ?? DEFAULT_POLL_MS,
      timeoutMs: deps.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      what: `instance refresh ${id}`,
    },
  );
  if (done.Status === "Successful") {
    return { status: "rolled-out", detail: `${what}: instance refresh ${id} successful` };
  }
  const outcome =
    done.Status === "RollbackSuccessful"
      ? "rolled back: the group runs its previous launch template again"
      : done.Status === "RollbackFailed"
        ? "its rollback failed: the group may run both launch templates"
        : REFRESH_FAILED.has(done.Status ?? "")
          ? "stopped: the instances it replaced keep the new launch template, the others the previous one"
          : "ended";
  throw new RolloutFailed(
    `${what}: instance refresh ${id} ${done.Status}, ${outcome} (${done.StatusReason ?? "no status reason"})`,
  );
}
