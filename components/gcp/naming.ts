/**
 * Naming and validation helpers shared by the GCP components. Plain functions: each returns a
 * problem description (or nothing) so a component can raise it as a `pulumi.ResourceError`.
 */

/** Most GCP resource names: lowercase letters, digits and hyphens, starting with a letter. */
export const GCP_NAME_PATTERN = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

/** Pulumi auto-naming appends a hyphen and seven random characters to the logical name. */
export const AUTONAME_SUFFIX_LENGTH = 8;

/**
 * Checks that a logical name can become a physical GCP name once Pulumi appends its random
 * suffix. `maxLength` is the service's limit (63 for most, 40 for Memorystore).
 */
export function checkAutonamedName(logicalName: string, maxLength: number): string | undefined {
  if (!GCP_NAME_PATTERN.test(logicalName)) {
    return `"${logicalName}" is not a valid GCP resource name: use lowercase letters, digits and hyphens, starting with a letter.`;
  }
  const room = maxLength - AUTONAME_SUFFIX_LENGTH;
  if (logicalName.length > room) {
    return `"${logicalName}" is ${logicalName.length} characters; with Pulumi's random suffix it must be at most ${room}: shorten the component name.`;
  }
  return undefined;
}

/** Regions look like `us-central1` or `europe-west4`. */
export function checkRegion(region: string): string | undefined {
  return /^[a-z]+-[a-z]+[0-9]+$/.test(region)
    ? undefined
    : `region "${region}" is not a GCP region name such as "us-central1".`;
}

/** Project ids: 6-30 characters, lowercase letters, digits and hyphens, starting with a letter. */
export function checkProjectId(project: string): string | undefined {
  return /^[a-z][-a-z0-9]{4,28}[a-z0-9]$/.test(project)
    ? undefined
    : `project "${project}" is not a GCP project id (6-30 lowercase letters, digits or hyphens, starting with a letter).`;
}

/** Parses an IPv4 CIDR; returns undefined if malformed. */
export function parseCidr(cidr: string): { base: number; prefix: number } | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr);
  if (!m) return undefined;
  const octets = m.slice(1, 5).map(Number);
  const prefix = Number(m[5]);
  if (octets.some((o) => o > 255) || prefix > 32) return undefined;
  const base = octets.reduce((acc, o) => acc * 256 + o, 0);
  const size = 2 ** (32 - prefix);
  if (base % size !== 0) return undefined; // host bits set: "10.0.0.1/16" is ambiguous
  return { base, prefix };
}

export function cidrsOverlap(a: string, b: string): boolean {
  const pa = parseCidr(a);
  const pb = parseCidr(b);
  if (!pa || !pb) return false;
  const endA = pa.base + 2 ** (32 - pa.prefix);
  const endB = pb.base + 2 ** (32 - pb.prefix);
  return pa.base < endB && pb.base < endA;
}

/** Problems with a list of problems: joins them into one message, or undefined if none. */
export function joinProblems(
  component: string,
  problems: (string | undefined)[],
): string | undefined {
  const found = problems.filter((p): p is string => typeof p === "string");
  return found.length ? `${component}: ${found.join(" ")}` : undefined;
}
