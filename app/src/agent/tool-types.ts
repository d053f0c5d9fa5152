/** What a tool is, for the registry and for the worker threads that run the built-in ones. */
import type Anthropic from "@anthropic-ai/sdk";
import type * as z from "zod";

/** A tool definition in the Messages API's `tools` format. */
export type ToolDefinition = Anthropic.Tool;

/** Thrown by a tool for an expected failure; its message goes to the model verbatim. */
export class ToolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ToolError";
  }
}

export interface ToolContext {
  /** Aborted when the call times out or the turn is cancelled. */
  signal: AbortSignal;
  now(): Date;
}

export interface AgentTool<S extends z.ZodType = z.ZodType> {
  /** Must match the API's rule for tool names: ^[a-zA-Z0-9_-]{1,64}$. */
  readonly name: string;
  /** What the model reads to decide when and how to call the tool. */
  readonly description: string;
  /** Validates the model's input; also the source of the JSON input_schema sent upstream. */
  readonly input: S;
  /** @default the registry's defaultTimeoutMs */
  readonly timeoutMs?: number;
  /** @default the registry's defaultMaxOutputChars */
  readonly maxOutputChars?: number;
  run(input: z.output<S>, context: ToolContext): string | Promise<string>;
}

/** Typed at the definition site, stored untyped in the registry. */
export function defineTool<S extends z.ZodType>(tool: AgentTool<S>): AgentTool {
  return tool as unknown as AgentTool;
}

export interface ToolOutcome {
  content: string;
  isError: boolean;
}
