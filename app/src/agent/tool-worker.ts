/**
 * The inside of a tool worker thread (tool-sandbox.ts starts them): runs one tool call at a
 * time and answers with its output or its error. Loaded as the worker's script, or, in the
 * esbuild bundle, as part of the bundle started with TOOL_WORKER in its workerData (the
 * entrypoints then do nothing else).
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { BUILTIN_TOOLS } from "./builtin-tools";
import { ToolError, type AgentTool } from "./tool-types";
import { errorMessage } from "../errors";

/** workerData key that makes a thread a tool worker. */
export const TOOL_WORKER = "agentToolWorker";

export interface ToolCall {
  id: number;
  name: string;
  input: unknown;
  /** The registry's clock, ISO 8601: tools read the time the caller sees. */
  now: string;
}

export type ToolAnswer =
  | { id: number; ok: true; output: unknown }
  | { id: number; ok: false; toolError: boolean; message: string };

export interface ToolWorkerData {
  [TOOL_WORKER]: true;
  /** A module exporting `tools` (tests' misbehaving tools); default: the built-in tools. */
  toolsModule?: string;
}

export const isToolWorker = (): boolean =>
  !isMainThread && (workerData as Partial<ToolWorkerData> | null)?.[TOOL_WORKER] === true;

function serve(): void {
  const data = workerData as ToolWorkerData;
  const tools: readonly AgentTool[] = data.toolsModule
    ? // eslint-disable-next-line @typescript-eslint/no-require-imports
      (require(data.toolsModule) as { tools: AgentTool[] }).tools
    : BUILTIN_TOOLS;
  const byName = new Map(tools.map((t) => [t.name, t]));
  const port = parentPort!;
  // Loading the tools takes a while on a cold start: the caller starts a call's clock once ready.
  port.postMessage({ ready: true });
  port.on("message", (call: ToolCall) => {
    const answer = (a: ToolAnswer) => port.postMessage(a);
    const tool = byName.get(call.name);
    if (!tool) {
      answer({ id: call.id, ok: false, toolError: false, message: "not a tool of this worker" });
      return;
    }
    const at = new Date(call.now);
    Promise.resolve()
      .then(() => tool.run(call.input, { signal: new AbortController().signal, now: () => at }))
      .then(
        (output) => answer({ id: call.id, ok: true, output }),
        (err: unknown) =>
          answer({
            id: call.id,
            ok: false,
            toolError: err instanceof ToolError,
            message: errorMessage(err),
          }),
      );
  });
}

if (isToolWorker()) serve();
