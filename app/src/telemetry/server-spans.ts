/**
 * The HTTP server span (W3C traceparent continued) and the request metrics: one span and one
 * latency sample per request.
 */
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Span,
  type TextMapGetter,
} from "@opentelemetry/api";
import type { Context, MiddlewareHandler } from "hono";
import { responseHeader, type AppEnv } from "../http";
import type { Telemetry } from "./otel";

const HEADERS_GETTER: TextMapGetter<Headers> = {
  get: (headers, key) => headers.get(key) ?? undefined,
  keys: (headers) => [...headers.keys()],
};

/**
 * The matched route pattern, also when a middleware answered before the handler ran (a 401, a
 * 429); requests no route matched share one label, so paths never become label values.
 */
function routeOf(c: Context<AppEnv>): string {
  const path = c.req.routePath;
  if (path && !path.endsWith("*")) return path;
  const routes = c.req.matchedRoutes;
  for (let i = routes.length - 1; i >= 0; i--)
    if (routes[i]!.method !== "ALL") return routes[i]!.path;
  return "unmatched";
}

/**
 * Middleware for the server span (W3C traceparent continued) and the request metrics, or
 * undefined when both are off. Register it before the request logger, so the log line of a
 * request carries its trace id. For streams, the span and the latency end when the response
 * headers are sent; the stream's own duration is on the upstream span.
 */
export function telemetryMiddleware(telemetry: Telemetry): MiddlewareHandler<AppEnv> | undefined {
  const { tracer } = telemetry;
  const metrics = telemetry.metrics.enabled ? telemetry.metrics : undefined;
  if (!tracer && !metrics) return undefined;
  return async (c, next) => {
    const started = performance.now();
    const method = c.req.method;
    let span: Span | undefined;
    try {
      if (tracer) {
        const parent = propagation.extract(ROOT_CONTEXT, c.req.raw.headers, HEADERS_GETTER);
        span = tracer.startSpan(
          method,
          {
            kind: SpanKind.SERVER,
            attributes: { "http.request.method": method, "url.path": c.req.path },
          },
          parent,
        );
        await context.with(trace.setSpan(parent, span), next);
      } else {
        await next();
      }
    } finally {
      const route = routeOf(c);
      const status = c.res.status;
      if (span) {
        span.updateName(`${method} ${route}`);
        span.setAttribute("http.route", route);
        span.setAttribute("http.response.status_code", status);
        const user = c.get("userId");
        if (user) span.setAttribute("enduser.id", user);
        if (c.error) span.recordException(c.error);
        if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
      }
      if (metrics) {
        metrics.recordRequest(method, route, status, (performance.now() - started) / 1000);
        const xcache = responseHeader(c.res, "x-cache");
        if (xcache) metrics.recordCacheLookup(xcache);
      }
    }
  };
}
