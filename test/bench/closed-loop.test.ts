/**
 * The benchmark's closed loop (bench/lib/closed-loop.ts), which the peers scenario's throughput,
 * errors and CPU per request come from: measured once every connection has answered, so that a
 * path's throughput is not its speed at accepting a new pool (Portkey's 141-183 "errors" per run
 * were requests queued behind its accept, past the 10 s timeout).
 */
import { closedLoop } from "../../bench/lib/closed-loop";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("closedLoop", () => {
  it("opens the window only once every worker has had a 200: a slow first answer is not measured", async () => {
    let calls = 0;
    const result = await closedLoop(
      async () => {
        // The fourth request waits, as a connection queued behind a slow accept does.
        await sleep(++calls === 4 ? 300 : 2);
        return 200;
      },
      { workers: 4, seconds: 0.2 },
    );
    expect(result.ready).toBe(4);
    expect(result.connectMs).toBeGreaterThanOrEqual(250);
    expect(result.errors).toBe(0);
    expect(result.ok).toBeGreaterThan(0);
  });

  it("counts answers other than 200 before the window apart from those in it", async () => {
    let calls = 0;
    const result = await closedLoop(
      async () => {
        await sleep(2);
        return ++calls <= 10 ? 0 : 200;
      },
      { workers: 3, seconds: 0.1 },
    );
    expect(result.connectErrors).toBe(10);
    expect(result.errors).toBe(0);
    expect(result.ready).toBe(3);
  });

  it("charges the process's CPU time over the window only, per 200 in it", async () => {
    // 1 ms of "CPU" per request started; 500 failed requests before the window would double a
    // figure that counted them.
    let started = 0;
    const result = await closedLoop(
      async () => {
        started++;
        await sleep(1);
        return started <= 500 ? 0 : 200;
      },
      {
        workers: 2,
        seconds: 0.3,
        stats: () => ({ rssMb: 0, hwmMb: 0, cpuSeconds: started / 1000 }),
      },
    );
    expect(result.connectErrors).toBeGreaterThanOrEqual(499);
    // Requests in flight when the window opens and closes shift it by at most 2 of `ok`.
    expect(result.cpuPerRequestUs).toBeGreaterThan(1000 * (1 - 2 / result.ok));
    expect(result.cpuPerRequestUs).toBeLessThan(1000 * (1 + 2 / result.ok));
  });

  it("does not count answers that complete after the window closed", async () => {
    let calls = 0;
    const result = await closedLoop(
      async () => {
        // The first answers at once and opens the window; the next outlasts its 50 ms.
        if (++calls > 1) await sleep(150);
        return 200;
      },
      { workers: 1, seconds: 0.05 },
    );
    expect(result.ok).toBe(0);
    expect(result.rps).toBe(0);
  });

  it("opens the window at the connect timeout when no 200 comes, and counts what comes then as errors", async () => {
    const result = await closedLoop(
      async () => {
        await sleep(5);
        return 503;
      },
      { workers: 2, seconds: 0.1, connectTimeoutMs: 100 },
    );
    expect(result.ready).toBe(0);
    expect(result.connectMs).toBeGreaterThanOrEqual(90);
    expect(result.connectErrors).toBeGreaterThan(0);
    expect(result.errors).toBeGreaterThan(0);
    expect(result.ok).toBe(0);
  });
});
