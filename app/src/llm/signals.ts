/**
 * Aborts `target` when `source` aborts, with its reason, until the returned function is called
 * (idempotent): one listener on the source, removed then. A call's own controller (say, its
 * deadline's) follows the caller's signal this way, like `AbortSignal.any()` would join them, but
 * with a link that is cut once the call is over.
 *
 * Why not `AbortSignal.any()`: each signal it makes is recorded in every source's set of
 * dependants, and Node prunes that set only when a source aborts, or later by GC in some
 * versions: a source that lives as long as the process (the shutdown signal every request passes
 * on) gathers one entry per request for as long as the process runs (nodejs/node#55351, reported
 * on v22.9; nodejs/node#64476: observed composites still accumulate on v22.12, v24.18, v26.5).
 * Measured here with `npm run bench -- --only memory` (Node v20.20.2, 2026-12-06): after 4 minutes
 * at 500 req/s the shutdown signal held 70,812 dependants (2.6 MB of table alone, with their
 * WeakRefs, contexts and promises about 2 MB more live heap a minute), and the soak's RSS rose
 * 7.8 MB a minute. A listener removed when the call ends leaves nothing behind.
 */
export function follow(source: AbortSignal, target: AbortController): () => void {
  if (source.aborted) {
    target.abort(source.reason);
    return () => {};
  }
  const listener = () => target.abort(source.reason);
  source.addEventListener("abort", listener, { once: true });
  return () => source.removeEventListener("abort", listener);
}
