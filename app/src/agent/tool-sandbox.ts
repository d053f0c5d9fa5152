/**
 * Tools run in worker threads with real limits that synchronous code cannot escape: each worker
 * has a heap limit (`resourceLimits`: a tool that allocates past it kills its worker, not the
 * service) and each call a deadline, at which its worker is terminated (a tool spinning in a
 * loop never yields to a timer, but `worker.terminate()` stops it). A worker is replaced after
 * either. Calls wait for a free worker (at most QUEUE_WAIT_MS); a call's deadline counts from when
 * a worker, loaded and ready, starts it, so a worker's cold start is not charged to the tool.
 *
 * The worker script: beside this module in a TypeScript checkout (tsx's loader is handed to the
 * worker), or the bundle itself in a build (dist/server, dist/lambda), started with TOOL_WORKER in
 * its workerData so that its entrypoint serves tool calls instead of starting the service.
 */
import path from "node:path";
import { Worker } from "node:worker_threads";
import { TOOL_WORKER, type ToolAnswer, type ToolCall, type ToolWorkerData } from "./tool-worker";
import { ToolError } from "./tool-types";

export class ToolTimeoutError extends Error {}
export class ToolCancelledError extends Error {}
/** The worker died under the call (out of memory, a crash). */
export class ToolCrashError extends Error {}

export interface ToolSandboxOptions {
  /** Tool names the workers serve (those of `toolsModule`). */
  names: readonly string[];
  /** Module exporting `tools` for the workers; default: the built-in tools. */
  toolsModule?: string;
  /** Most workers at once. @default 2 */
  workers?: number;
  /** Heap limit of each worker (old generation). @default 128 */
  memoryMb?: number;
  /** An idle worker is stopped after this long. @default 60000 */
  idleMs?: number;
}

interface Slot {
  worker: Worker;
  /** Its tools are loaded (it said so). */
  ready: boolean;
  busy: boolean;
  idleTimer?: NodeJS.Timeout;
}

/** Longest a call waits for a free worker before it fails. */
const QUEUE_WAIT_MS = 30_000;

interface Waiting {
  start(slot: Slot): void;
  /** No worker could start: the call fails rather than wait for one that never comes. */
  fail(err: Error): void;
}

let nextId = 1;

export class ToolSandbox {
  readonly names: ReadonlySet<string>;
  readonly memoryMb: number;
  private readonly slots = new Set<Slot>();
  private readonly queue: Waiting[] = [];
  private readonly maxWorkers: number;
  private readonly idleMs: number;

  constructor(private readonly options: ToolSandboxOptions) {
    this.names = new Set(options.names);
    this.maxWorkers = Math.max(1, options.workers ?? 2);
    this.memoryMb = options.memoryMb ?? 128;
    this.idleMs = options.idleMs ?? 60_000;
  }

  /** Run `name` on `input` (already validated); rejects with ToolError, or one of the errors above. */
  run(
    name: string,
    input: unknown,
    options: { timeoutMs: number; now: Date; signal?: AbortSignal },
  ): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      let slot: Slot | undefined;
      let done = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (err: Error | null, output?: string) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        clearTimeout(waitTimer);
        options.signal?.removeEventListener("abort", onAbort);
        const i = this.queue.indexOf(waiting);
        if (i >= 0) this.queue.splice(i, 1);
        if (err) reject(err);
        else resolve(output!);
      };
      // Past the deadline (or cancelled) the worker is stopped: nothing else can stop a loop.
      const stop = (err: Error) => {
        if (done) return;
        if (slot) this.discard(slot);
        finish(err);
      };
      const waitTimer = setTimeout(
        () => stop(new ToolCrashError(`could not start: every tool worker stayed busy`)),
        QUEUE_WAIT_MS,
      );
      const onAbort = () => stop(new ToolCancelledError("cancelled"));
      options.signal?.addEventListener("abort", onAbort, { once: true });
      const waiting: Waiting = {
        fail: (err) => finish(new ToolCrashError(`could not start: ${err.message}`)),
        start: (s) => {
          slot = s;
          clearTimeout(waitTimer);
          timer = setTimeout(
            () => stop(new ToolTimeoutError(`timed out after ${options.timeoutMs} ms`)),
            options.timeoutMs,
          );
          const id = nextId++;
          const onMessage = (answer: ToolAnswer) => {
            if (answer?.id !== id) return;
            cleanup();
            this.release(s);
            if (answer.ok) {
              if (typeof answer.output === "string") finish(null, answer.output);
              else finish(new Error(`returned ${typeof answer.output}, not a string`));
            } else if (answer.toolError) finish(new ToolError(answer.message));
            else finish(new Error(answer.message));
          };
          const onExit = (code: number) => {
            cleanup();
            this.discard(s);
            finish(
              new ToolCrashError(
                code === 1
                  ? `stopped: it ran out of memory (limit ${this.memoryMb} MB) or crashed`
                  : `stopped (exit code ${code})`,
              ),
            );
          };
          const onError = (err: Error) => {
            cleanup();
            this.discard(s);
            const oom = (err as { code?: string }).code === "ERR_WORKER_OUT_OF_MEMORY";
            finish(
              new ToolCrashError(
                oom ? `stopped: it ran out of memory (limit ${this.memoryMb} MB)` : err.message,
              ),
            );
          };
          const cleanup = () => {
            s.worker.off("message", onMessage);
            s.worker.off("exit", onExit);
            s.worker.off("error", onError);
          };
          s.worker.on("message", onMessage);
          s.worker.once("exit", onExit);
          s.worker.once("error", onError);
          const call: ToolCall = { id, name, input, now: options.now.toISOString() };
          s.worker.postMessage(call);
        },
      };
      if (options.signal?.aborted) return onAbort();
      this.queue.push(waiting);
      this.dispatch();
    });
  }

  /** Stop every worker (tests; the process's exit does it otherwise). */
  async close(): Promise<void> {
    const slots = [...this.slots];
    this.slots.clear();
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private dispatch() {
    while (this.queue.length > 0) {
      const slot = [...this.slots].find((s) => s.ready && !s.busy);
      if (!slot) {
        // Start another worker if allowed; the call waits for the first one ready.
        const starting = [...this.slots].filter((s) => !s.ready).length;
        if (starting < this.queue.length && this.slots.size < this.maxWorkers) this.spawn();
        return;
      }
      slot.busy = true;
      clearTimeout(slot.idleTimer);
      this.queue.shift()!.start(slot);
    }
  }

  private release(slot: Slot) {
    if (!this.slots.has(slot)) return;
    slot.busy = false;
    slot.idleTimer = setTimeout(() => this.discard(slot), this.idleMs);
    slot.idleTimer.unref();
    this.dispatch();
  }

  private discard(slot: Slot) {
    if (!this.slots.delete(slot)) return;
    clearTimeout(slot.idleTimer);
    void slot.worker.terminate();
    this.dispatch();
  }

  private spawn(): Slot {
    const { script, execArgv } = workerScript();
    const data: ToolWorkerData = { [TOOL_WORKER]: true, toolsModule: this.options.toolsModule };
    const worker = new Worker(script, {
      workerData: data,
      execArgv,
      resourceLimits: {
        maxOldGenerationSizeMb: this.memoryMb,
        maxYoungGenerationSizeMb: Math.max(8, Math.round(this.memoryMb / 8)),
        stackSizeMb: 4,
      },
    });
    // An idle worker does not keep the process alive.
    worker.unref();
    const slot: Slot = { worker, ready: false, busy: false };
    worker.once("message", () => {
      slot.ready = true;
      this.dispatch();
    });
    // A worker that dies between calls is replaced by the next call; one that dies before it
    // is ready fails the waiting calls (a worker that cannot load would fail again).
    const gone = (err: Error) => {
      if (this.slots.has(slot) && !slot.ready) for (const w of this.queue.splice(0)) w.fail(err);
      this.discard(slot);
    };
    worker.once("exit", (code) => gone(new Error(`the worker exited (code ${code})`)));
    worker.on("error", gone);
    this.slots.add(slot);
    return slot;
  }
}

/** The script a worker runs, and what it needs to run it. */
function workerScript(): { script: string; execArgv: string[] } {
  if (__filename.endsWith(".ts")) {
    // A TypeScript checkout (tsx, jest): the worker loads TypeScript through tsx's hook.
    return {
      script: path.join(__dirname, "tool-worker.ts"),
      execArgv: ["--require", require.resolve("tsx/cjs")],
    };
  }
  // The bundle: this module is inside it, and the bundle's entrypoint serves tool calls when
  // started as a tool worker.
  return { script: __filename, execArgv: [] };
}

let shared: ToolSandbox | undefined;

/** The process's sandbox for the built-in tools (workers are shared by every registry). */
export function builtinSandbox(names: readonly string[]): ToolSandbox {
  shared ??= new ToolSandbox({ names });
  return shared;
}
