/**
 * GET /metrics: every metric in the Prometheus text exposition format (telemetry/metrics.ts lists
 * them), on an app of its own that the Node entrypoint serves on METRICS_PORT, a port no deploy
 * target exposes publicly. The public app (and so the Lambda Function URL) never serves it. No
 * API key: Prometheus scrapes without one, which is why the port must stay private. Scrapes are
 * neither logged nor traced nor counted.
 */
import { Hono } from "hono";
import type { AppDeps } from "../deps";
import { PROMETHEUS_CONTENT_TYPE } from "../telemetry/otel";
import { errorMessage } from "../errors";

/** The metrics app, or null when /metrics is off (METRICS_ENABLED=false or no exporter). */
export function buildMetricsApp(
  deps: Pick<AppDeps, "telemetry" | "config" | "logger">,
): Hono | null {
  const telemetry = deps.telemetry;
  if (!deps.config.METRICS_ENABLED || !telemetry?.prometheus) return null;
  const app = new Hono();
  app.get("/metrics", async (c) => {
    try {
      return c.body(await telemetry.scrape(), 200, {
        "content-type": PROMETHEUS_CONTENT_TYPE,
        "cache-control": "no-store",
      });
    } catch (err) {
      deps.logger.error({ err: errorMessage(err) }, "metrics collection failed");
      return c.text("metrics collection failed\n", 500);
    }
  });
  app.notFound((c) => c.text("only GET /metrics is served on this port\n", 404));
  return app;
}
