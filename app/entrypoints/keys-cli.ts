/**
 * API-key administration against the configured store (DATABASE_URL, else PGlite in DATA_DIR).
 *   npm run keys -- create <user> [--name <name>]
 *   npm run keys -- list [user]
 *   npm run keys -- revoke <key-id>
 */
import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../src/config";
import { openStore } from "../src/store";
import type { ApiKeyRecord, Store } from "../src/store/types";

const USAGE = `usage:
  npm run keys -- create <user> [--name <name>]   create a key; it is printed once
  npm run keys -- list [user]                     list keys (never the keys themselves)
  npm run keys -- revoke <key-id>                 revoke a key by the id that list shows`;

/** Where the CLI writes and what configures it: the process's own, or a test's. */
export interface KeysCliIo {
  stdout: Pick<NodeJS.WritableStream, "write">;
  stderr: Pick<NodeJS.WritableStream, "write">;
  env: NodeJS.ProcessEnv;
}

type Command = { run: (store: Store, print: (line: string) => void) => Promise<void> };

function parse(argv: string[]): Command {
  const { positionals, values } = parseArgs({
    args: argv,
    options: { name: { type: "string" } },
    allowPositionals: true,
    strict: true,
  });
  const [command, ...rest] = positionals;
  const arity = (min: number, max: number) => {
    if (rest.length < min || rest.length > max)
      throw new Error(`wrong number of arguments for "${command}"`);
  };
  if (values.name !== undefined && command !== "create")
    throw new Error("--name only applies to create");
  switch (command) {
    case "create":
      arity(1, 1);
      return {
        run: async (store, print) => {
          const { key, record } = await store.createApiKey(rest[0]!, values.name);
          print(
            `created key ${record.id} for user ${record.userId}${record.name ? ` (${record.name})` : ""}`,
          );
          print(`\n  ${key}\n`);
          print("Store it now: it is not saved and cannot be shown again.");
        },
      };
    case "list":
      arity(0, 1);
      return {
        run: async (store, print) => {
          const keys = await store.listApiKeys(rest[0]);
          print(keys.length === 0 ? "no keys" : table(keys));
        },
      };
    case "revoke":
      arity(1, 1);
      return {
        run: async (store, print) => {
          if (!(await store.revokeApiKey(rest[0]!)))
            throw new Error(`no active key with id ${rest[0]}`);
          print(`revoked key ${rest[0]}`);
        },
      };
    case undefined:
      throw new Error("missing command");
    default:
      throw new Error(`unknown command "${command}"`);
  }
}

function table(keys: ApiKeyRecord[]): string {
  const rows = [
    ["ID", "USER", "NAME", "PREFIX", "CREATED", "LAST USED", "STATUS"],
    ...keys.map((k) => [
      k.id,
      k.userId,
      k.name ?? "",
      `${k.prefix}…`,
      k.createdAt,
      k.lastUsedAt ?? "never",
      k.revokedAt ? `revoked ${k.revokedAt}` : "active",
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** Runs one command; resolves to the exit code (0 done, 1 failed, 2 usage error). */
export async function main(
  argv: string[],
  io: KeysCliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env },
): Promise<number> {
  const print = (line: string) => io.stdout.write(`${line}\n`);
  if (argv.includes("--help") || argv.includes("-h")) {
    print(USAGE);
    return 0;
  }
  let command: Command;
  try {
    command = parse(argv);
  } catch (err) {
    // parseArgs throws for unknown or malformed options: those are usage errors too.
    io.stderr.write(`${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  let store: Store | undefined;
  try {
    store = await openStore(loadConfig(io.env));
    await command.run(store, print);
    return 0;
  } catch (err) {
    io.stderr.write(
      `${err instanceof ConfigError ? err.message : `error: ${(err as Error).message}`}\n`,
    );
    return 1;
  } finally {
    await store?.close();
  }
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
