import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { lambdaHandler } from "../../../app/src/contract";

import {
  LambdaTarget,
  guardedEnvironment,
  lambdaAlarmThresholds,
  lambdaInvokeMode,
  lambdaRuntimePolicyDocument,
  parseLambdaCodeLocation,
  plaintextSecretProblems,
  type LambdaTargetArgs,
} from "../../../components/targets/lambda";
import {
  FAKE_AWS,
  FAKE_ZIP_SHA256,
  fakeAwsDataPlane,
  fakeGcpDataPlane,
  fakeImageArtifact,
  fakeLambdaZipArtifact,
} from "../../support/fake-data-plane";
import {
  isSecretOutput,
  outputOf,
  setupPulumiMocks,
  type RecordedResource,
} from "../../support/pulumi";
// Aliases with qualified function ARNs, integrations with ids (routes address them by id).
import "../../support/pulumi-target-outputs";
import {
  expectOwnedAndNamed,
  extraSecret,
  renderAll,
  targetArgs,
  testRejections,
  type RenderArgs as TargetRenderArgs,
  type Rendered as TargetRendered,
} from "./helpers";

setupPulumiMocks({ stack: "dev" });

type Rendered = TargetRendered<LambdaTarget>;
type RenderArgs = TargetRenderArgs<LambdaTargetArgs>;

const baseArgs = (overrides: RenderArgs = {}) =>
  targetArgs<LambdaTargetArgs>("aws", { artifact: fakeLambdaZipArtifact() }, overrides);
const render = (name: string, overrides: RenderArgs = {}) =>
  new LambdaTarget(name, baseArgs(overrides));

let dev: Rendered;
let prod: Rendered;
let api: Rendered;
let quiet: Rendered;
const EXTRA_SECRET =
  "arn:aws:secretsmanager:us-east-1:123456789012:secret:agent/otel-headers-StUvWx";

beforeAll(async () => {
  ({ dev, prod, api, quiet } = await renderAll({
    dev: render("agent-dev"),
    prod: render("agent-prod", {
      env: "prod",
      artifact: fakeLambdaZipArtifact("s3://agent-artifacts/builds/abc123/lambda.zip"),
    }),
    api: render("agent-api", {
      exposure: "http-api",
      provisionedConcurrency: 1,
      dp: fakeAwsDataPlane({
        extraSecrets: [
          extraSecret("aws-secretsmanager", EXTRA_SECRET, "agent/otel-headers", "AWSCURRENT"),
        ],
      }),
    }),
    quiet: render("agent-quiet", { dp: fakeAwsDataPlane({ withoutAlerting: true }) }),
  }));
});

const fnOf = (r: Rendered) => r.q.findOne(aws.lambda.Function);
const policyOf = (r: Rendered, suffix: string) =>
  JSON.parse(r.q.findOne(aws.iam.RolePolicy, suffix).inputs.policy as string);
const variablesOf = (r: Rendered) =>
  (fnOf(r).inputs.environment as { variables: Record<string, string> }).variables;

describe("resources", () => {
  test("dev: function, alias, URL, role with two inline policies, log group, three service alarms; nothing else", () => {
    expect(dev.q.countsByType()).toEqual({
      "agent:aws:ServiceAlarms": 1,
      "aws:cloudwatch/logGroup:LogGroup": 1,
      "aws:cloudwatch/metricAlarm:MetricAlarm": 3,
      "aws:iam/role:Role": 1,
      "aws:iam/rolePolicy:RolePolicy": 2,
      "aws:lambda/alias:Alias": 1,
      "aws:lambda/function:Function": 1,
      "aws:lambda/functionUrl:FunctionUrl": 1,
    });
  });

  test("prod adds provisioned concurrency on the alias", () => {
    expect(prod.q.count()).toBe(dev.q.count() + 1);
    const pc = prod.q.findOne(aws.lambda.ProvisionedConcurrencyConfig);
    expect(pc.inputs.provisionedConcurrentExecutions).toBe(2);
    expect(pc.inputs.qualifier).toBe("live");
    expect(pc.inputs.functionName).toBe(fnOf(prod).state.name);
    expect(dev.q.count(aws.lambda.ProvisionedConcurrencyConfig)).toBe(0);
  });

  test("http-api: API, integration, route, stage and invoke permission instead of a Function URL", () => {
    expect(api.q.countsByType()).toMatchObject({
      "aws:apigatewayv2/api:Api": 1,
      "aws:apigatewayv2/integration:Integration": 1,
      "aws:apigatewayv2/route:Route": 1,
      "aws:apigatewayv2/stage:Stage": 1,
      "aws:lambda/permission:Permission": 1,
      "aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig": 1,
    });
    expect(api.q.count(aws.lambda.FunctionUrl)).toBe(0);
  });

  test("every child is parented to the component and named after it", async () => {
    for (const r of [dev, prod, api]) {
      expect(r.q.all().length).toBeGreaterThan(0);
      const self = await expectOwnedAndNamed(r);
      expect(r.q.childrenOf(self).length).toBeGreaterThan(5);
    }
  });
});

describe("function", () => {
  test("Node 22 on arm64, index.handler, published, X-Ray active", () => {
    for (const r of [dev, prod, api]) {
      const fn = fnOf(r).inputs;
      expect(fn.runtime).toBe("nodejs22.x");
      expect(fn.architectures).toEqual(["arm64"]);
      expect(fn.handler).toBe("index.handler");
      expect(fn.publish).toBe(true);
      expect(fn.tracingConfig).toEqual({ mode: "Active" });
    }
  });

  test("the handler is the zip's build for the upstream: bedrock.handler for Bedrock, index.handler otherwise", () => {
    expect(lambdaHandler(undefined)).toBe("index.handler");
    expect(lambdaHandler("anthropic")).toBe("index.handler");
    expect(lambdaHandler("vertex")).toBe("index.handler");
    expect(lambdaHandler("bedrock")).toBe("bedrock.handler");
  });

  test("runs in the private subnets with the compute security group only", () => {
    expect(fnOf(dev).inputs.vpcConfig).toEqual({
      subnetIds: [...FAKE_AWS.privateSubnetIds],
      securityGroupIds: [FAKE_AWS.computeSecurityGroupId],
    });
  });

  test("sizing per environment", () => {
    expect(fnOf(dev).inputs).toMatchObject({
      memorySize: 512,
      timeout: 300,
      reservedConcurrentExecutions: 10,
    });
    expect(fnOf(prod).inputs).toMatchObject({
      memorySize: 1024,
      timeout: 300,
      reservedConcurrentExecutions: 200,
    });
    // An HTTP API gives up after 30 s: the default timeout follows it.
    expect(fnOf(api).inputs.timeout).toBe(30);
  });

  test("code: local zip as an archive, s3:// as bucket and key; the hash triggers updates", async () => {
    const local = fnOf(dev).inputs;
    // Recorded inputs flatten the archive's path promise: read the live resource's input instead.
    const archive = await outputOf(dev.target.function.code);
    expect(pulumi.asset.FileArchive.isInstance(archive)).toBe(true);
    expect(await (archive as pulumi.asset.FileArchive).path).toBe("dist/lambda.zip");
    expect(local.code).toBeDefined();
    expect(local.s3Bucket).toBeUndefined();
    expect(local.sourceCodeHash).toBe(FAKE_ZIP_SHA256);
    const s3 = fnOf(prod).inputs;
    expect(s3.code).toBeUndefined();
    expect(s3.s3Bucket).toBe("agent-artifacts");
    expect(s3.s3Key).toBe("builds/abc123/lambda.zip");
  });

  test("logs: JSON into a dedicated group with the profile's retention; prod keeps it on destroy", () => {
    const devLogs = dev.q.findOne(aws.cloudwatch.LogGroup);
    expect(devLogs.inputs.retentionInDays).toBe(7);
    expect(devLogs.options.retainOnDelete).toBe(false);
    expect(fnOf(dev).inputs.loggingConfig).toEqual({
      logFormat: "JSON",
      logGroup: devLogs.state.name,
    });
    const prodLogs = prod.q.findOne(aws.cloudwatch.LogGroup);
    expect(prodLogs.inputs.retentionInDays).toBe(90);
    expect(prodLogs.options.retainOnDelete).toBe(true);
  });

  test("the function waits for its role's policies (Lambda checks ENI rights at creation)", () => {
    const deps = fnOf(dev).options.dependencies;
    for (const p of dev.q.findByType(aws.iam.RolePolicy)) expect(deps).toContain(p.urn);
  });
});

describe("environment", () => {
  test("secrets only as aws-sm:// references to the data plane's ARNs", () => {
    const vars = variablesOf(dev);
    expect(vars.ANTHROPIC_API_KEY_SECRET).toBe(`aws-sm://${FAKE_AWS.secretArns.anthropic}`);
    expect(vars.DATABASE_PASSWORD_SECRET).toBe(`aws-sm://${FAKE_AWS.secretArns.postgres}`);
    expect(vars.REDIS_PASSWORD_SECRET).toBe(`aws-sm://${FAKE_AWS.secretArns.redis}`);
    for (const plain of ["ANTHROPIC_API_KEY", "DATABASE_PASSWORD", "REDIS_PASSWORD"])
      expect(vars).not.toHaveProperty(plain);
    expect(plaintextSecretProblems(vars)).toEqual([]);
  });

  test("the environment input is not a secret (nothing secret went into it)", () => {
    for (const r of [dev, prod, api]) expect(fnOf(r).secretInputs.has("environment")).toBe(false);
  });

  test("stores without credentials in URLs, handler mode per exposure, small pool", () => {
    const vars = variablesOf(dev);
    expect(vars.DATABASE_URL).toBe(
      `postgres://agent@${FAKE_AWS.postgresHost}:5432/agent?sslmode=require&uselibpqcompat=true`,
    );
    expect(vars.REDIS_URL).toBe(`rediss://${FAKE_AWS.redisHost}:6379`);
    expect(vars.LAMBDA_INVOKE_MODE).toBe("RESPONSE_STREAM");
    expect(vars.DATABASE_POOL_MAX).toBe("2");
    expect(variablesOf(api).LAMBDA_INVOKE_MODE).toBe("BUFFERED");
  });
});

describe("IAM", () => {
  const secretResources = (doc: { Statement: Array<{ Action: string[]; Resource: string[] }> }) =>
    doc.Statement.filter((s) => s.Action.some((a) => a.startsWith("secretsmanager:"))).flatMap(
      (s) => s.Resource,
    );

  test("secretsmanager:GetSecretValue on exactly the data plane's secret ARNs", () => {
    const doc = policyOf(dev, "-secrets");
    expect(secretResources(doc).sort()).toEqual(Object.values(FAKE_AWS.secretArns).sort());
    expect(doc.Statement.flatMap((s: { Action: string[] }) => s.Action)).toEqual([
      "secretsmanager:GetSecretValue",
    ]);
    // Whatever the data plane lists is granted, and nothing more.
    expect(secretResources(policyOf(api, "-secrets")).sort()).toEqual(
      [...Object.values(FAKE_AWS.secretArns), EXTRA_SECRET].sort(),
    );
  });

  test("no statement grants secrets (or anything but ENI and X-Ray) on *", () => {
    for (const r of [dev, prod, api]) {
      for (const p of r.q.findByType(aws.iam.RolePolicy)) {
        for (const s of JSON.parse(p.inputs.policy as string).Statement as Array<{
          Action: string[];
          Resource: string[];
        }>) {
          if (s.Resource.some((x) => x.includes("*") && x !== "*" && !x.endsWith(":*")))
            throw new Error(`partial wildcard in ${p.name}`);
          if (s.Resource.includes("*")) {
            expect(s.Action.every((a) => a.startsWith("ec2:") || a.startsWith("xray:"))).toBe(true);
          }
        }
      }
    }
  });

  test("logs only into its own log group; VPC ENI and X-Ray write", () => {
    const doc = policyOf(dev, "-runtime");
    const logs = doc.Statement.find((s: { Sid: string }) => s.Sid === "WriteOwnLogs");
    expect(logs.Resource).toEqual([`${dev.q.findOne(aws.cloudwatch.LogGroup).state.arn}:*`]);
    expect(logs.Action).toEqual(["logs:CreateLogStream", "logs:PutLogEvents"]);
    const actions = doc.Statement.flatMap((s: { Action: string[] }) => s.Action);
    expect(actions).toEqual(
      expect.arrayContaining([
        "ec2:CreateNetworkInterface",
        "ec2:DeleteNetworkInterface",
        "xray:PutTraceSegments",
      ]),
    );
    expect(actions.some((a: string) => a.startsWith("secretsmanager:"))).toBe(false);
  });

  test("role is assumable by Lambda only, with no managed policies attached", () => {
    const trust = JSON.parse(dev.q.findOne(aws.iam.Role).inputs.assumeRolePolicy as string);
    expect(trust.Statement).toEqual([
      { Effect: "Allow", Principal: { Service: "lambda.amazonaws.com" }, Action: "sts:AssumeRole" },
    ]);
    expect(dev.q.count(aws.iam.RolePolicyAttachment)).toBe(0);
    for (const p of dev.q.findByType(aws.iam.RolePolicy))
      expect(p.inputs.role).toBe(dev.q.findOne(aws.iam.Role).state.name);
  });
});

describe("exposure", () => {
  test("alias 'live' points at the published version", () => {
    const alias = dev.q.findOne(aws.lambda.Alias).inputs;
    expect(alias.name).toBe("live");
    expect(alias.functionVersion).toBe(fnOf(dev).state.version);
    expect(alias.functionName).toBe(fnOf(dev).state.name);
  });

  test("Function URL streams, on the alias, with the app's own auth and no CORS", () => {
    const url = dev.q.findOne(aws.lambda.FunctionUrl).inputs;
    expect(url.invokeMode).toBe("RESPONSE_STREAM");
    expect(url.authorizationType).toBe("NONE");
    expect(url.qualifier).toBe("live");
    expect(url.cors).toBeUndefined();
  });

  test("HTTP API: throttled $default stage, proxy to the alias with a 30 s integration timeout", () => {
    const stage = api.q.findOne(aws.apigatewayv2.Stage).inputs;
    expect(stage.name).toBe("$default");
    expect(stage.autoDeploy).toBe(true);
    expect(stage.defaultRouteSettings).toMatchObject({
      throttlingBurstLimit: 20,
      throttlingRateLimit: 10,
    });
    const integration = api.q.findOne(aws.apigatewayv2.Integration).inputs;
    expect(integration).toMatchObject({
      integrationType: "AWS_PROXY",
      payloadFormatVersion: "2.0",
      timeoutMilliseconds: 30000,
    });
    expect(integration.integrationUri).toBe(api.q.findOne(aws.lambda.Alias).state.arn);
    expect(api.q.findOne(aws.apigatewayv2.Route).inputs).toMatchObject({
      routeKey: "$default",
      target: `integrations/${api.q.findOne(aws.apigatewayv2.Integration).id}`,
    });
    const permission = api.q.findOne(aws.lambda.Permission).inputs;
    expect(permission).toMatchObject({
      action: "lambda:InvokeFunction",
      principal: "apigateway.amazonaws.com",
      qualifier: "live",
    });
    expect(permission.sourceArn).toBe(
      `${api.q.findOne(aws.apigatewayv2.Api).state.executionArn}/*/*`,
    );
  });

  test("outputs", async () => {
    expect(dev.target.target).toBe("lambda");
    expect(await outputOf(dev.target.url)).toBe(
      dev.q.findOne(aws.lambda.FunctionUrl).state.functionUrl,
    );
    expect(await outputOf(api.target.url)).toBe(
      api.q.findOne(aws.apigatewayv2.Api).state.apiEndpoint,
    );
    expect(await outputOf(dev.target.functionName)).toBe(fnOf(dev).state.name);
    expect(await outputOf(dev.target.functionArn)).toBe(fnOf(dev).state.arn);
    expect(await outputOf(dev.target.aliasArn)).toBe(dev.q.findOne(aws.lambda.Alias).state.arn);
    expect(await outputOf(dev.target.logGroupName)).toBe(
      dev.q.findOne(aws.cloudwatch.LogGroup).state.name,
    );
    expect(await outputOf(dev.target.roleArn)).toBe(dev.q.findOne(aws.iam.Role).state.arn);
    expect(await isSecretOutput(dev.target.url)).toBe(false);
  });
});

describe("alarms", () => {
  const alarm = (r: Rendered, key: string): RecordedResource =>
    r.q.findOne(aws.cloudwatch.MetricAlarm, `-${key}`);

  test("error rate, throttles and p99 duration near the timeout, to the alarm topic", () => {
    const fnName = fnOf(dev).state.name;
    expect(dev.q.count(aws.cloudwatch.MetricAlarm)).toBe(3);
    for (const a of dev.q.findByType(aws.cloudwatch.MetricAlarm)) {
      expect(a.inputs.alarmActions).toEqual([FAKE_AWS.alarmTopicArn]);
      expect(a.inputs.okActions).toEqual([FAKE_AWS.alarmTopicArn]);
    }
    const duration = alarm(dev, "p99-latency").inputs;
    // 80 % of the 300 s timeout.
    expect(duration).toMatchObject({
      namespace: "AWS/Lambda",
      metricName: "Duration",
      extendedStatistic: "p99",
      threshold: 240000,
    });
    expect(duration.dimensions).toEqual({ FunctionName: fnName });
    expect(alarm(dev, "throttles").inputs).toMatchObject({
      metricName: "Throttles",
      dimensions: { FunctionName: fnName },
    });
    const metricsOf = (r: Rendered) =>
      (
        alarm(r, "error-rate").inputs.metricQueries as Array<{
          metric?: { metricName: string; dimensions: Record<string, string> };
        }>
      )
        .filter((m) => m.metric)
        .map((m) => m.metric!);
    // Function URL: HTTP 5xx over URL requests; behind the HTTP API: failed invocations.
    expect(
      metricsOf(dev)
        .map((m) => m.metricName)
        .sort(),
    ).toEqual(["Url5xxCount", "UrlRequestCount"]);
    expect(metricsOf(dev).every((m) => m.dimensions.FunctionName === fnName)).toBe(true);
    expect(
      metricsOf(api)
        .map((m) => m.metricName)
        .sort(),
    ).toEqual(["Errors", "Invocations"]);
    // The duration alarm follows the effective timeout (30 s behind the HTTP API).
    expect(alarm(api, "p99-latency").inputs.threshold).toBe(24000);
  });

  test("without an alarm topic there are no alarms to send nowhere", () => {
    expect(quiet.target.alarms).toBeUndefined();
    expect(quiet.q.count(aws.cloudwatch.MetricAlarm)).toBe(0);
  });
});

test("the wrong cloud's data plane or the wrong kind of artifact is a compile error", () => {
  // Never called: `npm run typecheck` proves each line is refused (an unused expect-error
  // directive fails it), so no run-time check is needed.
  const refused = () => [
    // @ts-expect-error: a Lambda target takes the AWS data plane's contract
    new LambdaTarget("gcp", { ...baseArgs(), dataPlane: fakeGcpDataPlane() }),
    // @ts-expect-error: a Lambda target deploys a zip, not an image
    new LambdaTarget("image", { ...baseArgs(), artifact: fakeImageArtifact() }),
    fakeAwsDataPlane({
      // @ts-expect-error: an AWS data plane holds only Secrets Manager secrets
      extraSecrets: [extraSecret("gcp-secretmanager", "projects/p/secrets/s", "s", "latest")],
    }),
  ];
  expect(refused).toBeInstanceOf(Function);
});
describe("validation", () => {
  const cases: Array<[string, () => RenderArgs, RegExp]> = [
    [
      "private subnets without NAT",
      () => ({ dp: fakeAwsDataPlane({ hasNat: false }) }),
      /no NAT route.*natGateways/,
    ],
    [
      "provisioned above reserved",
      () => ({ reservedConcurrency: 2, provisionedConcurrency: 3 }),
      /lambda\.provisionedConcurrency \(3\) is greater than lambda\.reservedConcurrency \(2\)/,
    ],
    [
      "an HTTP API with a long timeout",
      () => ({ exposure: "http-api", timeoutSeconds: 120 }),
      /timeoutSeconds 120 exceeds the 30 s an HTTP API waits.*function-url/,
    ],
    ["an unknown exposure", () => ({ exposure: "alb" as never }), /exposure "alb" is unknown/],
    [
      "a derived variable in extraEnv",
      () => ({ extraEnv: { LAMBDA_INVOKE_MODE: "BUFFERED" } }),
      /extraEnv sets LAMBDA_INVOKE_MODE/,
    ],
    [
      "a timeout beyond 15 minutes",
      () => ({ timeoutSeconds: 1000 }),
      /lambda\.timeoutSeconds is 1000/,
    ],
    [
      "an error-rate threshold above 100 %",
      () => ({ alarmThresholds: { errorRatePercent: 150 } }),
      /alarmThresholds\.errorRatePercent is 150/,
    ],
    [
      "a secret-looking extra variable",
      () => ({ extraEnv: { STRIPE_TOKEN: "x" } }),
      /extraEnv: extra environment variable STRIPE_TOKEN looks like a secret/,
    ],
  ];

  testRejections(cases, (o) => render("bad", o), /^LambdaTarget "bad": /);
});

describe("pure helpers", () => {
  test("parseLambdaCodeLocation", () => {
    expect(parseLambdaCodeLocation("dist/lambda.zip")).toEqual({
      kind: "file",
      path: "dist/lambda.zip",
    });
    expect(parseLambdaCodeLocation("s3://b-1/a/b.zip")).toEqual({
      kind: "s3",
      bucket: "b-1",
      key: "a/b.zip",
    });
    expect(() => parseLambdaCodeLocation("s3://bucket")).toThrow(/not s3:\/\/<bucket>\/<key>/);
    expect(() => parseLambdaCodeLocation("https://x/y.zip")).toThrow(/local path or s3:\/\//);
    // LambdaBundle may hand over a bundle directory: Pulumi zips it.
    expect(parseLambdaCodeLocation("/repo/dist/lambda")).toEqual({
      kind: "file",
      path: "/repo/dist/lambda",
    });
    expect(() => parseLambdaCodeLocation(" ")).toThrow(/location is empty/);
  });

  test("invoke mode follows the exposure", () => {
    expect(lambdaInvokeMode("function-url")).toBe("RESPONSE_STREAM");
    expect(lambdaInvokeMode("http-api")).toBe("BUFFERED");
  });

  test("plaintextSecretProblems catches values, secret-looking names, credentials in URLs and Pulumi secrets", () => {
    expect(plaintextSecretProblems({ ANTHROPIC_API_KEY: "x" })).toEqual([
      expect.stringMatching(/ANTHROPIC_API_KEY looks like a secret/),
    ]);
    expect(plaintextSecretProblems({ DATABASE_PASSWORD_SECRET: "hunter2" })).toEqual([
      expect.stringMatching(/must be an aws-sm:\/\/ or gcp-sm:\/\/ reference/),
    ]);
    expect(plaintextSecretProblems({ DATABASE_URL: "postgres://u:p@h:5432/d" })).toEqual([
      expect.stringMatching(/embeds credentials/),
    ]);
    expect(plaintextSecretProblems({ NOTE: "sk-ant-api03-abcdefghijkl" })).toEqual([
      expect.stringMatching(/Anthropic API key/),
    ]);
    expect(plaintextSecretProblems({ PORT: "8080" }, true)).toEqual([
      expect.stringMatching(/is a Pulumi secret/),
    ]);
    expect(
      plaintextSecretProblems({
        REDIS_URL: "rediss://h:6379",
        REDIS_PASSWORD_SECRET: "aws-sm://arn:aws:secretsmanager:r:1:secret:x",
      }),
    ).toEqual([]);
  });

  test("guardedEnvironment passes a clean environment through unchanged and not secret", async () => {
    const out = guardedEnvironment({
      A: pulumi.output("1"),
      X_SECRET: pulumi.output("aws-sm://arn"),
    });
    expect(await outputOf(out)).toEqual({ A: "1", X_SECRET: "aws-sm://arn" });
    expect(await isSecretOutput(out)).toBe(false);
  });

  test("runtime policy scopes logs to the group's streams", () => {
    const doc = lambdaRuntimePolicyDocument("arn:aws:logs:us-east-1:1:log-group:/aws/lambda/x");
    expect(doc.Statement[0]!.Resource).toEqual([
      "arn:aws:logs:us-east-1:1:log-group:/aws/lambda/x:*",
    ]);
  });

  test("alarm thresholds: p99 near the timeout unless given", () => {
    expect(lambdaAlarmThresholds(60)).toEqual({ p99LatencyMs: 48000 });
    expect(lambdaAlarmThresholds(60, { p99LatencyMs: 1000, errorRatePercent: 2 })).toEqual({
      p99LatencyMs: 1000,
      errorRatePercent: 2,
    });
  });
});
