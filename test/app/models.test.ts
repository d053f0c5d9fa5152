import { ModelCatalog, SYNTHETIC_MODEL, worstInputPerMTok } from "../../app/src/llm/models";
import { estimateInput } from "../../app/src/budget/estimate";
import table from "../../app/config/models.json";

describe("ModelCatalog", () => {
  const catalog = ModelCatalog.load();

  it("prices a call from the table (hand-computed)", () => {
    // sonnet: 1000 in * $3 + 500 out * $15 + 2000 cache write * $3.75 + 4000 cache read * $0.30, per million
    const usd = catalog.costUsd("claude-sonnet-4-6", {
      input_tokens: 1000,
      output_tokens: 500,
      cache_creation_input_tokens: 2000,
      cache_read_input_tokens: 4000,
    });
    expect(usd).toBeCloseTo((3000 + 7500 + 7500 + 1200) / 1e6, 12);
  });

  it("prices 1-hour cache writes at their own rate (2x input), the rest at the 5-minute rate", () => {
    // sonnet: 1000 in * $3 + 500 out * $15 + 1500 5-minute writes * $3.75 + 500 1-hour writes * $6
    const usd = catalog.costUsd("claude-sonnet-4-6", {
      input_tokens: 1000,
      output_tokens: 500,
      cache_creation_input_tokens: 2000,
      cache_read_input_tokens: 0,
      cache_creation: { ephemeral_5m_input_tokens: 1500, ephemeral_1h_input_tokens: 500 },
    });
    expect(usd).toBeCloseTo((3000 + 7500 + 5625 + 3000) / 1e6, 12);
  });

  it("takes 2x input as the 1-hour write price of a table that does not give one", () => {
    const custom = ModelCatalog.load({
      ...table,
      models: table.models.map(({ cacheWrite1hPerMTok: _drop, ...m }) => m),
    });
    const usage = {
      input_tokens: 0,
      output_tokens: 0,
      cache_creation_input_tokens: 1_000_000,
      cache_creation: { ephemeral_1h_input_tokens: 1_000_000 },
    };
    expect(custom.costUsd("claude-haiku-4-5", usage)).toBeCloseTo(2, 12);
  });

  it("holds input that asks for a 1-hour cache at the 1-hour write price", () => {
    const haiku = catalog.prices("claude-haiku-4-5");
    const marked = (cache_control: unknown) =>
      estimateInput({ system: [{ type: "text", text: "rules", cache_control }], messages: [] });
    expect(worstInputPerMTok(haiku, estimateInput({ messages: [] }))).toBe(1);
    expect(worstInputPerMTok(haiku, marked({ type: "ephemeral" }))).toBe(1.25);
    expect(worstInputPerMTok(haiku, marked({ type: "ephemeral", ttl: "1h" }))).toBe(2);
    // Automatic caching: one mark on the request itself.
    const automatic = estimateInput({
      messages: [],
      cache_control: { type: "ephemeral", ttl: "1h" },
    });
    expect(worstInputPerMTok(haiku, automatic)).toBe(2);
  });

  it("halves batch calls", () => {
    const u = { input_tokens: 1_000_000, output_tokens: 0 };
    expect(catalog.costUsd("claude-haiku-4-5", u, { batch: true })).toBeCloseTo(0.5, 12);
  });

  it("prices dated snapshots like their alias", () => {
    expect(catalog.prices("claude-sonnet-4-6-20250929").id).toBe("claude-sonnet-4-6");
  });

  it("charges unknown models at the highest prices, never zero", () => {
    const unknown = catalog.costUsd("claude-future-9", {
      input_tokens: 0,
      output_tokens: 1_000_000,
    });
    const priciest = Math.max(...table.models.map((m) => m.outputPerMTok));
    expect(unknown).toBe(priciest);
  });

  it("charges nothing for the synthetic offline model", () => {
    expect(catalog.costUsd(SYNTHETIC_MODEL, { input_tokens: 10_000, output_tokens: 10_000 })).toBe(
      0,
    );
  });

  it("rejects a table whose fallback names an unknown model", () => {
    expect(() => ModelCatalog.load({ ...table, fallbacks: { fast: ["nope"] } })).toThrow(
      /fallbacks.fast names unknown model "nope"/,
    );
  });

  it("rejects a table with a missing price", () => {
    const broken = { ...table, models: [{ ...table.models[0], inputPerMTok: undefined }] };
    expect(() => ModelCatalog.load(broken)).toThrow(/models.0.inputPerMTok/);
  });
});
