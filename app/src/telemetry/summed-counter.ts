/**
 * A monotonic counter whose sums the process keeps itself, reported as an OpenTelemetry
 * observable counter at each collection (a /metrics scrape, an OTLP export). Exporters see what a
 * synchronous Counter gives them: one cumulative monotonic sum per combination of label values.
 *
 * For counters on the request path. The SDK's synchronous Counter hashes the attributes of every
 * `add` (sdk-metrics 2.12 `hashAttributes`: Object.keys, sort, JSON.stringify of the pairs); here
 * `add` finds its series in nested maps by label value and adds: nothing is allocated once a
 * series exists. Label values must come from small, known sets, as for any metric label.
 */
import type { Attributes, Meter, MetricOptions, ObservableResult } from "@opentelemetry/api";

interface Series {
  readonly attributes: Attributes;
  value: number;
}

/** Up to three labels, given to `add` in the order of `labels`. */
export class SummedCounter {
  private readonly root = new Map<string, Map<string, Map<string, Series>>>();
  private readonly series: Series[] = [];

  constructor(
    meter: Meter,
    name: string,
    options: MetricOptions,
    /** One to three. */
    private readonly labels: readonly [string, string?, string?],
  ) {
    meter
      .createObservableCounter(name, options)
      .addCallback((result: ObservableResult) => this.observe(result));
  }

  /**
   * Adds `value` to the series of these label values (one per label, in order). Like a
   * Counter's `add`, a negative or non-finite value is ignored: the sum never goes down.
   */
  add(value: number, v0 = "", v1 = "", v2 = ""): void {
    if (!(value >= 0 && value < Infinity)) return;
    // A value beyond the labels names no label: one series per combination of labelled values.
    const arity = this.labels.length;
    if (arity < 3) v2 = "";
    if (arity < 2) v1 = "";
    let byV1 = this.root.get(v0);
    if (!byV1) this.root.set(v0, (byV1 = new Map()));
    let byV2 = byV1.get(v1);
    if (!byV2) byV1.set(v1, (byV2 = new Map()));
    let s = byV2.get(v2);
    if (!s) byV2.set(v2, (s = this.create(v0, v1, v2)));
    s.value += value;
  }

  private create(v0: string, v1: string, v2: string): Series {
    const attributes: Attributes = {};
    const values = [v0, v1, v2];
    this.labels.forEach((label, i) => (attributes[label!] = values[i]));
    const s: Series = { attributes, value: 0 };
    this.series.push(s);
    return s;
  }

  private observe(result: ObservableResult): void {
    for (const s of this.series) result.observe(s.value, s.attributes);
  }
}
