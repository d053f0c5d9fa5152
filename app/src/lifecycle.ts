/**
 * The process's life as the app sees it: draining after SIGTERM (/ready answers 503), the work
 * whose spend is not yet settled, and the signal that cuts what is still running when the
 * shutdown grace period ends. The Node entrypoint drives it (entrypoints/node-server.ts).
 */

/** What routes read and use; tests that build deps by hand may give only `draining`. */
export interface LifecycleState {
  /** Set on SIGTERM: /ready turns 503 while in-flight work finishes. */
  draining: boolean;
  /** Aborted when the shutdown grace period ends: model calls still running are cut. */
  readonly stopping?: AbortSignal;
  /**
   * Register work whose spend must be settled and written before the process exits (a model call
   * from admission to settlement, an agent turn); call the returned function once it is.
   */
  track?(): () => void;
}

export class Lifecycle implements LifecycleState {
  draining = false;
  private readonly cut = new AbortController();
  private count = 0;
  private readonly waiters = new Set<() => void>();

  get stopping(): AbortSignal {
    return this.cut.signal;
  }

  /** Work registered and not yet done. */
  get inflight(): number {
    return this.count;
  }

  track(): () => void {
    this.count++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (--this.count === 0) for (const wake of [...this.waiters]) wake();
    };
  }

  /** Resolves true once no work is registered, or false after `timeoutMs`. */
  idle(timeoutMs: number): Promise<boolean> {
    if (this.count === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(wake);
        resolve(this.count === 0);
      }, timeoutMs);
      this.waiters.add(wake);
    });
  }

  /** The grace period is over: abort what still runs (it then settles what it has). */
  stop(): void {
    this.draining = true;
    this.cut.abort(new Error("shutting down"));
  }
}
