/**
 * SqlClient over PGlite (Postgres compiled to WebAssembly): the embedded default, so the service
 * runs with no database server. `memory://` keeps everything in memory; any other value is a
 * directory that persists across restarts.
 *
 * Memory: PGlite's WebAssembly memory only grows. initdb, which a new directory needs once, grows
 * it to ~700 MB, so it runs in a short-lived child process (initdbInChild) and the service only
 * ever opens a database that exists (~150 MB with START_PARAMS' shared_buffers).
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { PGlite } from "@electric-sql/pglite";
import type { SqlClient } from "./types";

import { MEMORY_DATA_DIR } from "./types";

export { MEMORY_DATA_DIR };

/** An embedded database's files as a tarball (`PGlite.dumpDataDir`), to start another from. */
export type PgliteImage = Blob;

export interface PgliteClient extends SqlClient {
  /** The database's files, to start an in-memory copy from (`createPgliteClient(..., image)`). */
  image(): Promise<PgliteImage>;
}

/**
 * Postgres's settings for every PGlite database of the service (appended to PGlite's own, which
 * must stay). shared_buffers is Postgres's page cache, 128 MB by default and all of it resident
 * once touched: 8 MB holds the service's working set (its tables are small and the pages it does
 * not hold are a file read away, in the OS's cache). Measured on opening a database: RSS 313 MB
 * with the defaults, 188 MB with 16 MB, 148 MB with 8 MB (a bare Node process: 45 MB); lowering
 * max_connections, wal_buffers or autovacuum slots as well changed nothing measurable.
 */
export const START_PARAMS: readonly string[] = ["-c", "shared_buffers=8MB"];

function startParams(): string[] {
  return [...PGlite.defaultStartParams, ...START_PARAMS];
}

/**
 * `image`: start an in-memory database as a copy of these files instead of running initdb (a
 * quarter of the time: about 0.4 s instead of 1.6 s on this project's 2-core machine).
 */
export async function createPgliteClient(
  dataDir: string,
  image?: PgliteImage,
): Promise<PgliteClient> {
  let releaseLock = () => {};
  let db: PGlite;
  if (dataDir.startsWith(MEMORY_DATA_DIR)) {
    db = await PGlite.create({
      ...(image ? { loadDataDir: image } : {}),
      startParams: startParams(),
    });
  } else {
    const dir = path.resolve(dataDir);
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    releaseLock = lockDirectory(dir);
    try {
      // Under the lock: no other opener reaches the directory, or its staging copies, meanwhile.
      await initdbInChild(dir);
      db = await PGlite.create(dir, { startParams: startParams() });
    } catch (err) {
      releaseLock();
      throw new Error(`could not open the embedded database in ${dir}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  let closing: Promise<void> | undefined;
  return {
    kind: "pglite",
    async query<T>(text: string, params?: unknown[]) {
      const { rows } = await db.query<T>(text, params);
      return { rows };
    },
    // PGlite has one connection; its own transaction() holds a mutex that queues every other
    // query and transaction until this one commits or rolls back, so nothing interleaves.
    transaction(fn) {
      return db.transaction((tx) =>
        fn({
          async query<T>(text: string, params?: unknown[]) {
            const { rows } = await tx.query<T>(text, params);
            return { rows };
          },
        }),
      );
    },
    close() {
      closing ??= db.close().finally(releaseLock);
      return closing;
    },
    image: () => db.dumpDataDir("none"),
  };
}

/** Thrown by initdbInChild once cancelInitdb has been called. */
export class InitdbCancelled extends Error {
  constructor() {
    super("the embedded database's initialisation was cancelled: the process is stopping");
    this.name = "InitdbCancelled";
  }
}

const initdbChildren = new Set<ChildProcess>();
let initdbCancelled = false;

/**
 * Stops an initdb child under way, and refuses to start one from now on: for a process that is
 * stopping (a signal during start-up). The store being opened then fails with InitdbCancelled and
 * the directory is left as it was (no database: the next start initialises it).
 */
export function cancelInitdb(): void {
  initdbCancelled = true;
  killInitdbChildren();
}

/**
 * The child: loads PGlite from the path it is given, creates the database (initdb), closes it.
 * It leaves signals to its parent (a Ctrl-C reaches the whole process group: the parent decides,
 * see cancelInitdb), and exits when its parent is gone (the IPC channel closes).
 */
const INITDB_SCRIPT = `
const [entry, dir] = process.argv.slice(1);
process.on("SIGINT", () => {});
process.on("disconnect", () => process.exit(1));
require(entry).PGlite.create(dir).then((db) => db.close()).then(
  () => process.exit(0),
  (err) => { process.stderr.write(String(err && err.stack || err) + "\\n"); process.exit(1); },
);`;

/**
 * Creates the database of an empty or missing directory (initdb) in a child process, which exits
 * with all the memory initdb took; the caller holds the directory's lock. The child writes a
 * staging directory beside it (`<dir>.initdb-<pid>`, this process's pid), renamed into place once
 * complete, so a child killed half-way leaves no half-made database behind; staging directories
 * of earlier attempts are removed first.
 *
 * Does nothing when the database exists already (PG_VERSION) or the directory holds something
 * else (PGlite deals with it in process, as it always has), and leaves initdb to PGlite in process
 * when the package cannot be resolved for a child (say, a bundle with PGlite inlined).
 */
export async function initdbInChild(dir: string): Promise<void> {
  if (fs.existsSync(path.join(dir, "PG_VERSION"))) return;
  if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0) return;
  let entry: string;
  try {
    entry = require.resolve("@electric-sql/pglite");
  } catch {
    return;
  }
  if (initdbCancelled) throw new InitdbCancelled();
  const prefix = `${path.basename(dir)}.initdb-`;
  for (const name of fs.readdirSync(path.dirname(dir))) {
    if (name.startsWith(prefix))
      fs.rmSync(path.join(path.dirname(dir), name), { recursive: true, force: true });
  }
  const staging = `${dir}.initdb-${process.pid}`;
  try {
    await runInitdb(entry, staging);
    if (!fs.existsSync(path.join(staging, "PG_VERSION")))
      throw new Error(`initdb left no PG_VERSION in ${staging}`);
    fs.rmSync(dir, { recursive: true, force: true }); // empty, checked above
    fs.renameSync(staging, dir);
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw err;
  }
}

function runInitdb(entry: string, dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", INITDB_SCRIPT, entry, dir], {
      stdio: ["ignore", "ignore", "pipe", "ipc"],
    });
    initdbChildren.add(child);
    if (initdbChildren.size === 1) process.once("exit", killInitdbChildren);
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString("utf8")).slice(-2000);
    });
    const done = (err?: Error) => {
      if (!initdbChildren.delete(child)) return;
      if (initdbChildren.size === 0) process.off("exit", killInitdbChildren);
      if (err) reject(err);
      else resolve();
    };
    child.once("error", (err) => done(new Error(`could not run initdb: ${err.message}`)));
    child.once("exit", (code, signal) => {
      if (initdbCancelled) done(new InitdbCancelled());
      else if (code === 0) done();
      else done(new Error(`initdb failed (${signal ?? `exit code ${code}`}): ${stderr.trim()}`));
    });
  });
}

/** A child outliving its parent would finish initdb for nobody. */
function killInitdbChildren(): void {
  for (const child of initdbChildren) child.kill("SIGKILL");
}

const heldLocks = new Set<string>();

/**
 * PGlite does no locking of its own, and two processes (say the server and the keys CLI) writing
 * one directory corrupt it. A `<dir>.lock` file holding the owner's pid prevents that; a lock
 * whose process has died is stale and taken over.
 */
function lockDirectory(dir: string): () => void {
  const file = `${dir}.lock`;
  if (heldLocks.has(file))
    throw new Error(`the embedded database in ${dir} is already open in this process`);
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: "wx" });
      heldLocks.add(file);
      return () => {
        heldLocks.delete(file);
        fs.rmSync(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const owner = Number(fs.readFileSync(file, "utf8").trim());
      // The same pid as ours but not in heldLocks means a previous container run reused the pid.
      if (attempt > 0 || (owner !== process.pid && isAlive(owner))) {
        throw new Error(
          `the embedded database in ${dir} is in use by process ${owner}; stop it first ` +
            `(one process at a time), or set DATABASE_URL to share a PostgreSQL server`,
        );
      }
      fs.rmSync(file, { force: true });
    }
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
