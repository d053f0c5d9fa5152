/**
 * `npm run build` end to end: the bundles, the Lambda zip (valid, deterministic, small), the
 * manifest, and the artifacts actually running: the zip unpacked into an empty directory as
 * Lambda does, and the server bundle in the image's layout (bundle + PGlite only).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import { SourceMap } from "node:module";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { promisify } from "node:util";
import { startFakeSecretsManager } from "../support/lambda-events";
import { FAKE_AWS_CREDENTIALS, startFakeBedrock } from "../support/fake-bedrock";
import { createTestDatabase, requirePostgres } from "../support/services";

const root = path.resolve(__dirname, "../..");
const LAMBDA_BUDGET = 1024 * 1024;
/** The Bedrock build's (scripts/build.mjs LAMBDA_BEDROCK_BUNDLE_BUDGET_BYTES). */
const LAMBDA_BEDROCK_BUDGET = 1.5 * 1024 * 1024;
const run = promisify(execFile);

interface Manifest {
  artifacts: Array<{ path: string; bytes: number; sha256: string; sha256Base64: string }>;
  lambda: {
    handler: string;
    handlers: Record<string, string>;
    runtime: string;
    sourceCodeHash: string;
    external: string[];
  };
  server: { entry: string; external: string[] };
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "agent-build-test-"));
const outA = path.join(tmp, "a");
const outB = path.join(tmp, "b");
let manifest: Manifest;
let buildLog = "";

const artifact = (rel: string) => manifest.artifacts.find((a) => a.path === rel)!;
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest();

async function build(outdir: string): Promise<string> {
  const { stdout } = await run(
    process.execPath,
    [path.join(root, "scripts/build.mjs"), "--outdir", outdir],
    { cwd: root, timeout: 120_000 },
  );
  return stdout;
}

beforeAll(async () => {
  buildLog = await build(outA);
  manifest = JSON.parse(
    fs.readFileSync(path.join(outA, "build-manifest.json"), "utf8"),
  ) as Manifest;
}, 120_000);

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Reads a zip's central directory (APPNOTE 4.3.12) and inflates each entry. */
function readZip(buf: Buffer) {
  const eocd = buf.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) throw new Error("no end of central directory record");
  const count = buf.readUInt16LE(eocd + 10);
  const cdSize = buf.readUInt32LE(eocd + 12);
  let p = buf.readUInt32LE(eocd + 16);
  if (p + cdSize !== eocd)
    throw new Error("central directory does not end where the end record starts");
  const entries = [];
  for (let i = 0; i < count; i++) {
    if (buf.readUInt32LE(p) !== 0x02014b50) throw new Error(`bad central directory header ${i}`);
    const method = buf.readUInt16LE(p + 10);
    const time = buf.readUInt16LE(p + 12);
    const date = buf.readUInt16LE(p + 14);
    const crc = buf.readUInt32LE(p + 16);
    const csize = buf.readUInt32LE(p + 20);
    const size = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const mode = buf.readUInt32LE(p + 38) >>> 16;
    const offset = buf.readUInt32LE(p + 42);
    const name = buf.subarray(p + 46, p + 46 + nameLen).toString("utf8");
    if (buf.readUInt32LE(offset) !== 0x04034b50) throw new Error(`bad local header for ${name}`);
    const dataStart = offset + 30 + buf.readUInt16LE(offset + 26) + buf.readUInt16LE(offset + 28);
    const raw = buf.subarray(dataStart, dataStart + csize);
    const data = method === 8 ? zlib.inflateRawSync(raw) : Buffer.from(raw);
    entries.push({ name, method, time, date, crc, size, mode, data });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

function hasUnzip(): boolean {
  try {
    execFileSync("unzip", ["-v"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

describe("npm run build", () => {
  it("writes both bundles, the zip and a manifest with each artifact's size and sha256", () => {
    for (const a of manifest.artifacts) {
      const bytes = fs.readFileSync(path.join(outA, a.path));
      expect(bytes.length).toBe(a.bytes);
      expect(sha256(bytes).toString("hex")).toBe(a.sha256);
      expect(sha256(bytes).toString("base64")).toBe(a.sha256Base64);
    }
    const paths = manifest.artifacts.map((a) => a.path);
    for (const rel of [
      "lambda.zip",
      "lambda/index.js",
      "lambda/index.js.map",
      "lambda/bedrock.js",
      "lambda/bedrock.js.map",
      "server/index.js",
      "server/index.js.map",
    ]) {
      expect(paths).toContain(rel);
    }
    // Anything else listed is a license file esbuild extracted.
    expect(
      paths.filter((p) => !/\.(js|map|zip)$/.test(p)).every((p) => p.endsWith(".LEGAL.txt")),
    ).toBe(true);
    // Lambda's sourceCodeHash is the base64 sha256 of the zip.
    expect(manifest.lambda).toMatchObject({
      handler: "index.handler",
      handlers: { "anthropic,vertex": "index.handler", bedrock: "bedrock.handler" },
      runtime: "nodejs22.x",
      sourceCodeHash: artifact("lambda.zip").sha256Base64,
    });
    expect(buildLog).toMatch(/lambda\/index\.js\s+[\d.]+ (KiB|MiB)/);
    expect(buildLog).toContain(manifest.lambda.sourceCodeHash);
  });

  it("keeps the Lambda bundle under 1 MiB (the Bedrock build under 1.5 MiB), without the AWS SDK or PGlite inside", () => {
    for (const [file, budget] of [
      ["lambda/index.js", LAMBDA_BUDGET],
      ["lambda/bedrock.js", LAMBDA_BEDROCK_BUDGET],
    ] as const) {
      const bytes = artifact(file).bytes;
      if (bytes >= budget) {
        throw new Error(
          `${file} is ${bytes} bytes, over its ${budget}-byte budget; build log:\n${buildLog}`,
        );
      }
    }
    // The Bedrock SDK (its stream path, Smithy's event-stream codec) is in its own build only.
    const bedrock = fs.readFileSync(path.join(outA, "lambda/bedrock.js"), "utf8");
    expect(bedrock).toContain("invoke-with-response-stream");
    expect(bedrock).toContain(":event-type");
    const lambda = fs.readFileSync(path.join(outA, "lambda/index.js"), "utf8");
    const server = fs.readFileSync(path.join(outA, "server/index.js"), "utf8");
    // The runtime's SDK is loaded by name; the server bundle carries its own copy.
    expect(lambda).toContain('"@aws-sdk/client-secrets-manager"');
    expect(lambda).not.toContain("aws-sdk-js"); // the SDK's user agent string, present only when bundled
    expect(server).toContain("aws-sdk-js");
    expect(lambda).not.toContain("pglite.wasm");
    expect(lambda).not.toContain("invoke-with-response-stream");
    expect(lambda).not.toContain(":event-type");
    expect(bedrock).not.toContain("pglite.wasm");
    expect(artifact("server/index.js").bytes).toBeLessThan(4 * 1024 * 1024);
  });

  it("writes ASCII bundles (V8 keeps a source holding any other character as UTF-16: twice its size in memory)", () => {
    for (const file of ["server/index.js", "lambda/index.js", "lambda/bedrock.js"]) {
      const bytes = fs.readFileSync(path.join(outA, file));
      const at = bytes.findIndex((b) => b > 0x7f);
      if (at >= 0)
        throw new Error(`${file}: non-ASCII at byte ${at}: ${bytes.subarray(at - 40, at + 8)}`);
    }
  });

  it("zips the Lambda bundle validly, with fixed timestamps and readable permissions", async () => {
    const zip = fs.readFileSync(path.join(outA, "lambda.zip"));
    const bundle = fs.readFileSync(path.join(outA, "lambda/index.js"));
    const entries = readZip(zip);
    const expected = [
      "index.js",
      "index.js.LEGAL.txt",
      "bedrock.js",
      "bedrock.js.LEGAL.txt",
    ].filter((f) => fs.existsSync(path.join(outA, "lambda", f)));
    expect(entries.map((e) => e.name)).toEqual(expected.sort());
    const entry = entries.find((e) => e.name === "index.js");
    expect(entry!.data.equals(bundle)).toBe(true);
    expect(entry!.size).toBe(bundle.length);
    expect(entry!.crc).toBe(zlib.crc32(bundle) >>> 0);
    expect(entry!.method).toBe(8);
    expect(entry!.mode).toBe(0o100644);
    expect({ date: entry!.date, time: entry!.time }).toEqual({ date: 0x21, time: 0 }); // 1980-01-01 00:00
    // Compressed: less than half of what it holds.
    const unpacked = entries.reduce((n, e) => n + e.size, 0);
    expect(zip.length).toBeLessThan(unpacked / 2);

    if (hasUnzip()) {
      // A second opinion from Info-ZIP: integrity test and listing.
      const { stdout: tested } = await run("unzip", ["-t", path.join(outA, "lambda.zip")]);
      expect(tested).toMatch(/No errors detected/);
      const { stdout: listed } = await run("unzip", ["-l", path.join(outA, "lambda.zip")]);
      expect(listed).toMatch(new RegExp(`\\s${bundle.length}\\s+1980-01-01 00:00\\s+index\\.js`));
    }
  });

  it("writes the Lambda bundle's module factories as function expressions, its source map still exact", () => {
    // scripts/build.mjs rewriteModuleFactories: V8 loads a run-once arrow function about twice as slowly.
    const rewritten = /module factories rewritten as function expressions: (\d+)(.*)/.exec(
      buildLog,
    );
    expect(rewritten).not.toBeNull();
    expect(Number(rewritten![1])).toBeGreaterThan(100);
    expect(rewritten![2]).not.toMatch(/left as arrows/);
    const bundle = fs.readFileSync(path.join(outA, "lambda/index.js"), "utf8");
    expect(bundle).toMatch(/=[\w$]+\(function\([\w$]+,[\w$]+\)\{/);

    // Every edit shifts what follows it on the line: a string from the last module in the bundle
    // (the entrypoint, after all the factories) must still map to its own line of the source.
    const map = new SourceMap(
      JSON.parse(fs.readFileSync(path.join(outA, "lambda/index.js.map"), "utf8")) as never,
    );
    const source = fs.readFileSync(path.join(root, "app/entrypoints/lambda.ts"), "utf8");
    for (const needle of ['"lambda cold start complete"', '"usage ledger flush failed']) {
      const at = bundle.indexOf(needle);
      expect(at).toBeGreaterThan(0);
      const line = bundle.slice(0, at).split("\n").length - 1;
      const column = at - (bundle.lastIndexOf("\n", at - 1) + 1);
      const entry = map.findEntry(line, column) as { originalSource: string; originalLine: number };
      expect(entry.originalSource).toMatch(/app\/entrypoints\/lambda\.ts$/);
      expect(source.split("\n")[entry.originalLine]).toContain(needle.slice(1));
    }
  });

  it("is deterministic: a second build gives the same bytes", async () => {
    await build(outB);
    const second = JSON.parse(
      fs.readFileSync(path.join(outB, "build-manifest.json"), "utf8"),
    ) as Manifest;
    for (const rel of ["lambda.zip", "lambda/index.js", "lambda/bedrock.js", "server/index.js"]) {
      expect(second.artifacts.find((a) => a.path === rel)!.sha256).toBe(artifact(rel).sha256);
    }
    expect(second.lambda.sourceCodeHash).toBe(manifest.lambda.sourceCodeHash);
  }, 120_000);
});

// ---------------------------------------------------------------------------------------------

interface Booted {
  child: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts a node process and waits until `ready` finds the service URL in its output. */
function boot(
  script: string,
  cwd: string,
  env: NodeJS.ProcessEnv,
  ready: RegExp,
  timeoutMs = 45_000, // a fresh PGlite directory runs initdb: seconds, more on a loaded machine
): Promise<Booted> {
  const child = spawn(process.execPath, [script], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`no ready line within ${timeoutMs} ms; output:\n${output}`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const m = ready.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1]!, output: () => output, exited });
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before it was ready; output:\n${output}`));
    });
  });
}

/** Environment for a child that owns nothing of ours: no CI flags, no AWS settings leaking in. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    TMPDIR: os.tmpdir(),
  };
  return { ...env, ...extra };
}

describe("the server bundle in the image's layout", () => {
  let image: string;

  beforeAll(() => {
    // What app/Dockerfile's runtime stage holds: WORKDIR with dist/server and PGlite only.
    image = path.join(tmp, "image");
    fs.mkdirSync(path.join(image, "node_modules/@electric-sql"), { recursive: true });
    fs.cpSync(path.join(outA, "server"), path.join(image, "dist/server"), { recursive: true });
    fs.cpSync(
      path.join(root, "node_modules/@electric-sql/pglite"),
      path.join(image, "node_modules/@electric-sql/pglite"),
      { recursive: true },
    );
  });

  it("boots with PORT=0, answers /health, and exits 0 on SIGTERM", async () => {
    const dataDir = fs.mkdtempSync(path.join(tmp, "data-"));
    const started = performance.now();
    const server = await boot(
      "dist/server/index.js",
      image,
      childEnv({
        NODE_ENV: "production",
        PORT: "0",
        HOST: "127.0.0.1",
        DATA_DIR: dataDir,
        LOG_LEVEL: "info",
      }),
      // Embedded mode prints the URL and the local key on stdout.
      /Agent service: (http:\/\/\S+)/,
    );
    try {
      const res = await fetch(`${server.url.replace("localhost", "127.0.0.1")}/health`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: "ok" });
      process.stderr.write(
        `[build.test] server bundle: /health answered ${Math.round(performance.now() - started)} ms after spawn (embedded PGlite)\n`,
      );
    } finally {
      server.child.kill("SIGTERM");
    }
    const { code, signal } = await server.exited;
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(server.output()).toMatch(/"msg":"stopped"/);
  }, 90_000);

  it("resolves <NAME>_SECRET references at start-up (AWS SDK bundled) and refuses to start when one fails", async () => {
    const sm = await startFakeSecretsManager([
      { name: "agent/api-keys", string: JSON.stringify({ keys: "carol:carol-key-from-secret-1" }) },
    ]);
    const aws = {
      AWS_REGION: "eu-west-1",
      AWS_ACCESS_KEY_ID: "AKIDEXAMPLE",
      AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
      AWS_ENDPOINT_URL_SECRETS_MANAGER: sm.endpoint,
    };
    try {
      const server = await boot(
        "dist/server/index.js",
        image,
        childEnv({
          ...aws,
          NODE_ENV: "development", // synchronous logs: the "listening" line carries the URL
          PORT: "0",
          HOST: "127.0.0.1",
          DATA_DIR: "memory://", // the on-disk layout is covered above; in memory starts faster
          AGENT_API_KEYS_SECRET: "aws-sm://agent/api-keys#keys",
        }),
        /"url":"(http:\/\/[^"]+)"/,
      );
      try {
        const res = await fetch(`${server.url}/v1/messages`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "x-api-key": "carol-key-from-secret-1",
            "anthropic-version": "2023-06-01",
          },
          body: JSON.stringify({
            model: "claude-haiku-4-5",
            max_tokens: 16,
            messages: [{ role: "user", content: "hi" }],
          }),
        });
        expect(res.status).toBe(200);
        expect(sm.requests.map((r) => r.secretId)).toEqual(["agent/api-keys"]);
        expect(server.output()).not.toContain("carol-key-from-secret-1");
      } finally {
        server.child.kill("SIGTERM");
        await server.exited;
      }

      const failed = await run(process.execPath, ["dist/server/index.js"], {
        cwd: image,
        env: childEnv({
          ...aws,
          PORT: "0",
          DATA_DIR: "memory://",
          AGENT_API_KEYS_SECRET: "aws-sm://agent/missing",
        }),
        timeout: 20_000,
      }).then(
        () => null,
        (err: { code?: number; stderr?: string }) => err,
      );
      expect(failed?.code).toBe(1);
      expect(failed?.stderr).toMatch(
        /AGENT_API_KEYS_SECRET: aws-sm:\/\/agent\/missing: ResourceNotFoundException/,
      );
    } finally {
      await sm.close();
    }
  }, 90_000);
});

describe("the Lambda zip unpacked alone, as in /var/task", () => {
  let db: { url: string; drop(): Promise<void> } | undefined;
  let task: string;

  beforeAll(async () => {
    const pg = await requirePostgres();
    if (pg) db = await createTestDatabase(pg);
    task = fs.mkdtempSync(path.join(tmp, "task-"));
    for (const e of readZip(fs.readFileSync(path.join(outA, "lambda.zip")))) {
      fs.writeFileSync(path.join(task, e.name), e.data);
    }
  });
  afterAll(() => db?.drop());

  /**
   * Does what the runtime does: require the module (init phase), then invoke index.handler,
   * here twice (cold, then warm). Reports timings and which packages were loaded from where.
   */
  async function invokeZip(env: Record<string, string>, event: object, entry = "index.js") {
    const runner = `
      const t0 = performance.now();
      const { handler } = require(process.env.TASK + "/" + process.env.ENTRY);
      const loaded = performance.now();
      const event = JSON.parse(process.env.EVENT);
      const ctx = (id) => ({ awsRequestId: id, getRemainingTimeInMillis: () => 30000 });
      handler(event, ctx("r1")).then(async (res) => {
        const first = performance.now();
        await handler(event, ctx("r2"));
        const second = performance.now();
        await handler.shutdown();
        const modules = Object.keys(require.cache);
        process.stdout.write("\\n" + JSON.stringify({ res, modules, loadMs: loaded - t0, firstMs: first - loaded, warmMs: second - first }));
      }, (err) => { console.error(err); process.exit(1); });`;
    const { stdout } = await run(process.execPath, ["-e", runner], {
      cwd: task,
      timeout: 30_000,
      env: childEnv({
        TASK: task,
        ENTRY: entry,
        EVENT: JSON.stringify(event),
        AWS_LAMBDA_FUNCTION_NAME: "agent-build-test",
        DATABASE_URL: db!.url,
        LOG_LEVEL: "warn",
        NODE_ENV: "production",
        ...env,
      }),
    });
    return JSON.parse(stdout.slice(stdout.lastIndexOf("\n{"))) as {
      res: { statusCode: number; body: string };
      modules: string[];
      loadMs: number;
      firstMs: number;
      warmMs: number;
    };
  }

  const urlEvent = (
    method: string,
    rawPath: string,
    headers: Record<string, string> = {},
    body?: string,
  ) => ({
    version: "2.0",
    routeKey: "$default",
    rawPath,
    rawQueryString: "",
    headers: { host: "abc.lambda-url.eu-west-1.on.aws", "x-forwarded-proto": "https", ...headers },
    requestContext: {
      domainName: "abc.lambda-url.eu-west-1.on.aws",
      http: {
        method,
        path: rawPath,
        protocol: "HTTP/1.1",
        sourceIp: "203.0.113.1",
        userAgent: "t",
      },
      routeKey: "$default",
      stage: "$default",
    },
    body: body ?? null,
    isBase64Encoded: false,
  });

  it("loads with no node_modules at all and serves a Function URL event against PostgreSQL", async () => {
    if (!db) return; // PostgreSQL is down and CI is not set: services.ts has said so
    const out = await invokeZip(
      { NODE_PATH: "", AGENT_API_KEYS: "dave:dave-key-0123456789" },
      urlEvent("GET", "/ready"),
    );
    expect(out.res.statusCode).toBe(200);
    expect(JSON.parse(out.res.body)).toMatchObject({ status: "ready", checks: { database: "ok" } });
    expect(out.modules.filter((m) => m.includes("node_modules"))).toEqual([]);
    process.stderr.write(
      `[build.test] lambda zip: module load ${out.loadMs.toFixed(0)} ms, first invocation ` +
        `(init + migrations + /ready) ${out.firstMs.toFixed(0)} ms, warm ${out.warmMs.toFixed(1)} ms\n`,
    );
  });

  it("resolves secrets with the runtime's AWS SDK (found through NODE_PATH) and never loads PGlite", async () => {
    if (!db) return;
    const sm = await startFakeSecretsManager([
      {
        name: "agent/lambda-keys",
        string: JSON.stringify({ keys: "erin:erin-key-from-secret-1" }),
      },
    ]);
    try {
      // The repository's node_modules stands in for /var/runtime/node_modules, which Lambda puts
      // on NODE_PATH; it holds PGlite too, so this also shows the Lambda path never asks for it.
      const runtimeModules = path.join(root, "node_modules");
      const out = await invokeZip(
        {
          NODE_PATH: runtimeModules,
          AGENT_API_KEYS_SECRET: "aws-sm://agent/lambda-keys#keys",
          AWS_REGION: "eu-west-1",
          AWS_ACCESS_KEY_ID: "AKIDEXAMPLE",
          AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
          AWS_ENDPOINT_URL_SECRETS_MANAGER: sm.endpoint,
        },
        urlEvent(
          "POST",
          "/v1/messages",
          {
            "content-type": "application/json",
            "x-api-key": "erin-key-from-secret-1",
            "anthropic-version": "2023-06-01",
          },
          JSON.stringify({
            model: "claude-haiku-4-5",
            max_tokens: 16,
            messages: [{ role: "user", content: "hi" }],
          }),
        ),
      );
      expect(out.res.statusCode).toBe(200);
      expect(sm.requests.map((r) => r.secretId)).toEqual(["agent/lambda-keys"]);
      expect(
        out.modules.some((m) =>
          m.startsWith(
            path.join(fs.realpathSync(runtimeModules), "@aws-sdk/client-secrets-manager"),
          ),
        ),
      ).toBe(true);
      expect(out.modules.filter((m) => m.includes("pglite"))).toEqual([]);
    } finally {
      await sm.close();
    }
  });

  it("bedrock.handler serves LLM_UPSTREAM=bedrock through SigV4; index.handler refuses it naming bedrock.handler", async () => {
    if (!db) return;
    const fake = await startFakeBedrock({
      models: { "anthropic.claude-haiku-4-5-20251001-v1:0": "claude-haiku-4-5" },
    });
    const env = {
      NODE_PATH: path.join(root, "node_modules"), // the runtime's AWS SDK, as above
      LLM_UPSTREAM: "bedrock",
      BEDROCK_INFERENCE_PROFILE: "us",
      ANTHROPIC_BEDROCK_BASE_URL: fake.url,
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: FAKE_AWS_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: FAKE_AWS_CREDENTIALS.secretAccessKey,
      AGENT_API_KEYS: "frank:frank-key-0123456789",
    };
    const event = urlEvent(
      "POST",
      "/v1/messages",
      {
        "content-type": "application/json",
        "x-api-key": "frank-key-0123456789",
        "anthropic-version": "2023-06-01",
      },
      JSON.stringify({
        model: "claude-haiku-4-5",
        max_tokens: 16,
        messages: [{ role: "user", content: "hi" }],
      }),
    );
    try {
      const out = await invokeZip(env, event, "bedrock.js");
      expect(out.res.statusCode).toBe(200);
      expect(JSON.parse(out.res.body)).toMatchObject({
        type: "message",
        model: "claude-haiku-4-5",
      });
      // The second invocation (warm) is a cache hit.
      expect(fake.calls.map((c) => [c.operation, c.modelId])).toEqual([
        ["invoke", "us.anthropic.claude-haiku-4-5-20251001-v1:0"],
      ]);
      expect(fake.calls[0]!.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIA/);
      const refused = await invokeZip(env, event, "index.js").then(
        () => "served",
        (err: { stderr?: string }) => err.stderr ?? String(err),
      );
      expect(refused).toContain("LLM_UPSTREAM: is bedrock, but this Lambda bundle (index.js)");
      expect(refused).toContain("bedrock.handler");
      expect(fake.calls).toHaveLength(1);
    } finally {
      await fake.close();
    }
  });
});
