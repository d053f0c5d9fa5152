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
 *
 * Embedded mode (no DATABASE_URL) listens before its dependencies are open (`listenEarly`): the
 * first start of an embedded database takes seconds (initdb), and a process that does not answer
 * meanwhile looks dead. Until the app is ready, `/health` answers 200 (the process is alive),
 * `/ready` 503 `starting`, and every other request waits for the app (at most STARTUP_WAIT_MS,
 * then 503 `overloaded_error` with `retry-after`). A signal then refuses what waits (503) and the
 * start-up is abandoned. Deployed targets open their dependencies first, then listen.
 */
import { createAdaptorServer, serve } from "@hono/node-server";
import type { Server } from "node:http";
import type { Hono } from "hono";
import type { AppConfig } from "../src/config";
import type { AppDeps } from "../src/deps";
import type { AppEnv } from "../src/http";
import { errorBody } from "../src/errors";
import { newRequestId } from "../src/app";
import { Lifecycle } from "../src/lifecycle";
import { buildMetricsApp } from "../src/routes/metrics";
import { SERVICE_CONTRACT } from "../src/contract";
import { directWrites } from "../src/routes/direct-writes";
import { addAcceptors } from "./accept";

/** How long settlements of requests cut at the end of the grace period may take. */
export const SETTLE_WAIT_MS = SERVICE_CONTRACT.drain.settleMs;
/**
 * How long a request that arrives while the embedded service starts waits for it (a first start,
 * initdb included, takes ~8 s on a 2-core machine) before it is answered 503.
 */
export const STARTUP_WAIT_MS = 30_000;
/** The `retry-after` (seconds) of the 503s answered while starting or stopping during start-up. */
export const STARTUP_RETRY_AFTER_S = 5;

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

type Fetch = (request: Request, env: object) => unknown;

/** The HTTP server, listening, with its count of requests in flight. */
interface Listener {
  server: Server;
  url: string;
  readonly inflight: number;
  /** Resolves true once no request is in flight, or with whether none is after `ms`. */
  requestsDone(ms: number): Promise<boolean>;
}

/** listen(2)'s backlog: the kernel's cap (net.core.somaxconn) applies above it. */
export const LISTEN_BACKLOG = 4096;

async function listen(config: AppConfig, fetch: Fetch, draining: () => boolean): Promise<Listener> {
  // A client that sends its request slowly (a byte at a time) holds a connection and a slot of
  // its user's concurrency: headers and body get a deadline (408), idle connections one too.
  // requestTimeout bounds receiving the request only: a long stream back is not cut by it.
  const server = createAdaptorServer({
    fetch: directWrites(fetch),
    serverOptions: {
      headersTimeout: config.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeout: config.HTTP_BODY_TIMEOUT_MS,
      keepAliveTimeout: config.HTTP_KEEP_ALIVE_TIMEOUT_MS,
      // How often Node checks those deadlines (its default, 30 s, would let them run long).
      connectionsCheckingInterval: Math.min(1000, config.HTTP_HEADERS_TIMEOUT_MS),
    },
  }) as Server;
  // The accept queue: connections the kernel has set up and the process has not yet taken. At
  // Node's default (511) a burst of new connections (a spike, a fleet of clients reconnecting)
  // overflowed it while the loop was busy: the kernel dropped their SYNs and each client waited
  // 1 s, then 3 s, then 7 s to retransmit (measured: 192 requests of a x100 spike timed out after
  // 10 s with the service's CPU half idle; nstat TcpExtListenOverflows 3,169). The kernel caps
  // it at net.core.somaxconn (4096 on current Linux).
  server.listen({ port: config.PORT, host: config.HOST, backlog: LISTEN_BACKLOG });
  let inflight = 0;
  let idleWake: (() => void) | undefined;
  server.on("request", (_req, res) => {
    inflight++;
    if (draining()) res.setHeader("connection", "close");
    res.once("close", () => {
      if (--inflight === 0) idleWake?.();
    });
  });
  const url = await listening(server, config.HOST, config.PORT);
  // Accepting one connection per loop turn, a busy process left new clients waiting seconds in
  // the kernel's queue: more descriptors of the same socket accept more per turn (accept.ts).
  await addAcceptors(server, config.LISTEN_ACCEPTORS - 1, (err) =>
    process.stderr.write(`listening with one descriptor only: ${err.message}\n`),
  );
  return {
    server,
    url,
    get inflight() {
      return inflight;
    },
    requestsDone: (ms: number) =>
      new Promise<boolean>((resolve) => {
        if (inflight === 0) return resolve(true);
        const timer = setTimeout(() => resolve(inflight === 0), ms);
        idleWake = () => {
          clearTimeout(timer);
          resolve(true);
        };
      }),
  };
}

export async function startNodeServer(
  config: AppConfig,
  deps: AppDeps,
  app: Hono<AppEnv>,
): Promise<NodeServer> {
  const listener = await listen(config, app.fetch, () => deps.lifecycle.draining);
  return serveApp(config, deps, listener);
}

/** /metrics on its port, and the drain: for a listener whose app is ready. */
async function serveApp(config: AppConfig, deps: AppDeps, listener: Listener): Promise<NodeServer> {
  const { server, url, requestsDone } = listener;
  const lifecycle = deps.lifecycle instanceof Lifecycle ? deps.lifecycle : undefined;
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

  let draining: Promise<void> | undefined;
  const drain = async () => {
    const { logger } = deps;
    deps.lifecycle.draining = true;
    logger.info(
      { graceMs: config.SHUTDOWN_GRACE_MS, inflight: listener.inflight },
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
      logger.warn(
        { inflight: listener.inflight },
        "grace period over: cutting the remaining requests",
      );
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
      return listener.inflight;
    },
    drain: () => (draining ??= drain()),
  };
}

/** Why requests are refused before the app is ready: a signal, or a start-up that failed. */
export type StartEnd = "stopping" | "failed";

/** A server listening while the embedded service starts (`listenEarly`). */
export interface StartingServer {
  url: string;
  /** Requests received and not yet answered. */
  readonly inflight: number;
  /** The app is ready: it serves what waited and all that follows; /metrics starts too. */
  ready(deps: AppDeps, app: Hono<AppEnv>): Promise<NodeServer>;
  /**
   * The app will not come: every waiting and later request is answered 503 (`/ready`: `draining`
   * when stopping), with `connection: close`. The port stays open until `close()`. Does nothing
   * once `ready()` has been called: that server drains.
   */
  refuse(why: StartEnd): void;
  /** Stops listening once the refused requests are answered. */
  close(): Promise<void>;
}

/**
 * Listens before the dependencies exist (embedded mode, see the module comment): `/health` 200,
 * `/ready` 503 `starting`, every other request held until `ready()`, for at most `waitMs`.
 */
export async function listenEarly(
  config: AppConfig,
  { waitMs = STARTUP_WAIT_MS }: { waitMs?: number } = {},
): Promise<StartingServer> {
  let app: Hono<AppEnv> | undefined;
  let deps: AppDeps | undefined;
  let ended: StartEnd | undefined;
  const waiting = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiting]) w();
  };

  /** Resolves once the app is ready, start-up has ended, the client left, or `waitMs` passed. */
  const awaitApp = (signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        waiting.delete(done);
        resolve();
      };
      const timer = setTimeout(done, waitMs);
      signal.addEventListener("abort", done);
      waiting.add(done);
    });

  const whileStarting = async (request: Request, env: object): Promise<Response> => {
    const { pathname } = new URL(request.url);
    const probe = request.method === "GET" || request.method === "HEAD";
    if (probe && pathname === SERVICE_CONTRACT.probes.liveness)
      return Response.json({ status: "ok" });
    if (probe && pathname === SERVICE_CONTRACT.probes.readiness) {
      const status =
        ended === undefined ? "starting" : ended === "stopping" ? "draining" : "failed";
      return Response.json({ status, down: [status] }, { status: 503 });
    }
    if (!ended && !request.signal.aborted) {
      await awaitApp(request.signal);
      if (app && !request.signal.aborted) return (await app.fetch(request, env)) as Response;
    }
    const [type, message] =
      ended === "failed"
        ? ["api_error", "the service failed to start"]
        : ended === "stopping"
          ? ["overloaded_error", "the service is shutting down"]
          : ["overloaded_error", `the service is still starting (waited ${waitMs} ms); retry`];
    const requestId = newRequestId();
    return Response.json(errorBody(type, message, requestId), {
      status: 503,
      headers: {
        "retry-after": String(STARTUP_RETRY_AFTER_S),
        "request-id": requestId,
        ...(ended ? { connection: "close" } : {}),
      },
    });
  };

  const listener = await listen(
    config,
    (request, env) => (app ? app.fetch(request, env) : whileStarting(request, env)),
    () => (deps ? deps.lifecycle.draining : ended !== undefined),
  );
  return {
    url: listener.url,
    get inflight() {
      return listener.inflight;
    },
    async ready(d, a) {
      if (ended) throw new Error(`the server has stopped taking requests (${ended})`);
      deps = d;
      app = a;
      wake();
      return serveApp(config, d, listener);
    },
    refuse(why) {
      if (app) return;
      ended ??= why;
      wake();
      listener.server.closeIdleConnections();
    },
    async close() {
      const closed = new Promise<void>((resolve) => listener.server.close(() => resolve()));
      listener.server.closeIdleConnections();
      await listener.requestsDone(SETTLE_WAIT_MS);
      listener.server.closeAllConnections();
      await closed;
    },
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
