/**
 * Pulumi mock runtime: run components and programs without a CLI or a cloud, then query what
 * they registered the way AWS CDK's `Template` assertions do. The tests use it through
 * `test/support/pulumi.ts` (a re-export); the offline plan (`npm run plan`) uses it directly, which
 * is why it lives in product code and depends on nothing test-only.
 *
 * Why it wraps the mock monitor: `mocks.newResource` only sees type, name, inputs, provider and
 * id. Parent, `protect`, `retainOnDelete`, `ignoreChanges` and `additionalSecretOutputs` travel in
 * the same register request but are dropped before the mock sees them. The harness keeps the
 * request for the duration of the (synchronous) `newResource` call, so each recorded resource
 * carries the options the engine would receive. It also applies `additionalSecretOutputs` to the
 * mocked state, as the engine does, so outputs such as `RandomPassword.result` are secret under
 * mocks exactly as in a real deployment.
 *
 * Usage (one program render per test file or process; Pulumi's runtime state is module-global,
 * jest gives each file its own module registry and the plan renders each stack in a child process):
 *
 * ```ts
 * import * as aws from "@pulumi/aws";
 * import { setupPulumiMocks, resources, outputOf, isSecretOutput, within } from "../support/pulumi";
 *
 * setupPulumiMocks({ stack: "dev" });
 * let redis: Redis;
 * beforeAll(async () => {
 *   redis = new Redis("cache", { ... });
 *   await settle();
 * });
 * test("encrypted", () => {
 *   const rg = resources.findOne(aws.elasticache.ReplicationGroup, "cache");
 *   expect(rg.inputs.atRestEncryptionEnabled).toBe(true);
 *   expect(rg.options.protect).toBe(false);
 * });
 * ```
 */
import * as pulumi from "@pulumi/pulumi";
import {
  computedOutputsOf,
  hashOf,
  invokeOf,
  type InvokeContext,
  type MockResourceContext,
  type RecordedOptions,
  type RecordedResource,
  type ResourceClass,
  type InputsOf,
} from "./mock-registry";
import { autoName, awsGenericOutputs } from "./mock-outputs-aws";

export * from "./mock-registry";

export interface HarnessOptions {
  /** @default "agent" */
  project?: string;
  /** @default "dev" */
  stack?: string;
  /**
   * Stack config. Keys without a namespace get the project's (`target` -> `agent:target`).
   * `aws:region` defaults to `region`.
   * @default {}
   */
  config?: Record<string, string>;
  /** Config keys (fully qualified or not) to mark secret. @default [] */
  secretKeys?: string[];
  /** @default "us-east-1" */
  region?: string;
  /** @default "123456789012" */
  accountId?: string;
  /** How many AZs the mocked `getAvailabilityZones` returns. @default 4 */
  availabilityZoneCount?: number;
}

// ---------------------------------------------------------------------------------------------
// Module state (one per jest test file or plan worker process)

const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

interface Settings {
  project: string;
  stack: string;
  region: string;
  accountId: string;
  availabilityZoneCount: number;
}

let settings: Settings = {
  project: "agent",
  stack: "dev",
  region: "us-east-1",
  accountId: "123456789012",
  availabilityZoneCount: 4,
};
let recorded: RecordedResource[] = [];
let invocations: InvokeContext[] = [];
/** The register/read request being handled; set only for the synchronous newResource call. */
let pendingRequest: PendingRequest | undefined;

interface PendingRequest {
  parent: string;
  read: boolean;
  options: RecordedOptions;
}

// ---------------------------------------------------------------------------------------------
// Setup

/**
 * Installs the mocks and config. Call at the top of a test file, before importing any module
 * that reads `pulumi.Config` at import time.
 */
export function setupPulumiMocks(opts: HarnessOptions = {}): void {
  settings = {
    project: opts.project ?? "agent",
    stack: opts.stack ?? "dev",
    region: opts.region ?? "us-east-1",
    accountId: opts.accountId ?? "123456789012",
    availabilityZoneCount: opts.availabilityZoneCount ?? 4,
  };
  resetHarness();

  const qualify = (k: string) => (k.includes(":") ? k : `${settings.project}:${k}`);
  const config: Record<string, string> = { "aws:region": settings.region };
  for (const [k, v] of Object.entries(opts.config ?? {})) config[qualify(k)] = v;
  pulumi.runtime.setAllConfig(config, (opts.secretKeys ?? []).map(qualify));

  // setMocks is async in signature but installs the monitor synchronously; nothing to await.
  void pulumi.runtime.setMocks(
    {
      newResource: (args: pulumi.runtime.MockResourceArgs) => newResource(args),
      call: (args: pulumi.runtime.MockCallArgs) => call(args),
    },
    settings.project,
    settings.stack,
    false,
  );
  wrapMonitor();
}

/** Forgets recorded resources and invocations (registrations of outputs and invokes stay). */
export function resetHarness(): void {
  recorded = [];
  invocations = [];
  pendingRequest = undefined;
}

/** Every invoke the program made (token and inputs), in order. */
export function invocationsOf(token?: string): InvokeContext[] {
  return token ? invocations.filter((i) => i.token === token) : [...invocations];
}

/** The harness's effective settings (region, account id...), for building expected values. */
export function harnessSettings(): Readonly<Settings> {
  return { ...settings };
}

// ---------------------------------------------------------------------------------------------
// Running programs

/**
 * Runs `fn` inside a real root `pulumi:pulumi:Stack`, as the CLI does for `infra/index.ts`.
 * Needed for stack transformations (`registerStackTransformation`), which attach to the stack.
 * Waits for every registration to finish before resolving.
 */
export async function renderInStack<T>(fn: () => T | Promise<T>): Promise<T> {
  let result: T | undefined;
  let ran = false;
  // A program fails at its first unhandled rejection (an `apply` that throws, whose value a
  // resource needs): Pulumi lets it reach the language host, which ends the run with it. Here it
  // rejects the render the same way, instead of leaving the registration waiting forever.
  let fail: (e: unknown) => void = () => {};
  const failed = new Promise<never>((_, reject) => (fail = reject));
  const onUnhandled = (reason: unknown) => fail(reason);
  process.on("unhandledRejection", onUnhandled);
  try {
    await Promise.race([
      (async () => {
        await pulumi.runtime.runInPulumiStack(async () => {
          result = await fn();
          ran = true;
          return {};
        });
        await settle();
      })(),
      failed,
    ]);
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
  if (!ran) throw new Error("renderInStack: the program callback did not run");
  return result as T;
}

/** Waits until no resource registration, invoke or output resolution is outstanding. */
export async function settle(): Promise<void> {
  const runtime = pulumi.runtime as unknown as { waitForRPCs?: () => Promise<void> };
  if (typeof runtime.waitForRPCs !== "function") {
    throw new Error(
      "settle: this @pulumi/pulumi no longer exports runtime.waitForRPCs; update the harness",
    );
  }
  await runtime.waitForRPCs();
}

// ---------------------------------------------------------------------------------------------
// Outputs

/** Resolves an Output (or plain input) through `apply`, keeping Pulumi's semantics. */
export function outputOf<T>(value: pulumi.Input<T>, timeoutMs = 10_000): Promise<pulumi.Unwrap<T>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new Error(
            `outputOf: output did not resolve within ${timeoutMs} ms (rejected or unknown)`,
          ),
        ),
      timeoutMs,
    );
    pulumi.output(value).apply((v) => {
      clearTimeout(timer);
      resolve(v as pulumi.Unwrap<T>);
      return v;
    });
  });
}

/** Whether an Output is marked secret. Plain values are never secret. */
export async function isSecretOutput(value: unknown): Promise<boolean> {
  if (!pulumi.Output.isInstance(value)) return false;
  return pulumi.isSecret(value as pulumi.Output<unknown>);
}

// ---------------------------------------------------------------------------------------------
// Queries

function typeTokenOf(typeOrClass: string | ResourceClass): string {
  if (typeof typeOrClass === "string") return typeOrClass;
  const token = (typeOrClass as unknown as { __pulumiType?: string }).__pulumiType;
  if (!token)
    throw new Error(`${typeOrClass.name} carries no __pulumiType: pass the type token string`);
  return token;
}

/** A filterable view over recorded resources. */
export class ResourceQuery {
  constructor(private readonly source: () => RecordedResource[]) {}

  all(): RecordedResource[] {
    return this.source();
  }

  findByType<C extends ResourceClass>(cls: C): RecordedResource<InputsOf<C>>[];
  findByType(type: string): RecordedResource[];
  findByType(typeOrClass: string | ResourceClass): RecordedResource[] {
    const token = typeTokenOf(typeOrClass);
    return this.source().filter((r) => r.type === token);
  }

  /** Exactly one resource of the type whose name contains `nameSubstring`; throws otherwise. */
  findOne<C extends ResourceClass>(cls: C, nameSubstring?: string): RecordedResource<InputsOf<C>>;
  findOne(type: string, nameSubstring?: string): RecordedResource;
  findOne(typeOrClass: string | ResourceClass, nameSubstring = ""): RecordedResource {
    const token = typeTokenOf(typeOrClass);
    const ofType = this.source().filter((r) => r.type === token);
    const matches = ofType.filter((r) => r.name.includes(nameSubstring));
    if (matches.length !== 1) {
      const names = ofType.map((r) => r.name).join(", ") || "none";
      throw new Error(
        `findOne(${token}, "${nameSubstring}"): expected exactly 1 match, found ${matches.length}. ` +
          `Resources of this type: ${names}`,
      );
    }
    return matches[0]!;
  }

  /** Resources (of a type, if given). */
  count(typeOrClass?: string | ResourceClass): number {
    if (typeOrClass === undefined) return this.source().length;
    const token = typeTokenOf(typeOrClass);
    return this.source().filter((r) => r.type === token).length;
  }

  /** `{ "aws:rds/instance:Instance": 1, ... }`, sorted by type. */
  countsByType(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const r of [...this.source()].sort((a, b) => a.type.localeCompare(b.type))) {
      counts[r.type] = (counts[r.type] ?? 0) + 1;
    }
    return counts;
  }

  byUrn(urn: string): RecordedResource | undefined {
    return recorded.find((r) => r.urn === urn);
  }

  parentOf(resource: RecordedResource): RecordedResource | undefined {
    return resource.parentUrn ? this.byUrn(resource.parentUrn) : undefined;
  }

  childrenOf(resource: RecordedResource): RecordedResource[] {
    return this.source().filter((r) => r.parentUrn === resource.urn);
  }

  descendantsOf(resource: RecordedResource): RecordedResource[] {
    const out: RecordedResource[] = [];
    const queue = [resource.urn];
    const all = this.source();
    while (queue.length > 0) {
      const urn = queue.shift()!;
      for (const r of all) {
        if (r.parentUrn === urn) {
          out.push(r);
          queue.push(r.urn);
        }
      }
    }
    return out;
  }
}

/** Every resource recorded since the last `resetHarness()`. */
export const resources = new ResourceQuery(() => [...recorded]);

/** `resources.findByType`, for tests that query the whole program. */
export function findByType<C extends ResourceClass>(cls: C): RecordedResource<InputsOf<C>>[];
export function findByType(type: string): RecordedResource[];
export function findByType(typeOrClass: string | ResourceClass): RecordedResource[] {
  return resources.findByType(typeOrClass as string);
}

/** `resources.findOne`: exactly one resource of the type whose name contains `nameSubstring`. */
export function findOne<C extends ResourceClass>(
  cls: C,
  nameSubstring?: string,
): RecordedResource<InputsOf<C>>;
export function findOne(type: string, nameSubstring?: string): RecordedResource;
export function findOne(
  typeOrClass: string | ResourceClass,
  nameSubstring?: string,
): RecordedResource {
  return resources.findOne(typeOrClass as string, nameSubstring);
}

/** How many resources were recorded (of a type, if given). */
export function resourceCount(typeOrClass?: string | ResourceClass): number {
  return resources.count(typeOrClass);
}

/** The recorded parent of a recorded resource (the stack for top-level ones). */
export function parentOf(resource: RecordedResource): RecordedResource | undefined {
  return resources.parentOf(resource);
}

/**
 * The resources created beneath a component (its descendants, not itself). Lets one test file
 * render several components (dev and prod) and query each separately.
 */
export async function within(component: pulumi.Resource): Promise<ResourceQuery> {
  const urn = await outputOf(component.urn);
  await settle();
  const root = recorded.find((r) => r.urn === urn);
  if (!root)
    throw new Error(`within: ${urn} was not recorded (was setupPulumiMocks called first?)`);
  return new ResourceQuery(() => resources.descendantsOf(root));
}

/** The recorded entry of a live resource object. */
export async function recordOf(resource: pulumi.Resource): Promise<RecordedResource> {
  const urn = await outputOf(resource.urn);
  await settle();
  const r = recorded.find((x) => x.urn === urn);
  if (!r) throw new Error(`recordOf: ${urn} was not recorded`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Mock implementation

function isSecretWrapper(v: unknown): v is { value: unknown } {
  return (
    typeof v === "object" &&
    v !== null &&
    (v as Record<string, unknown>)[SECRET_SIG_KEY] === SECRET_SIG
  );
}

function containsSecret(v: unknown): boolean {
  if (isSecretWrapper(v)) return true;
  if (Array.isArray(v)) return v.some(containsSecret);
  if (typeof v === "object" && v !== null) return Object.values(v).some(containsSecret);
  return false;
}

function unwrapSecrets(v: unknown): unknown {
  if (isSecretWrapper(v)) return unwrapSecrets(v.value);
  if (Array.isArray(v)) return v.map(unwrapSecrets);
  if (typeof v === "object" && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrapSecrets(x)]));
  }
  return v;
}

function wrapSecret(v: unknown): unknown {
  return isSecretWrapper(v) ? v : { [SECRET_SIG_KEY]: SECRET_SIG, value: v };
}

function mockUrn(parent: string, type: string, name: string): string {
  let qualified = type;
  if (parent) {
    const parentType = parent.split("::")[2]!.split("$").pop();
    qualified = `${parentType}$${type}`;
  }
  return `urn:pulumi:${settings.stack}::${settings.project}::${qualified}::${name}`;
}

interface RegisterRequestLike {
  getParent(): string;
  getProtect?(): boolean | undefined;
  getRetainondelete?(): boolean | undefined;
  getDeletebeforereplace?(): boolean | undefined;
  getIgnorechangesList?(): string[];
  getReplaceonchangesList?(): string[];
  getAdditionalsecretoutputsList?(): string[];
  getDependenciesList?(): string[];
  getProvider(): string;
  getDeletedwith?(): string;
}

type MonitorFn = (req: RegisterRequestLike, cb: unknown) => unknown;

function captureRequest(req: RegisterRequestLike, read: boolean): PendingRequest {
  return {
    parent: req.getParent(),
    read,
    options: {
      protect: req.getProtect?.() ?? false,
      retainOnDelete: req.getRetainondelete?.() ?? false,
      deleteBeforeReplace: req.getDeletebeforereplace?.() ?? false,
      ignoreChanges: req.getIgnorechangesList?.() ?? [],
      replaceOnChanges: req.getReplaceonchangesList?.() ?? [],
      additionalSecretOutputs: req.getAdditionalsecretoutputsList?.() ?? [],
      dependencies: req.getDependenciesList?.() ?? [],
      provider: req.getProvider(),
      deletedWith: req.getDeletedwith?.() ?? "",
    },
  };
}

function wrapMonitor(): void {
  const monitor = (
    pulumi.runtime as unknown as { getMonitor(): Record<string, MonitorFn> | undefined }
  ).getMonitor();
  if (
    !monitor ||
    typeof monitor.registerResource !== "function" ||
    typeof monitor.readResource !== "function"
  ) {
    throw new Error(
      "setupPulumiMocks: the mock monitor has no registerResource/readResource; update the harness",
    );
  }
  for (const [method, read] of [
    ["registerResource", false],
    ["readResource", true],
  ] as const) {
    const original = monitor[method]!.bind(monitor);
    monitor[method] = (req, cb) => {
      // MockMonitor calls mocks.newResource synchronously at the start of this call, so the
      // request is visible to newResource and cleared right after.
      pendingRequest = captureRequest(req, read);
      try {
        return original(req, cb);
      } finally {
        pendingRequest = undefined;
      }
    };
  }
}

function newResource(args: pulumi.runtime.MockResourceArgs): {
  id: string;
  state: Record<string, unknown>;
} {
  const request = pendingRequest;
  const inputs = (args.inputs ?? {}) as Record<string, unknown>;
  const plainInputs = unwrapSecrets(inputs) as Record<string, unknown>;
  const ctx: MockResourceContext = {
    type: args.type,
    name: args.name,
    inputs,
    plainInputs,
    custom: args.custom ?? true,
    id: args.id || undefined,
    region: settings.region,
    accountId: settings.accountId,
    project: settings.project,
    stack: settings.stack,
    hash: (length = 12, salt = "") => hashOf(args.type, args.name, salt).slice(0, length),
  };
  const specific = computedOutputsOf(args.type);
  const generic = {
    ...(ctx.custom && !args.type.startsWith("pulumi:providers:") ? autoName(ctx) : {}),
    ...(args.type.startsWith("aws:") ? awsGenericOutputs(ctx) : {}),
  };
  const computed: Record<string, unknown> = { ...generic, ...(specific ? specific(ctx) : {}) };
  const id =
    // The mock monitor passes an empty id for new custom resources: treat it as unset.
    (computed.id as string | undefined) ||
    args.id ||
    (args.custom === false ? "" : `${args.name}-${ctx.hash(8)}`);
  delete computed.id;

  // Inputs win over computed defaults, except where the type function computed a value the
  // provider would derive anyway (it sees inputs, so it can respect them itself).
  const state: Record<string, unknown> = { ...inputs, ...computed };
  for (const key of request?.options.additionalSecretOutputs ?? []) {
    if (state[key] !== undefined) state[key] = wrapSecret(state[key]);
  }

  const parentUrn = request?.parent || undefined;
  const record: RecordedResource = {
    type: args.type,
    name: args.name,
    urn: mockUrn(request?.parent ?? "", args.type, args.name),
    id,
    custom: args.custom ?? true,
    read: request?.read ?? false,
    inputs: plainInputs,
    secretInputs: new Set(Object.keys(inputs).filter((k) => containsSecret(inputs[k]))),
    state: unwrapSecrets(state) as Record<string, unknown>,
    parentUrn,
    options: request?.options ?? {
      protect: false,
      retainOnDelete: false,
      deleteBeforeReplace: false,
      ignoreChanges: [],
      replaceOnChanges: [],
      additionalSecretOutputs: [],
      dependencies: [],
      provider: args.provider ?? "",
      deletedWith: "",
    },
  };
  recorded.push(record);
  return { id, state };
}

function call(args: pulumi.runtime.MockCallArgs): Record<string, unknown> {
  const ctx: InvokeContext = {
    token: args.token,
    inputs: unwrapSecrets(args.inputs ?? {}) as Record<string, unknown>,
    provider: args.provider ?? "",
    region: settings.region,
    accountId: settings.accountId,
    availabilityZoneCount: settings.availabilityZoneCount,
  };
  invocations.push(ctx);
  const fn = invokeOf(args.token);
  if (!fn) {
    const error = new Error(
      `Unmocked invoke "${args.token}". Mock it with registerInvoke("${args.token}", ...) ` +
        `in the test (or add a default in infra/plan/mock-runtime.ts).`,
    );
    // The SDK rethrows invoke failures as `new Error(err.details)` (the gRPC field), so the
    // message must also travel as `details` to reach the program.
    throw Object.assign(error, { details: error.message });
  }
  return fn(ctx);
}
