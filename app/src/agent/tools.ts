/**
 * The registry that runs the agent's tools (the built-in ones are in builtin-tools.ts). A tool
 * call never throws out of the registry: unknown tools, invalid input, failures, timeouts and a
 * worker that ran out of memory all come back as a result with `isError`, phrased so the model
 * can correct itself and call again. Tools the registry's sandbox serves (every built-in tool)
 * run in worker threads with time and memory limits (tool-sandbox.ts); others run in process.
 */
import * as z from "zod";
import { BUILTIN_TOOLS } from "./builtin-tools";
import { ToolError, type AgentTool, type ToolDefinition, type ToolOutcome } from "./tool-types";
import {
  builtinSandbox,
  ToolCancelledError,
  ToolCrashError,
  ToolTimeoutError,
  type ToolSandbox,
} from "./tool-sandbox";
import { errorMessage } from "../errors";

export * from "./tool-types";
export * from "./builtin-tools";

export interface ToolRegistryOptions {
  /** @default 5000 */
  defaultTimeoutMs?: number;
  /** Output longer than this is cut, with a note saying so. @default 16000 */
  defaultMaxOutputChars?: number;
  /** Clock for tools that read the time (injectable for tests). @default () => new Date() */
  now?: () => Date;
  /** Worker threads for the tools they serve (by name); the others run in process. */
  sandbox?: ToolSandbox;
}

const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

export class ToolRegistry {
  private readonly byName = new Map<string, AgentTool>();
  private readonly defaultTimeoutMs: number;
  private readonly defaultMaxOutputChars: number;
  private readonly now: () => Date;
  private readonly sandbox?: ToolSandbox;
  private cachedDefinitions: ToolDefinition[] | undefined;

  constructor(tools: readonly AgentTool[], options: ToolRegistryOptions = {}) {
    for (const tool of tools) {
      if (!TOOL_NAME.test(tool.name))
        throw new Error(`tool name "${tool.name}" must match ${TOOL_NAME}`);
      if (this.byName.has(tool.name)) throw new Error(`tool "${tool.name}" is registered twice`);
      this.byName.set(tool.name, tool);
    }
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? 5000;
    this.defaultMaxOutputChars = options.defaultMaxOutputChars ?? 16_000;
    this.now = options.now ?? (() => new Date());
    this.sandbox = options.sandbox;
  }

  get names(): string[] {
    return [...this.byName.keys()];
  }

  /** The `tools` array for a Messages API request; built once, since schemas never change. */
  definitions(): ToolDefinition[] {
    this.cachedDefinitions ??= [...this.byName.values()].map((tool) => {
      const { $schema: _ignored, ...schema } = z.toJSONSchema(tool.input, {
        io: "input",
      }) as Record<string, unknown>;
      if (schema.type !== "object")
        throw new Error(`tool "${tool.name}": input must be an object schema`);
      return {
        name: tool.name,
        description: tool.description,
        input_schema: schema as ToolDefinition["input_schema"],
      };
    });
    return this.cachedDefinitions;
  }

  async execute(name: string, input: unknown, signal?: AbortSignal): Promise<ToolOutcome> {
    const tool = this.byName.get(name);
    if (!tool) {
      return this.failure(
        `unknown tool "${name}"; the available tools are: ${this.names.join(", ")}`,
        this.defaultMaxOutputChars,
      );
    }
    const cap = tool.maxOutputChars ?? this.defaultMaxOutputChars;
    const parsed = tool.input.safeParse(input);
    if (!parsed.success) {
      return this.failure(
        `invalid input for tool "${name}": ${formatIssues(parsed.error.issues)}. Fix the input and call the tool again.`,
        cap,
      );
    }
    const timeoutMs = tool.timeoutMs ?? this.defaultTimeoutMs;
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const onCancel = () => controller.abort();
    signal?.addEventListener("abort", onCancel, { once: true });
    try {
      if (signal?.aborted) throw new ToolCancelledError();
      const output = this.sandbox?.names.has(name)
        ? await this.sandbox.run(name, parsed.data, { timeoutMs, now: this.now(), signal })
        : // In process, the race bounds only tools that await: no timer interrupts running
          // JavaScript. That is why the built-in tools run in the sandbox instead.
          await Promise.race([
            Promise.resolve().then(() =>
              tool.run(parsed.data, { signal: controller.signal, now: this.now }),
            ),
            new Promise<never>((_, reject) => {
              timer = setTimeout(() => {
                controller.abort();
                reject(new ToolTimeoutError());
              }, timeoutMs);
              controller.signal.addEventListener(
                "abort",
                () => reject(signal?.aborted ? new ToolCancelledError() : new ToolTimeoutError()),
                { once: true },
              );
            }),
          ]);
      if (typeof output !== "string") throw new Error(`returned ${typeof output}, not a string`);
      return { content: truncate(output, cap), isError: false };
    } catch (err) {
      if (err instanceof ToolTimeoutError)
        return this.failure(`tool "${name}" timed out after ${timeoutMs} ms`, cap);
      if (err instanceof ToolCancelledError)
        return this.failure(`tool "${name}" was cancelled: the request was aborted`, cap);
      if (err instanceof ToolCrashError)
        return this.failure(`tool "${name}" ${err.message}; try a smaller input`, cap);
      if (err instanceof ToolError) return this.failure(err.message, cap);
      return this.failure(`tool "${name}" failed: ${errorMessage(err)}`, cap);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onCancel);
    }
  }

  private failure(message: string, cap: number): ToolOutcome {
    return { content: truncate(message, cap), isError: true };
  }
}

function formatIssues(issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>): string {
  return issues
    .slice(0, 5)
    .map((i) => (i.path.length ? `${i.path.map(String).join(".")}: ${i.message}` : i.message))
    .join("; ");
}

function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  const note = `\n[output truncated: showing ${max} of ${text.length} characters]`;
  return text.slice(0, Math.max(0, max - note.length)) + note;
}

/** The built-in tools, run in the process's shared worker threads. */
export function createBuiltinToolRegistry(options: ToolRegistryOptions = {}): ToolRegistry {
  return new ToolRegistry(BUILTIN_TOOLS, {
    sandbox: builtinSandbox(BUILTIN_TOOLS.map((t) => t.name)),
    ...options,
  });
}
