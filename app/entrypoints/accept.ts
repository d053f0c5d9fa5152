/**
 * More than one connection accepted per turn of the event loop.
 *
 * Since libuv 1.45 (Node 20 and 22) a listening socket accepts **one connection per turn of the
 * loop** (libuv/libuv#3696, "unix: don't accept() connections in a loop"). A service busy with
 * hundreds of streams turns its loop every 30-50 ms, so it took new connections at 20-30 a second.
 * Measured with the streams benchmark on the 2-core machine (`ss -ltn` Recv-Q of the service's
 * port, sampled every 50 ms): after 1,024 clients connected within a second, 830 connections
 * waited in the kernel's accept queue and it drained at ~30 a second; the last clients got their
 * first token 13-14 s after sending, while a request, once read, had its first token within
 * 0.5 s. At 256 streams the same queue reached 64 and cost the slowest first tokens 1.5-2.8 s.
 * Node's cluster does not help: a worker takes the connections the primary passes it at one per
 * turn as well (measured the same way).
 *
 * What does help: several file descriptors for the one listening socket, each watched by the loop
 * and each accepting one connection per turn. Node has no dup(2), but passing a listening server
 * to another process over IPC (`child.send(message, server)`, as cluster does for shared handles)
 * gives the receiver a new descriptor for the same socket. A short-lived helper process receives
 * the service's listening handle and sends it back `count` times; the service then watches
 * `count + 1` descriptors of its one socket and hands every connection they accept to its HTTP
 * server. Nothing else changes: one socket, one port, one accept queue, the same backlog.
 * (Node 22.12+ also has `reusePort`, which spreads connections over several sockets instead; this
 * works on Node 20 as well, and keeps the single queue.)
 */
import { spawn } from "node:child_process";
import type { Server as NetServer, Socket } from "node:net";

/**
 * The helper: takes one listening handle, sends it back as many times as asked, then exits. While
 * it holds the handle it listens on the socket too (Node listens on a server handle it receives),
 * so it takes its share of the connections arriving meanwhile: each goes back to the service,
 * unread (pauseOnConnect), before the helper closes its descriptor and the channel. Before
 * 2026-12-07 it kept them: a client connecting in those few milliseconds of start-up (the service
 * already answers /ready) waited on a connection nobody would ever read (seen once in the cache
 * benchmark: its first request, HTTP 0 after 30 s, none in flight in the service).
 */
const HELPER = `
// The channel stays referenced after the first message: with no listener left the process would
// exit with handles still queued on it (Node sends them one at a time, each acknowledged).
process.channel.ref();
process.once("message", (m, server) => {
  let left = m.count;
  if (!server || left <= 0) process.exit(0);
  let handing = 0;
  let closed = false;
  const finish = () => { if (closed && handing === 0) process.disconnect(); };
  server.pauseOnConnect = true;
  server.on("connection", (socket) => {
    handing++;
    process.send({ connection: true }, socket, () => { handing--; finish(); });
  });
  for (let i = 0; i < m.count; i++)
    process.send({ acceptor: true }, server, () => {
      if (--left > 0) return;
      // Its descriptor closes now (its "close" event waits for the service's connections).
      server.close();
      closed = true;
      finish();
    });
});`;

/** How long start-up waits for the helper before listening with the one descriptor alone. */
export const HELPER_TIMEOUT_MS = 5000;

/**
 * Adds `count` more descriptors of `server`'s listening socket, each handing its connections to
 * `server` ('connection', as if `server` had accepted them). `server` must be listening. Closing
 * `server` closes them too. Resolves with how many were added (0 if the helper could not run: the
 * server then accepts as before, one connection per turn), once the helper has let go of the
 * socket: from then on, closing `server` closes every descriptor of it.
 */
export function addAcceptors(
  server: NetServer,
  count: number,
  onError: (err: Error) => void = () => {},
): Promise<number> {
  if (count <= 0 || !server.listening) return Promise.resolve(0);
  const extra: NetServer[] = [];
  // Closing the server stops every descriptor from accepting (the drain relies on it).
  const close = server.close.bind(server);
  server.close = ((callback?: (err?: Error) => void) => {
    for (const s of extra.splice(0)) s.close();
    return close(callback);
  }) as typeof server.close;

  return new Promise<number>((resolve) => {
    let settled = false;
    const done = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // Done, the helper closes the channel itself once it has handed back every connection it
      // took; failed, it is stopped.
      if (err) {
        if (child.connected) child.disconnect();
        child.kill();
        onError(err);
      } else {
        // It never holds the service open, and is stopped should it linger.
        child.unref();
        child.channel?.unref();
        setTimeout(() => {
          if (child.connected) child.kill();
        }, HELPER_TIMEOUT_MS).unref();
      }
      resolve(extra.length);
    };
    const child = spawn(process.execPath, ["-e", HELPER], {
      stdio: ["ignore", "ignore", "ignore", "ipc"],
      env: {},
    });
    // Until the helper has sent every descriptor, a failure to stop it for; then, only a wait cut
    // short should it linger (see below).
    let timer = setTimeout(
      () => done(new Error(`the acceptor helper did not answer within ${HELPER_TIMEOUT_MS} ms`)),
      HELPER_TIMEOUT_MS,
    );
    timer.unref();
    child.on("error", (err) => done(err));
    // The channel closes after every message sent on it has been read (not so the exit, which
    // can be seen first): whatever the helper did or did not send has arrived by then.
    child.on("disconnect", () => done());
    child.on(
      "message",
      (message: { acceptor?: boolean; connection?: boolean }, handle: unknown) => {
        // A connection the helper accepted while it held the socket: served here like any other.
        if (message?.connection && handle) {
          server.emit("connection", handle as Socket);
          return;
        }
        if (!message?.acceptor || !handle) return;
        const acceptor = handle as NetServer;
        if (!server.listening) {
          acceptor.close();
          return;
        }
        acceptor.on("connection", (socket: Socket) => server.emit("connection", socket));
        acceptor.on("error", (err) => onError(err));
        // Not done yet at `count`: the helper still holds its own descriptor, and listens on it,
        // until it disconnects. Resolving before (until 2026-12-07) left a window in which a
        // server closed at once still took connections on its port, then reset them.
        extra.push(acceptor);
        if (extra.length < count) return;
        // It has sent everything asked: no longer a failure to stop (stopping it would drop the
        // connections it is handing back), only one to stop waiting for, should it linger.
        clearTimeout(timer);
        timer = setTimeout(() => done(), HELPER_TIMEOUT_MS);
        timer.unref();
      },
    );
    child.send({ count }, server, (err) => {
      if (err) done(err);
    });
  });
}
