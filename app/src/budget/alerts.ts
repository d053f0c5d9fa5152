/**
 * Budget alerts at 50 %, 80 % and 100 %. Deciding that a threshold was crossed, once per budget
 * window across all replicas, is the budget engine's job (a marker set in the same atomic step
 * as the spend); this module only delivers what it is handed:
 *
 *  - a structured log event (`event: "budget_alert"`),
 *  - in-process listeners (`onAlert`): the hook for metrics (Prometheus/OTel counters),
 *  - a JSON POST to ALERT_WEBHOOK_URL, retried with exponential backoff and jitter from a
 *    bounded queue. `emit` never waits for the network, so a slow or failing webhook cannot
 *    slow a request; when the queue is full the oldest waiting alert is dropped, loudly.
 *
 * Each POST carries an `idempotency-key` derived from the budget window and threshold, so a
 * receiver can discard the duplicate a retry produces when the first attempt's answer was lost.
 */
import type { Logger } from "pino";
import type { AlertThreshold } from "./engine";
import type { BudgetName } from "./kinds";
import { errorMessage } from "../errors";

export interface BudgetWindow {
  /** ISO times; the end is exclusive. */
  start: string;
  end: string;
}

export interface BudgetAlert {
  budget: BudgetName;
  /** The user id (user_daily), the session id (session), the team id (team_*) or "deployment" (daily). */
  scopeId: string;
  threshold: AlertThreshold;
  spentUsd: number;
  limitUsd: number;
  /** The UTC day (or month) the alert belongs to; null for sessions, whose budget never resets. */
  window: BudgetWindow | null;
  /** True when a replica counted alone while Redis was unreachable: another may alert as well. */
  degraded: boolean;
  at: string;
}

export type AlertListener = (alert: BudgetAlert) => void;

/** The webhook's JSON body. */
export function alertPayload(alert: BudgetAlert) {
  return {
    type: "budget_alert" as const,
    id: alertId(alert),
    budget: alert.budget,
    scope_id: alert.scopeId,
    threshold: alert.threshold,
    spent_usd: round6(alert.spentUsd),
    limit_usd: alert.limitUsd,
    window: alert.window,
    resets_at: alert.window?.end ?? null,
    degraded: alert.degraded,
    at: alert.at,
  };
}

/** Stable per budget window and threshold: the same alert from a retry has the same id. */
export function alertId(alert: BudgetAlert): string {
  return `${alert.budget}:${alert.scopeId}:${alert.window?.start.slice(0, 10) ?? "all"}:${alert.threshold}`;
}

const round6 = (n: number) => Math.round(n * 1e6) / 1e6;

export interface AlertDispatcherOptions {
  logger: Logger;
  webhookUrl?: string;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Alerts waiting, in flight or between retries; beyond it the oldest waiting is dropped. @default 1000 */
  maxQueue?: number;
  /** @default 8 */
  maxAttempts?: number;
  /** First retry delay; doubles each attempt, with jitter. @default 500 */
  baseDelayMs?: number;
  /** @default 60000 */
  maxDelayMs?: number;
  /** Per attempt. @default 5000 */
  timeoutMs?: number;
  /** POSTs in flight at once. @default 2 */
  concurrency?: number;
}

interface Job {
  alert: BudgetAlert;
  attempt: number;
}

export class AlertDispatcher {
  private readonly listeners = new Set<AlertListener>();
  private readonly waiting: Job[] = [];
  private readonly retrying = new Map<Job, NodeJS.Timeout>();
  private active = 0;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  private readonly fetchFn: typeof fetch;
  private readonly maxQueue: number;
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly timeoutMs: number;
  private readonly concurrency: number;
  /** Counters for metrics and tests. */
  readonly stats = { emitted: 0, delivered: 0, attempts: 0, failed: 0, dropped: 0 };

  constructor(private readonly options: AlertDispatcherOptions) {
    this.fetchFn = options.fetch ?? globalThis.fetch;
    this.maxQueue = options.maxQueue ?? 1000;
    this.maxAttempts = options.maxAttempts ?? 8;
    this.baseDelayMs = options.baseDelayMs ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 60_000;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.concurrency = options.concurrency ?? 2;
  }

  /** Call `listener` for every alert; returns the function that removes it. */
  onAlert(listener: AlertListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Webhook deliveries not finished yet (waiting, in flight or between retries). */
  get pending(): number {
    return this.waiting.length + this.active + this.retrying.size;
  }

  /** Log, notify listeners, queue the webhook. Synchronous and never throws. */
  emit(alert: BudgetAlert): void {
    this.stats.emitted++;
    const log = this.options.logger;
    log.warn(
      { event: "budget_alert", ...alertPayload(alert) },
      `budget ${alert.budget} for ${alert.scopeId} reached ${alert.threshold}% of $${alert.limitUsd}`,
    );
    for (const listener of this.listeners) {
      try {
        listener(alert);
      } catch (err) {
        log.error({ err: errorMessage(err) }, "budget alert listener threw");
      }
    }
    if (!this.options.webhookUrl || this.closed) return;
    if (this.pending >= this.maxQueue) {
      const dropped = this.waiting.shift();
      this.stats.dropped++;
      log.error(
        {
          event: "budget_alert_dropped",
          id: alertId(dropped?.alert ?? alert),
          queue: this.maxQueue,
        },
        "budget alert webhook queue full: alert dropped",
      );
      if (!dropped) return;
    }
    this.waiting.push({ alert, attempt: 0 });
    this.pump();
  }

  /** Resolves once every queued delivery has succeeded or given up (tests, shutdown). */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stop accepting alerts and retrying. Deliveries in flight may finish within `graceMs`;
   * alerts still waiting are logged as undelivered (their log events already went out).
   */
  async close(graceMs = 2000): Promise<void> {
    this.closed = true;
    for (const timer of this.retrying.values()) clearTimeout(timer);
    const abandoned = this.waiting.length + this.retrying.size;
    this.retrying.clear();
    this.waiting.length = 0;
    if (abandoned > 0) {
      this.stats.failed += abandoned;
      this.options.logger.error(
        { abandoned },
        "budget alert webhooks not delivered before shutdown",
      );
    }
    if (this.active > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.idle(), new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
    }
    this.settleIdle();
  }

  private pump() {
    while (!this.closed && this.active < this.concurrency && this.waiting.length > 0) {
      const job = this.waiting.shift()!;
      this.active++;
      void this.deliver(job).finally(() => {
        this.active--;
        this.pump();
        this.settleIdle();
      });
    }
  }

  private settleIdle() {
    if (this.pending > 0 || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private async deliver(job: Job): Promise<void> {
    job.attempt++;
    this.stats.attempts++;
    let retryAfterMs: number | undefined;
    let problem: string;
    try {
      const res = await this.fetchFn(this.options.webhookUrl!, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": "agent-budget-alerts/1",
          "idempotency-key": alertId(job.alert),
        },
        body: JSON.stringify(alertPayload(job.alert)),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) {
        this.stats.delivered++;
        return;
      }
      problem = `HTTP ${res.status}`;
      // Other 4xx answers mean the receiver rejects this request as such: retrying cannot help.
      if (res.status < 500 && res.status !== 408 && res.status !== 429)
        return this.giveUp(job, problem);
      const ra = Number(res.headers.get("retry-after"));
      if (Number.isFinite(ra) && ra > 0) retryAfterMs = ra * 1000;
    } catch (err) {
      problem = (err as Error).message;
    }
    if (this.closed || job.attempt >= this.maxAttempts) return this.giveUp(job, problem);
    const backoff = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (job.attempt - 1));
    const delay = Math.min(
      this.maxDelayMs,
      Math.max(retryAfterMs ?? 0, backoff * (0.5 + Math.random() / 2)),
    );
    this.options.logger.warn(
      { id: alertId(job.alert), attempt: job.attempt, problem, retryInMs: Math.round(delay) },
      "budget alert webhook failed; will retry",
    );
    const timer = setTimeout(() => {
      this.retrying.delete(job);
      this.waiting.push(job);
      this.pump();
    }, delay);
    // A pending retry must not keep a finished process alive; close() reports what was left.
    timer.unref();
    this.retrying.set(job, timer);
  }

  private giveUp(job: Job, problem: string) {
    this.stats.failed++;
    this.options.logger.error(
      { event: "budget_alert_undelivered", id: alertId(job.alert), attempts: job.attempt, problem },
      "budget alert webhook gave up",
    );
  }
}
