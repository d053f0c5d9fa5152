/**
 * The Google APIs a stack calls, enabled by the stack itself. On a fresh project every API is
 * off, and the first call to one fails with "API has not been used in project ... or it is
 * disabled" (https://cloud.google.com/service-usage/docs/enable-disable). A mock runtime never
 * says so: the table below is the rule, and the preflight of `npm run plan` checks every GCP
 * resource a stack renders against it.
 *
 * Ordering without touching every component: `ProjectApis.provider` is an explicit GCP provider
 * that depends on the `gcp.projects.Service` resources. A resource waits for its provider, so
 * everything created through this provider (it is inherited by children) waits for the APIs.
 */
import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";

/** `*.googleapis.com` services by resource type prefix. Sources: each API's "Enable the API" doc; read 2026-12-06. */
export const GCP_API_BY_TYPE_PREFIX: ReadonlyArray<readonly [prefix: string, api: string]> = [
  ["gcp:servicenetworking/", "servicenetworking.googleapis.com"],
  ["gcp:compute/", "compute.googleapis.com"],
  ["gcp:redis/", "redis.googleapis.com"],
  ["gcp:sql/", "sqladmin.googleapis.com"],
  ["gcp:secretmanager/", "secretmanager.googleapis.com"],
  ["gcp:monitoring/", "monitoring.googleapis.com"],
  ["gcp:logging/", "logging.googleapis.com"],
  ["gcp:serviceaccount/", "iam.googleapis.com"],
  ["gcp:projects/iAMMember", "cloudresourcemanager.googleapis.com"],
  ["gcp:artifactregistry/", "artifactregistry.googleapis.com"],
  ["gcp:cloudrunv2/", "run.googleapis.com"],
  ["gcp:dns/", "dns.googleapis.com"],
  // Budgets are called in the caller's quota project: ProjectApis.billingProvider makes that
  // the stack's project (https://cloud.google.com/billing/docs/how-to/budget-api-overview).
  ["gcp:billing/budget", "billingbudgets.googleapis.com"],
];

/** The API a resource type needs, or undefined for types that call none (providers, random...). */
export function apiForType(type: string): string | undefined {
  return GCP_API_BY_TYPE_PREFIX.find(([prefix]) => type.startsWith(prefix))?.[1];
}

/** What every GCP stack creates: the data plane (network, stores, secrets, monitoring, budget). */
export const DATA_PLANE_APIS = [
  "compute.googleapis.com",
  "servicenetworking.googleapis.com",
  "redis.googleapis.com",
  "sqladmin.googleapis.com",
  "secretmanager.googleapis.com",
  "monitoring.googleapis.com",
  "logging.googleapis.com",
  "iam.googleapis.com",
  "cloudresourcemanager.googleapis.com",
  "billingbudgets.googleapis.com",
] as const;

export interface ProjectApisArgs {
  project: string;
  region: string;
  /** The APIs to enable (duplicates are fine). */
  apis: readonly string[];
}

/**
 * Enables APIs on a project and hands out providers that wait for them. Enabling is free;
 * `disableOnDestroy: false` keeps a destroy of this stack from switching off an API that another
 * stack in the same project still uses.
 */
export class ProjectApis extends pulumi.ComponentResource {
  readonly services: Record<string, gcp.projects.Service>;
  /** Use for every GCP resource of the stack. */
  readonly provider: gcp.Provider;
  /**
   * For billing budgets: bills API quota to the stack's project (where billingbudgets is enabled
   * here) instead of the deployer's own quota project, which would need it enabled by hand.
   */
  readonly billingProvider: gcp.Provider;

  constructor(name: string, args: ProjectApisArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:gcp:ProjectApis", name, {}, opts);
    const apis = [...new Set(args.apis)].sort();
    const bad = apis.filter((a) => !/^[a-z][a-z0-9-]*\.googleapis\.com$/.test(a));
    if (bad.length) {
      throw new pulumi.ResourceError(
        `ProjectApis "${name}": ${bad.join(", ")} ${bad.length > 1 ? "are not service names" : "is not a service name"}: use <api>.googleapis.com.`,
        this,
      );
    }
    this.services = Object.fromEntries(
      apis.map((api) => [
        api,
        new gcp.projects.Service(
          `${name}-${api.split(".")[0]}`,
          {
            project: args.project,
            service: api,
            disableOnDestroy: false,
            disableDependentServices: false,
          },
          { parent: this },
        ),
      ]),
    );
    const all = Object.values(this.services);
    this.provider = new gcp.Provider(
      `${name}-gated`,
      { project: args.project, region: args.region },
      { parent: this, dependsOn: all },
    );
    this.billingProvider = new gcp.Provider(
      `${name}-billing`,
      {
        project: args.project,
        region: args.region,
        userProjectOverride: true,
        billingProject: args.project,
      },
      { parent: this, dependsOn: all },
    );
    this.registerOutputs({ apis });
  }
}
