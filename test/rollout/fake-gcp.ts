/**
 * A local fake of the Google REST endpoints the rollout driver calls (Cloud Run Admin v2,
 * Compute Engine v1 regional MIGs and operations, Cloud Monitoring timeSeries.list), on
 * 127.0.0.1 with a random port. It records every request (bearer token, query, body), refuses
 * one without a bearer token, and serves per-minute metrics from a function the test gives.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import * as z from "zod";
import type { Clock } from "../../infra/rollout/runtime";
import type { GcpBaseUrls, TokenProvider } from "../../infra/rollout/gcp-http";

export const TOKEN = "fake-token-123";
export const tokens: TokenProvider = { getAccessToken: async () => TOKEN };

export interface Recorded {
  method: string;
  path: string;
  query: URLSearchParams;
  authorization?: string;
  body?: unknown;
}

/** One minute of traffic: requests by response class ("2xx"/"5xx" or "200"/"500") and p99. */
export interface MinuteTraffic {
  classes: Record<string, number>;
  p99Ms?: number;
}

export type TrafficSource = (minuteEndMs: number, filter: string) => MinuteTraffic | undefined;

const trafficBody = z.object({
  traffic: z.array(
    z.object({ type: z.string(), revision: z.string().optional(), percent: z.number() }),
  ),
});
type Traffic = z.output<typeof trafficBody>["traffic"];

const fixedOrPercent = z.object({ fixed: z.number().optional(), percent: z.number().optional() });
const migBody = z.object({
  versions: z.array(
    z.object({
      name: z.string().optional(),
      instanceTemplate: z.string(),
      targetSize: fixedOrPercent.optional(),
    }),
  ),
  updatePolicy: z.unknown(),
});

export interface FakeService {
  latestReadyRevision: string;
  latestCreatedRevision?: string;
  reconciling: boolean;
  terminalCondition: { state: string; message?: string };
  traffic: Traffic;
  trafficStatuses: { type: string; revision?: string; percent?: number }[];
}

export interface FakeMig {
  versions: z.output<typeof migBody>["versions"];
  targetSize: number;
  zones: string[];
  isStable: boolean;
  updatePolicy?: unknown;
}

export const REVISION = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION";
export const LATEST = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST";

export class FakeGcp {
  readonly requests: Recorded[] = [];
  service?: FakeService;
  mig?: FakeMig;
  /** GETs that still see the service reconciling after a PATCH. */
  reconcilePolls = 1;
  /** A MIG whose versions include this template never becomes stable (its VMs never get healthy). */
  neverStableTemplate?: string;
  traffic: TrafficSource = () => undefined;
  private server?: Server;
  private ops = 0;
  private reconcilingLeft = 0;
  base = "";

  constructor(
    readonly project = "proj",
    readonly region = "europe-west1",
  ) {}

  get baseUrls(): GcpBaseUrls {
    return { run: this.base, compute: this.base, monitoring: this.base };
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { message: String(err) } }));
      });
    });
    const server = this.server;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    if (!address || typeof address === "string") throw new Error("no TCP address");
    this.base = `http://127.0.0.1:${address.port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  /** The recorded PATCH bodies, in order. */
  patches(): unknown[] {
    return this.requests.filter((r) => r.method === "PATCH").map((r) => r.body);
  }

  monitoringRequests(): Recorded[] {
    return this.requests.filter((r) => r.path.startsWith("/v3/"));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(String(c)));
    const text = Buffer.concat(chunks).toString("utf8");
    const rec: Recorded = {
      method: req.method ?? "GET",
      path: url.pathname,
      query: url.searchParams,
      authorization: req.headers.authorization,
      body: text ? JSON.parse(text) : undefined,
    };
    this.requests.push(rec);
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (rec.authorization !== `Bearer ${TOKEN}`) {
      return send(401, { error: { code: 401, message: "missing or wrong bearer token" } });
    }
    const p = `/projects/${this.project}`;
    const runService = `/v2${p}/locations/${this.region}/services/svc`;
    const mig = `/compute/v1${p}/regions/${this.region}/instanceGroupManagers/agent-mig`;

    if (url.pathname === runService && this.service) {
      if (rec.method === "GET") return send(200, this.serviceJson(this.service));
      if (rec.method === "PATCH") {
        const body = trafficBody.safeParse(rec.body);
        if (url.searchParams.get("updateMask") !== "traffic" || !body.success) {
          return send(400, {
            error: { message: "expected updateMask=traffic and a traffic list" },
          });
        }
        const sum = body.data.traffic.reduce((n, t) => n + t.percent, 0);
        if (sum !== 100) return send(400, { error: { message: `percents sum to ${sum}` } });
        this.applyTraffic(this.service, body.data.traffic);
        return send(200, { name: this.opName("run"), done: false });
      }
    }
    if (url.pathname.startsWith(`/v2${p}/locations/${this.region}/operations/`)) {
      return send(200, { name: url.pathname.slice(4), done: true });
    }
    if (url.pathname === mig && this.mig) {
      if (rec.method === "GET") return send(200, this.migJson(this.mig));
      if (rec.method === "PATCH") {
        const body = migBody.safeParse(rec.body);
        if (!body.success) return send(400, { error: { message: "expected versions" } });
        this.mig.versions = body.data.versions;
        this.mig.updatePolicy = body.data.updatePolicy;
        this.mig.isStable = false;
        return send(200, { name: `op-${++this.ops}`, status: "RUNNING" });
      }
    }
    if (
      url.pathname.startsWith(`/compute/v1${p}/global/instanceTemplates/`) &&
      rec.method === "DELETE"
    ) {
      return send(200, { name: `op-${++this.ops}`, status: "RUNNING" });
    }
    if (url.pathname.startsWith(`/compute/v1${p}/regions/${this.region}/operations/`)) {
      return send(200, { name: url.pathname.split("/").pop(), status: "DONE" });
    }
    if (url.pathname === `/v3${p}/timeSeries` && rec.method === "GET") {
      return send(200, this.timeSeries(url.searchParams));
    }
    return send(404, { error: { message: `no route for ${rec.method} ${url.pathname}` } });
  }

  private opName(kind: string): string {
    return `projects/${this.project}/locations/${this.region}/operations/${kind}-${++this.ops}`;
  }

  private serviceJson(s: FakeService): unknown {
    const reconciling = s.reconciling || this.reconcilingLeft > 0;
    if (this.reconcilingLeft > 0) this.reconcilingLeft--;
    else s.reconciling = false;
    return {
      name: `projects/${this.project}/locations/${this.region}/services/svc`,
      reconciling,
      terminalCondition: reconciling
        ? { type: "Ready", state: "CONDITION_RECONCILING" }
        : { type: "Ready", ...s.terminalCondition },
      latestReadyRevision: `projects/${this.project}/locations/${this.region}/revisions/${s.latestReadyRevision}`,
      latestCreatedRevision: `projects/${this.project}/locations/${this.region}/revisions/${s.latestCreatedRevision ?? s.latestReadyRevision}`,
      traffic: s.traffic,
      trafficStatuses: s.trafficStatuses,
    };
  }

  private applyTraffic(s: FakeService, traffic: Traffic): void {
    s.traffic = traffic;
    // Like the API: a LATEST status carries no revision name, and a 0 % is left out.
    s.trafficStatuses = traffic.map((t) => ({
      type: t.type,
      ...(t.type === REVISION ? { revision: t.revision } : {}),
      ...(t.percent ? { percent: t.percent } : {}),
    }));
    this.reconcilingLeft = this.reconcilePolls;
  }

  private migJson(m: FakeMig): unknown {
    const stuck =
      this.neverStableTemplate !== undefined &&
      m.versions.some((v) => v.instanceTemplate === this.neverStableTemplate);
    const stable = m.isStable && !stuck;
    // The first GET after a PATCH sees the group updating; the next one sees it done.
    if (!m.isStable && !stuck) m.isStable = true;
    return {
      name: "agent-mig",
      instanceTemplate: m.versions[0]?.instanceTemplate,
      versions: m.versions,
      targetSize: m.targetSize,
      status: { isStable: stable, versionTarget: { isReached: stable } },
      currentActions: stable ? { none: m.targetSize } : { creating: 1, none: m.targetSize - 1 },
      distributionPolicy: { zones: m.zones.map((z) => ({ zone: `zones/${z}` })) },
      updatePolicy: m.updatePolicy,
    };
  }

  private timeSeries(q: URLSearchParams): unknown {
    const filter = q.get("filter") ?? "";
    const start = Date.parse(q.get("interval.startTime") ?? "");
    const end = Date.parse(q.get("interval.endTime") ?? "");
    const isCount = /request_count"/.test(filter);
    const minutes: { end: number; data: MinuteTraffic }[] = [];
    for (let t = Math.floor(start / 60_000) * 60_000 + 60_000; t <= end; t += 60_000) {
      const data = this.traffic(t, filter);
      if (data) minutes.push({ end: t, data });
    }
    minutes.reverse(); // newest first, as the API answers
    const interval = (t: number) => ({
      startTime: new Date(t - 60_000).toISOString(),
      endTime: new Date(t).toISOString(),
    });
    if (isCount) {
      const classes = [...new Set(minutes.flatMap((m) => Object.keys(m.data.classes)))];
      return {
        timeSeries: classes.map((c) => ({
          metric: { labels: { response_code_class: c } },
          points: minutes
            .filter((m) => m.data.classes[c] !== undefined)
            .map((m) => ({
              interval: interval(m.end),
              value: { int64Value: String(m.data.classes[c]) },
            })),
        })),
      };
    }
    const points = minutes
      .filter((m) => m.data.p99Ms !== undefined)
      .map((m) => ({ interval: interval(m.end), value: { doubleValue: m.data.p99Ms } }));
    return { timeSeries: points.length ? [{ metric: {}, points }] : [] };
  }
}

/** A clock whose sleep only moves time on. */
export function fakeClock(startMs = Date.UTC(2026, 0, 5, 12, 0, 0)): Clock & { slept: number } {
  const clock = {
    t: startMs,
    slept: 0,
    now: () => clock.t,
    sleep: async (ms: number) => {
      clock.t += ms;
      clock.slept += ms;
    },
  };
  return clock;
}

/** The error `p` rejects with; fails the test when it resolves. */
export async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    if (err instanceof Error) return err;
    throw new Error(`rejected with a non-Error: ${String(err)}`);
  }
  throw new Error("expected a rejection, but the promise resolved");
}
