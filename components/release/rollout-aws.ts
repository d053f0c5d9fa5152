/**
 * Progressive delivery on AWS, with each platform's own mechanism gated on the service's alarms:
 *
 * - `createGateAlarms`: the one-minute error-rate and p99 alarms a rollout watches;
 * - `instanceRefreshPreferences`: an Auto Scaling group's checkpoints, alarm specification and
 *   automatic rollback (the VM group);
 * - `LambdaCanary`: CodeDeploy shifting the `live` alias (canary or linear), stopping and rolling
 *   back on an alarm or a failure, started and followed by the rollout driver.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { checkAlarmSpec, createAlarms } from "../aws/alarms";
import { rolloutGateSpecs, type ServiceMetricsSource } from "../aws/service-alarms";
import {
  codeDeployTrafficRouting,
  instanceRefreshCheckpoints,
  ROLLOUT_RULES,
  type RolloutGates,
  type RolloutStep,
} from "./rollout-plan";
import { RolloutDriver } from "./rollout-driver";

/** Progressive delivery settings a target takes: no steps deploys at once. */
export interface RolloutArgs {
  steps: RolloutStep[];
  gates: RolloutGates;
}

/** The gate alarms of a service, notifying `topicArn` too. Throws on a malformed spec. */
export function createGateAlarms(
  prefix: string,
  source: ServiceMetricsSource,
  gates: RolloutGates,
  topicArn: pulumi.Input<string>,
  parent: pulumi.Resource,
): aws.cloudwatch.MetricAlarm[] {
  const specs = rolloutGateSpecs(source, gates);
  const problems = specs.flatMap(checkAlarmSpec);
  if (specs.length > ROLLOUT_RULES.maxAlarms) {
    problems.push(`${specs.length} gate alarms: CodeDeploy and instance refresh watch at most 10.`);
  }
  if (problems.length) throw new pulumi.ResourceError(`${prefix}: ${problems.join(" ")}`, parent);
  return createAlarms(prefix, specs, topicArn, parent);
}

/**
 * Instance refresh preferences for the steps: checkpoints at each step's percentage then 100,
 * the step's minutes between them, the gate alarms, and automatic rollback on a failure or an
 * alarm (https://docs.aws.amazon.com/autoscaling/ec2/userguide/instance-refresh-rollback.html).
 * Automatic rollback needs a launch template version number, not `$Latest` (the group pins one).
 */
export function instanceRefreshPreferences(
  steps: readonly RolloutStep[],
  alarmNames: pulumi.Input<string>[],
): {
  checkpointPercentages: number[];
  checkpointDelay: string;
  alarmSpecification: { alarms: pulumi.Input<string>[] };
  autoRollback: true;
} {
  const c = instanceRefreshCheckpoints(steps);
  return {
    checkpointPercentages: c.checkpointPercentages,
    checkpointDelay: String(c.checkpointDelaySeconds),
    alarmSpecification: { alarms: alarmNames },
    autoRollback: true,
  };
}

export interface LambdaCanaryArgs {
  functionName: pulumi.Input<string>;
  /** The alias clients call (`live`): CodeDeploy moves it, nothing else may. */
  aliasName: pulumi.Input<string>;
  /** The version just published: what the deployment shifts to. */
  targetVersion: pulumi.Input<string>;
  steps: RolloutStep[];
  /** The gate alarms' names. */
  alarmNames: pulumi.Input<string>[];
  /** Deployment failures and rollbacks are published here. */
  topicArn: pulumi.Input<string>;
  region: pulumi.Input<string>;
  /** Runs the rollout driver; tests replace it. @default the repository's driver */
  driverCommand?: string;
}

/**
 * CodeDeploy for a Lambda alias: an application, a deployment configuration from the steps
 * (TimeBasedCanary or TimeBasedLinear), a deployment group watching the gate alarms with
 * automatic rollback on failure and on alarm, and the driver that starts a deployment for each
 * new version and waits for it (https://docs.aws.amazon.com/codedeploy/latest/userguide/deployment-groups-create-lambda.html).
 * CodeDeploy for Lambda costs nothing.
 */
export class LambdaCanary extends pulumi.ComponentResource {
  readonly application: aws.codedeploy.Application;
  readonly deploymentConfig: aws.codedeploy.DeploymentConfig;
  readonly deploymentGroup: aws.codedeploy.DeploymentGroup;
  readonly role: aws.iam.Role;
  readonly driver: RolloutDriver;

  constructor(name: string, args: LambdaCanaryArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:release:LambdaCanary", name, {}, opts);
    const child = { parent: this };
    const routing = codeDeployTrafficRouting(args.steps);
    this.role = new aws.iam.Role(
      `${name}-codedeploy`,
      {
        description: "CodeDeploy shifting the agent's live alias",
        assumeRolePolicy: JSON.stringify({
          Version: "2012-10-17",
          Statement: [
            {
              Effect: "Allow",
              Principal: { Service: "codedeploy.amazonaws.com" },
              Action: "sts:AssumeRole",
            },
          ],
        }),
      },
      child,
    );
    // Reads alarms, moves aliases, publishes trigger notifications to SNS.
    const policy = new aws.iam.RolePolicyAttachment(
      `${name}-codedeploy-policy`,
      {
        role: this.role.name,
        policyArn: "arn:aws:iam::aws:policy/service-role/AWSCodeDeployRoleForLambda",
      },
      child,
    );
    this.application = new aws.codedeploy.Application(
      `${name}-app`,
      { computePlatform: "Lambda" },
      child,
    );
    this.deploymentConfig = new aws.codedeploy.DeploymentConfig(
      `${name}-config`,
      { computePlatform: "Lambda", trafficRoutingConfig: routing },
      child,
    );
    this.deploymentGroup = new aws.codedeploy.DeploymentGroup(
      `${name}-group`,
      {
        appName: this.application.name,
        deploymentGroupName: `${name}-live`,
        deploymentConfigName: this.deploymentConfig.deploymentConfigName,
        serviceRoleArn: this.role.arn,
        deploymentStyle: { deploymentOption: "WITH_TRAFFIC_CONTROL", deploymentType: "BLUE_GREEN" },
        alarmConfiguration: { enabled: true, alarms: args.alarmNames },
        autoRollbackConfiguration: {
          enabled: true,
          events: ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"],
        },
        triggerConfigurations: [
          {
            triggerName: "rollbacks",
            triggerTargetArn: args.topicArn,
            triggerEvents: ["DeploymentFailure", "DeploymentStop", "DeploymentRollback"],
          },
        ],
      },
      { parent: this, dependsOn: [policy] },
    );
    this.driver = new RolloutDriver(
      `${name}-deploy`,
      {
        plan: pulumi
          .all([
            args.region,
            this.application.name,
            this.deploymentGroup.deploymentGroupName,
            args.functionName,
            args.aliasName,
            args.targetVersion,
          ])
          .apply(([region, application, group, functionName, alias, version]) => ({
            kind: "lambda-codedeploy" as const,
            region,
            application,
            deploymentGroup: group,
            functionName,
            alias,
            targetVersion: version,
          })),
        trigger: args.targetVersion,
        command: args.driverCommand,
      },
      { parent: this, dependsOn: [this.deploymentGroup] },
    );
    this.registerOutputs({ deploymentGroup: this.deploymentGroup.deploymentGroupName });
  }
}
