/**
 * What every target shares about the service it runs: the environment it shapes, its URL, and
 * the host names and image references it accepts.
 */
import * as pulumi from "@pulumi/pulumi";

/** How every target shapes the app's environment. */
export interface ServiceEnvArgs {
  /** @default "info" */
  logLevel?: string;
  /** Extra non-secret environment variables (secret-looking names are rejected). @default {} */
  extraEnv?: Record<string, pulumi.Input<string>>;
}

/** Public host names such as `agent.example.com`. */
export const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;

/** A VM group's public host name. */
export function hostNameProblem(domain: string | undefined): string | undefined {
  return domain === undefined || DOMAIN.test(domain)
    ? undefined
    : `domain "${domain}" is not a lowercase host name such as "agent.example.com".`;
}

export function isPinnedByDigest(imageRef: string): boolean {
  return DIGEST_REF.test(imageRef);
}

/** `https://<domain>` when there is one, else plain HTTP to the load balancer (dev). */
export function serviceUrl(
  domain: string | undefined,
  host: pulumi.Input<string>,
): pulumi.Output<string> {
  return domain ? pulumi.output(`https://${domain}`) : pulumi.interpolate`http://${host}`;
}

/** `<repository>@sha256:<64 hex>`: a tag could move between deploys. */
const DIGEST_REF = /^[^\s@]+@sha256:[a-f0-9]{64}$/;
