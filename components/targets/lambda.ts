/**
 * The agent service on AWS Lambda: a Node 22 arm64 function in the data plane's private subnets,
 * published as a version behind the `live` alias, exposed by a Function URL (response streaming)
 * or an API Gateway HTTP API (buffered, throttled).
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { TargetOutputs } from "../contracts";

import { ServiceAlarms } from "../aws/service-alarms";
import { lambdaHandler } from "../../app/src/contract";

import { settingsOrFail } from "./problems";
import { createGateAlarms, LambdaCanary } from "../release/rollout-aws";
import { defaultGates } from "../release/rollout-plan";
import { createLogGroup, createServiceRole, grantRuntimeAndSecrets } from "../aws/service-identity";

import {
  HTTP_API_MAX_TIMEOUT_SECONDS,
  LAMBDA_ALIAS,
  LAMBDA_RUNTIME,
  LambdaSettings,
  LambdaTargetArgs,
  type LambdaRollout,
  guardedEnvironment,
  lambdaAlarmThresholds,
  lambdaEnvironment,
  lambdaRuntimePolicyDocument,
  parseLambdaCodeLocation,
  resolveLambdaSettings,
} from "./lambda-settings";
export * from "./lambda-settings";

/**
 * The agent service as a Lambda function.
 *
 * Exposure: a Function URL with `authorizationType: NONE` by default. The app authenticates every
 * request itself by API key (app/src/auth.ts), and `AWS_IAM` would require every client to SigV4-
 * sign requests, which API-key clients cannot. With NONE the provider adds the public
 * `lambda:InvokeFunctionUrl` / `lambda:InvokeFunction` (via URL only) permissions on creation.
 * CORS is off: callers are servers, not browsers.
 *
 * Cost (arm64, us-east-1): $0.0000133 per GB-second plus $0.20 per million requests; at 1 GB a
 * 10 s streamed reply costs about $0.00013. Provisioned concurrency (prod default 2 x 1 GB) adds
 * about $18/month. The HTTP API exposure adds $1 per million requests. Three alarms $0.30/month.
 * Log ingestion $0.50/GB. Reserved concurrency is free but caps spend.
 */
export class LambdaTarget extends pulumi.ComponentResource implements TargetOutputs {
  readonly target = "lambda" as const;
  readonly url: pulumi.Output<string>;
  readonly functionName: pulumi.Output<string>;
  readonly functionArn: pulumi.Output<string>;
  readonly aliasArn: pulumi.Output<string>;
  readonly logGroupName: pulumi.Output<string>;
  readonly roleArn: pulumi.Output<string>;

  /** Escape hatches. */
  readonly settings: LambdaSettings;
  readonly logGroup: aws.cloudwatch.LogGroup;
  readonly role: aws.iam.Role;
  readonly rolePolicies: aws.iam.RolePolicy[];
  readonly function: aws.lambda.Function;
  readonly alias: aws.lambda.Alias;
  readonly provisionedConcurrency?: aws.lambda.ProvisionedConcurrencyConfig;
  readonly functionUrl?: aws.lambda.FunctionUrl;
  readonly httpApi?: aws.apigatewayv2.Api;
  /** Absent when the data plane has no alarm topic. */
  readonly alarms?: ServiceAlarms;
  /** With rollout steps: the one-minute alarms CodeDeploy watches. */
  readonly gateAlarms?: aws.cloudwatch.MetricAlarm[];
  /** With rollout steps: CodeDeploy moving the alias. */
  readonly canary?: LambdaCanary;

  private readonly name: string;

  constructor(name: string, args: LambdaTargetArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:targets:Lambda", name, {}, opts);
    this.name = name;
    this.settings = settingsOrFail(resolveLambdaSettings(args), `LambdaTarget "${name}"`, this);

    // Lambda's own default log group keeps logs forever.
    this.logGroup = createLogGroup(
      this,
      name,
      `/aws/lambda/${name}-`,
      this.settings.logRetentionDays,
      this.settings.retainLogs,
    );
    this.role = createServiceRole(
      this,
      name,
      "lambda.amazonaws.com",
      `Execution role of the ${name} agent function`,
    );
    this.rolePolicies = grantRuntimeAndSecrets(
      this,
      name,
      this.role,
      this.logGroup.arn.apply((arn) => JSON.stringify(lambdaRuntimePolicyDocument(arn))),
      { refs: args.dataPlane.secrets },
    );
    this.function = this.createFunction(args);
    const progressive = (args.rollout?.steps.length ?? 0) > 0;
    this.alias = this.createAlias(progressive);
    this.provisionedConcurrency = this.createProvisionedConcurrency();
    if (this.settings.exposure === "function-url") {
      this.functionUrl = this.exposeFunctionUrl();
      this.url = this.functionUrl.functionUrl;
    } else {
      this.httpApi = this.exposeHttpApi();
      this.url = this.httpApi.apiEndpoint;
    }
    this.alarms = this.createAlarms(args);
    if (args.rollout && progressive) {
      ({ canary: this.canary, gateAlarms: this.gateAlarms } = this.createCanary(
        args,
        args.rollout,
      ));
    }

    this.functionName = this.function.name;
    this.functionArn = this.function.arn;
    this.aliasArn = this.alias.arn;
    this.logGroupName = this.logGroup.name;
    this.roleArn = this.role.arn;
    this.registerOutputs({
      url: this.url,
      functionName: this.functionName,
      functionArn: this.functionArn,
      aliasArn: this.aliasArn,
      logGroupName: this.logGroupName,
      roleArn: this.roleArn,
    });
  }

  private createFunction(args: LambdaTargetArgs): aws.lambda.Function {
    const s = this.settings.scaling;
    const dp = args.dataPlane;
    const network = dp.network;
    const artifact = args.artifact;
    const code = artifact.location.apply(parseLambdaCodeLocation);
    const env = lambdaEnvironment(dp, {
      invokeMode: this.settings.invokeMode,
      databasePoolMax: s.databasePoolMax,
      logLevel: args.logLevel,
      extraEnv: args.extraEnv,
    });
    return new aws.lambda.Function(
      `${this.name}-function`,
      {
        description: `Agent service (${this.settings.exposure}, ${this.settings.invokeMode})`,
        runtime: LAMBDA_RUNTIME,
        architectures: ["arm64"],
        handler: lambdaHandler(args.upstream),
        role: this.role.arn,
        code: code.apply((c) =>
          c.kind === "file" ? new pulumi.asset.FileArchive(c.path) : undefined,
        ),
        s3Bucket: code.apply((c) => (c.kind === "s3" ? c.bucket : undefined)),
        s3Key: code.apply((c) => (c.kind === "s3" ? c.key : undefined)),
        sourceCodeHash: artifact.sha256,
        memorySize: s.memoryMb,
        timeout: s.timeoutSeconds,
        reservedConcurrentExecutions: s.reservedConcurrency,
        // Every deployment is an immutable version; the alias is what clients and provisioned
        // concurrency point at, and what promotion moves.
        publish: true,
        environment: { variables: guardedEnvironment(env) },
        vpcConfig: {
          subnetIds: network.privateSubnetIds,
          securityGroupIds: [network.computeSecurityGroupId],
        },
        tracingConfig: { mode: "Active" },
        loggingConfig: { logFormat: "JSON", logGroup: this.logGroup.name },
      },
      // Lambda checks the role's ENI permissions when the function is created in a VPC.
      { parent: this, dependsOn: this.rolePolicies },
    );
  }

  /**
   * The `live` alias. With progressive delivery CodeDeploy moves it (weighted routing during a
   * canary, then the new version), so the program sets it only when creating it: afterwards the
   * provider would put it back on whatever version the program last saw.
   */
  private createAlias(progressive: boolean): aws.lambda.Alias {
    return new aws.lambda.Alias(
      `${this.name}-alias`,
      {
        name: LAMBDA_ALIAS,
        description: "The version serving traffic",
        functionName: this.function.name,
        functionVersion: this.function.version,
      },
      { parent: this, ignoreChanges: progressive ? ["functionVersion", "routingConfig"] : [] },
    );
  }

  private createProvisionedConcurrency(): aws.lambda.ProvisionedConcurrencyConfig | undefined {
    const count = this.settings.scaling.provisionedConcurrency;
    if (count === 0) return undefined;
    return new aws.lambda.ProvisionedConcurrencyConfig(
      `${this.name}-provisioned`,
      {
        functionName: this.function.name,
        qualifier: this.alias.name,
        provisionedConcurrentExecutions: count,
      },
      { parent: this },
    );
  }

  private exposeFunctionUrl(): aws.lambda.FunctionUrl {
    return new aws.lambda.FunctionUrl(
      `${this.name}-url`,
      {
        functionName: this.function.name,
        qualifier: this.alias.name,
        // The app authenticates by API key; see the class doc.
        authorizationType: "NONE",
        invokeMode: "RESPONSE_STREAM",
      },
      { parent: this },
    );
  }

  private exposeHttpApi(): aws.apigatewayv2.Api {
    const s = this.settings.scaling;
    const api = new aws.apigatewayv2.Api(
      `${this.name}-api`,
      {
        protocolType: "HTTP",
        description: "Agent service (buffered; streaming needs the function-url exposure)",
      },
      { parent: this },
    );
    const integration = new aws.apigatewayv2.Integration(
      `${this.name}-integration`,
      {
        apiId: api.id,
        integrationType: "AWS_PROXY",
        integrationMethod: "POST",
        integrationUri: this.alias.arn,
        payloadFormatVersion: "2.0",
        timeoutMilliseconds: Math.min(s.timeoutSeconds, HTTP_API_MAX_TIMEOUT_SECONDS) * 1000,
      },
      { parent: this },
    );
    const route = new aws.apigatewayv2.Route(
      `${this.name}-route`,
      {
        apiId: api.id,
        routeKey: "$default",
        target: pulumi.interpolate`integrations/${integration.id}`,
      },
      { parent: this },
    );
    new aws.apigatewayv2.Stage(
      `${this.name}-stage`,
      {
        apiId: api.id,
        name: "$default",
        autoDeploy: true,
        // Rate limits at the edge: excess requests get 429 before they cost a Lambda invocation.
        defaultRouteSettings: {
          throttlingBurstLimit: s.throttleBurst,
          throttlingRateLimit: s.throttleRatePerSecond,
        },
      },
      { parent: this, dependsOn: [route] },
    );
    new aws.lambda.Permission(
      `${this.name}-api-invoke`,
      {
        action: "lambda:InvokeFunction",
        function: this.function.name,
        qualifier: this.alias.name,
        principal: "apigateway.amazonaws.com",
        sourceArn: pulumi.interpolate`${api.executionArn}/*/*`,
      },
      { parent: this },
    );
    return api;
  }

  /**
   * Errors (Function URL 5xx, or failed invocations behind the HTTP API), throttles and p99
   * duration near the timeout, to the data plane's alarm topic. None without a topic.
   */
  private createAlarms(args: LambdaTargetArgs): ServiceAlarms | undefined {
    const topic = args.dataPlane.monitoring.alarmTopicArn;
    if (!topic) return undefined;
    return new ServiceAlarms(
      `${this.name}-alarms`,
      {
        source: {
          kind: "lambda",
          functionName: this.function.name,
          via: this.settings.exposure === "function-url" ? "function-url" : "invoke",
        },
        alarmTopicArn: topic,
        thresholds: lambdaAlarmThresholds(
          this.settings.scaling.timeoutSeconds,
          args.alarmThresholds,
        ),
      },
      { parent: this },
    );
  }

  /** CodeDeploy for each new version, gated on one-minute error-rate and p99 alarms. */
  private createCanary(
    args: LambdaTargetArgs,
    rollout: LambdaRollout,
  ): { canary: LambdaCanary; gateAlarms: aws.cloudwatch.MetricAlarm[] } {
    const topic = args.dataPlane.monitoring.alarmTopicArn;
    if (!topic) {
      throw new pulumi.ResourceError(
        `LambdaTarget "${this.name}": rollout steps need the data plane's alarm topic (the gates notify it and CodeDeploy reports rollbacks to it).`,
        this,
      );
    }
    const thresholds = lambdaAlarmThresholds(
      this.settings.scaling.timeoutSeconds,
      args.alarmThresholds,
    );
    const gates = rollout.gates ?? defaultGates(thresholds.p99LatencyMs ?? 60_000);
    const gateAlarms = createGateAlarms(
      `${this.name}-rollout`,
      {
        kind: "lambda",
        functionName: this.function.name,
        via: this.settings.exposure === "function-url" ? "function-url" : "invoke",
      },
      gates,
      topic,
      this,
    );
    const canary = new LambdaCanary(
      `${this.name}-canary`,
      {
        functionName: this.function.name,
        aliasName: this.alias.name,
        targetVersion: this.function.version,
        steps: rollout.steps,
        alarmNames: gateAlarms.map((a) => a.name),
        topicArn: topic,
        region: aws.getRegionOutput({}, { parent: this }).name,
        driverCommand: rollout.driverCommand,
      },
      { parent: this, dependsOn: [this.alias, ...gateAlarms] },
    );
    return { canary, gateAlarms };
  }
}
