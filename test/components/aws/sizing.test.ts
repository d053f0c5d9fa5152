/** Pure functions only: sizing per environment and the shared checks. No Pulumi runtime. */
import {
  checkAutonamedIdentifier,
  checkAwsRegion,
  checkEmail,
  checkLogRetention,
} from "../../../components/aws/checks";
import { awsSizing } from "../../../components/aws/sizing";
import { environmentProfile } from "../../../components/environment";

const [dev, staging, prod] = (["dev", "staging", "prod"] as const).map((e) =>
  awsSizing(environmentProfile(e)),
);

describe("awsSizing", () => {
  test("only prod is highly available and protected", () => {
    expect(
      [dev, staging, prod].map((s) => [
        s!.redis.multiAz,
        s!.postgres.multiAz,
        s!.protectData,
        s!.postgres.deletionProtection,
      ]),
    ).toEqual([
      [false, false, false, false],
      [false, false, false, false],
      [true, true, true, true],
    ]);
  });

  test("HA Redis has a replica and failover; non-HA has neither", () => {
    expect([dev!.redis.numCacheClusters, dev!.redis.automaticFailover]).toEqual([1, false]);
    expect([prod!.redis.numCacheClusters, prod!.redis.automaticFailover]).toEqual([2, true]);
  });

  test("sizes grow with the environment", () => {
    expect([dev, staging, prod].map((s) => s!.postgres.instanceClass)).toEqual([
      "db.t4g.micro",
      "db.t4g.small",
      "db.m7g.large",
    ]);
    expect([dev, staging, prod].map((s) => s!.redis.nodeType)).toEqual([
      "cache.t4g.micro",
      "cache.t4g.small",
      "cache.m7g.large",
    ]);
    for (const s of [dev, staging, prod])
      expect(s!.postgres.maxAllocatedStorageGb).toBeGreaterThan(s!.postgres.allocatedStorageGb);
  });

  test("retention and recovery follow the profile", () => {
    expect([dev, staging, prod].map((s) => s!.postgres.backupRetentionDays)).toEqual([1, 7, 30]);
    expect([dev, staging, prod].map((s) => s!.postgres.finalSnapshot)).toEqual([false, true, true]);
    expect([dev, staging, prod].map((s) => s!.logRetentionDays)).toEqual([7, 30, 90]);
    expect([dev, staging, prod].map((s) => s!.secretRecoveryWindowDays)).toEqual([0, 0, 30]);
    expect([dev, staging, prod].map((s) => s!.redis.snapshotRetentionDays)).toEqual([0, 0, 7]);
  });

  test("network layout follows the profile", () => {
    expect([dev, prod].map((s) => s!.network)).toEqual([
      { availabilityZones: 2, natGateways: "single", flowLogs: false },
      { availabilityZones: 3, natGateways: "per-az", flowLogs: true },
    ]);
  });

  test("every profile's log retention is one CloudWatch accepts", () => {
    for (const s of [dev, staging, prod])
      expect(checkLogRetention(s!.logRetentionDays)).toBeUndefined();
  });

  test("an unknown environment is refused where profiles come from (the one per-environment table)", () => {
    expect(() => environmentProfile("qa" as never)).toThrow(
      'Unknown environment "qa": use one of dev, staging, prod.',
    );
  });
});

describe("checks", () => {
  test("regions", () => {
    for (const r of ["us-east-1", "eu-west-3", "ap-southeast-5", "us-gov-west-1"])
      expect(checkAwsRegion(r)).toBeUndefined();
    for (const r of ["us-east", "useast1", "US-EAST-1", "us-central1"])
      expect(checkAwsRegion(r)).toMatch(/is not an AWS region name/);
  });

  test("auto-named identifiers: charset and room for the suffix", () => {
    expect(checkAutonamedIdentifier("agent-cache", 40, "Redis")).toBeUndefined();
    expect(checkAutonamedIdentifier("a".repeat(32), 40, "Redis")).toBeUndefined();
    expect(checkAutonamedIdentifier("a".repeat(33), 40, "Redis")).toMatch(
      /33 characters; .* at most 32/,
    );
    for (const bad of ["1abc", "a--b", "ab-", "a_b", "Ab"])
      expect(checkAutonamedIdentifier(bad, 40, "Redis")).toMatch(/must be lowercase/);
  });

  test("log retention and e-mail", () => {
    expect(checkLogRetention(14)).toBeUndefined();
    expect(checkLogRetention(15, "x")).toMatch(/^x is 15: CloudWatch Logs accepts only 1, 3, 5/);
    expect(checkEmail("a.b@example.co")).toBeUndefined();
    expect(checkEmail("a b@example.com")).toMatch(/not an e-mail address/);
  });
});
