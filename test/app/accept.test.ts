/**
 * More than one connection accepted per turn of the event loop (app/entrypoints/accept.ts): Node
 * (libuv 1.45+, libuv/libuv#3696) accepts one connection per listening descriptor per turn, so a
 * busy service took new connections at tens a second. Connections are made by a child process
 * while this process is blocked, so they all wait in the kernel's accept queue; then the first turn
 * of this process's loop is watched.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { addAcceptors } from "../../app/entrypoints/accept";
import { loadConfig } from "../../app/src/config";

/** Blocks this thread (its event loop too) until `file` exists, at most `ms`. */
function blockUntil(file: string, ms: number): void {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + ms;
  while (!existsSync(file) && Date.now() < deadline) Atomics.wait(cell, 0, 0, 10);
  if (!existsSync(file)) throw new Error(`the child did not connect within ${ms} ms`);
}

/** Connections accepted in the first turn after `connections` queued while the loop was blocked. */
async function acceptedInOneTurn(acceptors: number, connections: number): Promise<number> {
  const server = net.createServer((socket) => socket.on("error", () => {}));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const added = await addAcceptors(server, acceptors);
  expect(added).toBe(acceptors);
  let accepted = 0;
  server.on("connection", () => accepted++);
  const { port } = server.address() as net.AddressInfo;
  const dir = mkdtempSync(path.join(os.tmpdir(), "accept-"));
  const flag = path.join(dir, "connected");
  const child = spawn(
    process.execPath,
    [
      "-e",
      `const net = require("node:net"); let n = 0; const all = [];
       for (let i = 0; i < ${connections}; i++) all.push(net.connect(${port}, "127.0.0.1", () => {
         if (++n === ${connections}) require("node:fs").writeFileSync(${JSON.stringify(flag)}, "");
       }).on("error", () => {}));
       process.stdin.on("end", () => process.exit(0)); process.stdin.resume();`,
    ],
    { stdio: ["pipe", "ignore", "inherit"] },
  );
  try {
    // Every handshake completes in the kernel while this loop cannot accept anything.
    blockUntil(flag, 15_000);
    // The turn that accepts the first one: its poll phase accepts what it can, then its check
    // phase (setImmediate) runs.
    await new Promise((resolve) => server.once("connection", resolve));
    await new Promise((resolve) => setImmediate(resolve));
    return accepted;
  } finally {
    child.stdin!.end();
    await new Promise((resolve) => child.once("exit", resolve));
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("addAcceptors", () => {
  it("with only the socket's own descriptor, one queued connection is accepted per loop turn (why this exists)", async () => {
    expect(await acceptedInOneTurn(0, 12)).toBe(1);
  });

  it("with 7 more descriptors of the same socket, 8 queued connections are accepted in one turn", async () => {
    expect(await acceptedInOneTurn(7, 12)).toBe(8);
  });

  it("hands the connections to the server, and closing the server stops every descriptor from accepting", async () => {
    const server = net.createServer((socket) => socket.end("hello"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    expect(await addAcceptors(server, 3)).toBe(3);
    const { port } = server.address() as net.AddressInfo;
    const read = () =>
      new Promise<string>((resolve, reject) => {
        let text = "";
        net
          .connect(port, "127.0.0.1")
          .on("data", (d) => (text += String(d)))
          .on("end", () => resolve(text))
          .on("error", reject);
      });
    for (let i = 0; i < 6; i++) expect(await read()).toBe("hello");
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await expect(read()).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });

  it("resolves once the helper holds no descriptor: a server closed at once refuses connections", async () => {
    // The helper listens on the socket while it holds it. Resolving before it had closed its
    // descriptor (before 2026-12-07) left a window in which a closed server's port still took
    // connections, then reset them (ECONNRESET where the drain promises a refusal).
    for (let i = 0; i < 8; i++) {
      const server = net.createServer((socket) => socket.end("hello"));
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const { port } = server.address() as net.AddressInfo;
      expect(await addAcceptors(server, 2)).toBe(2);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await expect(
        new Promise((resolve, reject) =>
          net.connect(port, "127.0.0.1").on("connect", resolve).on("error", reject),
        ),
      ).rejects.toMatchObject({ code: "ECONNREFUSED" });
    }
  });

  it("adds nothing to a server that is not listening", async () => {
    expect(await addAcceptors(net.createServer(), 4)).toBe(0);
  });
});

describe("LISTEN_ACCEPTORS", () => {
  it("defaults to 16 descriptors; 1 is the socket's own alone; 0 and 257 are refused", () => {
    expect(loadConfig({}).LISTEN_ACCEPTORS).toBe(16);
    expect(loadConfig({ LISTEN_ACCEPTORS: "1" }).LISTEN_ACCEPTORS).toBe(1);
    expect(() => loadConfig({ LISTEN_ACCEPTORS: "0" })).toThrow(/LISTEN_ACCEPTORS/);
    expect(() => loadConfig({ LISTEN_ACCEPTORS: "257" })).toThrow(/LISTEN_ACCEPTORS/);
  });
});

describe("connections that arrive while the helper holds the socket", () => {
  it("are all served: the helper hands back each one it accepts (it kept them, unread, before 2026-12-07)", async () => {
    const server = net.createServer((socket) => socket.end("hello"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as net.AddressInfo;
    const answer = () =>
      new Promise<string>((resolve) => {
        let text = "";
        const socket = net.connect(port, "127.0.0.1");
        socket.setTimeout(5000, () => {
          socket.destroy();
          resolve(`no answer within 5 s`);
        });
        socket
          .on("data", (d) => (text += String(d)))
          .on("end", () => resolve(text))
          .on("error", (err) => resolve(err.message));
      });
    // Clients keep connecting while the helper starts, receives the socket and hands it back
    // (many times over, so that it holds it a while): it is listening on it all that time.
    let adding = true;
    const answers: Array<Promise<string>> = [];
    const clients = (async () => {
      while (adding) {
        answers.push(answer(), answer(), answer(), answer());
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();
    try {
      try {
        expect(await addAcceptors(server, 200)).toBe(200);
        await new Promise((resolve) => setTimeout(resolve, 300));
      } finally {
        adding = false;
        await clients;
      }
      const got = await Promise.all(answers);
      expect(got.length).toBeGreaterThan(100);
      expect(got.filter((t) => t !== "hello")).toEqual([]);
    } finally {
      // Closed even when an expectation fails: otherwise up to 201 listening descriptors of its
      // port stay open in the jest worker for the rest of its files (~200 were seen so after a
      // run under --detectOpenHandles, which slows every process down).
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }, 30_000);
});
