/**
 * One stack per process: renders the stack under the mock runtime (Pulumi's runtime state is
 * module-global, so a process cannot render two), then reports its resource tree, the policy
 * pack's verdict and the cost estimate to the CLI over IPC. Started by `cli.ts`.
 *
 * Usage: node --import tsx infra/plan/worker.ts '<WorkerRequest JSON>'
 */
import { stackRenderer } from "./render";
import { alwaysOnUsage, estimateCost, usageFor } from "./cost";
import { loadPolicyRunner, registerCostEstimator } from "./policy";
import { resourceTree } from "./tree";
import type { StackPlan, WorkerMessage, WorkerRequest } from "./types";
import { StackConfigError } from "../config";
import { stackFacts } from "../preflight/facts";

async function plan(request: WorkerRequest): Promise<StackPlan> {
  const render = stackRenderer(request.stack, {}, { dir: request.stacksDir });
  const { config, q, sampled, fileValues, secretsUnset } = await render();
  const recorded = q.all();
  const cost = estimateCost(recorded, { environment: config.environment });
  const alwaysOn = estimateCost(recorded, {
    environment: config.environment,
    usage: alwaysOnUsage(usageFor(config.environment)),
  });
  // Loaded after the render: nothing of the pack may touch the runtime before the mocks exist.
  const evaluate = loadPolicyRunner(request.policyModule);
  registerCostEstimator();
  const violations = await evaluate(recorded, config.environment);
  return {
    name: request.stack,
    target: config.target,
    cloud: config.cloud,
    environment: config.environment,
    region: config.region,
    resources: resourceTree(recorded),
    policy: { violations },
    cost,
    alwaysOnMonthlyUsd: alwaysOn.monthlyUsd,
    ...(request.preflight
      ? { facts: stackFacts({ config, fileValues, sampled, secretsUnset, resources: recorded }) }
      : {}),
  };
}

function report(message: WorkerMessage): void {
  // Exit once the message is flushed: the mock runtime may keep handles open.
  if (process.send) process.send(message, () => process.exit(0));
  else process.stdout.write(`${JSON.stringify(message)}\n`, () => process.exit(0));
}

const request = JSON.parse(process.argv[2] ?? "{}") as WorkerRequest;
plan(request).then(
  (result) => report({ ok: true, plan: result }),
  (err: unknown) =>
    report({
      ok: false,
      error: err instanceof Error ? err.message : String(err),
      ...(err instanceof StackConfigError
        ? { config: { problems: err.problems, missing: err.missing } }
        : {}),
    }),
);
