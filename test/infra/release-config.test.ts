/**
 * Stack config of releases and progressive delivery (issue 15): `agent:release` (a rollback),
 * `agent:rollout.steps` (the canary) and `agent:promotionReaders` (cross-account grants). Every
 * mistake is refused with the key and what to change.
 */
import { parseStackConfig, type RawStackConfig } from "../../infra/config";
import { problems } from "./config-problems";
import { ROLLOUT_RULES } from "../../components/release/rollout-plan";

const TARGETS = {
  lambda: { "aws:region": "us-east-1", "agent:target": "lambda" },
  eks: {
    "aws:region": "us-east-2",
    "agent:target": "eks",
    "agent:eks": '{"viewerPrincipalArns":["arn:aws:iam::123456789012:role/preview"]}',
  },
  "vm-aws": {
    "aws:region": "us-west-2",
    "agent:target": "vmgroup",
    "agent:cloud": "aws",
    "agent:vmgroup": '{"imageId":"ami-0123456789abcdef0"}',
  },
  cloudrun: {
    "gcp:region": "us-central1",
    "gcp:project": "acme-agent-prod",
    "agent:target": "cloudrun",
    "agent:billingAccount": "000000-000000-000000",
  },
} as const;

const raw = (
  target: keyof typeof TARGETS,
  extra: Record<string, string> = {},
  environment = "staging",
): RawStackConfig => ({
  stack: `${target}-${environment}`,
  values: {
    ...TARGETS[target],
    "agent:environment": environment,
    "agent:owner": "team",
    "agent:costCenter": "cc-1",
    "agent:anthropicApiKey": "sk-test",
    "agent:alertEmails": '["oncall@acme.test"]',
    ...(environment === "dev" ? {} : { "agent:promoteFrom": `${target}-dev` }),
    ...extra,
  },
  secretKeys: ["agent:anthropicApiKey"],
});

const DIGEST = `sha256:${"ab".repeat(32)}`;

describe("agent:release (a rollback)", () => {
  test("an image digest is taken as is, or from its 64 hex characters", () => {
    expect(parseStackConfig(raw("eks", { "agent:release": DIGEST })).release).toBe(DIGEST);
    expect(parseStackConfig(raw("cloudrun", { "agent:release": DIGEST.slice(7) })).release).toBe(
      DIGEST,
    );
  });

  test("a Lambda bundle's SHA-256 is taken in base64 (as Lambda shows it) or hex (as S3 keys do)", () => {
    const hex = "cd".repeat(32);
    const b64 = Buffer.from(hex, "hex").toString("base64");
    expect(parseStackConfig(raw("lambda", { "agent:release": hex })).release).toBe(b64);
    expect(parseStackConfig(raw("lambda", { "agent:release": b64 })).release).toBe(b64);
  });

  test("a stack that builds has no storage of releases to roll back to: it redeploys a commit", () => {
    expect(problems(raw("eks", { "agent:release": DIGEST }, "dev"))).toEqual([
      expect.stringMatching(
        /^agent:release rolls back to a release in the storage a promoted stack owns.*no agent:promoteFrom.*deploy the older commit instead/,
      ),
    ]);
  });

  test("a value that is not a release of the target says what one looks like", () => {
    expect(problems(raw("eks", { "agent:release": "v1.2.3" }))).toEqual([
      expect.stringMatching(/agent:release "v1.2.3" is not an image digest \(sha256:<64 hex>/),
    ]);
    expect(problems(raw("lambda", { "agent:release": DIGEST }))).toEqual([
      expect.stringMatching(/is not a bundle SHA-256 \(44 base64 characters or 64 hex/),
    ]);
  });
});

describe("agent:rollout.steps (progressive delivery)", () => {
  test("off in dev, 10 % for 5 minutes in staging and prod, unless the stack says", () => {
    expect(parseStackConfig(raw("eks", {}, "dev")).rolloutSteps).toEqual([]);
    expect(parseStackConfig(raw("eks", {}, "staging")).rolloutSteps).toEqual([
      { percent: 10, minutes: 5 },
    ]);
    expect(parseStackConfig(raw("lambda", {}, "prod")).rolloutSteps).toEqual([
      { percent: 10, minutes: 5 },
    ]);
    expect(
      parseStackConfig(raw("lambda", { "agent:rollout": '{"steps":[]}' }, "prod")).rolloutSteps,
    ).toEqual([]);
    const steps = [
      { percent: 5, minutes: 10 },
      { percent: 50, minutes: 20 },
    ];
    expect(
      parseStackConfig(raw("cloudrun", { "agent:rollout": JSON.stringify({ steps }) }))
        .rolloutSteps,
    ).toEqual(steps);
  });

  test.each([
    [[{ percent: 0, minutes: 5 }], /steps\[0\]\.percent is 0: use a whole number from 1 to 99/],
    [
      [{ percent: 100, minutes: 5 }],
      /steps\[0\]\.percent is 100.*the last step to 100 % is implied/,
    ],
    [[{ percent: 12.5, minutes: 5 }], /steps\[0\]\.percent is 12.5/],
    [
      [
        { percent: 50, minutes: 5 },
        { percent: 20, minutes: 5 },
      ],
      /steps\[1\]\.percent is 20, not above the step before \(50\)/,
    ],
    [
      [{ percent: 10, minutes: 1 }],
      new RegExp(
        `steps\\[0\\]\\.minutes is 1: use a whole number from ${ROLLOUT_RULES.minStepMinutes} \\(the gates' window\\)`,
      ),
    ],
    [
      [{ percent: 10, minutes: 3000 }],
      /minutes is 3000.*to 2880 \(48 h, the instance refresh limit\)/,
    ],
  ])("bad steps %j are refused", (steps, message) => {
    expect(problems(raw("cloudrun", { "agent:rollout": JSON.stringify({ steps }) }))).toEqual([
      expect.stringMatching(message),
    ]);
  });

  test("Lambda: CodeDeploy takes a canary or equal linear steps, nothing else", () => {
    const linear = [25, 50, 75].map((percent) => ({ percent, minutes: 4 }));
    expect(
      parseStackConfig(raw("lambda", { "agent:rollout": JSON.stringify({ steps: linear }) }))
        .rolloutSteps,
    ).toEqual(linear);
    const uneven = [
      { percent: 10, minutes: 5 },
      { percent: 50, minutes: 5 },
    ];
    expect(problems(raw("lambda", { "agent:rollout": JSON.stringify({ steps: uneven }) }))).toEqual(
      [
        expect.stringMatching(
          /^agent:rollout.steps: CodeDeploy shifts Lambda traffic as a canary .* or linearly .*is neither/,
        ),
      ],
    );
  });

  test("AWS VM group: an instance refresh waits the same time at every checkpoint", () => {
    const steps = [
      { percent: 10, minutes: 5 },
      { percent: 50, minutes: 10 },
    ];
    expect(problems(raw("vm-aws", { "agent:rollout": JSON.stringify({ steps }) }))).toEqual([
      expect.stringMatching(
        /instance refresh waits the same time at every checkpoint.*5, 10 minutes/,
      ),
    ]);
  });
});

describe("agent:promotionReaders (promotion across accounts and projects)", () => {
  test("AWS takes account ids and role ARNs; GCP takes IAM principals", () => {
    const aws = ["210987654321", "arn:aws:iam::210987654321:role/deploy-prod"];
    expect(
      parseStackConfig(raw("eks", { "agent:promotionReaders": JSON.stringify(aws) }, "dev"))
        .promotionReaders,
    ).toEqual(aws);
    const gcp = [
      "serviceAccount:deploy@acme-prod.iam.gserviceaccount.com",
      "group:deployers@acme.test",
    ];
    expect(
      parseStackConfig(raw("cloudrun", { "agent:promotionReaders": JSON.stringify(gcp) }, "dev"))
        .promotionReaders,
    ).toEqual(gcp);
  });

  test("a principal of the other cloud, or a bare e-mail, is refused with what is accepted", () => {
    expect(
      problems(
        raw(
          "eks",
          { "agent:promotionReaders": '["deploy@acme-prod.iam.gserviceaccount.com"]' },
          "dev",
        ),
      ),
    ).toEqual([expect.stringMatching(/promotionReaders\[0\].*neither an AWS account id/)]);
    expect(
      problems(raw("cloudrun", { "agent:promotionReaders": '["210987654321"]' }, "dev")),
    ).toEqual([
      expect.stringMatching(/promotionReaders\[0\] "210987654321" is not an IAM principal/),
    ]);
  });
});
