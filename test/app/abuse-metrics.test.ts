/**
 * Abuse suite, item 6: /metrics is served only on METRICS_PORT, never on the public port (nor
 * through the Lambda handler, which serves the same public app), and every label is bounded:
 * 500 made-up model names are 400s listing the known models and leave the exposition as it was;
 * with pass-through allowed, they reach the upstream and are all labelled `other`.
 */
import { randomBytes } from "node:crypto";
import { buildApp } from "../../app/src/app";
import { ModelCatalog } from "../../app/src/llm/models";
import type { NodeServer } from "../../app/entrypoints/node-server";
import defaultTable from "../../app/config/models.json";
import { serviceBackends } from "../support/services";
import { openServerRig, type ErrorJson, type ServerRig } from "../support/abuse";

const KNOWN = ["claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-5"];

describe.each(serviceBackends())("abuse: /metrics with $name", (backend) => {
  let rig: ServerRig;
  beforeAll(async () => {
    rig = await openServerRig(backend, "metrics");
  });
  afterAll(() => rig?.close());
  const start = (catalog?: ModelCatalog) => rig.start({}, { catalog });

  const ask = (node: NodeServer, model: string) =>
    fetch(`${node.url}/v1/messages`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-api-key": rig.key,
        "anthropic-version": "2023-06-01",
      },
      body: JSON.stringify({
        model,
        max_tokens: 16,
        messages: [{ role: "user", content: "hi" }],
      }),
    });
  const scrape = async (node: NodeServer) => {
    const res = await fetch(`${node.metricsUrl}/metrics`);
    expect(res.status).toBe(200);
    return res.text();
  };
  const madeUp = (i: number) => `made-up-model-${i}-${randomBytes(4).toString("hex")}`;

  it("serves /metrics on METRICS_PORT only, and 500 made-up model names are 400s that leave it unchanged", async () => {
    const { node, deps } = await start();
    try {
      expect((await fetch(`${node.url}/metrics`)).status).toBe(404);
      expect((await buildApp(deps).request("/metrics")).status).toBe(404); // the Lambda's app
      expect(node.metricsUrl).toBeDefined();
      expect(new URL(node.metricsUrl!).port).not.toBe(new URL(node.url).port);

      const ok = await ask(node, KNOWN[0]!);
      expect(ok.status).toBe(200);
      const refused = await ask(node, madeUp(0));
      expect(refused.status).toBe(400);
      const body = (await refused.json()) as ErrorJson;
      expect(body.error.type).toBe("invalid_request_error");
      for (const id of KNOWN) expect(body.error.message).toContain(id);
      expect(body.request_id).toMatch(/^req_/);
      const before = (await scrape(node)).length;

      const calls = rig.fake.requestCount;
      const names: string[] = [];
      for (let i = 1; i <= 500; i++) {
        names.push(madeUp(i));
        const res = await ask(node, names[i - 1]!);
        expect(res.status).toBe(400);
        await res.text();
      }
      expect(rig.fake.requestCount).toBe(calls);
      const after = await scrape(node);
      process.stdout.write(
        `[abuse] ${backend.name}: /metrics ${before} bytes before, ${after.length} after 500 made-up model names\n`,
      );
      expect(after.length - before).toBeLessThan(2048);
      expect(names.some((n) => after.includes(n))).toBe(false);
    } finally {
      await node.drain();
    }
  });

  it("labels made-up names `other` when the model table allows pass-through", async () => {
    const catalog = ModelCatalog.load({ ...defaultTable, passThroughUnknownModels: true });
    const { node } = await start(catalog);
    try {
      expect((await ask(node, KNOWN[1]!)).status).toBe(200);
      expect((await ask(node, madeUp(0))).status).toBe(200);
      const before = (await scrape(node)).length;
      const names: string[] = [];
      for (let i = 1; i <= 500; i++) {
        names.push(madeUp(i));
        const res = await ask(node, names[i - 1]!);
        expect(res.status).toBe(200);
        await res.text();
      }
      const after = await scrape(node);
      process.stdout.write(
        `[abuse] ${backend.name}: /metrics ${before} bytes before, ${after.length} after 500 passed-through model names\n`,
      );
      expect(after).toMatch(/model="other"/);
      expect(names.some((n) => after.includes(n))).toBe(false);
      expect(after.length - before).toBeLessThan(2048);
    } finally {
      await node.drain();
    }
  });
});
