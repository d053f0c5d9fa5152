/**
 * The gate evaluator both GCP kinds share, and the Monitoring answers it reads: pure functions.
 */
import { defaultGates, type RolloutGates } from "../../components/release/rollout-plan";
import { badMinuteReasons, evaluateGates, type MinuteSample } from "../../infra/rollout/gates";
import { mergeSamples, timeSeriesQuery } from "../../infra/rollout/monitoring";

const gates: RolloutGates = defaultGates(1000); // 5 %, 1000 ms, 4 requests, 2 of 3 minutes
const T0 = Date.UTC(2026, 0, 5, 12, 0, 0);
const min = (i: number) => T0 + i * 60_000;

const ok = (i: number): MinuteSample => ({
  endMs: min(i),
  requests: 100,
  errors5xx: 1,
  p99Ms: 200,
});
const errors = (i: number): MinuteSample => ({
  endMs: min(i),
  requests: 100,
  errors5xx: 6,
  p99Ms: 200,
});
const slow = (i: number): MinuteSample => ({
  endMs: min(i),
  requests: 100,
  errors5xx: 0,
  p99Ms: 1001,
});

describe("badMinuteReasons", () => {
  it("is bad above the 5xx ratio and names the gate", () => {
    expect(badMinuteReasons(errors(1), gates)).toEqual([
      "5xx 6 % of 100 requests > 5 % (errorRatePercent)",
    ]);
  });

  it("is not bad at exactly the ratio", () => {
    expect(badMinuteReasons({ endMs: 0, requests: 100, errors5xx: 5 }, gates)).toEqual([]);
  });

  it("is bad above the p99 latency and names the gate", () => {
    expect(badMinuteReasons(slow(1), gates)).toEqual(["p99 1001 ms > 1000 ms (p99LatencyMs)"]);
  });

  it("gives both reasons when both signals are bad", () => {
    expect(badMinuteReasons({ ...errors(1), p99Ms: 5000 }, gates)).toHaveLength(2);
  });

  it("ignores a minute with fewer requests than minRequestsPerMinute, ratio and latency alike", () => {
    expect(badMinuteReasons({ endMs: 0, requests: 3, errors5xx: 3, p99Ms: 9000 }, gates)).toEqual(
      [],
    );
    expect(badMinuteReasons({ endMs: 0, requests: 4, errors5xx: 3 }, gates)).toHaveLength(1);
  });
});

describe("evaluateGates", () => {
  it("fails at badMinutes bad minutes within the window", () => {
    const verdict = evaluateGates([ok(1), errors(2), slow(3)], gates, min(3));
    expect(verdict.failed).toBe(true);
    expect(verdict.bad.map((b) => b.endMs)).toEqual([min(2), min(3)]);
    expect(verdict.summary).toMatch(
      /^2 of the last 3 min bad \(fails at 2\); 3 min with data, 300 requests: 12:02Z 5xx 6 %/,
    );
  });

  it("passes with fewer bad minutes than badMinutes", () => {
    const verdict = evaluateGates([ok(1), errors(2), ok(3)], gates, min(3));
    expect(verdict.failed).toBe(false);
    expect(verdict.bad).toHaveLength(1);
  });

  it("looks only at the last windowMinutes: older bad minutes no longer count", () => {
    const samples = [errors(1), errors(2), ok(3), ok(4), ok(5)];
    expect(evaluateGates(samples, gates, min(3)).failed).toBe(true);
    expect(evaluateGates(samples, gates, min(4)).failed).toBe(false);
    expect(evaluateGates(samples, gates, min(5)).observed).toBe(3);
  });

  it("counts missing minutes (no data yet) as good", () => {
    expect(evaluateGates([errors(3)], gates, min(3))).toMatchObject({ failed: false, observed: 1 });
  });

  it("honours other thresholds: one bad minute of five fails a strict gate", () => {
    const strict: RolloutGates = { ...gates, badMinutes: 1, windowMinutes: 5 };
    expect(evaluateGates([ok(1), ok(2), errors(3), ok(4), ok(5)], strict, min(5)).failed).toBe(
      true,
    );
  });
});

describe("Monitoring answers into minutes", () => {
  const point = (i: number, value: { int64Value?: number; doubleValue?: number }) => ({
    interval: {
      startTime: new Date(min(i - 1)).toISOString(),
      endTime: new Date(min(i)).toISOString(),
    },
    value,
  });

  it("sums the classes per minute, counts 5xx (Cloud Run's '5xx' and the LB's '500') and joins the p99", () => {
    const samples = mergeSamples(
      [
        {
          metric: { labels: { response_code_class: "2xx" } },
          points: [point(2, { int64Value: 90 }), point(1, { int64Value: 50 })],
        },
        {
          metric: { labels: { response_code_class: "5xx" } },
          points: [point(2, { int64Value: 10 })],
        },
        {
          metric: { labels: { response_code_class: "500" } },
          points: [point(1, { int64Value: 2 })],
        },
      ],
      [{ points: [point(1, { doubleValue: 120.5 }), point(2, { doubleValue: 900 })] }],
    );
    expect(samples).toEqual([
      { endMs: min(1), requests: 52, errors5xx: 2, p99Ms: 120.5 },
      { endMs: min(2), requests: 100, errors5xx: 10, p99Ms: 900 },
    ]);
  });

  it("asks for 60 s DELTA alignment, the reducer and the grouping", () => {
    const q = timeSeriesQuery(
      'metric.type = "m"',
      min(0),
      min(3),
      "REDUCE_SUM",
      "metric.labels.response_code_class",
    );
    expect(Object.fromEntries(q)).toEqual({
      filter: 'metric.type = "m"',
      "interval.startTime": "2026-01-05T12:00:00.000Z",
      "interval.endTime": "2026-01-05T12:03:00.000Z",
      "aggregation.alignmentPeriod": "60s",
      "aggregation.perSeriesAligner": "ALIGN_DELTA",
      "aggregation.crossSeriesReducer": "REDUCE_SUM",
      "aggregation.groupByFields": "metric.labels.response_code_class",
    });
  });
});
