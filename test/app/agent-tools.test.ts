import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { CalculatorError, evaluateExpression, formatNumber } from "../../app/src/agent/calculator";
import { JsonQueryError, parsePath, queryJson } from "../../app/src/agent/json-query";
import {
  createBuiltinToolRegistry,
  defineTool,
  ToolError,
  ToolRegistry,
} from "../../app/src/agent/tools";

const calc = (s: string) => formatNumber(evaluateExpression(s));
const calcError = (s: string): CalculatorError => {
  try {
    evaluateExpression(s);
  } catch (err) {
    if (err instanceof CalculatorError) return err;
    throw err;
  }
  throw new Error(`"${s}" evaluated without an error`);
};

describe("calculator parser", () => {
  it.each([
    ["1 + 2 * 3", "7"],
    ["(1 + 2) * 3", "9"],
    ["10 - 4 - 3", "3"], // left-associative
    ["100 / 10 / 5", "2"], // left-associative
    ["7 % 3", "1"],
    ["-7 % 3", "-1"], // remainder takes the dividend's sign
    ["2 * 3 % 4", "2"], // same precedence as * and /, left to right
    ["2 ^ 3 ^ 2", "512"], // right-associative: 2^(3^2)
    ["2 ** 3 ** 2", "512"],
    ["(2 ^ 3) ^ 2", "64"],
    ["-2 ^ 2", "-4"], // ^ binds tighter than unary minus
    ["(-2) ^ 2", "4"],
    ["2 ^ -1", "0.5"],
    ["2 ^ -3 ^ 2", String(2 ** -9)],
    ["- -3", "3"],
    ["+4", "4"],
    ["3 - -3", "6"],
    ["1.5 * .5", "0.75"],
    ["2.", "2"],
    ["1.5e3 + 2E-1", "1500.2"],
    ["0.1 + 0.2", "0.3"], // binary noise rounded away
    ["  ( ( 42 ) )  ", "42"],
    ["1 + 2 * 3 ^ 2 / (4 - 1) % 5", "2"], // 1 + ((2*9)/3) % 5 = 1 + 6 % 5 = 2
    ["-0", "0"],
  ])("%s = %s", (expr, expected) => {
    expect(calc(expr)).toBe(expected);
  });

  it.each([
    ["", /expression is empty/],
    ["   ", /expression is empty/],
    ["1 +", /expression ends where a number or "\(" was expected/],
    ["(1 + 2", /expected "\)" to close the "\(" at position 1, found the end of the expression/],
    ["1 + 2)", /unexpected "\)" at position 6/],
    ["2 (3)", /unexpected "\(" at position 3 \(write \* for multiplication\)/],
    ["2 3", /unexpected "3" at position 3 \(write \* for multiplication\)/],
    ["1 / 0", /division by zero at position 3/],
    ["5 % (2 - 2)", /remainder by zero at position 3/],
    ["0 ^ -1", /0 raised to a negative power/],
    ["(-8) ^ (1/3)", /has no real result/],
    ["10 ^ 400", /too large to represent \(overflow\)/],
    ["1e999", /number "1e999" at position 1 is too large/],
    ["* 2", /expected a number or "\(" at position 1, found "\*"/],
    ["1 = 1", /unexpected character "=" at position 3/],
    ["sqrt(4)", /unexpected name "sqrt" at position 1: only numbers/],
  ])("rejects %j", (expr, message) => {
    expect(calcError(expr).message).toMatch(message);
  });

  it("reports the position of the error", () => {
    expect(calcError("1 + 2 / 0").position).toBe(6);
  });

  it("bounds nesting instead of overflowing the stack", () => {
    expect(calcError("(".repeat(500) + "1" + ")".repeat(500)).message).toMatch(/nested too deeply/);
    expect(calcError("-".repeat(500) + "1").message).toMatch(/nested too deeply/);
    expect(calc("(".repeat(150) + "1" + ")".repeat(150))).toBe("1");
  });

  it("never runs code: names, calls, property access and statements are all rejected", () => {
    const g = globalThis as Record<string, unknown>;
    for (const attack of [
      "process.exit(1)",
      "constructor.constructor('return process')()",
      "globalThis.pwned = 1",
      "1; pwned = 1",
      "`${pwned=1}`",
      "[].constructor",
      "this",
      "Infinity",
      "NaN",
      "0x10",
      "1_000",
    ]) {
      expect(() => evaluateExpression(attack)).toThrow(CalculatorError);
    }
    expect(g.pwned).toBeUndefined();
  });

  it("does not use eval or Function in its source", () => {
    const source = fs.readFileSync(
      path.join(__dirname, "../../app/src/agent/calculator.ts"),
      "utf8",
    );
    const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
    expect(code).not.toMatch(/\beval\s*\(|\bFunction\s*\(|new\s+Function\b|\bvm\b|require\s*\(/);
  });
});

describe("json path", () => {
  const doc = { a: { b: [{ c: 1 }, { c: 2 }], "key with space": true }, list: [10, 20, 30] };

  it.each([
    ["$", doc],
    ["", doc],
    ["$.a.b[1].c", 2],
    ["a.b[0]", { c: 1 }],
    ['$.a["key with space"]', true],
    ["$.a['key with space']", true],
    ["$.list[-1]", 30],
    ["$.a.b[*].c", [1, 2]],
    ["$.a.b.*.c", [1, 2]],
    ["$.list[*]", [10, 20, 30]],
  ])("%s", (p, expected) => {
    expect(queryJson(doc, parsePath(p))).toEqual(expected);
  });

  it.each([
    ["$.a.x", 'no key "x" at $.a; keys there: "b", "key with space"'],
    ["$.list[3]", "index 3 is out of range at $.list (an array of 3 items)"],
    [
      "$.list.first",
      "$.list is an array of 3 items; use an index such as [0], or [*] for every item, not .first",
    ],
    ["$.a[0]", '$.a is an object, not an array; use .key or ["key"]'],
    ["$.a.b[0].c.d", '$.a.b[0].c is a number, which has no key "d"'],
    ["$.a.b[*].d", 'no key "d" at $.a.b[0]; keys there: "c"'],
  ])("%s fails with a message that says where", (p, message) => {
    expect(() => queryJson(doc, parsePath(p))).toThrow(new JsonQueryError(message));
  });

  it.each([
    ["$.a[", /expected an index, a quoted key or \* after "\["/],
    ["$.a[0", /expected "\]"/],
    ['$.a["x', /unterminated " string/],
    ["$.a b", /unexpected " "/],
    ["$..a", /expected a key name after "\."/],
  ])("rejects the path %j", (p, message) => {
    expect(() => parsePath(p)).toThrow(message);
  });
});

describe("ToolRegistry", () => {
  const at = new Date("2024-07-01T12:34:56.789Z");
  const registry = createBuiltinToolRegistry({ now: () => at });

  it("describes every built-in tool in the Messages API format", () => {
    const defs = registry.definitions();
    expect(defs.map((d) => d.name)).toEqual([
      "calculator",
      "current_time",
      "text_stats",
      "json_query",
    ]);
    for (const d of defs) {
      expect(d.description?.length).toBeGreaterThan(40);
      expect(d.input_schema.type).toBe("object");
      expect(d.input_schema).not.toHaveProperty("$schema");
      expect(d.input_schema.additionalProperties).toBe(false);
    }
    expect(defs[0]!.input_schema).toMatchObject({
      properties: { expression: { type: "string" } },
      required: ["expression"],
    });
    expect(registry.definitions()).toBe(defs);
  });

  it("runs the calculator", async () => {
    expect(await registry.execute("calculator", { expression: "(12.5 + 7) * 3 ^ 2 / 4" })).toEqual({
      content: "43.875",
      isError: false,
    });
    expect(await registry.execute("calculator", { expression: "1/0" })).toEqual({
      content: 'cannot evaluate "1/0": division by zero at position 2',
      isError: true,
    });
  });

  it("answers an unknown tool with an error the model can act on", async () => {
    expect(await registry.execute("web_search", { q: "x" })).toEqual({
      content:
        'unknown tool "web_search"; the available tools are: calculator, current_time, text_stats, json_query',
      isError: true,
    });
  });

  it.each([
    [
      "calculator",
      {},
      'invalid input for tool "calculator": expression: Invalid input: expected string, received undefined. Fix the input and call the tool again.',
    ],
    [
      "calculator",
      { expression: "" },
      'invalid input for tool "calculator": expression: must not be empty. Fix the input and call the tool again.',
    ],
    [
      "calculator",
      { expression: "1", extra: 1 },
      'invalid input for tool "calculator": Unrecognized key: "extra". Fix the input and call the tool again.',
    ],
    [
      "calculator",
      "1+1",
      'invalid input for tool "calculator": Invalid input: expected object, received string. Fix the input and call the tool again.',
    ],
    [
      "current_time",
      { time_zone: 5 },
      'invalid input for tool "current_time": time_zone: Invalid input: expected string, received number. Fix the input and call the tool again.',
    ],
  ])("rejects invalid input for %s: %j", async (name, input, message) => {
    expect(await registry.execute(name, input)).toEqual({ content: message, isError: true });
  });

  it("gives the time in a time zone", async () => {
    const out = await registry.execute("current_time", { time_zone: "Asia/Kolkata" });
    expect(out.isError).toBe(false);
    expect(JSON.parse(out.content)).toEqual({
      time_zone: "Asia/Kolkata",
      local: "2024-07-01T18:04:56+05:30",
      utc: "2024-07-01T12:34:56.789Z",
      weekday: "Monday",
      utc_offset: "+05:30",
      unix_seconds: 1719837296,
    });
    const ny = JSON.parse(
      (await registry.execute("current_time", { time_zone: "America/New_York" })).content,
    );
    expect(ny.local).toBe("2024-07-01T08:34:56-04:00");
    const utc = JSON.parse((await registry.execute("current_time", {})).content);
    expect(utc).toMatchObject({
      time_zone: "UTC",
      local: "2024-07-01T12:34:56+00:00",
      utc_offset: "+00:00",
    });
  });

  it("reports an unknown time zone as a tool error", async () => {
    expect(await registry.execute("current_time", { time_zone: "Mars/Olympus_Mons" })).toEqual({
      content:
        'unknown time zone "Mars/Olympus_Mons": use an IANA name such as "UTC", "Europe/Berlin" or "America/Los_Angeles"',
      isError: true,
    });
  });

  it("counts text", async () => {
    const out = await registry.execute("text_stats", {
      text: "Hello, world! How are you?\n\nFine, thanks 👍🏽.\n",
      find: "O",
      case_sensitive: false,
    });
    expect(JSON.parse(out.content)).toEqual({
      characters: 44, // the emoji with its skin tone (two code points) is one character to a reader
      characters_excluding_whitespace: 35,
      words: 7, // the emoji and punctuation are not words
      sentences: 3,
      lines: 3, // the final line break ends line 3 rather than starting a 4th
      paragraphs: 2,
      utf8_bytes: 51,
      occurrences: 4,
    });
    expect(JSON.parse((await registry.execute("text_stats", { text: "" })).content)).toMatchObject({
      characters: 0,
      words: 0,
      lines: 0,
      paragraphs: 0,
    });
    expect(
      JSON.parse((await registry.execute("text_stats", { text: "strawberry", find: "r" })).content)
        .occurrences,
    ).toBe(3);
  });

  it("queries JSON", async () => {
    const json = JSON.stringify({ orders: [{ total: 5 }, { total: 7.5 }] });
    expect(await registry.execute("json_query", { json, path: "$.orders[*].total" })).toEqual({
      content: "[\n  5,\n  7.5\n]",
      isError: false,
    });
    const bad = await registry.execute("json_query", { json: "{not json", path: "$" });
    expect(bad.isError).toBe(true);
    expect(bad.content).toMatch(/^json is not valid JSON: /);
  });

  it("times out a slow tool and aborts its signal", async () => {
    let aborted = false;
    const slow = defineTool({
      name: "slow",
      description: "waits",
      input: z.object({}),
      timeoutMs: 20,
      run: (_input, { signal }) =>
        new Promise<string>((resolve) => {
          signal.addEventListener("abort", () => {
            aborted = true;
            resolve("too late");
          });
        }),
    });
    const started = Date.now();
    expect(await new ToolRegistry([slow]).execute("slow", {})).toEqual({
      content: 'tool "slow" timed out after 20 ms',
      isError: true,
    });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(aborted).toBe(true);
  });

  it("reports a cancelled call when the caller's signal aborts", async () => {
    const waits = defineTool({
      name: "waits",
      description: "waits",
      input: z.object({}),
      run: () => new Promise<string>(() => {}),
    });
    const controller = new AbortController();
    const pending = new ToolRegistry([waits]).execute("waits", {}, controller.signal);
    controller.abort();
    expect(await pending).toEqual({
      content: 'tool "waits" was cancelled: the request was aborted',
      isError: true,
    });
  });

  it("caps output and says so", async () => {
    const big = defineTool({
      name: "big",
      description: "big",
      input: z.object({}),
      maxOutputChars: 100,
      run: () => "x".repeat(1000),
    });
    const out = await new ToolRegistry([big]).execute("big", {});
    expect(out.isError).toBe(false);
    expect(out.content).toHaveLength(100);
    expect(out.content).toMatch(/\[output truncated: showing 100 of 1000 characters\]$/);
  });

  it("turns tool failures into error results instead of throwing", async () => {
    const tools = new ToolRegistry([
      defineTool({
        name: "expected",
        description: "d",
        input: z.object({}),
        run: () => {
          throw new ToolError("no such order 42");
        },
      }),
      defineTool({
        name: "buggy",
        description: "d",
        input: z.object({}),
        run: () => {
          throw new TypeError("x is undefined");
        },
      }),
    ]);
    expect(await tools.execute("expected", {})).toEqual({
      content: "no such order 42",
      isError: true,
    });
    expect(await tools.execute("buggy", {})).toEqual({
      content: 'tool "buggy" failed: x is undefined',
      isError: true,
    });
  });

  it("refuses invalid and duplicate tool names", () => {
    const t = (name: string) =>
      defineTool({ name, description: "d", input: z.object({}), run: () => "" });
    expect(() => new ToolRegistry([t("has space")])).toThrow(/must match/);
    expect(() => new ToolRegistry([t("a"), t("a")])).toThrow(/registered twice/);
  });
});
