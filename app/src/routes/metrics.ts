/**
 * GET /metrics: every metric in the Prometheus text exposition format (telemetry/metrics.ts lists
 * them). Outside /v1, so no API key: Prometheus scrapes without one. Keep the port private or set
 * METRICS_ENABLED=false where the service is public. Register it before the request logger and
 * the telemetry middleware, so scrapes are neither logged nor traced nor counted.
 */
import type { Hono } from "hono";
import type { AppDeps } from "../deps";
import type { AppEnv } from "../http";
import { PROMETHEUS_CONTENT_TYPE } from "../telemetry/otel";

export function registerMetricsRoute(
  app: Hono<AppEnv>,
  deps: Pick<AppDeps, "telemetry" | "config" | "logger">,
) {
  const telemetry = deps.telemetry;
  if (!deps.config.METRICS_ENABLED || !telemetry?.prometheus) return;
  app.get("/metrics", async (c) => {
    try {
      return c.body(await telemetry.scrape(), 200, {
        "content-type": PROMETHEUS_CONTENT_TYPE,
        "cache-control": "no-store",
      });
    } catch (err) {
      deps.logger.error({ err: (err as Error).message }, "metrics collection failed");
      return c.text("metrics collection failed\n", 500);
    }
  });
}
