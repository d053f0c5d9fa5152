/**
 * GET /v1/models and GET /v1/models/{id} from the model table, in the Models API's shapes (the
 * official SDK's `ModelInfo` and `Page`), paged with limit / after_id / before_id as the API pages;
 * `?beta=true` accepted on every route; `anthropic-version` handled as routes/api.ts says.
 */
import Anthropic from "@anthropic-ai/sdk";
import type { ModelInfo } from "@anthropic-ai/sdk/resources/models";
import { ModelCatalog } from "../../app/src/llm/models";
import { displayName, listedModels } from "../../app/src/routes/models";
import { startService, type RunningService } from "../support/service";

const KEY = "alice-key-0001";
const catalog = ModelCatalog.load();
const IDS = catalog.ids;

/** Every field of the SDK's ModelInfo (resources/models.d.ts), so a missing one fails here. */
const MODEL_INFO_KEYS: ReadonlyArray<keyof ModelInfo> = [
  "capabilities",
  "created_at",
  "deprecated_at",
  "display_name",
  "id",
  "lifecycle",
  "line",
  "max_input_tokens",
  "max_tokens",
  "retires_at",
  "type",
];

interface PageJson {
  data: ModelInfo[];
  has_more: boolean;
  first_id: string | null;
  last_id: string | null;
}

interface ErrorJson {
  type: string;
  error: { type: string; message: string };
}

describe("the Models API", () => {
  let service: RunningService;
  let sdk: Anthropic;
  const get = (path: string, headers: Record<string, string> = {}) =>
    fetch(`${service.url}${path}`, {
      headers: { "x-api-key": KEY, "anthropic-version": "2023-06-01", ...headers },
    });
  const page = async (query: string) => {
    const res = await get(`/v1/models${query}`);
    expect(res.status).toBe(200);
    return (await res.json()) as PageJson;
  };

  beforeAll(async () => {
    service = await startService({
      DATA_DIR: "memory://",
      AGENT_API_KEYS: `alice:${KEY}`,
      METRICS_ENABLED: "false",
      RATE_LIMIT_RPM: "0",
    });
    sdk = new Anthropic({ baseURL: service.url, apiKey: KEY, maxRetries: 0 });
  });
  afterAll(() => service.close());

  it("lists the table's models with every field of the SDK's ModelInfo", async () => {
    const listed = await page("");
    expect(listed.data.map((m) => m.id).sort()).toEqual([...IDS].sort());
    expect(listed).toMatchObject({ has_more: false, first_id: listed.data[0]!.id });
    expect(listed.last_id).toBe(listed.data.at(-1)!.id);
    for (const m of listed.data) {
      expect(Object.keys(m).sort()).toEqual([...MODEL_INFO_KEYS].sort());
      expect(m.type).toBe("model");
      expect(m.lifecycle).toBe("active");
      expect(Number.isNaN(Date.parse(m.created_at))).toBe(false);
      expect(m.max_input_tokens).toBe(catalog.get(m.id)!.contextWindow);
    }
    const sonnet = listed.data.find((m) => m.id === "claude-sonnet-4-6")!;
    expect(sonnet).toMatchObject({ display_name: "Claude Sonnet 4.6", line: "sonnet" });
  });

  it("names models as the API does, dropping a snapshot date", () => {
    const info = (id: string) => ({ ...catalog.get("claude-haiku-4-5")!, id });
    expect(displayName(info("claude-haiku-4-5-20251001"))).toBe("Claude Haiku 4.5");
    expect(displayName(info("claude-3-5-haiku"))).toBe("Claude 3.5 Haiku");
    expect(displayName(info("claude-opus-4"))).toBe("Claude Opus 4");
  });

  it("lists newest first by the snapshot date, undated last, and equal dates in table order", () => {
    const base = catalog.get("claude-haiku-4-5")!;
    const ids = [
      "claude-haiku-4-5-20240101",
      "claude-undated",
      "claude-sonnet-9-20250101",
      "claude-haiku-9-20250101",
      "claude-opus-9-20251231",
    ];
    const models = [...catalog.table.models, ...ids.map((id) => ({ ...base, id }))];
    const listed = listedModels(new ModelCatalog({ ...catalog.table, models })).map((m) => m.id);
    expect(listed.filter((id) => ids.includes(id))).toEqual([
      "claude-opus-9-20251231",
      "claude-sonnet-9-20250101",
      "claude-haiku-9-20250101",
      "claude-haiku-4-5-20240101",
      "claude-undated",
    ]);
  });

  it("pages with limit and after_id, then back with before_id, as the SDK's Page expects", async () => {
    const all = (await page("")).data.map((m) => m.id);
    expect(all.length).toBeGreaterThanOrEqual(3);
    const first = await page("?limit=2");
    expect(first.data.map((m) => m.id)).toEqual(all.slice(0, 2));
    expect(first).toMatchObject({ has_more: true, first_id: all[0], last_id: all[1] });
    const rest = await page(`?limit=2&after_id=${first.last_id}`);
    expect(rest.data.map((m) => m.id)).toEqual(all.slice(2, 4));
    expect(rest.has_more).toBe(all.length > 4);
    const back = await page(`?limit=1&before_id=${all[2]}`);
    expect(back.data.map((m) => m.id)).toEqual([all[1]]);
    expect(back.has_more).toBe(true);
    const start = await page(`?limit=5&before_id=${all[1]}`);
    expect(start).toMatchObject({ has_more: false, first_id: all[0], last_id: all[0] });

    // The SDK follows the cursors itself, forwards (after_id) and backwards (before_id).
    const forwards: string[] = [];
    for await (const m of sdk.models.list({ limit: 1 })) forwards.push(m.id);
    expect(forwards).toEqual(all);
    const backwards: string[] = [];
    for await (const m of sdk.models.list({ limit: 1, before_id: all.at(-1)! }))
      backwards.push(m.id);
    expect(backwards).toEqual(all.slice(0, -1).reverse());
  });

  it.each([
    ["limit=0", /limit/],
    ["limit=1001", /limit/],
    ["limit=many", /limit/],
    ["after_id=claude-haiku-4-5&before_id=claude-opus-4-5", /cannot both be set/],
    ["after_id=claude-nonesuch", /after_id: no object claude-nonesuch/],
  ])("answers ?%s with 400 invalid_request_error", async (query, message) => {
    const res = await get(`/v1/models?${query}`);
    expect(res.status).toBe(400);
    const body = (await res.json()) as ErrorJson;
    expect(body.type).toBe("error");
    expect(body.error.type).toBe("invalid_request_error");
    expect(body.error.message).toMatch(message);
  });

  it("retrieves a model by id or dated id, and answers an unknown one or an alias with 404 not_found_error", async () => {
    const m = await sdk.models.retrieve("claude-haiku-4-5");
    expect(m).toMatchObject({
      id: "claude-haiku-4-5",
      type: "model",
      display_name: "Claude Haiku 4.5",
    });
    const dated = await sdk.models.retrieve("claude-haiku-4-5-20251001");
    expect(dated.id).toBe("claude-haiku-4-5");
    for (const id of ["claude-nonesuch-9", "fast"]) {
      const err = await sdk.models.retrieve(id).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Anthropic.NotFoundError);
      expect((err as InstanceType<typeof Anthropic.NotFoundError>).error).toMatchObject({
        type: "error",
        error: { type: "not_found_error" },
      });
    }
  });

  it("accepts ?beta=true (the SDK's beta.models and Claude Code send it) and needs the API key", async () => {
    const beta: string[] = [];
    for await (const m of sdk.beta.models.list()) beta.push(m.id);
    expect(beta.sort()).toEqual([...IDS].sort());
    expect((await sdk.beta.models.retrieve("claude-opus-4-5")).id).toBe("claude-opus-4-5");
    expect((await get("/v1/models/claude-opus-4-5?beta=true")).status).toBe(200);
    expect((await fetch(`${service.url}/v1/models`)).status).toBe(401);
  });

  it("refuses a missing anthropic-version on the API's routes, and one that is not a version, as the API does", async () => {
    expect((await get("/v1/models", { "anthropic-version": "2023-06-01" })).status).toBe(200);
    const bare = (path: string, init: RequestInit = {}) =>
      fetch(`${service.url}${path}`, {
        ...init,
        headers: { "x-api-key": KEY, "content-type": "application/json" },
      });
    const body = JSON.stringify({
      model: "claude-haiku-4-5",
      max_tokens: 8,
      messages: [{ role: "user", content: "hi" }],
    });
    for (const [path, init] of [
      ["/v1/models", {}],
      ["/v1/models/claude-haiku-4-5", {}],
      ["/v1/messages", { method: "POST", body }],
      ["/v1/messages/count_tokens", { method: "POST", body }],
      ["/v1/messages/batches", {}],
    ] as const) {
      const res = await bare(path, init);
      expect([path, res.status]).toEqual([path, 400]);
      expect(((await res.json()) as ErrorJson).error).toEqual({
        type: "invalid_request_error",
        message: "anthropic-version: header is required",
      });
    }
    // This service's own routes have no version.
    expect((await bare("/v1/usage")).status).toBe(200);
    const bad = await get("/v1/models", { "anthropic-version": "2023-06-01, 2023-06-01" });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as ErrorJson).error).toEqual({
      type: "invalid_request_error",
      message: 'anthropic-version: "2023-06-01, 2023-06-01" is not a valid version',
    });
  });
});
