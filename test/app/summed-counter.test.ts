/**
 * SummedCounter (telemetry/summed-counter.ts): counters of the request path whose sums the
 * process keeps, read by an observable counter. Exporters must see what the SDK's synchronous
 * Counter would give them for the same calls: same series, same sums, a monotonic sum.
 */
import { type Attributes } from "@opentelemetry/api";
import {
  AggregationTemporality,
  DataPointType,
  MeterProvider,
  MetricReader,
  type SumMetricData,
} from "@opentelemetry/sdk-metrics";
import { SummedCounter } from "../../app/src/telemetry/summed-counter";

class TestReader extends MetricReader {
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

function setup() {
  const reader = new TestReader();
  const provider = new MeterProvider({ readers: [reader] });
  const meter = provider.getMeter("test");
  const read = async (name: string) => {
    const { resourceMetrics } = await reader.collect();
    const metric = resourceMetrics.scopeMetrics
      .flatMap((s) => s.metrics)
      .find((m) => m.descriptor.name === name) as SumMetricData | undefined;
    const points = (metric?.dataPoints ?? [])
      .map((p) => ({ attributes: p.attributes, value: p.value }))
      .sort((a, b) => JSON.stringify(a.attributes).localeCompare(JSON.stringify(b.attributes)));
    return { metric, points };
  };
  return { meter, read, provider };
}

const calls: Array<[number, string, string, string]> = [
  [12, "claude-haiku-4-5", "input", "live"],
  [40, "claude-haiku-4-5", "output", "live"],
  [3, "claude-sonnet-4-5", "input", "batch"],
  [8, "claude-haiku-4-5", "input", "live"],
  [0, "claude-haiku-4-5", "cache_read", "live"],
];

describe("SummedCounter", () => {
  it("exports the same series and sums as the SDK's Counter, as a monotonic cumulative sum", async () => {
    const { meter, read, provider } = setup();
    const labels = ["model", "kind", "source"] as const;
    const summed = new SummedCounter(meter, "summed.tokens", { description: "d" }, labels);
    const counter = meter.createCounter("sdk.tokens", { description: "d" });
    for (const [v, model, kind, source] of calls) {
      summed.add(v, model, kind, source);
      counter.add(v, { model, kind, source } satisfies Attributes);
    }
    const ours = await read("summed.tokens");
    const sdk = await read("sdk.tokens");
    expect(ours.points).toEqual(sdk.points);
    expect(ours.points).toContainEqual({
      attributes: { model: "claude-haiku-4-5", kind: "input", source: "live" },
      value: 20,
    });
    expect(ours.metric?.dataPointType).toBe(DataPointType.SUM);
    expect(ours.metric?.isMonotonic).toBe(true);
    expect(ours.metric?.aggregationTemporality).toBe(AggregationTemporality.CUMULATIVE);
    await provider.shutdown();
  });

  it("keeps counting across collections (cumulative)", async () => {
    const { meter, read, provider } = setup();
    const summed = new SummedCounter(meter, "cache.requests", {}, ["result"]);
    summed.add(1, "miss");
    expect((await read("cache.requests")).points).toEqual([
      { attributes: { result: "miss" }, value: 1 },
    ]);
    summed.add(1, "miss");
    summed.add(1, "hit");
    expect((await read("cache.requests")).points).toEqual([
      { attributes: { result: "hit" }, value: 1 },
      { attributes: { result: "miss" }, value: 2 },
    ]);
    await provider.shutdown();
  });

  it("ignores negative and non-finite values, as a Counter does: the sum never goes down", async () => {
    const { meter, read, provider } = setup();
    const summed = new SummedCounter(meter, "cost", {}, ["model", "source"]);
    summed.add(0.25, "m", "live");
    summed.add(-1, "m", "live");
    summed.add(Number.NaN, "m", "live");
    summed.add(Number.POSITIVE_INFINITY, "m", "live");
    expect((await read("cost")).points).toEqual([
      { attributes: { model: "m", source: "live" }, value: 0.25 },
    ]);
    await provider.shutdown();
  });

  it("one series per labelled values: a value past the last label is not a label of its own", async () => {
    const { meter, read, provider } = setup();
    const summed = new SummedCounter(meter, "one.label", {}, ["result"]);
    summed.add(2, "hit", "ignored");
    summed.add(1, "hit");
    const { points } = await read("one.label");
    expect(points).toEqual([{ attributes: { result: "hit" }, value: 3 }]);
    await provider.shutdown();
  });
});
