/**
 * The real pack, end to end: starts `infra/policy` the way `pulumi preview --policy-pack` does
 * (Pulumi's run-policy-pack with the pack directory as working directory, the stack's config and
 * name in the environment), talks to its gRPC analyzer like the engine, and checks that it
 * reports over a rendered stack exactly what the offline runner reports.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { RULES } from "../../infra/policy/rules";
import { loadPlanCostModel } from "../../infra/policy/pack";
import { evaluatePolicies, toPolicyResource } from "../../infra/policy/runner";
import type { PolicyConfigFile } from "../../infra/policy/config";
import type { PolicyResource } from "../../infra/policy/types";
import { stackRenderer } from "../support/render-stack";
import { readPolicyConfig } from "./stack-policies";

/* eslint-disable @typescript-eslint/no-require-imports */
const PULUMI = join(__dirname, "../../node_modules/@pulumi/pulumi");
const analyzerPb = require(join(PULUMI, "proto/analyzer_pb")) as Record<string, any>;
const analyzerGrpc = require(join(PULUMI, "proto/analyzer_grpc_pb")) as Record<string, any>;
const { Struct } = require(
  require.resolve("google-protobuf/google/protobuf/struct_pb", { paths: [PULUMI] }),
) as { Struct: any };
const { Empty } = require(
  require.resolve("google-protobuf/google/protobuf/empty_pb", { paths: [PULUMI] }),
) as { Empty: any };
/* eslint-enable @typescript-eslint/no-require-imports */

const LEVEL = ["advisory", "mandatory", "disabled", "remediate"];
const STACK = "eks-prod";
const render = stackRenderer(STACK);

let pack: ChildProcess;
let client: any;
let resources: PolicyResource[];
let config: PolicyConfigFile;
let stderr = "";

function call<T>(method: string, request: unknown): Promise<T> {
  return new Promise((resolve, reject) =>
    client[method](request, (err: Error | null, res: T) => (err ? reject(err) : resolve(res))),
  );
}

const struct = (v: Record<string, unknown>) => Struct.fromJavaScript(JSON.parse(JSON.stringify(v)));

function options(r: PolicyResource) {
  const o = new analyzerPb.AnalyzerResourceOptions();
  o.setProtect(r.protect ?? false);
  if (r.parentUrn) o.setParent(r.parentUrn);
  return o;
}

interface Diag {
  policy: string;
  level: string;
  resource: string;
  message: string;
}

function diagnostics(res: any): Diag[] {
  return res.getDiagnosticsList().map((d: any) => ({
    policy: d.getPolicyname(),
    level: LEVEL[d.getEnforcementlevel()]!,
    resource: d.getUrn() || "stack",
    message: d.getMessage(),
  }));
}

async function analyze(r: PolicyResource): Promise<Diag[]> {
  const req = new analyzerPb.AnalyzeRequest();
  req.setType(r.type);
  req.setName(r.name);
  req.setUrn(r.urn);
  req.setProperties(struct(r.props));
  req.setOptions(options(r));
  return diagnostics(await call("analyze", req)).map((d) => ({
    ...d,
    resource: d.resource === "stack" ? r.urn : d.resource,
  }));
}

async function analyzeStack(rs: PolicyResource[]): Promise<Diag[]> {
  const req = new analyzerPb.AnalyzeStackRequest();
  req.setResourcesList(
    rs.map((r) => {
      const a = new analyzerPb.AnalyzerResource();
      a.setType(r.type);
      a.setName(r.name);
      a.setUrn(r.urn);
      a.setProperties(struct(r.props));
      a.setOptions(options(r));
      if (r.parentUrn) a.setParent(r.parentUrn);
      return a;
    }),
  );
  return diagnostics(await call("analyzeStack", req));
}

/** `--policy-pack-config`: what the engine sends after reading the file. */
async function configure(file: PolicyConfigFile): Promise<void> {
  const req = new analyzerPb.ConfigureAnalyzerRequest();
  const map = req.getPolicyconfigMap();
  for (const [name, entry] of Object.entries(file)) {
    const { enforcementLevel, ...props } =
      typeof entry === "string" ? { enforcementLevel: entry } : entry;
    const pc = new analyzerPb.PolicyConfig();
    pc.setEnforcementlevel(LEVEL.indexOf(enforcementLevel ?? "advisory"));
    pc.setProperties(struct(props));
    map.set(name, pc);
  }
  await call("configure", req);
}

beforeAll(async () => {
  const s = await render();
  resources = s.q.all().map(toPolicyResource);
  config = readPolicyConfig("prod");

  pack = spawn(process.execPath, [join(PULUMI, "cmd/run-policy-pack"), "127.0.0.1:1", "."], {
    cwd: join(__dirname, "../../infra/policy"),
    env: {
      ...process.env,
      PULUMI_PROJECT: "agent",
      PULUMI_STACK: STACK,
      PULUMI_CONFIG: JSON.stringify({ "agent:environment": "prod", "aws:region": "us-east-1" }),
      AGENT_POLICY_ENVIRONMENT: "",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  pack.stderr!.on("data", (d) => (stderr += String(d)));
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    pack.stdout!.on("data", (d) => {
      out += String(d);
      const m = /^(\d+)\s*$/m.exec(out);
      if (m) resolve(Number(m[1]));
    });
    pack.on("exit", (code) =>
      reject(new Error(`the pack exited (${code}) before serving: ${stderr}`)),
    );
  });
  client = new analyzerGrpc.AnalyzerClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}, 180_000);

afterAll(() => {
  client?.close();
  pack?.kill();
});

test("the pack announces every rule with its prod level and config schema", async () => {
  const info = await call<any>("getAnalyzerInfo", new Empty());
  expect(info.getName()).toBe("agent-policies");
  expect(info.getVersion()).toBe("0.1.0");
  const policies = info.getPoliciesList().map((p: any) => ({
    name: p.getName(),
    level: LEVEL[p.getEnforcementlevel()],
    schema: p.getConfigschema()?.getProperties()?.toJavaScript(),
  }));
  expect(policies.map((p: { name: string }) => p.name)).toEqual(RULES.map((r) => r.name));
  for (const rule of RULES) {
    const p = policies.find((x: { name: string }) => x.name === rule.name);
    expect({ name: rule.name, level: p.level }).toEqual({
      name: rule.name,
      level: rule.enforcement.prod,
    });
    expect(Object.keys(p.schema ?? {}).sort()).toEqual(
      Object.keys(rule.config?.schema ?? {}).sort(),
    );
  }
});

test("over the rendered stack, with config/prod.json, it reports exactly what the offline runner reports", async () => {
  // A tiny cost limit, so the monthly cost rule (and the cost model the pack loaded) shows too.
  const file: PolicyConfigFile = {
    ...config,
    "monthly-cost-limit": { enforcementLevel: "mandatory", monthlyLimitUsd: 1 },
  };
  await configure(file);
  // Two resources broken on purpose, so resource policies have something to report too.
  const sent = resources.map((r) => {
    if (r.type === "aws:rds/instance:Instance")
      return { ...r, props: { ...r.props, publiclyAccessible: true } };
    if (r.type === "kubernetes:autoscaling/v2:HorizontalPodAutoscaler") {
      return {
        ...r,
        props: { ...r.props, spec: { ...(r.props.spec as object), maxReplicas: 1000 } },
      };
    }
    return r;
  });
  const got: Diag[] = [];
  for (const r of sent) got.push(...(await analyze(r)));
  got.push(...(await analyzeStack(sent)));

  const description = (name: string) => RULES.find((r) => r.name === name)!.description;
  const expected = evaluatePolicies(sent, {
    environment: "prod",
    config: file,
    estimateMonthlyUsd: loadPlanCostModel(),
  }).map((v) => ({
    policy: v.policy,
    level: v.level,
    resource: v.resource,
    message: `${description(v.policy)}\n${v.message}`,
  }));
  const sort = (xs: Diag[]) =>
    xs.map((x) => JSON.stringify([x.policy, x.resource, x.level, x.message])).sort();
  expect(sort(got)).toEqual(sort(expected));
  expect([...new Set(got.map((d) => d.policy))].sort()).toEqual([
    "database-not-public",
    "k8s-hpa-bounded",
    "monthly-cost-limit",
  ]);
  // The pack priced the stack with the plan's cost model when infra/plan/cost.ts provides one.
  const source = loadPlanCostModel() ? "plan cost model" : "built-in conservative estimate";
  expect(got.find((d) => d.policy === "monthly-cost-limit")!.message).toContain(
    `(${source}) is over the prod limit of $1.`,
  );
}, 120_000);

test("values unknown during preview produce no violation and no 'can't run during preview' advisory", async () => {
  await configure(config);
  const unknownBool = "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7";
  const unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
  const db = resources.find((r) => r.type === "aws:rds/instance:Instance")!;
  const previewDb = {
    ...db,
    props: {
      ...db.props,
      storageEncrypted: unknownBool,
      publiclyAccessible: unknownBool,
      backupRetentionPeriod: unknown,
      tags: unknown,
    },
  };
  expect(await analyze(previewDb)).toEqual([]);
  const dep = resources.find((r) => r.type === "kubernetes:apps/v1:Deployment")!;
  const spec = JSON.parse(JSON.stringify(dep.props));
  spec.spec.template.spec.containers[0].image = unknown;
  spec.spec.template.spec.containers[0].env = unknown;
  expect(await analyze({ ...dep, props: spec })).toEqual([]);
});

test("a deliberately public database is refused, mandatory, with the fix", async () => {
  await configure(config);
  const db = resources.find((r) => r.type === "aws:rds/instance:Instance")!;
  expect(await analyze({ ...db, props: { ...db.props, publiclyAccessible: true } })).toEqual([
    {
      policy: "database-not-public",
      level: "mandatory",
      resource: db.urn,
      message: `${RULES.find((r) => r.name === "database-not-public")!.description}\npubliclyAccessible is true: set it to false; reach the database from inside the VPC (compute security group) only.`,
    },
  ]);
});
