/**
 * A small TCP proxy on 127.0.0.1 in front of a real service (Redis, Postgres), so a test can
 * take the service away from the app under test without touching the service itself: the real
 * Redis and Postgres are shared with other tests and must never be stopped, flushed or paused.
 *
 *   const proxy = await startTcpProxy({ host: "127.0.0.1", port: 6379 });
 *   startService({ REDIS_URL: proxy.url("redis://127.0.0.1:6379") });
 *   await proxy.cut();      // every connection destroyed, new ones refused (ECONNREFUSED)
 *   await proxy.restore();  // accepting again, on the same port
 *   await proxy.close();
 *
 * `cut()` stops listening, so a client sees what it would see if the service had stopped: its
 * open connections drop and reconnects are refused. `restore()` listens again on the same port.
 * `blackhole()` is the other classic outage, a network partition: connections stay open and new
 * ones are accepted, but no byte moves either way (no reset, no FIN) until `restore()`, which
 * delivers what was held back, as TCP does when a partition heals.
 */
import net from "node:net";

export interface TcpProxyTarget {
  host: string;
  port: number;
}

export interface TcpProxy {
  readonly host: string;
  /** The proxy's port; stays the same across cut() and restore(). */
  readonly port: number;
  /** True between cut() and restore(). */
  readonly isCut: boolean;
  /** True between blackhole() and restore(). */
  readonly isBlackholed: boolean;
  /** Client connections accepted since start (a reconnecting client shows up here). */
  readonly accepted: number;
  /** Connections currently open through the proxy. */
  readonly open: number;
  /** `serviceUrl` with its host and port replaced by the proxy's (credentials, path, query kept). */
  url(serviceUrl: string): string;
  /** Destroy every connection and refuse new ones until restore(). Idempotent. */
  cut(): Promise<void>;
  /** Keep every connection open but forward nothing either way until restore(). Idempotent. */
  blackhole(): void;
  /** Accept connections again (after cut) or forward again (after blackhole). Idempotent. */
  restore(): Promise<void>;
  /** Destroy every connection and stop listening for good. */
  close(): Promise<void>;
}

class TcpProxyServer implements TcpProxy {
  readonly host = "127.0.0.1";
  port = 0;
  accepted = 0;
  private server: net.Server | null = null;
  private readonly pairs = new Set<net.Socket>();
  private cutState = false;
  private holeState = false;
  private closed = false;

  constructor(private readonly target: TcpProxyTarget) {}

  get isCut(): boolean {
    return this.cutState;
  }

  get isBlackholed(): boolean {
    return this.holeState;
  }

  get open(): number {
    return Math.ceil(this.pairs.size / 2);
  }

  url(serviceUrl: string): string {
    const u = new URL(serviceUrl);
    u.hostname = this.host;
    u.port = String(this.port);
    return u.toString();
  }

  async listen(port: number): Promise<void> {
    const server = net.createServer({ noDelay: true }, (client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: this.host, port, exclusive: true }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    // Errors after listening (none expected) must not crash the test process.
    server.on("error", () => undefined);
    this.server = server;
    const address = server.address();
    this.port = typeof address === "object" && address ? address.port : port;
  }

  private accept(client: net.Socket): void {
    if (this.cutState || this.closed) {
      client.destroy();
      return;
    }
    this.accepted++;
    const upstream = net.connect({ host: this.target.host, port: this.target.port, noDelay: true });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      this.pairs.add(s);
      s.setKeepAlive(true);
      // A reset on one side (ECONNRESET, EPIPE) ends the pair; the error itself is expected.
      s.on("error", () => undefined);
      s.on("close", () => {
        this.pairs.delete(s);
        end();
      });
    }
    this.forward(client, upstream);
    this.forward(upstream, client);
    if (this.holeState) {
      client.pause();
      upstream.pause();
    }
  }

  /** Copies `from` to `to` with backpressure; a half-close is passed on. */
  private forward(from: net.Socket, to: net.Socket): void {
    from.on("data", (chunk: Buffer) => {
      if (to.write(chunk)) return;
      from.pause();
      to.once("drain", () => {
        if (!this.holeState) from.resume();
      });
    });
    from.on("end", () => to.end());
  }

  private destroyAll(): void {
    for (const s of this.pairs) s.destroy();
    this.pairs.clear();
  }

  private async stopListening(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async cut(): Promise<void> {
    if (this.closed) throw new Error("tcp proxy is closed");
    this.cutState = true;
    // Stop accepting first, so nothing slips in between destroying and closing.
    const stopped = this.stopListening();
    this.destroyAll();
    await stopped;
  }

  blackhole(): void {
    if (this.closed) throw new Error("tcp proxy is closed");
    this.holeState = true;
    // Not reading leaves bytes in the kernel's buffers: nothing forwarded, nothing lost.
    for (const s of this.pairs) s.pause();
  }

  async restore(): Promise<void> {
    if (this.closed) throw new Error("tcp proxy is closed");
    if (this.holeState) {
      this.holeState = false;
      for (const s of this.pairs) s.resume();
    }
    if (!this.cutState) return;
    await this.listen(this.port);
    this.cutState = false;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const stopped = this.stopListening();
    this.destroyAll();
    await stopped;
  }
}

/** Starts a proxy on 127.0.0.1:<ephemeral port> that forwards every connection to `target`. */
export async function startTcpProxy(target: TcpProxyTarget): Promise<TcpProxy> {
  const proxy = new TcpProxyServer(target);
  await proxy.listen(0);
  return proxy;
}

/** host and port of a redis:// or postgres:// URL, for `startTcpProxy`. */
export function targetOf(serviceUrl: string, defaultPort: number): TcpProxyTarget {
  const u = new URL(serviceUrl);
  return { host: u.hostname || "127.0.0.1", port: Number(u.port || defaultPort) };
}
