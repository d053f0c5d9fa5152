/**
 * Stands in for the `debug` package in the Lambda bundle (scripts/build.mjs aliases it here).
 * Its only user there is ioredis, whose debug output is off unless DEBUG=ioredis:* is set; the
 * real package loads node:tty, supports-color and its own formatter at import, ~1.5 ms of
 * every cold start. This keeps the part that matters: DEBUG (comma- or space-separated patterns,
 * `*` wildcards, `-` to exclude) turns namespaces on, and their lines go to stderr.
 */
/* eslint-disable @typescript-eslint/no-require-imports -- CommonJS, as the package it replaces */
"use strict";
const { format } = require("node:util");

function patterns() {
  const names = [];
  const skips = [];
  for (const ns of (process.env.DEBUG || "").split(/[\s,]+/)) {
    if (!ns) continue;
    const re = new RegExp(
      "^" +
        ns
          .replace(/^-/, "")
          .replace(/[|\\{}()[\]^$+?.]/g, "\\$&")
          .replace(/\*/g, ".*?") +
        "$",
    );
    (ns.startsWith("-") ? skips : names).push(re);
  }
  return { names, skips };
}

function enabled(namespace) {
  const { names, skips } = patterns();
  return !skips.some((re) => re.test(namespace)) && names.some((re) => re.test(namespace));
}

function createDebug(namespace) {
  function debug(...args) {
    if (!debug.enabled) return;
    const line = `${new Date().toISOString()} ${namespace} ${format(...args)}\n`;
    (debug.log || createDebug.log)(line);
  }
  debug.namespace = namespace;
  debug.enabled = enabled(namespace);
  debug.log = undefined;
  debug.destroy = () => {};
  debug.extend = (sub, delimiter = ":") => createDebug(namespace + delimiter + sub);
  return debug;
}

createDebug.log = (line) => process.stderr.write(line);
createDebug.enabled = enabled;
createDebug.debug = createDebug;
createDebug.default = createDebug;
module.exports = createDebug;
