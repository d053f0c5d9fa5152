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

type Command = { run: (store: Store) => Promise<void> };

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
        run: async (store) => {
          const { key, record } = await store.createApiKey(rest[0]!, values.name);
          console.log(
            `created key ${record.id} for user ${record.userId}${record.name ? ` (${record.name})` : ""}`,
          );
          console.log(`\n  ${key}\n`);
          console.log("Store it now: it is not saved and cannot be shown again.");
        },
      };
    case "list":
      arity(0, 1);
      return {
        run: async (store) => {
          const keys = await store.listApiKeys(rest[0]);
          if (keys.length === 0) console.log("no keys");
          else console.log(table(keys));
        },
      };
    case "revoke":
      arity(1, 1);
      return {
        run: async (store) => {
          if (!(await store.revokeApiKey(rest[0]!)))
            throw new Error(`no active key with id ${rest[0]}`);
          console.log(`revoked key ${rest[0]}`);
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

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(USAGE);
    return 0;
  }
  let command: Command;
  try {
    command = parse(argv);
  } catch (err) {
    // parseArgs throws for unknown or malformed options: those are usage errors too.
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  let store: Store | undefined;
  try {
    store = await openStore(loadConfig());
    await command.run(store);
    return 0;
  } catch (err) {
    console.error(err instanceof ConfigError ? err.message : `error: ${(err as Error).message}`);
    return 1;
  } finally {
    await store?.close();
  }
}

void main().then((code) => {
  process.exitCode = code;
});
