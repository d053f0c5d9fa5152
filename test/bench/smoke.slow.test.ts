/**
 * `npm run bench` end to end, briefly: `--quick --only latency,cache` builds into a temporary
 * directory, runs the service from that bundle against the fake upstream, real Redis and real
 * PostgreSQL, and writes both reports. Checks their shape, never their timings (a shared CI
 * machine makes any timing assertion flaky; the figures are for people, in bench/results).
 */
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { requirePostgresSync, requireRedisSync } from "../support/services";

const run = promisify(execFile);
const root = path.resolve(__dirname, "../..");
const ready = requirePostgresSync() !== null && requireRedisSync() !== null;

(ready ? describe : describe.skip)("npm run bench --quick (smoke)", () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "agent-bench-smoke-"));
  const out = path.join(tmp, "results");
  const dist = path.join(tmp, "dist");
  let stderr = "";

  beforeAll(async () => {
    try {
      const r = await run(
        process.execPath,
        [
          "--import",
          "tsx",
          "bench/run.ts",
          "--quick",
          "--only",
          "latency,cache",
          "--out",
          out,
          "--dist",
          dist,
        ],
        { cwd: root, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 },
      );
      stderr = r.stderr;
    } catch (err) {
      const e = err as { stderr?: string; stdout?: string; message: string };
      throw new Error(`bench run failed: ${e.message}\n${e.stderr ?? ""}\n${e.stdout ?? ""}`);
    }
  }, 300_000);

  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("writes latest.json with the run's machine, scenarios and targets", () => {
    const report = JSON.parse(fs.readFileSync(path.join(out, "latest.json"), "utf8"));
    expect(report).toMatchObject({
      schemaVersion: 1,
      mode: "quick",
      cpuProfile: false,
      scenariosRun: ["latency", "cache"],
      machine: { cores: os.cpus().length, node: process.version },
    });
    expect(typeof report.generatedAt).toBe("string");
    // Every target: a name, the requirement, what was measured and a verdict (true, false or null).
    expect(report.targets.map((t: { name: string }) => t.name)).toEqual([
      "Added p99 at c=1, JSON",
      "Added p99 at c=1, time to first token (SSE)",
      "Cache-hit p99 (JSON, c=1)",
    ]);
    for (const t of report.targets) {
      expect(Object.keys(t).sort()).toEqual(["measured", "name", "pass", "scenario", "target"]);
      expect(t.measured).toMatch(/^[\d.]+ ms$/);
      expect([true, false, null]).toContain(t.pass);
    }
    const { passed, failed, notMeasured } = report.summary;
    expect(passed + failed + notMeasured).toBe(report.targets.length);
  });

  it("records added latency and cache-hit figures as numbers, with every request a MISS or a HIT as intended", () => {
    const report = JSON.parse(fs.readFileSync(path.join(out, "latest.json"), "utf8"));
    const latency = report.scenarios.latency;
    for (const k of ["jsonP50", "jsonP99", "ttftP50", "ttftP99"]) {
      expect(typeof latency.figures.addedMs[k].median).toBe("number");
    }
    expect(latency.figures.anomalies).toEqual({ errors: 0, notMiss: 0 });
    expect(latency.figures.perRound).toHaveLength(1);
    expect(latency.environment.cpuCores).toEqual({
      machine: expect.any(Number),
      bench: expect.any(Number),
      stores: expect.any(Number),
      others: expect.any(Number),
    });
    const cache = report.scenarios.cache;
    for (const k of ["jsonP50", "jsonP99", "sseP50", "sseP99", "healthP50", "healthP99"]) {
      expect(cache.figures.ms[k].median).toBeGreaterThan(0);
    }
    expect(cache.figures.anomalies).toEqual({ errors: 0, notHit: 0 });
  });

  it("writes latest.md with the targets table and a section per scenario", () => {
    const md = fs.readFileSync(path.join(out, "latest.md"), "utf8");
    expect(md).toMatch(/^# Benchmark results/);
    expect(md).toContain(`**${os.cpus().length} cores**`);
    expect(md).toContain("## Targets");
    expect(md).toMatch(
      /\| latency \| Added p99 at c=1, JSON \| ≤ 1 ms \| [\d.]+ ms \| (✅ pass|❌ fail) \|/,
    );
    expect(md).toContain("## latency: ");
    expect(md).toContain("## cache: ");
    expect(md).not.toContain("## throughput");
    // Reports are renamed into place: no temporary file is left behind.
    expect(fs.readdirSync(out).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("reports progress on stderr, scenario by scenario", () => {
    expect(stderr).toContain("▶ latency");
    expect(stderr).toContain("▶ cache");
    expect(stderr).toMatch(/wrote .*latest\.json/);
  });
});
