/**
 * Components added for day-one deploys (issue 12): the APIs a GCP stack enables and the provider
 * that waits for them, the DNS-validated ACM certificate, and the DNS records the VM groups create.
 */
import * as aws from "@pulumi/aws";
import * as gcp from "@pulumi/gcp";
import { outputOf, setupPulumiMocks, within } from "../support/pulumi";
import "../support/pulumi-gcp-outputs";
import "../support/pulumi-target-outputs";
import { ProjectApis, apiForType, DATA_PLANE_APIS } from "../../components/gcp/apis";
import { DnsValidatedCertificate, checkCertificateArgs } from "../../components/aws/certificate";
import { AwsVmGroupTarget, type AwsVmGroupTargetArgs } from "../../components/targets/vm-group-aws";
import { GcpVmGroupTarget, type GcpVmGroupTargetArgs } from "../../components/targets/vm-group-gcp";
import {
  fakeImageArtifact,
  FAKE_AWS,
  FAKE_GCP,
  FAKE_IMAGE_DIGEST,
} from "../support/fake-data-plane";
import { targetArgs } from "./targets/helpers";

setupPulumiMocks({ stack: "dev", region: "us-east-2" });

describe("ProjectApis", () => {
  test("enables each API once, never disabled on destroy; both providers wait for all of them", async () => {
    const apis = new ProjectApis("apis", {
      project: "acme-agent-dev",
      region: "us-central1",
      apis: [...DATA_PLANE_APIS, "run.googleapis.com", "compute.googleapis.com"],
    });
    const q = await within(apis);
    const services = q.findByType(gcp.projects.Service);
    expect(services.map((s) => s.inputs.service).sort()).toEqual(
      [...new Set([...DATA_PLANE_APIS, "run.googleapis.com"])].sort(),
    );
    for (const s of services) {
      expect(s.inputs).toMatchObject({
        project: "acme-agent-dev",
        disableOnDestroy: false,
        disableDependentServices: false,
      });
    }
    const providers = q.findByType("pulumi:providers:gcp");
    expect(providers.map((p) => p.name).sort()).toEqual(["apis-billing", "apis-gated"]);
    for (const p of providers) {
      expect([...p.options.dependencies].sort()).toEqual(services.map((s) => s.urn).sort());
    }
    expect(providers.find((p) => p.name === "apis-billing")!.inputs).toMatchObject({
      userProjectOverride: "true",
      billingProject: "acme-agent-dev",
    });
  });

  test("every resource type the components create maps to its API", () => {
    expect(apiForType("gcp:cloudrunv2/service:Service")).toBe("run.googleapis.com");
    expect(apiForType("gcp:servicenetworking/connection:Connection")).toBe(
      "servicenetworking.googleapis.com",
    );
    expect(apiForType("gcp:billing/budget:Budget")).toBe("billingbudgets.googleapis.com");
    expect(apiForType("pulumi:providers:gcp")).toBeUndefined();
  });

  test("refuses names that are not services", () => {
    expect(() => new ProjectApis("bad", { project: "p", region: "r", apis: ["redis"] })).toThrow(
      /redis is not a service name: use <api>\.googleapis\.com/,
    );
  });
});

describe("DnsValidatedCertificate", () => {
  test("a DNS-validated certificate whose ARN resolves only through the validation", async () => {
    const cert = new DnsValidatedCertificate("cert", {
      domain: "agent.acme.io",
      hostedZoneId: "Z0123456789ABCDEFGHIJ",
    });
    const q = await within(cert);
    expect(q.findOne(aws.acm.Certificate).inputs).toMatchObject({
      domainName: "agent.acme.io",
      validationMethod: "DNS",
    });
    const record = q.findOne(aws.route53.Record).inputs;
    expect(record).toMatchObject({ zoneId: "Z0123456789ABCDEFGHIJ", type: "CNAME", ttl: 300 });
    expect(String(record.name)).toMatch(/^_[0-9a-f]{32}\.agent\.acme\.io\.$/);
    expect(record.records).toEqual([expect.stringMatching(/\.acm-validations\.aws\.$/)]);
    const validation = q.findOne(aws.acm.CertificateValidation);
    expect(validation.inputs.validationRecordFqdns).toEqual([
      String(record.name).replace(/\.$/, ""),
    ]);
    expect(await outputOf(cert.certificateArn)).toBe(validation.inputs.certificateArn);
  });

  test("says what to change for a bad name or zone", () => {
    expect(checkCertificateArgs({ domain: "Agent.Example", hostedZoneId: "acme" })).toEqual([
      'domain "Agent.Example" is not a lowercase DNS name such as "agent.example.com".',
      'hostedZoneId "acme" is not a Route 53 hosted zone id (Z...).',
    ]);
  });
});

describe("VM groups: DNS records in the configured zone, pinned images", () => {
  test("AWS: an alias A record to the ALB, and the pinned AMI in the launch template", async () => {
    const args = targetArgs<AwsVmGroupTargetArgs>(
      "aws",
      {
        artifact: fakeImageArtifact(
          `${FAKE_AWS.account}.dkr.ecr.us-east-2.amazonaws.com/agent@${FAKE_IMAGE_DIGEST}`,
        ),
        domain: "agent.acme.io",
        certificateArn: "arn:aws:acm:us-east-2:210987654321:certificate/x",
        hostedZoneId: "Z0123456789ABCDEFGHIJ",
        imageId: "ami-0abcdef1234567890",
      },
      { env: "prod" },
    );
    const vm = new AwsVmGroupTarget("vma", args);
    const q = await within(vm);
    const lb = q.findOne(aws.lb.LoadBalancer);
    expect(q.findOne(aws.route53.Record).inputs).toMatchObject({
      zoneId: "Z0123456789ABCDEFGHIJ",
      name: "agent.acme.io",
      type: "A",
      aliases: [{ name: lb.state.dnsName, zoneId: lb.state.zoneId, evaluateTargetHealth: true }],
    });
    expect(q.findOne(aws.ec2.LaunchTemplate).inputs.imageId).toBe("ami-0abcdef1234567890");
  });

  test("GCP: an A record to the load balancer's address in the Cloud DNS zone, and an uptime check", async () => {
    const args = targetArgs<GcpVmGroupTargetArgs>(
      "gcp",
      {
        project: FAKE_GCP.project,
        artifact: fakeImageArtifact(
          `us-central1-docker.pkg.dev/${FAKE_GCP.project}/agent/agent@${FAKE_IMAGE_DIGEST}`,
        ),
        domain: "agent.acme.io",
        dnsZone: "acme-io",
      },
      { env: "prod" },
    );
    const vm = new GcpVmGroupTarget("vmg", args);
    const q = await within(vm);
    expect(q.findOne(gcp.dns.RecordSet).inputs).toEqual({
      project: FAKE_GCP.project,
      managedZone: "acme-io",
      name: "agent.acme.io.",
      type: "A",
      ttl: 300,
      rrdatas: [q.findOne(gcp.compute.GlobalAddress, "vmg").state.address],
    });
    expect(q.findOne(gcp.monitoring.UptimeCheckConfig).inputs.httpCheck).toMatchObject({
      path: "/health",
      useSsl: true,
    });
  });
});
