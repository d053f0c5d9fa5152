import { ConfigError, loadConfig } from "../../app/src/config";

describe("loadConfig", () => {
  it("applies the documented defaults on an empty environment", () => {
    const c = loadConfig({});
    expect(c.PORT).toBe(8080);
    expect(c.CACHE_TTL_SECONDS).toBe(3600);
    expect(c.DATA_DIR).toBe(".data");
    expect(c.LOG_LEVEL).toBe("info");
    expect(c.DATABASE_URL).toBeUndefined();
    expect(c.REDIS_URL).toBeUndefined();
    expect(c.ANTHROPIC_API_KEY).toBeUndefined();
  });

  it("treats empty strings as unset", () => {
    expect(loadConfig({ PORT: "", REDIS_URL: "" }).PORT).toBe(8080);
  });

  it("parses AGENT_API_KEYS into user/key pairs", () => {
    expect(
      loadConfig({ AGENT_API_KEYS: " alice:key-aaaa-1 , bob:key-bbbb-2" }).AGENT_API_KEYS,
    ).toEqual([
      { user: "alice", key: "key-aaaa-1" },
      { user: "bob", key: "key-bbbb-2" },
    ]);
  });

  it.each([
    ["PORT", "eighty", /PORT: .*number/],
    ["PORT", "70000", /PORT: .*65535/],
    ["REDIS_URL", "http://localhost:6379", /REDIS_URL: must be a URL with scheme redis or rediss/],
    ["DATABASE_URL", "mysql://x", /DATABASE_URL: must be a URL with scheme postgres or postgresql/],
    ["AGENT_API_KEYS", "alice", /AGENT_API_KEYS: each entry must be user:key/],
    ["AGENT_API_KEYS", "alice:short", /AGENT_API_KEYS: .*at least 8 characters/],
    ["LOG_LEVEL", "loud", /LOG_LEVEL: /],
    ["CACHE_TTL_SECONDS", "-1", /CACHE_TTL_SECONDS: /],
  ])("rejects %s=%s with a message naming the variable", (name, value, message) => {
    let error: unknown;
    try {
      loadConfig({ [name]: value });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues.map((i) => i.variable)).toEqual([name]);
    expect((error as Error).message).toMatch(message);
  });

  it("reports every bad variable at once", () => {
    expect(() => loadConfig({ PORT: "x", REDIS_URL: "nope" })).toThrow(/PORT[\s\S]*REDIS_URL/);
  });
});
