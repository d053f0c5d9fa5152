/**
 * How components report bad arguments: every problem at once, each saying what to change, before
 * anything is created.
 */
import * as pulumi from "@pulumi/pulumi";
/** The problems among `checks`, in order: a check gives a message, a list of them, or nothing. */
export function problemsOf(...checks: Array<string | string[] | undefined>): string[] {
  return checks.flatMap((c) => (c === undefined ? [] : c));
}

/** Runs `fn`; what it throws becomes a problem (worded by `describe`) instead of escaping. */
export function attempt<T>(
  problems: string[],
  fn: () => T,
  describe: (message: string) => string = (m) => m,
): T | undefined {
  try {
    return fn();
  } catch (e) {
    problems.push(describe((e as Error).message));
    return undefined;
  }
}

/** Throws every problem at once, as one ResourceError that names the component (`label`). */
export function failOnProblems(problems: string[], label: string, resource: pulumi.Resource): void {
  if (problems.length > 0)
    throw new pulumi.ResourceError(`${label}: ${problems.join(" ")}`, resource);
}

/** The resolved settings, or a ResourceError listing every problem. */
export function settingsOrFail<S>(
  resolved: { settings?: S; problems: string[] },
  label: string,
  resource: pulumi.Resource,
): S {
  if (!resolved.settings)
    throw new pulumi.ResourceError(`${label}: ${resolved.problems.join(" ")}`, resource);
  return resolved.settings;
}

export function wholeNumberProblem(
  field: string,
  value: number,
  min: number,
  max: number,
): string | undefined {
  return Number.isInteger(value) && value >= min && value <= max
    ? undefined
    : `${field} ${value} must be a whole number from ${min} to ${max}.`;
}

/** The data plane must hand over the secrets the service reads (`why` says who reads them). */
export function secretsProblem(secrets: readonly unknown[], why: string): string | undefined {
  return secrets.length === 0 ? `dataPlane.secrets is empty: ${why}.` : undefined;
}

/** On AWS the private subnets need a NAT route to reach the LLM API: `consequence` says what breaks. */
export function natProblem(hasNat: boolean, consequence: string): string | undefined {
  return hasNat
    ? undefined
    : `the data plane's private subnets have no NAT route: ${consequence}; set the network's natGateways to single or per-az.`;
}
