import * as pulumi from "@pulumi/pulumi";
import * as gcp from "@pulumi/gcp";
import type { NetworkAttachment } from "../contracts";
import type { NatSizing } from "./sizing";
import {
  checkAutonamedName,
  checkProjectId,
  checkRegion,
  cidrsOverlap,
  joinProblems,
  parseCidr,
} from "./naming";
import { SERVICE_CONTRACT } from "../../app/src/contract";

/** Ranges Google's load balancers and health checkers connect from. */
export const GOOGLE_HEALTH_CHECK_RANGES = ["35.191.0.0/16", "130.211.0.0/22"];

/** Ports compute uses to reach the stores: Postgres, Cloud SQL connectors, Redis with TLS. */
export const STORE_PORTS = ["5432", "3307", "6378"];

export interface GcpNetworkArgs {
  project: string;
  region: string;
  /** Cloud NAT settings from `gcpSizing(profile).nat`. */
  nat: NatSizing;
  /**
   * Primary range of the regional subnet compute runs in.
   * @default "10.10.0.0/20"
   */
  subnetCidr?: string;
  /**
   * Range reserved for Private Service Access (Cloud SQL and Memorystore live here). Must be
   * /20 or larger: every Cloud SQL instance takes a /24 and every Memorystore instance a /29.
   * @default "10.64.0.0/16"
   */
  privateServiceCidr?: string;
  /**
   * Network tag compute must carry: health checks reach it, and only it may open connections
   * to the stores' range.
   * @default "agent-compute"
   */
  computeTag?: string;
  /**
   * Port the service listens on, opened to Google's health checkers.
   * @default SERVICE_CONTRACT.port (app/src/contract.ts)
   */
  appPort?: number;
  /**
   * VPC flow-log sampling rate for the subnet (0 disables flow logs).
   * @default 0
   */
  flowLogSampling?: number;
}

/** Settings a Cloud Run v2 service needs for Direct VPC egress (no connector VM to pay for). */
export interface DirectVpcEgress {
  network: pulumi.Output<string>;
  subnetwork: pulumi.Output<string>;
  tags: string[];
}

export interface NormalizedNetworkArgs {
  subnetCidr: string;
  privateServiceCidr: string;
  privateServicePrefix: number;
  privateServiceAddress: string;
  computeTag: string;
  appPort: number;
  flowLogSampling: number;
}

export function normalizeNetworkArgs(args: GcpNetworkArgs): NormalizedNetworkArgs {
  const privateServiceCidr = args.privateServiceCidr ?? "10.64.0.0/16";
  const [address = "", prefix = "0"] = privateServiceCidr.split("/");
  return {
    subnetCidr: args.subnetCidr ?? "10.10.0.0/20",
    privateServiceCidr,
    privateServiceAddress: address,
    privateServicePrefix: Number(prefix),
    computeTag: args.computeTag ?? "agent-compute",
    appPort: args.appPort ?? SERVICE_CONTRACT.port,
    flowLogSampling: args.flowLogSampling ?? 0,
  };
}

export function validateNetworkArgs(name: string, args: GcpNetworkArgs): string | undefined {
  const n = normalizeNetworkArgs(args);
  const subnet = parseCidr(n.subnetCidr);
  const psa = parseCidr(n.privateServiceCidr);
  return joinProblems(`GcpNetwork "${name}"`, [
    checkAutonamedName(`${name}-psa-range`, 63),
    checkProjectId(args.project),
    checkRegion(args.region),
    subnet ? undefined : `subnetCidr "${n.subnetCidr}" is not an IPv4 CIDR such as "10.10.0.0/20".`,
    subnet && (subnet.prefix < 8 || subnet.prefix > 29)
      ? `subnetCidr "${n.subnetCidr}" must be between /8 and /29.`
      : undefined,
    psa
      ? undefined
      : `privateServiceCidr "${n.privateServiceCidr}" is not an IPv4 CIDR such as "10.64.0.0/16".`,
    psa && psa.prefix > 20
      ? `privateServiceCidr "${n.privateServiceCidr}" is too small: use /20 or larger (each Cloud SQL instance takes a /24).`
      : undefined,
    subnet && psa && cidrsOverlap(n.subnetCidr, n.privateServiceCidr)
      ? `subnetCidr "${n.subnetCidr}" overlaps privateServiceCidr "${n.privateServiceCidr}": pick disjoint ranges.`
      : undefined,
    /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/.test(n.computeTag)
      ? undefined
      : `computeTag "${n.computeTag}" is not a valid network tag (lowercase letters, digits, hyphens).`,
    Number.isInteger(n.appPort) && n.appPort > 0 && n.appPort < 65536
      ? undefined
      : `appPort ${n.appPort} must be an integer between 1 and 65535.`,
    n.flowLogSampling >= 0 && n.flowLogSampling <= 1
      ? undefined
      : `flowLogSampling ${n.flowLogSampling} must be between 0 and 1.`,
  ]);
}

/**
 * A private VPC for the agent: one regional subnet with Private Google Access, Private Service
 * Access for Cloud SQL and Memorystore, Cloud NAT so compute reaches api.anthropic.com without
 * public IPs, and firewall rules that admit only Google's health checkers. Nothing is public.
 *
 * Cost: the VPC, subnet, PSA peering and firewall rules are free; Cloud NAT is about
 * $32/month per gateway in us-central1 plus $0.045/GB processed.
 */
export class GcpNetwork extends pulumi.ComponentResource {
  public readonly attachment: NetworkAttachment<"gcp">;
  public readonly directVpcEgress: DirectVpcEgress;
  /** Dependency for anything that takes a private IP from the PSA range (Cloud SQL, Memorystore). */
  public readonly privateServiceConnection: gcp.servicenetworking.Connection;
  public readonly privateServiceRangeName: pulumi.Output<string>;
  public readonly network: gcp.compute.Network;
  public readonly subnetwork: gcp.compute.Subnetwork;
  public readonly privateServiceRange: gcp.compute.GlobalAddress;
  public readonly router?: gcp.compute.Router;
  public readonly nat?: gcp.compute.RouterNat;
  public readonly firewalls: gcp.compute.Firewall[];

  constructor(name: string, args: GcpNetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:gcp:Network", name, {}, opts);
    const problem = validateNetworkArgs(name, args);
    if (problem) throw new pulumi.ResourceError(problem, this);
    const settings = normalizeNetworkArgs(args);

    this.network = this.createNetwork(name, args);
    this.subnetwork = this.createSubnetwork(name, args, settings);
    this.privateServiceRange = this.createPrivateServiceRange(name, args, settings);
    this.privateServiceConnection = this.createPrivateServiceConnection(name);
    if (args.nat.enabled) {
      this.router = this.createRouter(name, args);
      this.nat = this.createNat(name, args, this.router);
    }
    this.firewalls = this.createFirewalls(name, args, settings);

    this.privateServiceRangeName = this.privateServiceRange.name;
    this.attachment = {
      cloud: "gcp",
      networkId: this.network.id,
      networkName: this.network.name,
      subnetworkId: this.subnetwork.id,
      subnetworkName: this.subnetwork.name,
      region: args.region,
      computeTag: settings.computeTag,
    };
    this.directVpcEgress = {
      network: this.network.name,
      subnetwork: this.subnetwork.name,
      tags: [settings.computeTag],
    };

    this.registerOutputs({
      networkId: this.network.id,
      subnetworkId: this.subnetwork.id,
      privateServiceRangeName: this.privateServiceRangeName,
    });
  }

  private createNetwork(name: string, args: GcpNetworkArgs): gcp.compute.Network {
    return new gcp.compute.Network(
      `${name}-vpc`,
      {
        project: args.project,
        autoCreateSubnetworks: false,
        routingMode: "REGIONAL",
        description: "Private network for the agent service and its data stores.",
      },
      { parent: this },
    );
  }

  private createSubnetwork(
    name: string,
    args: GcpNetworkArgs,
    s: NormalizedNetworkArgs,
  ): gcp.compute.Subnetwork {
    return new gcp.compute.Subnetwork(
      `${name}-subnet`,
      {
        project: args.project,
        region: args.region,
        network: this.network.id,
        ipCidrRange: s.subnetCidr,
        // Private Google Access: compute without external IPs still reaches Google APIs
        // (Secret Manager, Artifact Registry, Cloud Logging).
        privateIpGoogleAccess: true,
        stackType: "IPV4_ONLY",
        logConfig:
          s.flowLogSampling > 0
            ? {
                aggregationInterval: "INTERVAL_5_MIN",
                flowSampling: s.flowLogSampling,
                metadata: "INCLUDE_ALL_METADATA",
              }
            : undefined,
      },
      { parent: this },
    );
  }

  private createPrivateServiceRange(
    name: string,
    args: GcpNetworkArgs,
    s: NormalizedNetworkArgs,
  ): gcp.compute.GlobalAddress {
    return new gcp.compute.GlobalAddress(
      `${name}-psa-range`,
      {
        project: args.project,
        network: this.network.id,
        purpose: "VPC_PEERING",
        addressType: "INTERNAL",
        // A fixed range (not provider-chosen) so the egress firewall below can name it.
        address: s.privateServiceAddress,
        prefixLength: s.privateServicePrefix,
        description: "Private Service Access range for Cloud SQL and Memorystore.",
      },
      { parent: this },
    );
  }

  private createPrivateServiceConnection(name: string): gcp.servicenetworking.Connection {
    return new gcp.servicenetworking.Connection(
      `${name}-psa`,
      {
        network: this.network.id,
        service: "servicenetworking.googleapis.com",
        reservedPeeringRanges: [this.privateServiceRange.name],
        // Deleting the peering fails while Google still holds producer resources (Cloud SQL
        // keeps them for days after deletion); abandoning lets `destroy` finish with the VPC.
        deletionPolicy: "ABANDON",
      },
      { parent: this },
    );
  }

  private createRouter(name: string, args: GcpNetworkArgs): gcp.compute.Router {
    return new gcp.compute.Router(
      `${name}-router`,
      { project: args.project, region: args.region, network: this.network.id },
      { parent: this },
    );
  }

  private createNat(
    name: string,
    args: GcpNetworkArgs,
    router: gcp.compute.Router,
  ): gcp.compute.RouterNat {
    return new gcp.compute.RouterNat(
      `${name}-nat`,
      {
        project: args.project,
        region: args.region,
        router: router.name,
        natIpAllocateOption: "AUTO_ONLY",
        // Only our subnet is translated; nothing else in the VPC gains an egress path.
        sourceSubnetworkIpRangesToNat: "LIST_OF_SUBNETWORKS",
        subnetworks: [{ name: this.subnetwork.selfLink, sourceIpRangesToNats: ["ALL_IP_RANGES"] }],
        // Dynamic allocation: long-lived streaming LLM connections need ports on busy VMs.
        enableDynamicPortAllocation: true,
        enableEndpointIndependentMapping: false,
        minPortsPerVm: args.nat.minPortsPerVm,
        maxPortsPerVm: args.nat.maxPortsPerVm,
        logConfig: { enable: true, filter: "ERRORS_ONLY" },
      },
      { parent: this },
    );
  }

  private createFirewalls(
    name: string,
    args: GcpNetworkArgs,
    s: NormalizedNetworkArgs,
  ): gcp.compute.Firewall[] {
    const healthChecks = new gcp.compute.Firewall(
      `${name}-allow-health-checks`,
      {
        project: args.project,
        network: this.network.id,
        direction: "INGRESS",
        priority: 1000,
        sourceRanges: GOOGLE_HEALTH_CHECK_RANGES,
        targetTags: [s.computeTag],
        allows: [{ protocol: "tcp", ports: [String(s.appPort)] }],
        description:
          "Google load balancers and health checkers to the service port. Nothing else is admitted.",
      },
      { parent: this },
    );
    // Consumer-side firewall rules cannot filter ingress into the PSA peering, so gate the egress:
    // only tagged compute may open connections to the stores' range.
    const storesAllow = new gcp.compute.Firewall(
      `${name}-allow-stores`,
      {
        project: args.project,
        network: this.network.id,
        direction: "EGRESS",
        priority: 1000,
        destinationRanges: [s.privateServiceCidr],
        targetTags: [s.computeTag],
        allows: [{ protocol: "tcp", ports: STORE_PORTS }],
        description: "Tagged compute to Cloud SQL and Memorystore.",
      },
      { parent: this },
    );
    const storesDeny = new gcp.compute.Firewall(
      `${name}-deny-stores`,
      {
        project: args.project,
        network: this.network.id,
        direction: "EGRESS",
        priority: 65000,
        destinationRanges: [s.privateServiceCidr],
        denies: [{ protocol: "all" }],
        logConfig: { metadata: "INCLUDE_ALL_METADATA" },
        description: "Everything else in the VPC is kept away from the data stores.",
      },
      { parent: this },
    );
    return [healthChecks, storesAllow, storesDeny];
  }
}
