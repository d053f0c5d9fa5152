/**
 * A closed loop: `workers` clients, each sending its next request as soon as its previous one
 * answered, measured in steady state.
 *
 * The measured window opens only once every worker has had a 200, that is once every connection
 * of the pool is up and has served a request; until then the workers keep sending (so that no
 * connection idles meanwhile), and those answers are not counted. Before 2026-12-07 the window
 * opened at once, and it measured how fast a path accepts 256 new connections as much as its
 * throughput: between its turns a path's connections idle for a minute, and a Node server closes
 * idle keep-alive connections after 5 s by default (Portkey's does; the service and the floor
 * proxy keep them 60 s or more). Node takes one queued connection per turn of its event loop
 * (libuv 1.45+, see app/entrypoints/accept.ts), so Portkey took 5-15 s to accept the pool again
 * (`ss -ltn` showed 111 queued connections draining at ~12 a second), and requests waiting past the
 * load generator's 10 s timeout counted as errors: the 141-183 errors per peers run it showed.
 * How long a path takes to have every connection answered is reported as its own figure.
 */
import type { ProcStats } from "./procs";

/** How long the window waits for every worker's first 200 by default. */
export const CONNECT_TIMEOUT_MS = 60_000;

export interface ClosedLoopOptions {
  workers: number;
  /** Length of the measured window. */
  seconds: number;
  /** CPU time of the path's process, read when the window opens and when it closes. */
  stats?: () => ProcStats | null;
  /** The window opens at this point even if some worker has had no 200 yet. @default CONNECT_TIMEOUT_MS */
  connectTimeoutMs?: number;
}

export interface ClosedLoopResult {
  /** 200 answers per second in the measured window. */
  rps: number;
  /** 200 answers that completed in the measured window. */
  ok: number;
  /** Other answers (HTTP 0 for no answer) that completed in the measured window. */
  errors: number;
  /** From the first request until every worker had had a 200 (or the connect timeout). */
  connectMs: number;
  /** Answers other than 200 before the window opened. */
  connectErrors: number;
  /** Workers that had had a 200 when the window opened (all of them unless it timed out). */
  ready: number;
  /** CPU time of the path's process per 200 in the window, µs (null without `stats`). */
  cpuPerRequestUs: number | null;
}

/** Runs the loop; `send` makes one request and resolves with its HTTP status (0: none). */
export async function closedLoop(
  send: () => Promise<number>,
  options: ClosedLoopOptions,
): Promise<ClosedLoopResult> {
  const { workers, seconds, stats } = options;
  const connectTimeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
  const began = performance.now();
  let ready = 0;
  let connectErrors = 0;
  let ok = 0;
  let errors = 0;
  // Set when the window opens.
  let measured: { start: number; end: number; before: ProcStats | null } | undefined;
  const open = () => {
    const start = performance.now();
    measured = { start, end: start + seconds * 1000, before: stats?.() ?? null };
  };
  const deadline = setTimeout(() => measured ?? open(), connectTimeoutMs);
  try {
    await Promise.all(
      Array.from({ length: workers }, async () => {
        let answered = false;
        while (!measured || performance.now() < measured.end) {
          const status = await send();
          const at = performance.now();
          if (!measured) {
            if (status !== 200) connectErrors++;
            else if (!answered) {
              answered = true;
              if (++ready === workers) open();
            }
            continue;
          }
          // Answers that complete after the window closed are not counted.
          if (at > measured.end) break;
          if (status === 200) ok++;
          else errors++;
        }
      }),
    );
  } finally {
    clearTimeout(deadline);
  }
  const w = measured!;
  const after = stats?.() ?? null;
  return {
    rps: ok / seconds,
    ok,
    errors,
    connectMs: w.start - began,
    connectErrors,
    ready,
    cpuPerRequestUs:
      w.before && after && ok > 0 ? ((after.cpuSeconds - w.before.cpuSeconds) / ok) * 1e6 : null,
  };
}
