/**
 * Admission when the event loop jams (app/src/overload.ts, issue 17 item 3): new requests get a
 * quick 503 with retry-after instead of waiting behind the jam, and what was admitted finishes. The lag is set by hand here (its sampler stopped),
 * so nothing depends on how busy this machine is.
 */
import Anthropic from "@anthropic-ai/sdk";
import { loadConfig } from "../../app/src/config";
import { LoopLag, overloadGuard, Sojourn, StreamGate } from "../../app/src/overload";
import { openRig, QUIET, until, type AbuseRig } from "../support/abuse";
import { serviceBackends } from "../support/services";

const message = (text: string) => ({
  model: "claude-haiku-4-5",
  max_tokens: 32,
  messages: [{ role: "user", content: text }],
});

describe("LoopLag", () => {
  it("takes a jam at once and lets it go over a few samples", () => {
    const lag = new LoopLag(20);
    lag.sample(20); // on time (the clock starts at 0 when not started)
    expect(lag.lagMs).toBe(0);
    lag.sample(20 + 20 + 500); // this timer ran 500 ms late
    expect(lag.lagMs).toBe(500);
    expect(lag.maxMs).toBe(500);
    let now = 540;
    const seen: number[] = [];
    for (let i = 0; i < 5; i++) {
      now += 20;
      lag.sample(now);
      seen.push(lag.lagMs);
    }
    // Decays monotonically, and not to zero in one on-time sample.
    expect(seen[0]).toBe(400);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeLessThan(seen[i - 1]!);
    expect(seen.at(-1)!).toBeGreaterThan(100);
  });
});

describe("LoopLag.takeMean", () => {
  it("is the mean of the samples since the last call, undefined when none was taken", () => {
    const lag = new LoopLag(20);
    expect(lag.takeMean()).toBeUndefined();
    lag.sample(20); // 0 late
    lag.sample(20 + 20 + 300); // 300 late
    lag.sample(340 + 20 + 30); // 30 late
    expect(lag.takeMean()).toBe(110);
    expect(lag.takeMean()).toBeUndefined();
    lag.sample(390 + 20);
    expect(lag.takeMean()).toBe(0);
  });
});

describe("OVERLOAD_LAG_MS", () => {
  it("defaults to on (500 ms, 64 in flight) and 0 turns the guard off", () => {
    const config = loadConfig({});
    expect(config.OVERLOAD_LAG_MS).toBe(500);
    expect(config.OVERLOAD_MIN_IN_FLIGHT).toBe(64);
    expect(loadConfig({ OVERLOAD_LAG_MS: "0" }).OVERLOAD_LAG_MS).toBe(0);
    expect(() => loadConfig({ OVERLOAD_LAG_MS: "-1" })).toThrow(/OVERLOAD_LAG_MS/);
  });

  it("a refusing guard keeps refusing between half the limit and the limit (no flapping)", async () => {
    const lag = new LoopLag();
    const guard = overloadGuard({ maxLagMs: 200, minInFlight: 0 }, lag);
    lag.stop();
    const run = async () => {
      let admitted = false;
      try {
        await guard.middleware({ env: {} } as never, async () => {
          admitted = true;
        });
      } catch {
        // refused
      }
      return admitted;
    };
    lag.lagMs = 150; // under the limit, not yet refusing: admitted
    expect(await run()).toBe(true);
    lag.lagMs = 250; // over: refused
    expect(await run()).toBe(false);
    lag.lagMs = 150; // back under the limit but over half of it: still refused
    expect(await run()).toBe(false);
    expect(guard.refusing).toBe(true);
    lag.lagMs = 90; // under half: admitted again
    expect(await run()).toBe(true);
    expect(guard.refused).toBe(2);
    guard.close();
  });
});

describe("Sojourn (a standing queue, told CoDel's way: by the quickest request of an interval)", () => {
  it("a burst that drains within the interval is not a standing queue: one quick request is enough", () => {
    const s = new Sojourn(100, 500, 0);
    s.record(900, 10);
    s.record(700, 20);
    s.record(30, 400); // one request got through quickly
    expect(s.standing(510)).toBe(false);
    expect(s.lastMinMs).toBe(30);
  });

  it("an interval whose quickest request waited over the target is one, until an interval says otherwise", () => {
    const s = new Sojourn(100, 500, 0);
    s.record(150, 10);
    s.record(300, 200);
    expect(s.standing(499)).toBe(false); // the interval is not over yet
    expect(s.standing(500)).toBe(true);
    expect(s.lastMinMs).toBe(150);
    s.record(120, 600);
    expect(s.standing(1000)).toBe(true);
    s.record(40, 1100);
    expect(s.standing(1500)).toBe(false);
  });

  it("an interval in which no request reached its model call ends it (admitting is how to learn)", () => {
    const s = new Sojourn(100, 500, 0);
    s.record(400, 10);
    expect(s.standing(500)).toBe(true);
    expect(s.standing(1000)).toBe(false);
  });

  it("the guard refuses while there is one, with a message naming OVERLOAD_SOJOURN_MS, and not with fewer in flight than the minimum", async () => {
    const guard = overloadGuard({ maxLagMs: 0, minInFlight: 0, sojournMs: 50, intervalMs: 100 });
    guard.lag.stop();
    const run = async () => {
      try {
        await guard.middleware({ env: {}, set: () => {} } as never, async () => {});
        return "admitted";
      } catch (err) {
        return (err as Error).message;
      }
    };
    guard.sojourn!.record(400);
    await new Promise((r) => setTimeout(r, 150)); // the interval ends
    expect(await run()).toMatch(/OVERLOAD_SOJOURN_MS/);
    expect(guard.refusing).toBe(true);
    await new Promise((r) => setTimeout(r, 150)); // an interval with no request through
    expect(await run()).toBe("admitted");
    guard.close();

    const few = overloadGuard({ maxLagMs: 0, minInFlight: 5, sojournMs: 50, intervalMs: 100 });
    few.lag.stop();
    few.sojourn!.record(400);
    await new Promise((r) => setTimeout(r, 150));
    let admitted = false;
    await few.middleware({ env: {}, set: () => {} } as never, async () => {
      admitted = true;
    });
    expect(admitted).toBe(true);
    few.close();
  });

  it("is off by default (it cost refusals in the benchmark's spike) and takes a target in ms", () => {
    expect(loadConfig({}).OVERLOAD_SOJOURN_MS).toBe(0);
    expect(loadConfig({ OVERLOAD_SOJOURN_MS: "100" }).OVERLOAD_SOJOURN_MS).toBe(100);
    expect(() => loadConfig({ OVERLOAD_SOJOURN_MS: "-5" })).toThrow(/OVERLOAD_SOJOURN_MS/);
  });
});

describe.each(serviceBackends())("overload guard, with $name", (backend) => {
  let rig: AbuseRig;
  beforeAll(async () => {
    // Every answer takes 0.8 s upstream, so two requests can be held in flight while the test looks.
    rig = await openRig(
      backend,
      // The sojourn watch is tested on its own below: here the lag alone decides.
      { ...QUIET, OVERLOAD_MIN_IN_FLIGHT: "2", OVERLOAD_SOJOURN_MS: "0", CACHE_TTL_SECONDS: "0" },
      { fake: { behavior: { latencyMs: 800 } } },
    );
  });
  afterAll(async () => {
    await rig?.close();
  });

  const guard = () => rig.service.deps.overload!;

  it("refuses new requests with a quick 503 while the loop lags, lets the admitted finish, and admits again once it catches up", async () => {
    const g = guard();
    g.lag.stop(); // the test sets the lag
    g.lag.lagMs = 0;
    const held = [
      rig.post("/v1/messages", message("one")),
      rig.post("/v1/messages", message("two")),
    ];
    await until(async () => g.inFlight >= 2, "two requests in flight");
    g.lag.lagMs = 2000;

    const refused = await rig.post("/v1/messages", message("three"));
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(refused.headers.get("x-should-retry")).toBe("true");
    const body = (await refused.json()) as {
      type: string;
      error: { type: string; message: string };
      request_id: string;
    };
    expect(body.type).toBe("error");
    expect(body.error.type).toBe("overloaded_error");
    expect(body.error.message).toMatch(/OVERLOAD_LAG_MS/);
    expect(body.request_id).toMatch(/^req_/);

    // The probes and the admin API still answer an operator.
    expect((await fetch(`${rig.service.url}/health`)).status).toBe(200);

    // What was admitted completes, and is in the ledger; the refused request cost nothing.
    const answers = await Promise.all(held);
    expect(answers.map((r) => r.status)).toEqual([200, 200]);
    const rows = await until(async () => {
      const r = await rig.ledger();
      return r.length >= 2 && r;
    }, "two ledger rows");
    expect(rows).toHaveLength(2);
    expect(g.refused).toBeGreaterThanOrEqual(1);

    g.lag.lagMs = 0;
    expect((await rig.post("/v1/messages", message("four"))).status).toBe(200);
  });

  it("each request that calls the model records once how long it waited in the process before the call", async () => {
    const service = await openRig(backend, {
      ...QUIET,
      CACHE_TTL_SECONDS: "0",
      OVERLOAD_SOJOURN_MS: "100",
    });
    try {
      const sojourn = service.service.deps.overload!.sojourn!;
      const record = jest.spyOn(sojourn, "record");
      expect((await service.post("/v1/messages", message("timed"))).status).toBe(200);
      expect(record).toHaveBeenCalledTimes(1);
      expect(record.mock.calls[0]![0]).toBeGreaterThanOrEqual(0);
    } finally {
      await service.close();
    }
  });

  it("a lag with fewer requests in flight than OVERLOAD_MIN_IN_FLIGHT refuses nothing (a pause, not load)", async () => {
    const g = guard();
    g.lag.stop();
    g.lag.lagMs = 5000;
    const res = await rig.post("/v1/messages", message("alone"));
    expect(res.status).toBe(200);
    g.lag.lagMs = 0;
  });

  it("the official SDK takes the 503 as retryable and gets its answer once the process catches up", async () => {
    const g = guard();
    g.lag.stop();
    g.lag.lagMs = 0;
    const held = [rig.post("/v1/messages", message("a")), rig.post("/v1/messages", message("b"))];
    await until(async () => g.inFlight >= 2, "two requests in flight");
    g.lag.lagMs = 2000;
    const before = g.refused;
    const client = new Anthropic({ apiKey: rig.key, baseURL: rig.service.url, maxRetries: 2 });
    const answer = client.messages.create(message("sdk") as never);
    await until(async () => g.refused > before, "the SDK's first attempt refused");
    g.lag.lagMs = 0; // the retry after retry-after (1 s) is admitted
    const msg = (await answer) as { type: string };
    expect(msg.type).toBe("message");
    await Promise.all(held);
  });
});

describe("StreamGate (OVERLOAD_MAX_STREAMS, OVERLOAD_STREAM_LAG_MS)", () => {
  // The lag's mean over each step, as the test sets it.
  const lag = { lagMs: 0, takeMean: () => lag.lagMs };
  beforeEach(() => (lag.lagMs = 0));

  it("takes streams up to the ceiling, refuses the next, and takes one again when one leaves", () => {
    const gate = new StreamGate(3, 100, lag, 1, 250, 0);
    expect([gate.enter(1), gate.enter(2), gate.enter(3)]).toEqual([true, true, true]);
    // Asking whether it is full takes no place and counts no refusal.
    expect(gate.full(4)).toBe(true);
    expect(gate.refused).toBe(0);
    expect(gate.enter(4)).toBe(false);
    expect(gate.refused).toBe(1);
    gate.leave();
    expect(gate.streams).toBe(2);
    expect(gate.enter(5)).toBe(true);
  });

  /** A gate (ceiling 100, floor 10) with 50 streams open, whose first step under a 300-ms lag refused the 51st. */
  const lowered = () => {
    const gate = new StreamGate(100, 100, lag, 10, 250, 0);
    for (let i = 0; i < 50; i++) expect(gate.enter(1)).toBe(true);
    lag.lagMs = 300;
    // The first step: 0.8 x the 50 open (the 51st is the one asking).
    expect(gate.enter(300)).toBe(false);
    expect(gate.limit).toBe(40);
    // The refusal names the mean lag the gate decided on.
    expect(gate.loweredAtLagMs).toBe(300);
    return gate;
  };

  it("lowers the limit below the streams open while the loop lags, at most once per step, again only once the streams open are within it, never under the floor", () => {
    const gate = lowered();
    // Within the same step the limit holds, even with the lag still high.
    gate.enter(400);
    expect(gate.limit).toBe(40);
    // The next step, still lagging: the 50 streams open came in before the limit fell, and the
    // lag is theirs; lowering it again would compound (it fell 374 -> 67 in 1.5 s in the bench).
    gate.enter(560);
    expect(gate.limit).toBe(40);
    // Ten of them end and the lag stays: 0.8 x the 40 open.
    for (let i = 0; i < 10; i++) gate.leave();
    expect(gate.enter(810)).toBe(false);
    expect(gate.limit).toBe(32);
    // Streams keep ending down to each new limit, the lag stays: down to the floor.
    for (let t = 1060; t < 8000; t += 250) {
      while (gate.streams > gate.limit) gate.leave();
      gate.enter(t);
    }
    expect(gate.limit).toBe(10);
  });

  it("raises it back a twentieth at a time while the lag is under half its target and streams keep asking, up to the ceiling", () => {
    const gate = lowered();
    // Between half the target and the target: held where it is.
    lag.lagMs = 70;
    gate.enter(600);
    expect(gate.limit).toBe(40);
    lag.lagMs = 10;
    gate.enter(900);
    expect(gate.limit).toBe(42);
    // Each step, streams ask until one is refused.
    for (let t = 1200; t < 20_000; t += 250) while (gate.enter(t));
    expect(gate.limit).toBe(100);
  });

  it("holds a limit learnt under load through a quiet spell: the next burst is refused there, not at the ceiling", () => {
    const gate = lowered();
    lag.lagMs = 0;
    while (gate.streams > 0) gate.leave();
    // The step after the refusal still counts it (42); then a minute of a stream now and then.
    if (gate.enter(600)) gate.leave();
    const learnt = gate.limit;
    expect(learnt).toBe(42);
    for (let t = 850; t < 60_000; t += 250) if (gate.enter(t)) gate.leave();
    expect(gate.limit).toBe(learnt);
    let admitted = 0;
    for (let i = 0; i < 100; i++) if (gate.enter(60_000)) admitted++;
    expect(admitted).toBe(learnt);
  });

  it("a lag with fewer streams open than the floor leaves the limit alone (a pause, not streams)", () => {
    const gate = new StreamGate(100, 100, lag, 16, 250, 0);
    for (let i = 0; i < 5; i++) gate.enter(1);
    lag.lagMs = 5000;
    expect(gate.enter(1000)).toBe(true);
    expect(gate.limit).toBe(100);
  });

  it("stretches retry-after while it refuses far more streams than places come free (to 30 s), and shrinks it back once it refuses none", () => {
    const gate = new StreamGate(10, 0, lag, 1, 250, 0);
    for (let i = 0; i < 10; i++) expect(gate.enter(1)).toBe(true);
    expect(gate.retryAfterSeconds()).toBe(1);
    // 20 refusals a step, no place freed: twofold a step, at most.
    const seen: number[] = [];
    let t = 0;
    for (let step = 0; step < 7; step++) {
      t += 250;
      for (let i = 0; i < 20; i++) expect(gate.enter(t)).toBe(false);
      seen.push(gate.retryAfterSeconds());
    }
    expect(seen).toEqual([1, 2, 4, 8, 16, 30, 30]);
    // A place comes free each step and the one asking takes it: nobody refused, 30 s shrinks by
    // a fifth a step.
    const after: number[] = [];
    for (let step = 0; step < 3; step++) {
      t += 250;
      gate.leave();
      expect(gate.enter(t)).toBe(true);
      after.push(gate.retryAfterSeconds());
    }
    expect(after).toEqual([30, 24, 20]);
    // A minute with nobody asking: back to 1 s for the next refusal.
    t += 60_000;
    expect(gate.enter(t)).toBe(false);
    expect(gate.retryAfterSeconds()).toBe(1);
  });

  it("keeps retry-after at 1 s while refusals stay within twice the places freed", () => {
    const gate = new StreamGate(10, 0, lag, 1, 250, 0);
    for (let i = 0; i < 10; i++) gate.enter(1);
    let t = 0;
    for (let step = 0; step < 20; step++) {
      t += 250;
      for (let i = 0; i < 5; i++) gate.leave();
      for (let i = 0; i < 5; i++) expect(gate.enter(t)).toBe(true);
      for (let i = 0; i < 10; i++) expect(gate.enter(t)).toBe(false);
    }
    expect(gate.retryAfterSeconds()).toBe(1);
  });

  it("with OVERLOAD_STREAM_LAG_MS 0 only the ceiling applies", () => {
    const gate = new StreamGate(10, 0, lag, 1, 250, 0);
    for (let i = 0; i < 5; i++) gate.enter(1);
    lag.lagMs = 5000;
    gate.enter(1000);
    expect(gate.limit).toBe(10);
  });

  it("in the guard, a lag seen by fewer streams than OVERLOAD_MIN_IN_FLIGHT lowers nothing (the memory soak's pauses refused streams with a floor of 16)", async () => {
    const lag = new LoopLag(20);
    const guard = overloadGuard({ maxLagMs: 500, minInFlight: 64, maxStreams: 384 }, lag);
    try {
      lag.stop();
      const gate = guard.streams!;
      for (let i = 0; i < 40; i++) expect(gate.enter()).toBe(true);
      let t = 0;
      for (let i = 0; i < 10; i++) lag.sample((t += 20 + 300)); // 300 ms late, ten times over
      await new Promise((r) => setTimeout(r, 300)); // a step of the gate
      expect(gate.enter()).toBe(true);
      expect(gate.limit).toBe(384);
    } finally {
      guard.close();
    }
  });

  it("config: defaults and bad values name the key", () => {
    const config = loadConfig({});
    expect(config.OVERLOAD_MAX_STREAMS).toBe(384);
    expect(config.OVERLOAD_STREAM_LAG_MS).toBe(100);
    expect(() => loadConfig({ OVERLOAD_MAX_STREAMS: "-1" })).toThrow(/OVERLOAD_MAX_STREAMS/);
    expect(() => loadConfig({ OVERLOAD_STREAM_LAG_MS: "x" })).toThrow(/OVERLOAD_STREAM_LAG_MS/);
  });
});

/**
 * A service with a stream gate of `maxStreams` places (the lag rule off, no response cache) for
 * the enclosing describe block; `env` adds to its environment.
 */
function gatedService(maxStreams: number, env: Record<string, string> = {}): () => AbuseRig {
  let rig: AbuseRig | undefined;
  beforeAll(async () => {
    rig = await openRig(serviceBackends()[0]!, {
      ...QUIET,
      OVERLOAD_MAX_STREAMS: String(maxStreams),
      OVERLOAD_STREAM_LAG_MS: "0",
      CACHE_TTL_SECONDS: "0",
      ...env,
    });
  });
  afterAll(async () => {
    await rig?.close();
  });
  return () => rig!;
}

describe("the stream gate in the service", () => {
  const service = gatedService(2);

  // 12 deltas 100 ms apart: each stream stays open for about 1.2 s.
  const slow = (text: string) => ({
    ...message(`${text} [[fake:{"deltas":12,"deltaIntervalMs":100}]]`),
    stream: true,
  });

  it("refuses a stream past OVERLOAD_MAX_STREAMS with a quick 503 that costs nothing, serves JSON meanwhile, and takes streams again once one ends", async () => {
    const rig = service();
    const gate = rig.service.deps.overload!.streams!;
    const first = await rig.post("/v1/messages", slow("one"));
    const second = await rig.post("/v1/messages", slow("two"));
    expect([first.status, second.status]).toEqual([200, 200]);
    expect(gate.streams).toBe(2);

    const refused = await rig.post("/v1/messages", slow("three"));
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(refused.headers.get("x-should-retry")).toBe("true");
    const body = (await refused.json()) as { error: { type: string; message: string } };
    expect(body.error.type).toBe("overloaded_error");
    expect(body.error.message).toMatch(/relaying 2 streams.*OVERLOAD_MAX_STREAMS/);
    expect(rig.service.deps.overload!.refused).toBeGreaterThanOrEqual(1);

    // JSON is not a stream: it is served while the streams hold every place.
    expect((await rig.post("/v1/messages", message("json meanwhile"))).status).toBe(200);

    // The admitted streams run to their end; then their places are free again.
    const texts = await Promise.all([first.text(), second.text()]);
    for (const t of texts) expect(t).toContain("event: message_stop");
    await until(async () => gate.streams === 0, "both streams closed");
    const again = await rig.post("/v1/messages", slow("four"));
    expect(again.status).toBe(200);
    await again.text();
    // Four answered (two streams, the JSON request, the fourth stream): four ledger lines and
    // four model calls. The refused stream reached neither.
    const rows = await until(async () => {
      const r = await rig.ledger();
      return r.length >= 4 && r;
    }, "the ledger lines of the four answered requests");
    expect(rows).toHaveLength(4);
    expect(rig.fake.requests.filter((r) => r.path === "/v1/messages")).toHaveLength(4);
  });

  it("a client that leaves mid-stream gives its place back", async () => {
    const rig = service();
    const gate = rig.service.deps.overload!.streams!;
    await until(async () => gate.streams === 0, "no stream open");
    const controller = new AbortController();
    const res = await rig.post("/v1/messages", slow("leaving"), {}, controller.signal);
    expect(res.status).toBe(200);
    expect(gate.streams).toBe(1);
    controller.abort();
    await until(async () => gate.streams === 0, "the place given back");
  });
});

describe("the stream gate before the rate limiter", () => {
  const service = gatedService(1, { RATE_LIMIT_RPM: "4" });

  it("a stream refused while every place is taken is not counted against RATE_LIMIT_RPM (no Redis round trip is spent on it)", async () => {
    const rig = service();
    const gate = rig.service.deps.overload!.streams!;
    const open = await rig.post("/v1/messages", {
      ...message(`held [[fake:{"deltas":8,"deltaIntervalMs":100}]]`),
      stream: true,
    });
    expect(open.status).toBe(200);
    expect(gate.streams).toBe(1);
    // Five refusals: past RATE_LIMIT_RPM 4 had they been counted.
    for (let i = 0; i < 5; i++) {
      const refused = await rig.post("/v1/messages", { ...message(`refused ${i}`), stream: true });
      expect(refused.status).toBe(503);
      expect(((await refused.json()) as { error: { type: string } }).error.type).toBe(
        "overloaded_error",
      );
    }
    expect(await open.text()).toContain("event: message_stop");
    await until(async () => gate.streams === 0, "the stream closed");
    // Two of the four requests of the minute used: the next stream is served.
    const next = await rig.post("/v1/messages", { ...message("served"), stream: true });
    expect(next.status).toBe(200);
    expect(next.headers.get("anthropic-ratelimit-requests-remaining")).toBe("2");
    await next.text();
  });
});
