/**
 * The embedded database's first start: initdb runs in a short-lived child process
 * (app/src/store/pglite.ts initdbInChild), so the service never holds the memory initdb grows to;
 * it writes a staging directory renamed into place once complete, under the lock the opener
 * holds. And every PGlite database runs with the lowered memory settings (START_PARAMS).
 */
import childProcess from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { openStore, type StoreConfig } from "../../app/src/store";
import { createPgliteClient, START_PARAMS } from "../../app/src/store/pglite";
import { memoryImage } from "../../app/src/store/memory-image";

async function until<T>(
  check: () => T | undefined | false,
  what: string,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("PGlite: the first start of a data directory", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "embedded-pglite-"));
  });
  afterEach(() => {
    jest.restoreAllMocks();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("runs initdb in a child process under this process's lock, then opens the database, which keeps its data across restarts", async () => {
    const db = path.join(dir, "pglite");
    // What a child killed half-way would have left: removed, not trusted.
    const stale = `${db}.initdb-999999`;
    fs.mkdirSync(stale);
    fs.writeFileSync(path.join(stale, "half-written"), "x");
    const staging = `${db}.initdb-${process.pid}`;
    const spawn = jest.spyOn(childProcess, "spawn");
    const config: StoreConfig = { DATA_DIR: dir, DATABASE_URL: undefined, DATABASE_POOL_MAX: 1 };

    const opening = openStore(config);
    // While the child works: the lock is ours, the child writes beside the directory.
    await until(() => spawn.mock.calls.length > 0, "the initdb child");
    const [command, args] = spawn.mock.calls[0]!;
    expect(command).toBe(process.execPath);
    expect(args).toContain(staging);
    expect(fs.readFileSync(`${db}.lock`, "utf8")).toBe(String(process.pid));
    expect(fs.existsSync(stale)).toBe(false);
    await expect(openStore(config)).rejects.toThrow(/already open in this process/);

    const first = await opening;
    expect(spawn).toHaveBeenCalledTimes(1);
    expect(fs.existsSync(path.join(db, "PG_VERSION"))).toBe(true);
    expect(fs.existsSync(staging)).toBe(false);
    const { key } = await first.createApiKey("alice", "laptop");
    await first.close();
    expect(fs.existsSync(`${db}.lock`)).toBe(false);

    // A database that exists opens in process: no child.
    const second = await openStore(config);
    try {
      expect(spawn).toHaveBeenCalledTimes(1);
      expect(await second.findUserByApiKey(key)).toBe("alice");
    } finally {
      await second.close();
    }
  });

  it("stops the initdb child when cancelled: the opening fails, and leaves no lock, staging directory or database", async () => {
    // A module instance of its own: cancelling is for good (a process that is stopping).
    let pglite: typeof import("../../app/src/store/pglite") | undefined;
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      pglite = require("../../app/src/store/pglite") as typeof import("../../app/src/store/pglite");
    });
    const spawn = jest.spyOn(childProcess, "spawn");
    const db = path.join(dir, "pglite");
    const opening = pglite!.createPgliteClient(db);
    opening.catch(() => {});
    await until(() => spawn.mock.results[0]?.value as childProcess.ChildProcess, "the child");
    const child = spawn.mock.results[0]!.value as childProcess.ChildProcess;
    pglite!.cancelInitdb();
    await expect(opening).rejects.toThrow(/cancelled/);
    expect(child.signalCode).toBe("SIGKILL");
    expect(fs.existsSync(`${db}.lock`)).toBe(false);
    expect(fs.readdirSync(dir)).toEqual([]); // no staging copy, no database, no lock
    // And no new one starts.
    await expect(pglite!.createPgliteClient(path.join(dir, "other"))).rejects.toThrow(/cancelled/);
  });
});

describe("PGlite memory settings", () => {
  it("runs every embedded database, memory:// ones included, with START_PARAMS (shared_buffers)", async () => {
    const expected = START_PARAMS[START_PARAMS.indexOf("-c") + 1]!.split("=")[1];
    expect(expected).toBe("8MB");
    // From the test run's image (test/support/setup-pglite-image.ts), as memory:// stores start.
    const client = await createPgliteClient("memory://", await memoryImage());
    try {
      const { rows } = await client.query<{ shared_buffers: string }>("SHOW shared_buffers");
      expect(rows[0]!.shared_buffers).toBe(expected);
    } finally {
      await client.close();
    }
  });
});
