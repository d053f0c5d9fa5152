/**
 * The production log destination (telemetry/logger.ts asyncDestination): pino's asynchronous
 * sonic-boom in buffer mode, fed UTF-8 bytes. What a user depends on: every line reaches the
 * file descriptor whole, in order, whatever its characters, across many writes.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
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
    await new Promise<void>((resolve, reject) =>
      dest.flush((err?: Error) => (err ? reject(err) : resolve())),
    );
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
});
