/**
 * One Lambda cold start, in a fresh `node` process: load the bundle (as the runtime loads
 * index.js from /var/task), invoke `handler` with a real-shaped Function URL event, and print
 * one line `BENCH_RESULT {...}` with the timings, measured on the process's own clock
 * (performance.now() counts from the start of the process).
 *
 *   BENCH_BUNDLE=/tmp/x/index.js BENCH_EVENT_FILE=/tmp/x/event.json node lambda-cold.cjs
 *
 * Plain CommonJS on purpose: no loader, no transpiler, nothing between `node` and the bundle.
 */
/* eslint-disable @typescript-eslint/no-require-imports -- plain CommonJS on purpose: nothing between node and the bundle */
"use strict";
const { readFileSync } = require("node:fs");
const { randomUUID } = require("node:crypto");

async function main() {
  const scriptStartMs = performance.now();
  const event = JSON.parse(readFileSync(process.env.BENCH_EVENT_FILE, "utf8"));
  const deadline = Date.now() + 30000;
  const context = {
    callbackWaitsForEmptyEventLoop: true,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME || "agent-bench",
    functionVersion: "$LATEST",
    invokedFunctionArn: "arn:aws:lambda:eu-west-1:123456789012:function:agent-bench",
    memoryLimitInMB: "1024",
    awsRequestId: randomUUID(),
    logGroupName: "/aws/lambda/agent-bench",
    logStreamName: "bench",
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
  const beforeRequire = performance.now();
  const mod = require(process.env.BENCH_BUNDLE);
  const loadedMs = performance.now();
  const res = await mod.handler(event, context);
  const firstEventMs = performance.now();
  const out = {
    scriptStartMs,
    requireMs: loadedMs - beforeRequire,
    loadedMs,
    firstEventMs,
    statusCode: res && res.statusCode,
    xCache: res && res.headers && res.headers["x-cache"],
    bodyStart: res && typeof res.body === "string" ? res.body.slice(0, 200) : undefined,
  };
  process.stdout.write(`BENCH_RESULT ${JSON.stringify(out)}\n`);
  if (typeof mod.handler.shutdown === "function") await mod.handler.shutdown();
  process.exit(0);
}

main().catch((err) => {
  process.stdout.write(
    `BENCH_RESULT ${JSON.stringify({ error: String((err && err.stack) || err) })}\n`,
  );
  process.exit(1);
});
