/**
 * Issue 12 (day-one deploys): what the stack config refuses or requires before anything is
 * created, because the clouds would refuse it later. Each rule cites the documented behaviour.
 */
import { parseStackConfig, StackConfigError, type RawStackConfig } from "../../infra/config";
import { readOfflineSamples, setConfigPath, withOfflineSamples } from "../../infra/stack-files";
import {
  DEFAULT_EKS_VERSION,
  EKS_VERSIONS,
  eksVersionProblem,
  eksVersionStatus,
} from "../../components/versions";

const VIEWER = "arn:aws:iam::210987654321:role/preview";
const raw = (values: Record<string, string>, stack = "t"): RawStackConfig => ({
  stack,
  values: {
    "aws:region": "us-east-2",
    "agent:environment": "dev",
    "agent:owner": "team",
    "agent:costCenter": "cc-1",
    "agent:anthropicApiKey": "sk-test",
    "agent:alertEmails": '["oncall@acme.test"]',
    ...values,
  },
  secretKeys: ["agent:anthropicApiKey"],
});
const eks = (eksSection: Record<string, unknown>, extra: Record<string, string> = {}) =>
  raw({
    "agent:target": "eks",
    "agent:eks": JSON.stringify({ viewerPrincipalArns: [VIEWER], ...eksSection }),
    ...extra,
  });

function rejection(r: RawStackConfig, today = "2026-12-06"): StackConfigError {
  try {
    parseStackConfig(r, { today });
  } catch (err) {
    if (err instanceof StackConfigError) return err;
    throw err;
  }
  throw new Error("expected the configuration to be rejected");
}

describe("EKS versions against AWS's release calendar (components/versions.ts)", () => {
  test("the table is dated, sourced and ordered; each version has 14 months of standard and 12 of extended support", () => {
    expect(EKS_VERSIONS.takenOn).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(EKS_VERSIONS.source).toMatch(/^https:\/\/docs\.aws\.amazon\.com\/eks\//);
    for (const v of EKS_VERSIONS.versions) {
      const months = (a: string, b: string) =>
        (Number(b.slice(0, 4)) - Number(a.slice(0, 4))) * 12 +
        Number(b.slice(5, 7)) -
        Number(a.slice(5, 7));
      expect(months(v.released, v.endOfStandardSupport)).toBe(14);
      expect(months(v.endOfStandardSupport, v.endOfExtendedSupport)).toBe(12);
    }
  });

  test("phases on the day the calendar was read: 1.31 ended, 1.34 extended, 1.35 standard", () => {
    expect(eksVersionStatus("1.31", "2026-12-06").phase).toBe("ended");
    expect(eksVersionStatus("1.33", "2026-12-06").phase).toBe("extended");
    expect(eksVersionStatus("1.34", "2026-12-02").phase).toBe("standard");
    expect(eksVersionStatus("1.34", "2026-12-03").phase).toBe("extended");
    expect(eksVersionStatus("1.35", "2026-12-06").phase).toBe("standard");
    expect(eksVersionStatus("1.99", "2026-12-06").phase).toBe("unknown");
  });

  test("the default version is in standard support, and is what a stack without a version gets", () => {
    expect(eksVersionStatus(DEFAULT_EKS_VERSION, EKS_VERSIONS.takenOn).phase).toBe("standard");
    const c = parseStackConfig(eks({}), { today: EKS_VERSIONS.takenOn });
    expect(c.target === "eks" && c.eks.kubernetesVersion).toBeUndefined();
  });

  test("1.31 is refused whatever the opt-in: extended support ended on 2026-11-26", () => {
    for (const extendedSupport of [false, true]) {
      const err = rejection(eks({ kubernetesVersion: "1.31", extendedSupport }));
      expect(err.problems).toEqual([
        `agent:eks.kubernetesVersion is 1.31, whose extended support ended on 2026-11-26: EKS no longer creates it; use ${DEFAULT_EKS_VERSION}`,
      ]);
    }
  });

  test("a version past standard support needs agent:eks.extendedSupport, whose price the message names", () => {
    const err = rejection(eks({ kubernetesVersion: "1.33" }));
    expect(err.problems[0]).toContain("standard support ended on 2026-07-29");
    expect(err.problems[0]).toContain("$0.6/h per cluster instead of $0.1/h");
    expect(err.problems[0]).toContain("agent:eks.extendedSupport");
    const c = parseStackConfig(eks({ kubernetesVersion: "1.33", extendedSupport: true }), {
      today: "2026-12-06",
    });
    expect(c.target === "eks" && c.eks.extendedSupport).toBe(true);
  });

  test("a version the table does not know is refused with the fix", () => {
    expect(eksVersionProblem("1.99", "2026-12-06", true)).toMatch(
      /not in the EKS version table .* add 1\.99 with its dates/,
    );
  });

  test("an existing cluster's version is not ours to check", () => {
    const existing = eks(
      {
        cluster: "existing",
        kubernetesVersion: "1.31",
        oidcProviderArn: "arn:aws:iam::210987654321:oidc-provider/x",
        oidcProviderUrl: "https://oidc.eks.us-east-2.amazonaws.com/id/X",
      },
      { "agent:kubeconfig": "apiVersion: v1" },
    );
    existing.secretKeys.push("agent:kubeconfig");
    expect(() => parseStackConfig(existing, { today: "2026-12-06" })).not.toThrow();
  });
});

describe("EKS access and exposure", () => {
  test("a created cluster needs the preview/drift role's ARN (only the creator gets an access entry otherwise)", () => {
    const err = rejection(
      raw({ "agent:target": "eks", "agent:eks": JSON.stringify({ kubernetesVersion: "1.35" }) }),
    );
    expect(err.missing).toEqual(["agent:eks.viewerPrincipalArns"]);
  });

  test("principals must be IAM role or user ARNs", () => {
    const err = rejection(eks({ adminPrincipalArns: ["arn:aws:iam::123:role/short-account"] }));
    expect(err.problems[0]).toMatch(
      /agent:eks\.adminPrincipalArns\.0: must be an IAM role or user ARN/,
    );
  });

  test("prod's public endpoint needs an allow-list, or a private endpoint only", () => {
    const prod = (e: Record<string, unknown>) =>
      eks(
        { nodeMin: 3, ...e },
        {
          "agent:environment": "prod",
          "agent:domain": "agent.acme.test",
          "agent:dnsZone": "Z0123456789ABCDEFGHIJ",
          "agent:scaling": '{"min": 2}',
          "agent:promoteFrom": "eks-dev",
        },
      );
    expect(rejection(prod({})).missing).toEqual(["agent:eks.publicEndpointCidrs"]);
    expect(() =>
      parseStackConfig(prod({ publicEndpoint: false }), { today: "2026-12-06" }),
    ).not.toThrow();
    expect(
      rejection(prod({ publicEndpoint: false, publicEndpointCidrs: ["10.0.0.0/8"] })).problems,
    ).toEqual([
      "agent:eks.publicEndpointCidrs is set while agent:eks.publicEndpoint is false: remove one",
    ]);
  });

  test("exposure alb is refused on a cluster created here: nothing installs the AWS Load Balancer Controller", () => {
    expect(rejection(eks({ exposure: "alb" })).problems[0]).toMatch(
      /^agent:eks\.exposure "alb" needs the AWS Load Balancer Controller/,
    );
  });
});

describe("values only the user knows are required, and say how to set them", () => {
  test("GCP: project, billing account and alert addresses", () => {
    const err = rejection(
      raw({ "agent:target": "cloudrun", "gcp:region": "us-central1", "agent:alertEmails": "[]" }),
    );
    expect(err.missing).toEqual(["gcp:project", "agent:billingAccount", "agent:alertEmails"]);
    for (const p of err.problems) expect(p).toMatch(/set it with `pulumi config set /);
  });

  test("AWS VM groups pin their AMI (an SSM lookup drifts on every AMI release)", () => {
    const vm = raw({ "agent:target": "vmgroup", "agent:cloud": "aws" });
    expect(rejection(vm).missing).toEqual(["agent:vmgroup.imageId"]);
    expect(
      rejection(
        raw({
          "agent:target": "vmgroup",
          "agent:cloud": "aws",
          "agent:vmgroup": '{"imageId": "projects/cos-cloud/global/images/cos-113"}',
        }),
      ).problems,
    ).toEqual([
      'agent:vmgroup.imageId "projects/cos-cloud/global/images/cos-113" is not an AMI id (ami-...)',
    ]);
  });

  test("prod behind our own load balancer needs a domain; an AWS domain needs its zone or a certificate", () => {
    const prodVm = raw({
      "agent:target": "vmgroup",
      "agent:cloud": "aws",
      "agent:environment": "prod",
      "agent:promoteFrom": "vm-aws-dev",
      "agent:vmgroup": '{"imageId": "ami-0abcdef1234567890"}',
    });
    expect(rejection(prodVm).missing).toEqual(["agent:domain"]);
    const withDomain = {
      ...prodVm,
      values: { ...prodVm.values, "agent:domain": "agent.acme.test" },
    };
    expect(rejection(withDomain).missing).toEqual(["agent:dnsZone"]);
    const withCert = {
      ...withDomain,
      values: {
        ...withDomain.values,
        "agent:certificateArn": "arn:aws:acm:us-east-2:210987654321:certificate/abc",
      },
    };
    expect(() => parseStackConfig(withCert)).not.toThrow();
  });

  test("every stack names who gets its alarms and budget alerts", () => {
    expect(rejection(raw({ "agent:target": "lambda", "agent:alertEmails": "[]" })).missing).toEqual(
      ["agent:alertEmails"],
    );
  });

  test("a lambda stack with agent:scaling is refused instead of silently ignored", () => {
    expect(
      rejection(raw({ "agent:target": "lambda", "agent:scaling": '{"max": 3}' })).problems[0],
    ).toMatch(/^agent:scaling does not apply to the lambda target/);
  });
});

describe("offline samples (stacks/offline-samples.yaml) fill only what a stack leaves unset", () => {
  const samples = {
    "*": { "agent:alertEmails": ["s@acme.test"], "agent:vmgroup.imageId": "ami-0123456789abcdef0" },
    "vm-x": { "agent:domain": "x.acme.test", "agent:dnsZone": "Z0SAMPLE" },
  };

  test("required keys are filled, round after round (a domain makes the zone required), and reported", () => {
    const vm = raw(
      {
        "agent:target": "vmgroup",
        "agent:cloud": "aws",
        "agent:environment": "prod",
        "agent:promoteFrom": "vm-aws-dev",
        "agent:alertEmails": '["own@acme.test"]',
      },
      "vm-x",
    );
    const out = withOfflineSamples(vm, samples);
    expect(out.sampled.sort()).toEqual(["agent:dnsZone", "agent:domain", "agent:vmgroup.imageId"]);
    expect(out.unset).toEqual([]);
    // The stack's own value wins over the sample.
    expect(out.raw.values["agent:alertEmails"]).toBe('["own@acme.test"]');
    expect(JSON.parse(out.raw.values["agent:vmgroup"]!)).toEqual({
      imageId: "ami-0123456789abcdef0",
    });
  });

  test("optional keys are never sampled, and a key without a sample stays unset", () => {
    const out = withOfflineSamples(
      raw({ "agent:target": "cloudrun", "gcp:region": "us-central1" }),
      samples,
    );
    expect(out.sampled).toEqual([]);
    expect(out.unset.sort()).toEqual(["agent:billingAccount", "gcp:project"]);
  });

  test("paths set inside an object value", () => {
    expect(
      setConfigPath({ "agent:eks": '{"nodeMin": 2}' }, "agent:eks.publicEndpointCidrs", [
        "10.0.0.0/8",
      ]),
    ).toEqual({ "agent:eks": '{"nodeMin":2,"publicEndpointCidrs":["10.0.0.0/8"]}' });
  });

  test("the repository's samples are documentation values (RFC 2606/5737, documentation accounts)", () => {
    const text = JSON.stringify(readOfflineSamples());
    expect(text).not.toMatch(/acme|@(?!example\.com)/);
    expect(text).toMatch(/example\.com/);
  });
});
