/**
 * A stack's releases: what it deployed, from where, when and by which commit. The list lives in
 * the stack's own Pulumi state (the `ReleaseHistory` resource carries the previous deployment's
 * list forward) and is exported as the `releases` output, so `npm run release -- list <stack>`
 * and a rollback (`agent:release`) need nothing but the stack itself: not the source stack, not
 * a reference to the stack's own outputs.
 */
import * as pulumi from "@pulumi/pulumi";

export interface ReleaseRecord {
  /** An image digest (`sha256:<hex>`) or a Lambda bundle's base64 SHA-256. */
  release: string;
  /** How it got here: built by this stack, promoted from `source`, or a rollback. */
  kind: "build" | "promotion" | "rollback";
  /** The stack it was promoted from; this stack itself for builds and rollbacks. */
  source: string;
  /** When this stack deployed it (ISO 8601, UTC). */
  at: string;
  /** The commit the deployment ran (`GITHUB_SHA`, else the checkout's HEAD). */
  commit: string;
}

/** A bundle's SHA-256 as Lambda takes it (base64), from base64 or hex. */
export function bundleSha256Base64(release: string): string | undefined {
  if (/^[A-Za-z0-9+/]{43}=$/.test(release)) return release;
  if (/^[a-f0-9]{64}$/.test(release)) return Buffer.from(release, "hex").toString("base64");
  return undefined;
}

/**
 * A release as a stack's storage names it: an image digest `sha256:<hex>` (bare hex accepted), or
 * a bundle's base64 SHA-256 (hex accepted); undefined when `raw` is neither.
 */
export function releaseName(raw: string, kind: "image" | "zip"): string | undefined {
  if (kind === "zip") return bundleSha256Base64(raw);
  if (/^sha256:[a-f0-9]{64}$/.test(raw)) return raw;
  if (/^[a-f0-9]{64}$/.test(raw)) return `sha256:${raw}`;
  return undefined;
}

/** How many records a stack keeps: older ones drop off (their artifacts stay in storage). */
export const MAX_RELEASES = 50;

const KINDS = ["build", "promotion", "rollback"];

function isRecord(v: unknown): v is ReleaseRecord {
  if (!v || typeof v !== "object") return false;
  const r = v as Record<string, unknown>;
  return (
    ["release", "source", "at", "commit"].every((k) => typeof r[k] === "string") &&
    KINDS.includes(String(r.kind))
  );
}

/**
 * The history after deploying `next`: unchanged when `next` is already the newest release (a
 * redeploy of the same release, a config change), otherwise `next` appended, keeping the newest
 * `MAX_RELEASES`. Anything in `previous` that is not a record is dropped.
 */
export function recordRelease(previous: unknown, next: ReleaseRecord): ReleaseRecord[] {
  const history = Array.isArray(previous) ? previous.filter(isRecord) : [];
  if (history.at(-1)?.release === next.release) return history;
  return [...history, next].slice(-MAX_RELEASES);
}

/**
 * Why `release` cannot be rolled back to, or undefined when the stack's own storage holds it.
 * `held` is what the storage lists; `storage` names it for the message.
 */
export function missingRelease(
  release: string,
  held: readonly string[],
  storage: string,
  key = "agent:release",
): string | undefined {
  if (held.includes(release)) return undefined;
  const shown = held.slice(-10).join(", ") || "nothing yet";
  return `${key} ${release} is not in ${storage}, which holds ${shown}: choose one of those (\`npm run release -- list <stack>\` shows what each is), or promote it again from its source stack`;
}

/**
 * The release before the one deployed now: what `npm run release -- rollback <stack>` goes back
 * to when no release is named. Undefined when the history holds no earlier release.
 */
export function previousRelease(history: readonly ReleaseRecord[]): ReleaseRecord | undefined {
  const current = history.at(-1)?.release;
  return [...history].reverse().find((r) => r.release !== current);
}

// ---------------------------------------------------------------------------------------------
// The resource that carries the list from one deployment to the next

interface HistoryInputs {
  record: ReleaseRecord;
}
interface HistoryState extends HistoryInputs {
  releases: ReleaseRecord[];
}

/**
 * A dynamic provider: its state is the list, its input the release deployed now. Only a new
 * release is a change, so redeploying (or a new commit's `at`) leaves the list as it is.
 * Exported for tests, which drive it as the engine does.
 */
export const releaseHistoryProvider: pulumi.dynamic.ResourceProvider<HistoryInputs, HistoryState> =
  {
    async create(inputs: HistoryInputs) {
      return {
        id: "releases",
        outs: { record: inputs.record, releases: recordRelease([], inputs.record) },
      };
    },
    async diff(_id: string, olds: HistoryState, news: HistoryInputs) {
      return { changes: olds.releases?.at(-1)?.release !== news.record.release };
    },
    async update(_id: string, olds: HistoryState, news: HistoryInputs) {
      return { outs: { record: news.record, releases: recordRelease(olds.releases, news.record) } };
    },
  };

export interface ReleaseHistoryArgs {
  record: pulumi.Input<ReleaseRecord>;
}

export class ReleaseHistory extends pulumi.dynamic.Resource {
  /** Oldest first; the last entry is the release deployed now. */
  declare readonly releases: pulumi.Output<ReleaseRecord[]>;

  constructor(name: string, args: ReleaseHistoryArgs, opts?: pulumi.CustomResourceOptions) {
    super(releaseHistoryProvider, name, { record: args.record, releases: undefined }, opts);
  }
}
