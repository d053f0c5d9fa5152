/**
 * Abuse suite, item 10: clients that send a body one byte at a time, and keys nobody issued. The
 * Node server has header, body and idle timeouts; each user may have at most
 * MAX_CONCURRENT_REQUESTS_PER_USER requests in flight; a request counts against the rate limit
 * when it starts, before its body has arrived; and unknown keys are remembered briefly, looked up
 * once however many arrive at once, and never looked up at all when they cannot be a key this
 * service issued.
 */
import net from "node:net";
import { randomBytes } from "node:crypto";
import type { NodeServer } from "../../app/entrypoints/node-server";
import { serviceBackends } from "../support/services";
import { openServerRig, until, type ErrorJson, type ServerRig } from "../support/abuse";
import { CachedKeyResolver } from "../../app/src/auth";

const BODY = JSON.stringify({
  model: "claude-haiku-4-5",
  max_tokens: 16,
  messages: [{ role: "user", content: "hello there" }],
});

/** A raw connection that sends headers and the first byte of its body, then nothing more. */
function trickle(
  url: string,
  key: string,
): { socket: net.Socket; received: () => string; closed: Promise<void> } {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  let received = "";
  socket.on("data", (d: Buffer) => (received += d.toString()));
  socket.on("error", () => {});
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  socket.write(
    `POST /v1/messages HTTP/1.1\r\nHost: ${hostname}\r\nx-api-key: ${key}\r\nanthropic-version: 2023-06-01\r\n` +
      `content-type: application/json\r\ncontent-length: ${BODY.length}\r\n\r\n${BODY[0]}`,
  );
  return { socket, received: () => received, closed };
}

describe.each(serviceBackends())("abuse: slow clients and unknown keys with $name", (backend) => {
  let rig: ServerRig;
  let key = "";
  beforeAll(async () => {
    rig = await openServerRig(backend, "slow");
    key = rig.key;
  });
  afterAll(() => rig?.close());
  const start = (env: Record<string, string>) => rig.start({ METRICS_ENABLED: "false", ...env });
  const post = (node: NodeServer, k = key) =>
    fetch(`${node.url}/v1/messages`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-api-key": k,
        "anthropic-version": "2023-06-01",
      },
      body: BODY,
    });

  it("ends a request whose body stops arriving with 408 (HTTP_BODY_TIMEOUT_MS), and one whose headers never finish", async () => {
    const { node } = await start({
      HTTP_BODY_TIMEOUT_MS: "1000",
      HTTP_HEADERS_TIMEOUT_MS: "1000",
      RATE_LIMIT_RPM: "0",
    });
    try {
      // The three connections run side by side: each waits out a timeout of its own.
      const slowBody = (async () => {
        const slow = trickle(node.url, key);
        await until(
          async () => slow.socket.destroyed && true,
          "the server to close the connection",
          20_000,
        );
        return slow.received();
      })();
      const halfHeaders = (async () => {
        const { hostname, port } = new URL(node.url);
        const partial = net.connect(Number(port), hostname);
        partial.on("error", () => {});
        let answer = "";
        partial.on("data", (d: Buffer) => (answer += d.toString())); // reading, it sees the close
        partial.write("POST /v1/messages HTTP/1.1\r\nHost: x\r\n");
        await until(
          async () => partial.destroyed && true,
          "the server to drop the half-sent headers",
          20_000,
        );
        return answer;
      })();
      // A stream that outlives the body timeout is not cut by it.
      const stream = (async () => {
        const res = await fetch(`${node.url}/v1/messages`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "x-api-key": key,
            "anthropic-version": "2023-06-01",
          },
          body: JSON.stringify({
            ...JSON.parse(BODY),
            stream: true,
            messages: [
              { role: "user", content: 'long [[fake:{"deltas":30,"deltaIntervalMs":60}]]' },
            ],
          }),
        });
        return { status: res.status, text: await res.text() };
      })();
      expect(await slowBody).toMatch(/^HTTP\/1\.1 408/);
      expect(await halfHeaders).toMatch(/^HTTP\/1\.1 408/);
      const streamed = await stream;
      expect(streamed.status).toBe(200);
      expect(streamed.text).toContain("event: message_stop");
    } finally {
      await node.drain();
    }
  });

  it("counts a request against RATE_LIMIT_RPM when it starts, before its body arrives", async () => {
    const { node } = await start({ RATE_LIMIT_RPM: "3", MAX_CONCURRENT_REQUESTS_PER_USER: "100" });
    const slow = [trickle(node.url, key), trickle(node.url, key), trickle(node.url, key)];
    try {
      await until(async () => node.inflight >= 3, "the slow requests to arrive");
      const res = await post(node);
      expect(res.status).toBe(429);
      expect(((await res.json()) as ErrorJson).error.type).toBe("rate_limit_error");
    } finally {
      for (const s of slow) s.socket.destroy();
      await node.drain();
    }
  });

  it("caps the requests one user has in flight (MAX_CONCURRENT_REQUESTS_PER_USER)", async () => {
    const { node } = await start({ RATE_LIMIT_RPM: "0", MAX_CONCURRENT_REQUESTS_PER_USER: "2" });
    const slow = [trickle(node.url, key), trickle(node.url, key)];
    try {
      await until(async () => node.inflight >= 2, "the slow requests to arrive");
      const res = await post(node);
      expect(res.status).toBe(429);
      const body = (await res.json()) as ErrorJson;
      expect(body.error.type).toBe("rate_limit_error");
      expect(body.error.message).toMatch(/concurrent/);
      expect(res.headers.get("retry-after")).toBeTruthy();
      for (const s of slow) s.socket.destroy();
      await until(async () => node.inflight === 0, "the slow requests to end");
      expect((await post(node)).status).toBe(200);
    } finally {
      for (const s of slow) s.socket.destroy();
      await node.drain();
    }
  });

  it("looks an unknown key up once however many arrive at once, and never looks up one this service cannot have issued", async () => {
    const { node, deps } = await start({
      RATE_LIMIT_RPM: "0",
      MAX_CONCURRENT_REQUESTS_PER_USER: "1000",
    });
    let lookups = 0;
    const store = deps.store;
    const lookup = store.findUserByApiKey.bind(store);
    store.findUserByApiKey = (k: string) => {
      lookups++;
      return lookup(k);
    };
    try {
      const wellFormed = `ak_${randomBytes(32).toString("base64url")}`;
      const same = await Promise.all(Array.from({ length: 50 }, () => post(node, wellFormed)));
      expect(same.every((r) => r.status === 401)).toBe(true);
      expect(lookups).toBe(1);
      // Remembered: more of the same cost nothing.
      expect((await post(node, wellFormed)).status).toBe(401);
      expect(lookups).toBe(1);
      // Keys of any other shape are not keys this service issues: no lookup at all.
      for (let i = 0; i < 200; i++) {
        const res = await post(node, `junk-${randomBytes(12).toString("hex")}`);
        expect(res.status).toBe(401);
      }
      expect(lookups).toBe(1);
    } finally {
      await node.drain();
    }
  });
});

describe("the key resolver under a flood of unknown keys", () => {
  it("keeps remembering the known keys (no query for them), whatever the unknown ones do", async () => {
    const good = `ak_${"g".repeat(43)}`;
    let lookups = 0;
    const resolver = new CachedKeyResolver({
      store: {
        findUserByApiKey: async (k: string) => {
          lookups++;
          return k === good ? "alice" : null;
        },
      },
      maxEntries: 100,
    });
    expect(await resolver.resolve(good)).toBe("alice");
    for (let i = 0; i < 1000; i++)
      expect(await resolver.resolve(`ak_${randomBytes(32).toString("base64url")}`)).toBeNull();
    const before = lookups;
    expect(await resolver.resolve(good)).toBe("alice");
    expect(lookups).toBe(before);
  });
});
