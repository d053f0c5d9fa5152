/**
 * What the target tests share: building a target's args on a fake data plane, rendering under
 * the mocks, the checks every target must pass (children named after and parented to the
 * component, bad args refused with a ResourceError), and cloud-init's own validator for VM user
 * data. Build fake data planes and secrets inside tests, after `setupPulumiMocks`.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import type {
  Cloud,
  DataPlaneOutputs,
  SecretRef,
  SecretStoreOf,
} from "../../../components/contracts";
import { fakeDataPlane } from "../../support/fake-data-plane";
import { recordOf, within, type RecordedResource, type ResourceQuery } from "../../support/pulumi";

// ---------------------------------------------------------------------------------------------
// Args and renders

/** Overrides of a target's args; `env` picks the data plane's environment, `dp` replaces the data plane. */
export type RenderArgs<A extends { dataPlane: unknown }> = Partial<A> & {
  env?: "dev" | "prod";
  dp?: A["dataPlane"];
};

/** A target's args on `cloud`'s fake data plane (dev by default): the environment comes from it. */
export function targetArgs<A extends { dataPlane: DataPlaneOutputs }>(
  cloud: A["dataPlane"]["cloud"],
  fixed: Omit<A, "dataPlane">,
  overrides: RenderArgs<A> = {},
): A {
  const env = overrides.env ?? "dev";
  const { env: _env, dp, ...rest } = overrides;
  return {
    dataPlane: dp ?? fakeDataPlane<Cloud>(cloud, { environment: env }),
    ...fixed,
    ...rest,
  } as A;
}

export interface Rendered<T> {
  target: T;
  q: ResourceQuery;
}

/** Each target with what it created, once every registration has settled. */
export async function renderAll<K extends string, T extends pulumi.Resource>(
  targets: Record<K, T>,
): Promise<Record<K, Rendered<T>>> {
  const out = {} as Record<K, Rendered<T>>;
  for (const k of Object.keys(targets) as K[])
    out[k] = { target: targets[k], q: await within(targets[k]) };
  return out;
}

/** A secret beyond the data plane's three, in `store`. */
export function extraSecret(
  store: "aws-secretsmanager",
  id: string,
  name: string,
  version: string,
): SecretRef<"aws">;
export function extraSecret(
  store: "gcp-secretmanager",
  id: string,
  name: string,
  version: string,
): SecretRef<"gcp">;
export function extraSecret(
  store: SecretStoreOf[Cloud],
  id: string,
  name: string,
  version: string,
): SecretRef {
  return { store, id: pulumi.output(id), name: pulumi.output(name), version };
}

// ---------------------------------------------------------------------------------------------
// Checks every target passes

/** Every resource is beneath the component and named after it; returns the component's record. */
export async function expectOwnedAndNamed(
  r: Rendered<pulumi.Resource>,
  type?: string,
): Promise<RecordedResource> {
  const self = await recordOf(r.target);
  if (type !== undefined) expect(self.type).toBe(type);
  for (const c of r.q.all()) expect(c.name.startsWith(`${self.name}-`)).toBe(true);
  for (const c of r.q.childrenOf(self)) expect(c.parentUrn).toBe(self.urn);
  return self;
}

/**
 * One test per case: rendering the case's overrides throws a ResourceError whose message starts
 * with `prefix` (the component and its name) and says what to change (the case's pattern).
 */
export function testRejections<O>(
  cases: Array<[string, () => O, RegExp]>,
  render: (overrides: O) => unknown,
  prefix: RegExp,
): void {
  test.each(cases)(
    "rejects %s with a ResourceError saying what to change",
    (_label, make, message) => {
      let error: unknown;
      try {
        render(make());
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(pulumi.ResourceError);
      expect((error as Error).message).toMatch(prefix);
      expect((error as Error).message).toMatch(message);
    },
  );
}

// ---------------------------------------------------------------------------------------------
// The real validator for VM user data. Locally it may be missing (skip); CI installs it, and
// there it must run.

export const HAVE_CLOUD_INIT =
  spawnSync("cloud-init", ["--version"], { encoding: "utf8" }).status === 0;
export const IN_CI = process.env.CI === "true";
export const validatorTest = HAVE_CLOUD_INIT || IN_CI ? test : test.skip;

export function cloudInitSchema(document: string): { valid: boolean; output: string } {
  if (!HAVE_CLOUD_INIT) {
    throw new Error(
      "cloud-init is not installed: CI must install it (apt-get install cloud-init) to validate VM user data.",
    );
  }
  const dir = mkdtempSync(join(tmpdir(), "cloud-init-"));
  try {
    const file = join(dir, "user-data.yaml");
    writeFileSync(file, document);
    const r = spawnSync("cloud-init", ["schema", "--config-file", file], { encoding: "utf8" });
    return { valid: r.status === 0, output: `${r.stdout}${r.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The real validator accepts `document`. */
export function expectValidCloudConfig(document: string): void {
  const result = cloudInitSchema(document);
  expect(result.output).toMatch(/Valid cloud-config/);
  expect(result.valid).toBe(true);
}
