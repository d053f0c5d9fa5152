/**
 * The production log destination (telemetry/logger.ts asyncDestination): pino's asynchronous
 * sonic-boom in buffer mode, fed UTF-8 bytes. What a user depends on: every line reaches the
 * file descriptor whole, in order, whatever its characters, across many writes.
 */
import { execFileSync } from "node:child_process";
import fs, { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { asyncDestination, createLogger } from "../../app/src/telemetry/logger";

describe("asyncDestination", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "log-dest-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function written(lines: (log: ReturnType<typeof createLogger>) => void): Promise<string> {
    const file = path.join(dir, "out.log");
    const fd = openSync(file, "w");
    const dest = asyncDestination(fd);
    const log = createLogger({ level: "info", destination: dest });
    lines(log);
    await dest.close();
    closeSync(fd);
    return readFileSync(file, "utf8");
  }

  it("writes every line whole and in order, multi-byte characters included, over many writes", async () => {
    // Each line is ~300 bytes, 2-, 3- and 4-byte UTF-8 sequences among them: 3,000 lines make
    // ~900 KB, many times sonic-boom's 16 KB write size, so lines are joined and split across
    // writes. A destination that counted characters as bytes would cut or drop some.
    const text = "é ✓ 日本語 😀 ".repeat(12);
    const out = await written((log) => {
      for (let i = 0; i < 3000; i++) log.info({ i, text }, `line ${i} ✓`);
    });
    const lines = out.split("\n");
    expect(lines.pop()).toBe("");
    expect(lines).toHaveLength(3000);
    lines.forEach((line, i) => {
      const parsed = JSON.parse(line) as { i: number; text: string; msg: string };
      expect(parsed).toMatchObject({ i, text, msg: `line ${i} ✓` });
    });
  });

  it("keeps redaction and the service field on the lines it writes", async () => {
    const out = await written((log) => log.info({ apiKey: "sk-ant-secret-value" }, "hello"));
    expect(out).not.toContain("sk-ant-secret-value");
    expect(JSON.parse(out)).toMatchObject({ service: "agent", apiKey: "[redacted]", msg: "hello" });
  });

  it("close() writes what it holds and stops the flush timer: the descriptor's number, reused, is left alone", async () => {
    // Only setInterval is faked, so the timer can be run at will; the writes stay real.
    jest.useFakeTimers({ doNotFake: ["nextTick", "setImmediate", "setTimeout", "queueMicrotask"] });
    const write = jest.spyOn(fs, "write");
    try {
      const first = openSync(path.join(dir, "first.log"), "w");
      const dest = asyncDestination(first);
      createLogger({ level: "info", destination: dest }).info("held below the 4 KB write size");
      await dest.close();
      closeSync(first);
      expect(readFileSync(path.join(dir, "first.log"), "utf8")).toContain("held below");
      // The lowest free number: the one the destination wrote to (asserted, or this proves nothing).
      const next = openSync(path.join(dir, "next.log"), "w");
      try {
        expect(next).toBe(first);
        write.mockClear();
        jest.advanceTimersByTime(5000); // five of its once-a-second flushes, had it kept them
        await new Promise((resolve) => setImmediate(resolve));
        expect(write.mock.calls.filter(([n]) => n === next)).toEqual([]);
      } finally {
        closeSync(next);
      }
    } finally {
      write.mockRestore();
      jest.useRealTimers();
    }
  });

  it("close() on a pipe resolves once the lines are written: fsync(2)'s EINVAL there is not a failed write", async () => {
    // stdout is a pipe when a platform collects the logs. Opened read-write, a FIFO needs no
    // reader to open, and the same descriptor reads back what the pipe holds.
    const fifo = path.join(dir, "fifo");
    execFileSync("mkfifo", [fifo]);
    const fd = openSync(fifo, fs.constants.O_RDWR);
    try {
      const dest = asyncDestination(fd);
      createLogger({ level: "info", destination: dest }).info("through a pipe");
      await expect(dest.close()).resolves.toBeUndefined();
      const buf = Buffer.alloc(4096);
      const n = fs.readSync(fd, buf);
      expect(JSON.parse(buf.subarray(0, n).toString())).toMatchObject({ msg: "through a pipe" });
    } finally {
      closeSync(fd);
    }
  });
});
