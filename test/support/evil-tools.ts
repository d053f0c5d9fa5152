/**
 * Tools that misbehave the way synchronous code can, for the tool sandbox's tests: run through
 * `ToolSandbox({ toolsModule: require.resolve("./evil-tools") })`, inside worker threads.
 */
import * as z from "zod";
import { defineTool } from "../../app/src/agent/tool-types";

export const tools = [
  defineTool({
    name: "spin",
    description: "Never returns and never yields.",
    input: z.strictObject({}),
    run() {
      for (;;) {
        // A loop no timer can interrupt.
      }
    },
  }),
  defineTool({
    name: "hog",
    description: "Allocates until the heap is full.",
    input: z.strictObject({}),
    run() {
      const kept: string[][] = [];
      for (;;) kept.push(Array.from({ length: 100_000 }, (_, i) => `item ${i} ${kept.length}`));
    },
  }),
  defineTool({
    name: "echo",
    description: "Returns its text.",
    input: z.strictObject({ text: z.string() }),
    run: ({ text }) => text,
  }),
];
