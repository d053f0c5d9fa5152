/**
 * What every rollout kind shares: a clock (so tests do not wait), progress lines with
 * timestamps, the error that means "the release did not roll out", and a polling loop with a
 * deadline.
 */

/** Time and waiting, injected so a test's "ten minutes" take no time. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** Where progress lines go (one per step or poll); the CLI prints them with a timestamp. */
export type Log = (line: string) => void;

/** A log that prefixes each line with the clock's time, ISO 8601 in UTC. */
export function timestampedLog(clock: Clock, write: (text: string) => void): Log {
  return (line) => write(`${new Date(clock.now()).toISOString()} ${line}\n`);
}

/**
 * The release did not roll out: the platform (or this driver) rolled it back, or it never
 * became ready. The message says what serves traffic now and why; the CLI exits 1 with it so
 * `pulumi up` fails and shows it.
 */
export class RolloutFailed extends Error {
  override readonly name = "RolloutFailed";
}

/** How a run ended when it did not fail. */
export interface RolloutOutcome {
  status: "rolled-out" | "nothing-to-do";
  /** One line for the log: what serves traffic now. */
  detail: string;
}

export interface PollOptions {
  clock: Clock;
  intervalMs: number;
  /** Give up (throw a `RolloutFailed` with `what`) after this long. */
  timeoutMs: number;
  /** What is awaited, for the timeout message ("Cloud Run service x to be ready"). */
  what: string;
}

/**
 * Calls `check` until it returns a value other than `undefined`, sleeping `intervalMs` between
 * calls; throws `RolloutFailed` when `timeoutMs` has passed.
 */
export async function pollUntil<T>(
  check: () => Promise<T | undefined>,
  opts: PollOptions,
): Promise<T> {
  const deadline = opts.clock.now() + opts.timeoutMs;
  for (;;) {
    const result = await check();
    if (result !== undefined) return result;
    if (opts.clock.now() >= deadline) {
      throw new RolloutFailed(
        `timed out after ${Math.round(opts.timeoutMs / 60_000)} min waiting for ${opts.what}`,
      );
    }
    await opts.clock.sleep(opts.intervalMs);
  }
}

/** The message of anything thrown. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
