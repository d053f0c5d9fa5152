/**
 * The step loop both GCP kinds share (Cloud Run traffic, managed instance group versions): for
 * each step, move its share to the canary, then for its minutes read the canary's signals once a
 * minute and evaluate the gates; a failed gate (or a step that never settles) puts everything
 * back on the stable release and fails the run. After the last step the new release takes 100 %.
 */
import type { RolloutGates, RolloutStep } from "../../components/release/rollout-plan";
import { evaluateGates, type MinuteSample } from "./gates";
import { errorMessage, RolloutFailed, type Clock, type Log, type RolloutOutcome } from "./runtime";

/** One platform's canary mechanism. */
export interface CanaryTarget {
  /** For messages: "Cloud Run service agent (revision agent-00002-abc)". */
  name: string;
  /** Give the canary `percent` % and wait until the platform serves it. */
  shift(percent: number): Promise<void>;
  /** Give everything back to the stable release and wait; says what serves now. */
  rollback(): Promise<string>;
  /** Give everything to the new release and wait; says what serves now. */
  promote(): Promise<string>;
  /** The gates' per-minute signals for the minutes ending in [startMs, endMs]. */
  readMinutes(startMs: number, endMs: number): Promise<MinuteSample[]>;
}

export interface CanaryDeps {
  clock: Clock;
  log: Log;
}

const MINUTE_MS = 60_000;

export async function runCanary(
  target: CanaryTarget,
  steps: readonly RolloutStep[],
  gates: RolloutGates,
  deps: CanaryDeps,
): Promise<RolloutOutcome> {
  const { clock, log } = deps;
  // The gates look only at minutes since the first step started: before it, the signals are
  // the stable release's alone (or, on Cloud Run, there are none for the new revision).
  let gateSince: number | undefined;
  for (const [i, step] of steps.entries()) {
    const label = `step ${i + 1}/${steps.length} (${step.percent} % for ${step.minutes} min)`;
    let reason: string | undefined;
    try {
      log(`${target.name}: ${label}: moving ${step.percent} % to the new release`);
      await target.shift(step.percent);
      gateSince ??= clock.now();
      for (let minute = 1; minute <= step.minutes && !reason; minute++) {
        await clock.sleep(MINUTE_MS);
        const now = clock.now();
        const start = Math.max(gateSince, now - gates.windowMinutes * MINUTE_MS);
        const verdict = evaluateGates(await target.readMinutes(start, now), gates, now);
        log(`${target.name}: ${label}: minute ${minute}/${step.minutes}: ${verdict.summary}`);
        if (verdict.failed) reason = `the gates failed: ${verdict.summary}`;
      }
    } catch (err) {
      reason = `the step did not complete: ${errorMessage(err)}`;
    }
    if (reason) {
      log(`${target.name}: ${label}: rolling back (${reason})`);
      let restored: string;
      try {
        restored = await target.rollback();
      } catch (err) {
        throw new RolloutFailed(
          `${target.name}: ${label} failed (${reason}) and the rollback failed too: ${errorMessage(err)}. The new release may still serve ${step.percent} %: check the platform.`,
        );
      }
      throw new RolloutFailed(`${target.name}: rolled back to ${restored} at ${label}: ${reason}`);
    }
  }
  log(`${target.name}: every step passed its gates: moving 100 % to the new release`);
  const serving = await target.promote();
  return { status: "rolled-out", detail: `${target.name}: ${serving} serves 100 %` };
}
