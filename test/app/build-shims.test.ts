/**
 * The stand-ins scripts/build.mjs puts in the Lambda bundle in place of a package
 * (LAMBDA_ALIAS): each must do what the bundle's users of that package rely on.
 */
import path from "node:path";

const root = path.resolve(__dirname, "../..");

interface Debug {
  (...args: unknown[]): void;
  namespace: string;
  enabled: boolean;
  log: ((line: string) => void) | undefined;
  extend(sub: string, delimiter?: string): Debug;
}
interface CreateDebug {
  (namespace: string): Debug;
  default: CreateDebug;
  log: (line: string) => void;
  enabled(namespace: string): boolean;
}

describe("the debug stand-in (ioredis's only logger)", () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- the shim is CommonJS, as the package it replaces
  const createDebug = require(path.join(root, "scripts/shims/debug.cjs")) as CreateDebug;
  const saved = process.env.DEBUG;
  afterEach(() => {
    if (saved === undefined) delete process.env.DEBUG;
    else process.env.DEBUG = saved;
  });

  it("is off unless DEBUG names the namespace, with wildcards and exclusions", () => {
    delete process.env.DEBUG;
    expect(createDebug("ioredis:redis").enabled).toBe(false);
    process.env.DEBUG = "ioredis:*,-ioredis:dataHandler other";
    expect(createDebug.enabled("ioredis:redis")).toBe(true);
    expect(createDebug.enabled("ioredis:dataHandler")).toBe(false);
    expect(createDebug.enabled("other")).toBe(true);
    expect(createDebug.enabled("unrelated")).toBe(false);
  });

  it("exposes what ioredis uses: default export, enabled, namespace, log, extend", () => {
    process.env.DEBUG = "ioredis:*";
    const lines: string[] = [];
    const debug = createDebug.default("ioredis:redis");
    debug.log = (line) => lines.push(line);
    debug("status[%s]: %s -> %s", "127.0.0.1:6379", "connecting", "ready");
    expect(debug.namespace).toBe("ioredis:redis");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/ ioredis:redis status\[127\.0\.0\.1:6379\]: connecting -> ready\n$/);
    expect(debug.extend("sub").namespace).toBe("ioredis:redis:sub");

    const off = createDebug("elsewhere");
    off.log = (line) => lines.push(line);
    off("not written");
    expect(lines).toHaveLength(1);
  });
});
