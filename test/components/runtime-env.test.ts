import { setupPulumiMocks, outputOf } from "../support/pulumi";
import { fakeAwsDataPlane, fakeGcpDataPlane, FAKE_AWS, FAKE_GCP } from "../support/fake-data-plane";
import {
  plainServiceEnv,
  secretBindings,
  secretReference,
  serviceEnv,
} from "../../components/runtime-env";
import { loadConfig } from "../../app/src/config";

setupPulumiMocks({ stack: "dev" });

const resolveAll = async (env: Record<string, unknown>) => {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) out[k] = (await outputOf(v as never)) as string;
  return out;
};

describe("service environment from a data plane", () => {
  it("gives the app endpoints and secret references, never a secret value (AWS)", async () => {
    const env = await resolveAll(serviceEnv(fakeAwsDataPlane()));
    expect(env.DATABASE_URL).toMatch(
      new RegExp(`^postgres://[a-z_]+@${FAKE_AWS.postgresHost}:5432/[a-z_]+\\?sslmode=require`),
    );
    expect(env.REDIS_URL).toBe(`rediss://${FAKE_AWS.redisHost}:6379`);
    expect(env.ANTHROPIC_API_KEY_SECRET).toBe(`aws-sm://${FAKE_AWS.secretArns.anthropic}`);
    expect(env.DATABASE_PASSWORD_SECRET).toBe(`aws-sm://${FAKE_AWS.secretArns.postgres}`);
    expect(env.REDIS_PASSWORD_SECRET).toBe(`aws-sm://${FAKE_AWS.secretArns.redis}`);
    expect(Object.keys(env)).not.toEqual(
      expect.arrayContaining(["ANTHROPIC_API_KEY", "DATABASE_PASSWORD", "REDIS_PASSWORD"]),
    );
    // The app accepts exactly this environment (secrets resolved separately at start-up).
    const {
      ANTHROPIC_API_KEY_SECRET: _a,
      DATABASE_PASSWORD_SECRET: _d,
      REDIS_PASSWORD_SECRET: _r,
      ...plain
    } = env;
    expect(() => loadConfig(plain)).not.toThrow();
  });

  it("references GCP secrets by version and passes Memorystore's CA", async () => {
    const dp = fakeGcpDataPlane();
    const env = await resolveAll(serviceEnv(dp));
    expect(env.ANTHROPIC_API_KEY_SECRET).toBe(
      `gcp-sm://${FAKE_GCP.secretIds.anthropic}/versions/latest`,
    );
    expect(env.REDIS_TLS_CA).toBe(FAKE_GCP.redisCa);
    expect(
      loadConfig({ REDIS_TLS_CA: env.REDIS_TLS_CA, REDIS_URL: env.REDIS_URL }).REDIS_TLS_CA,
    ).toBe(FAKE_GCP.redisCa);
  });

  it("binds the three secrets the app needs", () => {
    expect(secretBindings(fakeAwsDataPlane()).map((b) => b.variable)).toEqual([
      "ANTHROPIC_API_KEY",
      "DATABASE_PASSWORD",
      "REDIS_PASSWORD",
    ]);
  });

  it("refuses extra variables that look like secrets", () => {
    expect(() =>
      plainServiceEnv(fakeAwsDataPlane(), { extra: { STRIPE_API_KEY: "sk_live" } }),
    ).toThrow(/STRIPE_API_KEY looks like a secret: pass it through the secret store instead/);
    expect(() =>
      plainServiceEnv(fakeAwsDataPlane(), { extra: { BUDGET_DAILY_USD: "50" } }),
    ).not.toThrow();
  });

  it("formats references the app's resolver understands", async () => {
    const ref = fakeAwsDataPlane().anthropicKey!;
    expect(await outputOf(secretReference(ref))).toMatch(/^aws-sm:\/\/arn:aws:secretsmanager:/);
  });
});
