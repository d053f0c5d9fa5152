import { CachedKeyResolver, presentedKey } from "../../app/src/auth";

const headers = (h: Record<string, string>) => ({ get: (n: string) => h[n.toLowerCase()] ?? null });

describe("presentedKey", () => {
  it("reads x-api-key and Bearer tokens", () => {
    expect(presentedKey(headers({ "x-api-key": "k-123456789" }))).toBe("k-123456789");
    expect(presentedKey(headers({ authorization: "Bearer k-987654321" }))).toBe("k-987654321");
    expect(presentedKey(headers({ authorization: "bearer   k-987654321  " }))).toBe("k-987654321");
    expect(presentedKey(headers({ authorization: "Basic abc" }))).toBeNull();
    expect(presentedKey(headers({}))).toBeNull();
  });
});

describe("CachedKeyResolver", () => {
  it("resolves static keys without touching the store", async () => {
    const store = { findUserByApiKey: jest.fn(async () => null) };
    const r = new CachedKeyResolver({ staticKeys: [{ user: "alice", key: "alice-key-1" }], store });
    expect(await r.resolve("alice-key-1")).toBe("alice");
    expect(store.findUserByApiKey).not.toHaveBeenCalled();
  });

  it("remembers database answers for the TTL, then asks again (revocation takes effect)", async () => {
    let now = 1_000;
    let owner: string | null = "bob";
    const store = { findUserByApiKey: jest.fn(async () => owner) };
    const r = new CachedKeyResolver({
      store,
      positiveTtlMs: 30_000,
      negativeTtlMs: 5_000,
      now: () => now,
    });
    // Issue 13: only keys of the issued shape (ak_ + 43 base64url characters) reach the store.
    const key = `ak_${"k".repeat(43)}`;
    expect(await r.resolve(key)).toBe("bob");
    owner = null; // revoked
    expect(await r.resolve(key)).toBe("bob");
    expect(store.findUserByApiKey).toHaveBeenCalledTimes(1);
    now += 30_001;
    expect(await r.resolve(key)).toBeNull();
    expect(store.findUserByApiKey).toHaveBeenCalledTimes(2);
  });

  it("rejects implausible keys without a lookup", async () => {
    const store = { findUserByApiKey: jest.fn(async () => "x") };
    const r = new CachedKeyResolver({ store });
    expect(await r.resolve("short")).toBeNull();
    expect(await r.resolve("x".repeat(600))).toBeNull();
    expect(store.findUserByApiKey).not.toHaveBeenCalled();
  });
});
