#!/usr/bin/env node
/**
 * `npm run build`: the deployable artifacts, reproducibly.
 *
 *   dist/server/index.js   Node server bundle (Cloud Run, EKS, VMs; the Docker image runs it)
 *   dist/lambda/index.js   Lambda handler bundle (`index.handler`: the Anthropic API, Vertex AI)
 *   dist/lambda/bedrock.js the same with the Bedrock upstream (`bedrock.handler`)
 *   dist/lambda.zip        what Lambda deploys: deterministic bytes, so an unchanged build has
 *                          an unchanged sourceCodeHash and `pulumi up` shows no diff
 *   dist/build-manifest.json  size and sha256 of each artifact
 *
 * Options: --outdir <dir> (default dist) lets tests build without touching the working dist/.
 */
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";
import { parseArgs } from "node:util";
import * as esbuild from "esbuild";
import { decode as decodeMappings, encode as encodeMappings } from "@jridgewell/sourcemap-codec";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Runtime target of every deployment (Lambda nodejs22.x, node:22 images). */
export const NODE_TARGET = "node22";
/** Budget for the Lambda bundle: init time grows with the code Lambda has to load and compile. */
export const LAMBDA_BUNDLE_BUDGET_BYTES = 1024 * 1024;
/**
 * The Bedrock build's: @anthropic-ai/bedrock-sdk requires the Anthropic SDK's every resource
 * (~300 KiB more of it) and Smithy's SigV4 signer and event-stream codec (~250 KiB), which no
 * other upstream needs, so they live in a build of their own.
 */
export const LAMBDA_BEDROCK_BUNDLE_BUDGET_BYTES = 1.5 * 1024 * 1024;

/**
 * The Lambda zip's builds of app/entrypoints/lambda.ts, each with its handler
 * (app/src/contract.ts LAMBDA_HANDLERS) and budget. index.js is built with
 * AGENT_BUNDLE_WITHOUT_BEDROCK defined, which drops the Bedrock upstream's require
 * (app/src/llm/upstream.ts).
 */
export const LAMBDA_ENTRIES = [
  {
    file: "index.js",
    handler: "index.handler",
    upstreams: "anthropic,vertex",
    budget: LAMBDA_BUNDLE_BUDGET_BYTES,
    define: { "process.env.AGENT_BUNDLE_WITHOUT_BEDROCK": '"1"' },
  },
  {
    file: "bedrock.js",
    handler: "bedrock.handler",
    upstreams: "bedrock",
    budget: LAMBDA_BEDROCK_BUNDLE_BUDGET_BYTES,
    define: {},
  },
];

/**
 * Left out of the bundles and needed at run time, so the server image ships them next to the
 * bundle (app/Dockerfile). PGlite loads its WebAssembly and data files from its own package
 * directory, so it cannot be inlined. Lambda never uses it (it always has DATABASE_URL).
 */
export const RUNTIME_PACKAGES = ["@electric-sql/pglite"];
/** Left out because they are optional: pg requires its libpq binding lazily, inside a try. */
export const OPTIONAL_EXTERNAL = ["pg-native"];
export const SERVER_EXTERNAL = [...RUNTIME_PACKAGES, ...OPTIONAL_EXTERNAL];
/** The nodejs22.x runtime provides AWS SDK v3; bundling it would only add size and init time. */
export const LAMBDA_EXTERNAL = [
  ...SERVER_EXTERNAL,
  "@aws-sdk/*",
  // The OpenTelemetry SDK loads only through import() when OTEL_* is set; on Lambda, the ADOT
  // layer provides it. Keeping it out saves ~400 KiB of every cold start.
  "@opentelemetry/sdk-*",
  "@opentelemetry/exporter-*",
  "@opentelemetry/resources",
  "@opentelemetry/core",
  "@opentelemetry/context-async-hooks",
  // Vertex AI runs on GCP targets only (infra/config-upstream.ts): the Lambda never loads it.
  "@anthropic-ai/vertex-sdk",
  "google-auth-library",
];

/** Every zip entry gets this time (the DOS epoch): the same input then gives the same bytes. */
const ZIP_DOS_DATE = (0 << 9) | (1 << 5) | 1; // 1980-01-01
const ZIP_DOS_TIME = 0;

/**
 * Lambda only: packages swapped for a lighter stand-in with the same behaviour where the bundle
 * uses it (see each file). Each one is cold-start time that no request needs.
 */
export const LAMBDA_ALIAS = {
  // ioredis's debug logging (DEBUG=ioredis:*), without node:tty and supports-color at import.
  debug: "./scripts/shims/debug.cjs",
};
/** Who may import each stand-in: it covers what they use, and nothing promises more. */
const LAMBDA_ALIAS_USERS = { debug: /^node_modules\/ioredis\// };

/** Fails the build when a package aliased in LAMBDA_ALIAS gains an importer its stand-in was not written for. */
function checkAliasUsers(metafile) {
  for (const [name, shim] of Object.entries(LAMBDA_ALIAS)) {
    const target = path.normalize(shim);
    for (const [file, input] of Object.entries(metafile.inputs)) {
      const uses = input.imports.some((i) => path.normalize(i.path) === target);
      if (uses && !LAMBDA_ALIAS_USERS[name].test(file)) {
        throw new Error(
          `${file} imports "${name}", which the Lambda bundle replaces with ${shim}, written for ` +
            `${LAMBDA_ALIAS_USERS[name]} only: check that the stand-in covers what ${file} uses ` +
            `(then allow it in LAMBDA_ALIAS_USERS), or drop the alias`,
        );
      }
    }
  }
}

function bundleOptions(entry, outfile, external, extra = {}) {
  return {
    absWorkingDir: root,
    entryPoints: [path.join(root, entry)],
    outfile,
    bundle: true,
    platform: "node",
    target: NODE_TARGET,
    // CommonJS: Lambda's `index.handler` and `node index.js` load it with no package.json around it.
    format: "cjs",
    // import() of an external becomes require(): Lambda's runtime SDK is found through NODE_PATH,
    // which require() honours natively, and its CommonJS build loads faster than the ESM graph.
    supported: { "dynamic-import": false },
    minify: true,
    // No keepNames: it costs ~50 KiB of the Lambda budget, and the errors whose names reach logs
    // or callers (ConfigError, SecretResolutionError, SDK exceptions) set `name` themselves.
    sourcemap: "linked",
    sourcesContent: false,
    // License notices (/*! */, @license) go to index.js.LEGAL.txt, shipped with the bundle.
    legalComments: "external",
    external,
    // pino is used with pino.destination() only: no transports, so no worker-thread files to ship.
    logLevel: "warning",
    metafile: true,
    ...extra,
  };
}

/**
 * The Node server bundle alone (`extra` is merged into the esbuild options, e.g. write: false):
 * what build() writes to server/index.js, and what `npm start` builds and runs (scripts/start.mjs).
 */
export function buildServerBundle(outfile, extra = {}) {
  return esbuild.build(
    bundleOptions("app/entrypoints/server.ts", path.resolve(outfile), SERVER_EXTERNAL, {
      // Folded here as in the Lambda builds: left to run time, each test of it reads the process
      // environment, and some sit on hot paths (every JSON answer, every stream, every model
      // request's chain).
      define: { "process.env.AGENT_BUNDLE_LAMBDA": '"0"' },
      ...extra,
    }),
  );
}

export async function build({ outdir = path.join(root, "dist"), quiet = false } = {}) {
  const log = quiet ? () => {} : (line) => process.stdout.write(line + "\n");
  outdir = path.resolve(outdir);
  for (const stale of ["server", "lambda", "lambda.zip", "build-manifest.json"]) {
    fs.rmSync(path.join(outdir, stale), { recursive: true, force: true });
  }

  const server = await buildServerBundle(path.join(outdir, "server", "index.js"));
  checkAscii(path.join(outdir, "server", "index.js"));
  // Two entries in one zip, so that one artifact serves every stack and promotes as one: the
  // handler picks the build (app/src/contract.ts LAMBDA_HANDLERS).
  const lambdaBuilds = {};
  for (const entry of LAMBDA_ENTRIES) {
    const result = await esbuild.build(
      bundleOptions(
        "app/entrypoints/lambda.ts",
        path.join(outdir, "lambda", entry.file),
        LAMBDA_EXTERNAL,
        // AGENT_BUNDLE_LAMBDA: code only a long-running server needs is left out (sdk-provider.ts).
        {
          alias: LAMBDA_ALIAS,
          define: { "process.env.AGENT_BUNDLE_LAMBDA": '"1"', ...entry.define },
        },
      ),
    );
    const js = path.join(outdir, "lambda", entry.file);
    checkAliasUsers(result.metafile);
    const factories = rewriteModuleFactories(js);
    if (factories.rewritten === 0) {
      log(
        `WARNING: no module factories found to rewrite in lambda/${entry.file} (did esbuild ` +
          "change its output?): it loads, but more slowly; see rewriteModuleFactories in scripts/build.mjs",
      );
    }
    checkLoadsAlone(js, result.metafile);
    checkAscii(js);
    lambdaBuilds[entry.file] = { result, factories };
  }
  const factories = lambdaBuilds["index.js"].factories;
  const zipPath = path.join(outdir, "lambda.zip");
  // The source maps stay out of the zip: they would double the package, and Lambda only needs
  // them with --enable-source-maps, which slows every cold start. They are kept in dist/.
  const zipped = LAMBDA_ENTRIES.flatMap((e) => [e.file, `${e.file}.LEGAL.txt`]).filter((f) =>
    fs.existsSync(path.join(outdir, "lambda", f)),
  );
  const entries = zipped.map((name) => ({
    name,
    data: fs.readFileSync(path.join(outdir, "lambda", name)),
  }));
  fs.writeFileSync(zipPath, createZip(entries));

  const artifacts = [
    "server/index.js",
    "server/index.js.map",
    "server/index.js.LEGAL.txt",
    ...LAMBDA_ENTRIES.flatMap((e) => ["", ".map", ".LEGAL.txt"].map((x) => `lambda/${e.file}${x}`)),
    "lambda.zip",
  ]
    .filter((rel) => fs.existsSync(path.join(outdir, rel)))
    .map((rel) => describeFile(outdir, rel));
  const zip = artifacts.find((a) => a.path === "lambda.zip");
  const manifest = {
    nodeTarget: NODE_TARGET,
    esbuild: esbuild.version,
    artifacts,
    lambda: {
      handler: "index.handler",
      handlers: Object.fromEntries(LAMBDA_ENTRIES.map((e) => [e.upstreams, e.handler])),
      runtime: "nodejs22.x",
      // aws.lambda.Function's sourceCodeHash is the base64 sha256 of the zip.
      sourceCodeHash: zip.sha256Base64,
      external: LAMBDA_EXTERNAL,
    },
    server: { entry: "server/index.js", external: SERVER_EXTERNAL },
  };
  fs.writeFileSync(
    path.join(outdir, "build-manifest.json"),
    JSON.stringify(manifest, null, 2) + "\n",
  );

  const width = Math.max(...artifacts.map((a) => a.path.length));
  log(`built into ${path.relative(process.cwd(), outdir) || "."}:`);
  for (const a of artifacts)
    log(
      `  ${a.path.padEnd(width)}  ${formatBytes(a.bytes).padStart(9)}  sha256 ${a.sha256.slice(0, 16)}…`,
    );
  log(`  lambda sourceCodeHash ${manifest.lambda.sourceCodeHash}`);
  log(
    `  lambda module factories rewritten as function expressions: ${factories.rewritten}` +
      (factories.skipped ? ` (${factories.skipped} left as arrows)` : ""),
  );
  for (const [name, result] of [
    ...LAMBDA_ENTRIES.map((e) => [`lambda/${e.file}`, lambdaBuilds[e.file].result]),
    ["server", server],
  ]) {
    log(`  largest inputs of the ${name} bundle: ${largestInputs(result.metafile, 5)}`);
  }
  for (const e of LAMBDA_ENTRIES) {
    const bytes = artifacts.find((a) => a.path === `lambda/${e.file}`).bytes;
    if (bytes <= e.budget) continue;
    log(
      `WARNING: the Lambda bundle lambda/${e.file} is ${formatBytes(bytes)}, over its ${formatBytes(e.budget)} budget`,
    );
    // The usual culprit: `import { z } from "zod"` hands over zod's whole namespace object, so
    // every locale (~250 KiB) is kept; `import * as z from "zod"` lets esbuild drop them.
    const locales = Object.keys(lambdaBuilds[e.file].result.metafile.inputs).filter((f) =>
      /zod\/v4\/locales\/(?!en\.js|index\.js)/.test(f),
    );
    if (locales.length > 0) {
      log(
        `  zod's ${locales.length} locales are in the bundle: write \`import * as z from "zod"\` ` +
          `instead of \`import { z } from "zod"\` so they can be tree-shaken`,
      );
    }
  }
  return { outdir, manifest };
}

/**
 * A bundle must be ASCII. Node reads it as UTF-8, and one character past Latin-1 makes V8 keep the
 * whole source as UTF-16: twice its size on the heap for as long as the process runs (the server
 * bundle took 5.7 MB instead of 2.7 MB, the Lambda bundles' cold start decodes it), for one regular
 * expression in app/src/agent/text-stats.ts. esbuild escapes strings (charset ascii) but not every
 * regular expression literal: write such characters as \u escapes in the source.
 */
export function checkAscii(file) {
  const bytes = fs.readFileSync(file);
  const at = bytes.findIndex((b) => b > 0x7f);
  if (at < 0) return;
  const before = bytes.subarray(0, at).toString("latin1");
  const line = before.split("\n").length;
  const column = at - before.lastIndexOf("\n");
  const excerpt = bytes.subarray(Math.max(0, at - 60), at + 20).toString("utf8");
  throw new Error(
    `${path.relative(root, file)}:${line}:${column}: a non-ASCII character in the bundle (…${excerpt}…): ` +
      "V8 would hold the whole bundle as UTF-16, twice its size; write it as a \\u escape in the source",
  );
}

/**
 * Lambda unpacks the zip into an otherwise empty /var/task: load the bundle from an empty
 * directory, so a package that is external but required at load time (say, a static import of
 * PGlite reaching the Lambda code path) fails the build here instead of every cold start.
 * @aws-sdk/* is external too, but only ever imported lazily, so it is not needed to load.
 */
function checkLoadsAlone(bundle, metafile) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lambda-load-"));
  try {
    fs.copyFileSync(bundle, path.join(dir, "index.js"));
    const probe =
      'const m = require(process.argv[1]); if (typeof m.handler !== "function") { console.error("no handler export"); process.exit(3); }';
    const env = { ...process.env, LAMBDA_INVOKE_MODE: "BUFFERED", NODE_PATH: "" };
    delete env.AWS_LAMBDA_FUNCTION_NAME; // no signal handlers in the probe
    try {
      execFileSync(process.execPath, ["-e", probe, path.join(dir, "index.js")], {
        cwd: dir,
        env,
        stdio: "pipe",
      });
    } catch (err) {
      const stderr = err.stderr?.toString() ?? "";
      const missing = /Cannot find module '([^']+)'/.exec(stderr)?.[1];
      const chain = missing
        ? staticImportChain(metafile, "app/entrypoints/lambda.ts", missing)
        : [];
      throw new Error(
        missing
          ? `the Lambda bundle requires "${missing}" as soon as it loads, but it is not in the zip` +
              (chain.length ? ` (static imports: ${chain.join(" -> ")})` : "") +
              `. Import it lazily (await import(...)) on the code path that needs it, so that ` +
              `merely loading that module does not require the package, or stop marking it external.`
          : `the Lambda bundle does not load on its own:\n${stderr}`,
      );
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The chain of static imports from the entry point to `pkg`, e.g.
 * lambda.ts -> bootstrap.ts -> store/index.ts -> store/pglite.ts -> @electric-sql/pglite.
 * The fix belongs at the first link that can become a lazy import.
 */
function staticImportChain(metafile, entry, pkg) {
  const previous = new Map([[entry, null]]);
  const queue = [entry];
  while (queue.length) {
    const file = queue.shift();
    for (const imp of metafile.inputs[file]?.imports ?? []) {
      if (imp.kind === "dynamic-import") continue;
      if (imp.path === pkg) {
        const chain = [pkg, file];
        for (let f = previous.get(file); f; f = previous.get(f)) chain.push(f);
        return chain.reverse();
      }
      if (!imp.external && !previous.has(imp.path)) {
        previous.set(imp.path, file);
        queue.push(imp.path);
      }
    }
  }
  return [];
}

// ---------------------------------------------------------------------------------------------
// Module factories as function expressions. esbuild wraps every CommonJS module, and every ES
// module reached through require(), in a factory that runs on first use; with identifiers
// minified it writes each as an arrow function: `var x=E((exports,module)=>{...})`. V8 (Node 20
// measured) loads a large arrow function that runs once about twice as slowly as the same body
// written as a function expression: on the Lambda bundle, ~8 ms of a ~65 ms require(). So each
// factory's arrow head becomes `function(...){`. The factories are found through the source map,
// where esbuild names the wrapper __commonJSMin or __esmMin at each call, so no other call is
// touched (a local variable may share the wrapper's minified name), and the map is shifted to
// match. Inside a factory, esbuild has already replaced module-level `this` (with `exports` for
// CommonJS, `undefined` for ES modules), so the change of function kind changes nothing else.

const FACTORY_WRAPPERS = new Set(["__commonJSMin", "__esmMin"]);

/**
 * Rewrites the factories of a bundle written with a linked source map (`file` and `file.map`) in
 * place. Returns how many were rewritten, and how many were left alone (an expression body).
 */
export function rewriteModuleFactories(file) {
  const mapFile = `${file}.map`;
  const map = JSON.parse(fs.readFileSync(mapFile, "utf8"));
  const lines = fs.readFileSync(file, "utf8").split("\n");
  // Decoded segments: [generated column, source, line, column, name?], all absolute.
  const mappings = decodeMappings(map.mappings);
  const head = /(?:\(([\w$]*(?:,[\w$]+)*)\)|([\w$]+))=>\{/y;
  let rewritten = 0;
  let skipped = 0;
  for (let l = 0; l < mappings.length && l < lines.length; l++) {
    const segments = mappings[l];
    const edits = []; // where an arrow head starts, its length, its replacement, its parameters
    for (const [column, , , , name] of segments) {
      if (name === undefined || !FACTORY_WRAPPERS.has(map.names[name])) continue;
      // At `column`: the wrapper's (minified) name, then "(", then the arrow head.
      const open = lines[l].indexOf("(", column);
      head.lastIndex = open + 1;
      const m =
        open > column && /^[\w$]+$/.test(lines[l].slice(column, open)) && head.exec(lines[l]);
      if (!m) {
        skipped++;
        continue;
      }
      const params = m[1] ?? m[2];
      edits.push({
        at: open + 1,
        length: m[0].length,
        head: `function(${params}){`,
        params: { at: m[1] === undefined ? 0 : 1, length: params.length },
      });
    }
    if (edits.length === 0) continue;
    let text = lines[l];
    for (const { at, length, head } of [...edits].reverse()) {
      text = text.slice(0, at) + head + text.slice(at + length);
    }
    lines[l] = text;
    // A column after an edit moves by what the edit added; one inside a head moves to the same
    // parameter in the new head ("(" to "function", "=>{" to "{").
    for (const segment of segments) {
      const c = segment[0];
      let moved = c;
      for (const { at, length, head, params } of edits) {
        if (c >= at + length) moved += head.length - length;
        else if (c >= at) {
          const k = c - at;
          const inHead =
            k < params.at
              ? 0
              : k < params.at + params.length
                ? "function(".length + k - params.at
                : head.length - 1;
          moved += at + inHead - c;
        }
      }
      segment[0] = moved;
    }
    rewritten += edits.length;
  }
  if (rewritten > 0) {
    fs.writeFileSync(file, lines.join("\n"));
    fs.writeFileSync(mapFile, JSON.stringify({ ...map, mappings: encodeMappings(mappings) }));
  }
  return { rewritten, skipped };
}

function describeFile(outdir, rel) {
  const data = fs.readFileSync(path.join(outdir, rel));
  const hash = createHash("sha256").update(data).digest();
  return {
    path: rel,
    bytes: data.length,
    sha256: hash.toString("hex"),
    sha256Base64: hash.toString("base64"),
  };
}

function largestInputs(metafile, n) {
  const sizes = new Map();
  for (const output of Object.values(metafile.outputs)) {
    for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
      const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input);
      const key = m ? m[1] : "(app)";
      sizes.set(key, (sizes.get(key) ?? 0) + bytesInOutput);
    }
  }
  return [...sizes]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${k} ${formatBytes(v)}`)
    .join(", ");
}

function formatBytes(n) {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(2)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

// ---------------------------------------------------------------------------------------------
// A small deterministic zip writer (PKWARE APPNOTE 6.3: local headers, central directory, end
// record; deflate; no zip64, no data descriptors). Enough for a Lambda package and no dependency.

/** node:zlib has crc32 since Node 20.15 / 22.2; engines allows Node 20.9, so keep a fallback. */
const crc32 =
  typeof zlib.crc32 === "function"
    ? (data) => zlib.crc32(data) >>> 0
    : (() => {
        const table = new Uint32Array(256);
        for (let n = 0; n < 256; n++) {
          let c = n;
          for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
          table[n] = c >>> 0;
        }
        return (data) => {
          let crc = 0xffffffff;
          for (const b of data) crc = table[(crc ^ b) & 0xff] ^ (crc >>> 8);
          return (crc ^ 0xffffffff) >>> 0;
        };
      })();

/**
 * @param {{ name: string, data: Buffer, mode?: number }[]} entries
 * @returns {Buffer}
 */
export function createZip(entries) {
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const locals = [];
  const centrals = [];
  let offset = 0;
  for (const { name, data, mode = 0o644 } of sorted) {
    const nameBytes = Buffer.from(name, "utf8");
    const crc = crc32(data);
    const deflated = zlib.deflateRawSync(data, { level: 9 });
    // Stored when deflate does not help, as zip tools do.
    const method = deflated.length < data.length ? 8 : 0;
    const body = method === 8 ? deflated : data;
    if (body.length >= 0xffffffff || data.length >= 0xffffffff)
      throw new Error(`${name}: too large for a zip without zip64`);
    const flags = /[^\x20-\x7e]/.test(name) ? 0x0800 : 0; // bit 11: the name is UTF-8

    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed: 2.0 (deflate)
    local.writeUInt16LE(flags, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(ZIP_DOS_TIME, 10);
    local.writeUInt16LE(ZIP_DOS_DATE, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    local.writeUInt16LE(0, 28); // no extra field: it would carry timestamps
    locals.push(local, nameBytes, body);

    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4); // made by: Unix, so the external attributes are a file mode
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(flags, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt16LE(ZIP_DOS_TIME, 12);
    central.writeUInt16LE(ZIP_DOS_DATE, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(nameBytes.length, 28);
    central.writeUInt16LE(0, 30); // extra
    central.writeUInt16LE(0, 32); // comment
    central.writeUInt16LE(0, 34); // disk
    central.writeUInt16LE(0, 36); // internal attributes
    // Regular file, readable by all: Lambda runs the code as a user other than the file's owner.
    central.writeUInt32LE(((0o100000 | mode) << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, nameBytes);

    offset += local.length + nameBytes.length + body.length;
  }
  const centralSize = centrals.reduce((n, b) => n + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(0, 4);
  end.writeUInt16LE(0, 6);
  end.writeUInt16LE(sorted.length, 8);
  end.writeUInt16LE(sorted.length, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(offset, 16);
  end.writeUInt16LE(0, 20);
  return Buffer.concat([...locals, ...centrals, end]);
}

const invokedDirectly =
  process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  const { values } = parseArgs({
    options: { outdir: { type: "string" }, quiet: { type: "boolean" } },
  });
  build({ outdir: values.outdir, quiet: values.quiet }).catch((err) => {
    process.stderr.write(`build failed: ${err?.message ?? err}\n`);
    process.exit(1);
  });
}
