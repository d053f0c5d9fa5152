/** GcpNetwork on its own: options the data plane does not exercise, and argument validation. */
import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { outputOf, setupPulumiMocks, within, type ResourceQuery } from "../../support/pulumi";
import "../../support/pulumi-gcp-outputs";
import {
  GcpNetwork,
  normalizeNetworkArgs,
  validateNetworkArgs,
  type GcpNetworkArgs,
} from "../../../components/gcp/network";
import { natSizing } from "../../../components/gcp/sizing";

setupPulumiMocks({ stack: "test", region: "us-central1" });

const base: GcpNetworkArgs = {
  project: "agent-dev-1",
  region: "europe-west4",
  nat: natSizing("single"),
};

let noNat: GcpNetwork;
let custom: GcpNetwork;
let noNatQ: ResourceQuery;
let customQ: ResourceQuery;

beforeAll(async () => {
  noNat = new GcpNetwork("isolated", { ...base, nat: natSizing("none") });
  custom = new GcpNetwork("custom", {
    ...base,
    subnetCidr: "172.16.0.0/22",
    privateServiceCidr: "172.20.0.0/20",
    computeTag: "agent-vm",
    appPort: 3000,
    flowLogSampling: 0.25,
  });
  noNatQ = await within(noNat);
  customQ = await within(custom);
});

test("natGateways none: no router and no NAT, so nothing in the VPC can reach the internet", () => {
  expect(noNatQ.count(gcp.compute.Router)).toBe(0);
  expect(noNatQ.count(gcp.compute.RouterNat)).toBe(0);
  expect(noNat.nat).toBeUndefined();
  // The stores are still reachable privately.
  expect(noNatQ.count(gcp.servicenetworking.Connection)).toBe(1);
});

test("custom ranges, tag and port flow into subnet, PSA range, firewalls and the attachment", async () => {
  expect(customQ.findOne(gcp.compute.Subnetwork).inputs).toMatchObject({
    ipCidrRange: "172.16.0.0/22",
    region: "europe-west4",
    logConfig: { flowSampling: 0.25 },
  });
  expect(customQ.findOne(gcp.compute.GlobalAddress).inputs).toMatchObject({
    address: "172.20.0.0",
    prefixLength: 20,
  });
  const fws = customQ.findByType(gcp.compute.Firewall);
  expect(fws.find((f) => f.name === "custom-allow-health-checks")!.inputs).toMatchObject({
    targetTags: ["agent-vm"],
    allows: [{ protocol: "tcp", ports: ["3000"] }],
  });
  expect(fws.find((f) => f.name === "custom-allow-stores")!.inputs.destinationRanges).toEqual([
    "172.20.0.0/20",
  ]);
  expect(custom.attachment.computeTag).toBe("agent-vm");
  expect(custom.attachment.region).toBe("europe-west4");
  expect(await outputOf(custom.directVpcEgress.subnetwork)).toBe(
    await outputOf(custom.subnetwork.name),
  );
});

test("the PSA connection reserves exactly the component's range and is abandoned, not deleted, on destroy", async () => {
  const conn = customQ.findOne(gcp.servicenetworking.Connection).inputs;
  expect(conn.reservedPeeringRanges).toEqual([await outputOf(custom.privateServiceRange.name)]);
  expect(conn.deletionPolicy).toBe("ABANDON");
});

test("without flow-log sampling the subnet has no log config", () => {
  expect(noNatQ.findOne(gcp.compute.Subnetwork).inputs.logConfig).toBeUndefined();
});

test("defaults", () => {
  expect(normalizeNetworkArgs(base)).toEqual({
    subnetCidr: "10.10.0.0/20",
    privateServiceCidr: "10.64.0.0/16",
    privateServiceAddress: "10.64.0.0",
    privateServicePrefix: 16,
    computeTag: "agent-compute",
    appPort: 8080,
    flowLogSampling: 0,
  });
});

describe("validation says what to change", () => {
  test.each([
    [{ subnetCidr: "10.10.0.0" }, /subnetCidr "10.10.0.0" is not an IPv4 CIDR/],
    [{ privateServiceCidr: "10.64.0.0/24" }, /too small: use \/20 or larger/],
    [{ subnetCidr: "10.64.8.0/22" }, /overlaps privateServiceCidr/],
    [{ computeTag: "Agent VMs" }, /computeTag "Agent VMs" is not a valid network tag/],
    [{ appPort: 70000 }, /appPort 70000 must be an integer between 1 and 65535/],
    [{ flowLogSampling: 2 }, /flowLogSampling 2 must be between 0 and 1/],
    [{ region: "europe" }, /region "europe" is not a GCP region name/],
  ] as const)("%j", (override, message) => {
    expect(validateNetworkArgs("net", { ...base, ...override })).toMatch(message);
  });

  test("valid arguments produce no problem", () => {
    expect(validateNetworkArgs("net", base)).toBeUndefined();
  });

  test("the component throws a ResourceError naming itself", () => {
    let error: unknown;
    try {
      new GcpNetwork("broken", { ...base, privateServiceCidr: "10.64.0.0/28" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(pulumi.ResourceError);
    expect((error as Error).message).toMatch(
      /^GcpNetwork "broken": privateServiceCidr "10.64.0.0\/28" is too small/,
    );
  });
});
