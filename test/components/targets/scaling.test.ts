import {
  cloudRunCpu,
  memoryMiB,
  millicores,
  scalingProblems,
  targetScaling,
  type TargetScaling,
} from "../../../components/targets/scaling";

describe("targetScaling defaults", () => {
  test("dev: small, scale to zero, no warm Lambda sandboxes", () => {
    const s = targetScaling("dev");
    expect(s.environment).toBe("dev");
    expect(s.lambda).toMatchObject({
      reservedConcurrency: 10,
      provisionedConcurrency: 0,
      databasePoolMax: 2,
    });
    expect(s.cloudRun).toEqual({
      minInstances: 0,
      maxInstances: 5,
      concurrency: 80,
      cpu: "1",
      memory: "1Gi",
    });
    expect(s.vm).toMatchObject({ minInstances: 1, maxInstances: 3 });
  });

  test("prod: warm capacity, bounded maxima, EKS HPA 2..20 at 70 % with 250m/512Mi requests", () => {
    const s = targetScaling("prod");
    expect(s.lambda).toMatchObject({ reservedConcurrency: 200 });
    expect(s.lambda.provisionedConcurrency).toBeGreaterThan(0);
    expect(s.lambda.provisionedConcurrency).toBeLessThanOrEqual(s.lambda.reservedConcurrency);
    expect(s.cloudRun).toEqual({
      minInstances: 2,
      maxInstances: 20,
      concurrency: 80,
      cpu: "1",
      memory: "1Gi",
    });
    expect(s.eks).toEqual({
      minReplicas: 2,
      maxReplicas: 20,
      targetCpuPercent: 70,
      requests: { cpu: "250m", memory: "512Mi" },
      limits: { cpu: "500m", memory: "1Gi" },
    });
    expect(s.vm).toMatchObject({ minInstances: 2, maxInstances: 10 });
  });

  test.each(["dev", "staging", "prod"] as const)(
    "%s defaults are valid and Lambda timeouts fit a Function URL",
    (env) => {
      const s = targetScaling(env);
      expect(scalingProblems(s)).toEqual([]);
      expect(s.lambda.timeoutSeconds).toBeLessThanOrEqual(900);
      // Every environment bounds cost.
      expect(s.cloudRun.maxInstances).toBeGreaterThanOrEqual(s.cloudRun.minInstances);
    },
  );

  test("returns fresh objects: mutating one result does not leak into the next", () => {
    const a = targetScaling("dev");
    a.eks.requests.cpu = "9";
    a.cloudRun.maxInstances = 999;
    const b = targetScaling("dev");
    expect(b.eks.requests.cpu).toBe("100m");
    expect(b.cloudRun.maxInstances).toBe(5);
  });

  test("unknown environment names the choices", () => {
    expect(() => targetScaling("qa" as never)).toThrow(
      /Unknown environment "qa": use one of dev, staging, prod/,
    );
  });
});

describe("targetScaling overrides", () => {
  test("override single fields, keep the rest; undefined does not erase a default", () => {
    const s = targetScaling("prod", {
      cloudRun: { maxInstances: 50, minInstances: undefined },
      eks: { limits: { memory: "2Gi" } },
      lambda: { memoryMb: 2048 },
    });
    expect(s.cloudRun).toMatchObject({ minInstances: 2, maxInstances: 50 });
    expect(s.eks.limits).toEqual({ cpu: "500m", memory: "2Gi" });
    expect(s.eks.requests).toEqual({ cpu: "250m", memory: "512Mi" });
    expect(s.lambda.memoryMb).toBe(2048);
    expect(s.lambda.reservedConcurrency).toBe(200);
  });

  test.each<[string, Parameters<typeof targetScaling>[1], RegExp]>([
    [
      "cloud run min > max",
      { cloudRun: { minInstances: 6, maxInstances: 3 } },
      /cloudRun\.minInstances \(6\) is greater than cloudRun\.maxInstances \(3\)/,
    ],
    [
      "eks min > max",
      { eks: { minReplicas: 5, maxReplicas: 2 } },
      /eks\.minReplicas \(5\) is greater than eks\.maxReplicas \(2\)/,
    ],
    [
      "vm min > max",
      { vm: { minInstances: 4, maxInstances: 1 } },
      /vm\.minInstances \(4\) is greater than vm\.maxInstances \(1\)/,
    ],
    [
      "negative instances",
      { cloudRun: { minInstances: -1 } },
      /cloudRun\.minInstances is -1: use a whole number/,
    ],
    ["zero max", { cloudRun: { maxInstances: 0 } }, /cloudRun\.maxInstances is 0/],
    ["fractional replicas", { eks: { minReplicas: 1.5 } }, /eks\.minReplicas is 1\.5/],
    [
      "lambda timeout beyond 15 minutes",
      { lambda: { timeoutSeconds: 901 } },
      /lambda\.timeoutSeconds is 901: use a whole number from 1 to 900/,
    ],
    ["lambda memory", { lambda: { memoryMb: 64 } }, /lambda\.memoryMb is 64/],
    [
      "reserved 0 disables the function",
      { lambda: { reservedConcurrency: 0 } },
      /lambda\.reservedConcurrency is 0/,
    ],
    [
      "provisioned above reserved",
      { lambda: { reservedConcurrency: 5, provisionedConcurrency: 6 } },
      /lambda\.provisionedConcurrency \(6\) is greater than lambda\.reservedConcurrency \(5\)/,
    ],
    [
      "throttle rate",
      { lambda: { throttleRatePerSecond: 0 } },
      /lambda\.throttleRatePerSecond is 0/,
    ],
    ["cpu format", { cloudRun: { cpu: "one" } }, /cloudRun\.cpu is "one"/],
    ["cpu 3 does not exist", { cloudRun: { cpu: "3" } }, /cloudRun\.cpu is "3"/],
    [
      "fractional cpu with concurrency",
      { cloudRun: { cpu: "0.5" } },
      /cloudRun\.cpu "0\.5" is below one vCPU.*concurrency to 1/,
    ],
    [
      "gen2 memory floor",
      { cloudRun: { memory: "256Mi" } },
      /cloudRun\.memory "256Mi" is below 512Mi/,
    ],
    [
      "memory per cpu",
      { cloudRun: { memory: "8Gi" } },
      /cloudRun\.memory "8Gi" exceeds 4Gi.*cpu "1"/,
    ],
    ["memory format", { cloudRun: { memory: "1GB" } }, /cloudRun\.memory is "1GB"/],
    ["concurrency", { cloudRun: { concurrency: 1001 } }, /cloudRun\.concurrency is 1001/],
    [
      "requests above limits",
      { eks: { requests: { cpu: "1" }, limits: { cpu: "500m" } } },
      /eks\.requests\.cpu \(1\) is greater than eks\.limits\.cpu \(500m\)/,
    ],
    [
      "memory request above limit",
      { eks: { requests: { memory: "2Gi" } } },
      /eks\.requests\.memory \(2Gi\) is greater than eks\.limits\.memory \(1Gi\)/,
    ],
    ["hpa target", { eks: { targetCpuPercent: 0 } }, /eks\.targetCpuPercent is 0/],
    ["eks quantity", { eks: { limits: { cpu: "lots" } } }, /eks\.limits\.cpu is "lots"/],
  ])("%s is rejected with the field named", (_label, overrides, message) => {
    expect(() => targetScaling("prod", overrides)).toThrow(message);
  });

  test("every problem is reported at once, prefixed with the environment", () => {
    let message = "";
    try {
      targetScaling("dev", { cloudRun: { minInstances: 9 }, vm: { maxInstances: 0 } });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/^Invalid dev scaling: /);
    expect(message).toContain(
      "cloudRun.minInstances (9) is greater than cloudRun.maxInstances (5)",
    );
    expect(message).toContain("vm.maxInstances is 0");
  });

  test("valid non-default combinations pass", () => {
    const s: TargetScaling = targetScaling("dev", {
      cloudRun: { cpu: "0.5", concurrency: 1, memory: "512Mi" },
    });
    expect(s.cloudRun).toMatchObject({ cpu: "0.5", concurrency: 1 });
    expect(targetScaling("prod", { cloudRun: { cpu: "2", memory: "8Gi" } }).cloudRun.memory).toBe(
      "8Gi",
    );
  });
});

describe("quantity parsers", () => {
  test("cloud run cpu", () => {
    expect(cloudRunCpu("1")).toBe(1);
    expect(cloudRunCpu("0.5")).toBe(0.5);
    expect(cloudRunCpu("2000m")).toBe(2);
    expect(cloudRunCpu("x")).toBeUndefined();
  });
  test("memory", () => {
    expect(memoryMiB("512Mi")).toBe(512);
    expect(memoryMiB("1Gi")).toBe(1024);
    expect(memoryMiB("1G")).toBeUndefined();
  });
  test("millicores", () => {
    expect(millicores("250m")).toBe(250);
    expect(millicores("1")).toBe(1000);
    expect(millicores("0.5")).toBe(500);
    expect(millicores("1 cpu")).toBeUndefined();
  });
});
