/**
 * The keys CLI against a PGlite DATA_DIR: its commands run in this process through `main` (what it
 * prints, its exit codes), and once as a real process through tsx, as `npm run keys` runs it.
 */
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { main } from "../../app/entrypoints/keys-cli";
import { openStore } from "../../app/src/store";

const ROOT = path.resolve(__dirname, "../..");
const TSX = path.join(ROOT, "node_modules/.bin/tsx");
const CLI = path.join(ROOT, "app/entrypoints/keys-cli.ts");

let dataDir: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The CLI's environment: an empty DATABASE_URL counts as unset, so it must use PGlite in DATA_DIR. */
const cliEnv = (): NodeJS.ProcessEnv => ({ ...process.env, DATA_DIR: dataDir, DATABASE_URL: "" });

/** `npm run keys -- ...args` in this process. */
async function keys(...args: string[]): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const code = await main(args, {
    stdout: { write: (chunk: string | Uint8Array) => ((stdout += String(chunk)), true) },
    stderr: { write: (chunk: string | Uint8Array) => ((stderr += String(chunk)), true) },
    env: cliEnv(),
  });
  return { code, stdout, stderr };
}

/** The same as a process of its own, through tsx like `npm run keys`. */
function keysProcess(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      TSX,
      [CLI, ...args],
      { cwd: ROOT, env: cliEnv(), timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

beforeAll(() => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "keys-cli-"));
});
afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

it("creates a key, prints it once, lists it without the secret, and revokes it", async () => {
  // The real entrypoint, once: it opens DATA_DIR, prints to stdout and exits 0.
  const created = await keysProcess("create", "alice", "--name", "laptop");
  expect(created).toMatchObject({ code: 0, stderr: "" });
  const key = /\b(ak_[A-Za-z0-9_-]{43})\b/.exec(created.stdout)?.[1];
  const id = /created key ([0-9a-f-]{36}) for user alice \(laptop\)/.exec(created.stdout)?.[1];
  expect(key).toBeDefined();
  expect(id).toBeDefined();

  const listed = await keys("list");
  expect(listed.code).toBe(0);
  expect(listed.stdout).toContain(id);
  expect(listed.stdout).toMatch(/alice\s+laptop\s+ak_/);
  expect(listed.stdout).toContain(key!.slice(0, 11));
  expect(listed.stdout).not.toContain(key);
  expect((await keys("list", "bob")).stdout.trim()).toBe("no keys");

  const store = await openStore({
    DATA_DIR: dataDir,
    DATABASE_URL: undefined,
    DATABASE_POOL_MAX: 1,
  });
  try {
    expect(await store.findUserByApiKey(key!)).toBe("alice");
  } finally {
    await store.close();
  }

  expect(await keys("revoke", id!)).toMatchObject({ code: 0, stdout: `revoked key ${id}\n` });
  expect((await keys("list", "alice")).stdout).toMatch(/revoked \d{4}-/);
  const again = await keys("revoke", id!);
  expect(again.code).toBe(1);
  expect(again.stderr).toMatch(/no active key/);
}, 120_000);

it.each([
  [[]],
  [["create"]],
  [["create", "a", "b"]],
  [["list", "a", "b"]],
  [["revoke"]],
  [["frobnicate"]],
  [["list", "--name", "x"]],
  [["create", "alice", "--bogus"]],
])("exits 2 with the usage for %j", async (args) => {
  const result = await keys(...args);
  expect(result.code).toBe(2);
  expect(result.stderr).toMatch(/usage:\n.*create <user>/);
  expect(result.stdout).toBe("");
});

it("prints the usage and exits 0 for --help", async () => {
  const result = await keys("--help");
  expect(result).toMatchObject({ code: 0 });
  expect(result.stdout).toMatch(/list \[user\]/);
});

it("rejects an invalid user id with a clear error", async () => {
  const result = await keys("create", "not valid");
  expect(result.code).toBe(1);
  expect(result.stderr).toMatch(/invalid user id/);
});
