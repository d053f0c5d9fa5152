/**
 * The Node HTTP server around the app, and its shutdown: what server.ts runs, apart from reading
 * the configuration and the process's signals, so tests drive the same code in process.
 *
 * Shutdown (`drain`), in order:
 *  1. /ready answers 503 `draining`; the listener stays open (a probe still gets its answer, and
 *     a load balancer that has not yet noticed still gets served); idle keep-alive connections
 *     are closed and responses carry `connection: close`.
 *  2. Wait until no request is in flight and no spend is unsettled, or SHUTDOWN_GRACE_MS passes.
 *  3. Stop listening, abort model calls still running (`lifecycle.stop()`), cut the remaining
 *     connections: each request settles what it used (a cut stream what it saw, a cut JSON call
 *     its hold) when it is aborted.
 *  4. Wait for those settlements (a few seconds at most), then close the dependencies: the ledger
 *     is flushed and budget settlements reach Redis before the process exits.
 */
import { serve } from "@hono/node-server";
import type { Server } from "node:http";
import type { Hono } from "hono";
import type { AppConfig } from "../src/config";
import type { AppDeps } from "../src/deps";
import type { AppEnv } from "../src/http";
import { Lifecycle } from "../src/lifecycle";
import { buildMetricsApp } from "../src/routes/metrics";
import { SERVICE_CONTRACT } from "../src/contract";

/** How long settlements of requests cut at the end of the grace period may take. */
export const SETTLE_WAIT_MS = SERVICE_CONTRACT.drain.settleMs;

export interface NodeServer {
  server: Server;
  url: string;
  /** Where GET /metrics is served (METRICS_PORT), when it is on. */
  metricsUrl?: string;
  /** Requests received and not yet answered (streams until their last byte). */
  readonly inflight: number;
  /** Drain and close everything (see the module comment); resolves when all is written. */
  drain(): Promise<void>;
}

export async function startNodeServer(
  config: AppConfig,
  deps: AppDeps,
  app: Hono<AppEnv>,
): Promise<NodeServer> {
  const lifecycle = deps.lifecycle instanceof Lifecycle ? deps.lifecycle : undefined;
  // A client that sends its request slowly (a byte at a time) holds a connection and a slot of
  // its user's concurrency: headers and body get a deadline (408), idle connections one too.
  // requestTimeout bounds receiving the request only: a long stream back is not cut by it.
  const server = serve({
    fetch: app.fetch,
    port: config.PORT,
    hostname: config.HOST,
    serverOptions: {
      headersTimeout: config.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeout: config.HTTP_BODY_TIMEOUT_MS,
      keepAliveTimeout: config.HTTP_KEEP_ALIVE_TIMEOUT_MS,
      // How often Node checks those deadlines (its default, 30 s, would let them run long).
      connectionsCheckingInterval: Math.min(1000, config.HTTP_HEADERS_TIMEOUT_MS),
    },
  }) as Server;
  let inflight = 0;
  let idleWake: (() => void) | undefined;
  server.on("request", (_req, res) => {
    inflight++;
    if (deps.lifecycle.draining) res.setHeader("connection", "close");
    res.once("close", () => {
      if (--inflight === 0) idleWake?.();
    });
  });
  const url = await listening(server, config.HOST, config.PORT);
  // /metrics on a port of its own, which the deploy targets keep private.
  const metricsApp = buildMetricsApp(deps);
  const metricsServer = metricsApp
    ? (serve({
        fetch: metricsApp.fetch,
        port: config.METRICS_PORT,
        hostname: config.METRICS_HOST,
      }) as Server)
    : undefined;
  const metricsUrl = metricsServer
    ? await listening(metricsServer, config.METRICS_HOST, config.METRICS_PORT)
    : undefined;

  const requestsDone = (ms: number) =>
    new Promise<boolean>((resolve) => {
      if (inflight === 0) return resolve(true);
      const timer = setTimeout(() => resolve(inflight === 0), ms);
      idleWake = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });

  let draining: Promise<void> | undefined;
  const drain = async () => {
    const { logger } = deps;
    deps.lifecycle.draining = true;
    logger.info(
      { graceMs: config.SHUTDOWN_GRACE_MS, inflight },
      "draining: finishing in-flight requests and streams",
    );
    server.closeIdleConnections();
    const started = Date.now();
    const finished =
      (await requestsDone(config.SHUTDOWN_GRACE_MS)) &&
      (await (lifecycle?.idle(Math.max(0, config.SHUTDOWN_GRACE_MS - (Date.now() - started))) ??
        true));
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    if (!finished) {
      logger.warn({ inflight }, "grace period over: cutting the remaining requests");
      lifecycle?.stop();
      server.closeAllConnections();
    }
    if (lifecycle && !(await lifecycle.idle(SETTLE_WAIT_MS)))
      logger.error(
        { unsettled: lifecycle.inflight },
        "requests still unsettled at shutdown; their holds expire on their own",
      );
    await closed;
    await new Promise<void>((resolve) =>
      metricsServer ? metricsServer.close(() => resolve()) : resolve(),
    );
    try {
      await deps.close();
    } catch (err) {
      logger.error({ err: (err as Error).message }, "error while closing");
    }
    logger.info("stopped");
    logger.flush?.();
  };

  return {
    server,
    url,
    metricsUrl,
    get inflight() {
      return inflight;
    },
    drain: () => (draining ??= drain()),
  };
}

/** Resolves with the server's URL once it listens. */
async function listening(server: Server, host: string, port: number): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    if (server.listening) return resolve();
    server.once("listening", resolve);
    server.once("error", reject);
  });
  const address = server.address();
  const bound = typeof address === "object" && address ? address.port : port;
  return `http://${host === "0.0.0.0" ? "localhost" : host}:${bound}`;
}
