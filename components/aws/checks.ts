/**
 * Validation and naming helpers shared by the AWS components. Plain functions returning a
 * message that says what to change (or undefined), so components raise them as
 * `pulumi.ResourceError` and tests call them directly.
 */

/** The only retention values CloudWatch Logs accepts. */
export const CLOUDWATCH_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288,
  3653,
] as const;

export function checkLogRetention(days: number, field = "logRetentionDays"): string | undefined {
  return (CLOUDWATCH_RETENTION_DAYS as readonly number[]).includes(days)
    ? undefined
    : `${field} is ${days}: CloudWatch Logs accepts only ${CLOUDWATCH_RETENTION_DAYS.join(", ")}.`;
}

/** AWS region names such as `us-east-1`, `eu-west-3`, `us-gov-west-1`, `ap-southeast-5`. */
export function checkAwsRegion(region: string): string | undefined {
  return /^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$/.test(region)
    ? undefined
    : `region "${region}" is not an AWS region name such as "us-east-1".`;
}

/** Pulumi auto-naming appends a hyphen and seven random characters to the logical name. */
export const AUTONAME_SUFFIX_LENGTH = 8;

/**
 * Checks a logical name that Pulumi will auto-name into a physical name with `maxLength` and
 * the charset `lowercase letters, digits and hyphens, starting with a letter` (ElastiCache,
 * RDS identifiers).
 */
export function checkAutonamedIdentifier(
  logicalName: string,
  maxLength: number,
  what: string,
): string | undefined {
  if (
    !/^[a-z][a-z0-9-]*$/.test(logicalName) ||
    logicalName.includes("--") ||
    logicalName.endsWith("-")
  ) {
    return `${what} name "${logicalName}" must be lowercase letters, digits and single hyphens, starting with a letter: rename the component.`;
  }
  const room = maxLength - AUTONAME_SUFFIX_LENGTH;
  if (logicalName.length > room) {
    return `${what} name "${logicalName}" is ${logicalName.length} characters; with Pulumi's random suffix it must be at most ${room}: shorten the component name.`;
  }
  return undefined;
}

/** A loose e-mail check: catches the typos that would make AWS reject the subscription. */
export function checkEmail(address: string): string | undefined {
  return /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(address)
    ? undefined
    : `"${address}" is not an e-mail address: fix the alert e-mail list.`;
}
