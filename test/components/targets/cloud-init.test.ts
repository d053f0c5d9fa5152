import { spawnSync } from "node:child_process";
import * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";
import {
  AWS_USER_DATA_MAX_BYTES,
  ENV_FILE,
  START_SCRIPT,
  checkedCloudConfig,
  cloudConfig,
  dockerRunArguments,
  ecrImage,
  envFileContent,
  envProblems,
  googleRegistry,
  guardedCloudConfig,
  renderCloudConfig,
  shellQuote,
  startScript,
  systemdUnit,
  userDataBase64,
  userDataProblems,
  type ContainerUserDataSpec,
} from "../../../components/targets/cloud-init";
import { isSecretOutput, outputOf, setupPulumiMocks } from "../../support/pulumi";
import {
  HAVE_CLOUD_INIT,
  IN_CI,
  cloudInitSchema,
  expectValidCloudConfig,
  validatorTest,
} from "./helpers";

setupPulumiMocks({ stack: "dev" });

// The real validator (./helpers): locally it may be missing (skip); CI installs it, and there it must run.
if (!HAVE_CLOUD_INIT && IN_CI) {
  test("cloud-init is installed (CI validates user data with it)", () => {
    throw new Error(
      "cloud-init is not installed on this CI machine: install it (Debian package cloud-init).",
    );
  });
}

// ---------------------------------------------------------------------------------------------
// Realistic inputs: what serviceEnv produces for each cloud's data plane.

const DIGEST = `sha256:${"ab".repeat(32)}`;
const ECR_IMAGE = `123456789012.dkr.ecr.us-east-1.amazonaws.com/agent/service@${DIGEST}`;
const AR_IMAGE = `us-central1-docker.pkg.dev/agent-test-project/agent/agent@${DIGEST}`;
const CA = "-----BEGIN CERTIFICATE-----\nMIIBfakeMemorystoreCA\nAAAA\n-----END CERTIFICATE-----\n";

const awsEnv: Record<string, string> = {
  NODE_ENV: "production",
  PORT: "8080",
  LOG_LEVEL: "info",
  AWS_REGION: "us-east-1",
  DATABASE_URL:
    "postgres://agent@agent-db.cabc123.us-east-1.rds.amazonaws.com:5432/agent?sslmode=require&uselibpqcompat=true",
  REDIS_URL: "rediss://master.agent-redis.abc123.use1.cache.amazonaws.com:6379",
  ANTHROPIC_API_KEY_SECRET:
    "aws-sm://arn:aws:secretsmanager:us-east-1:123456789012:secret:agent/anthropic-key-AbCdEf",
  DATABASE_PASSWORD_SECRET:
    "aws-sm://arn:aws:secretsmanager:us-east-1:123456789012:secret:agent/postgres-password-GhIjKl",
  REDIS_PASSWORD_SECRET:
    "aws-sm://arn:aws:secretsmanager:us-east-1:123456789012:secret:agent/redis-auth-MnOpQr",
};

const gcpEnv: Record<string, string> = {
  NODE_ENV: "production",
  PORT: "8080",
  LOG_LEVEL: "info",
  DATABASE_URL: "postgres://agent@10.64.1.5:5432/agent?sslmode=require&uselibpqcompat=true",
  REDIS_URL: "rediss://10.64.0.3:6378",
  REDIS_TLS_CA: CA,
  ANTHROPIC_API_KEY_SECRET:
    "gcp-sm://projects/agent-test-project/secrets/agent-anthropic-key/versions/latest",
  DATABASE_PASSWORD_SECRET:
    "gcp-sm://projects/agent-test-project/secrets/agent-postgres-password/versions/latest",
  REDIS_PASSWORD_SECRET:
    "gcp-sm://projects/agent-test-project/secrets/agent-redis-auth/versions/latest",
};

const awsSpec: ContainerUserDataSpec = {
  host: { cloud: "aws", region: "us-east-1", logGroupName: "/agent/vm/agent-dev-1a2b3c4" },
  imageRef: ECR_IMAGE,
  env: awsEnv,
};
const gcpSpec: ContainerUserDataSpec = { host: { cloud: "gcp" }, imageRef: AR_IMAGE, env: gcpEnv };

interface ParsedDoc {
  write_files: Array<{ path: string; permissions: string; owner: string; content: string }>;
  runcmd: string[][];
}
const parsed = (doc: string) => parse(doc) as ParsedDoc;
const fileOf = (doc: ParsedDoc, path: string) => {
  const f = doc.write_files.find((w) => w.path === path);
  if (!f)
    throw new Error(`no ${path} in write_files: ${doc.write_files.map((w) => w.path).join(", ")}`);
  return f;
};

/** The `docker run` words of a start script, as the shell would split them (literals only). */
function dockerRunLine(script: string): string {
  return script.slice(script.indexOf("exec docker run")).replace(/\\\n\s*/g, " ");
}

// ---------------------------------------------------------------------------------------------

describe("the real validator (cloud-init schema)", () => {
  validatorTest("accepts the AWS document", () => {
    const doc = renderCloudConfig(awsSpec);
    expect(doc.startsWith("#cloud-config\n")).toBe(true);
    expectValidCloudConfig(doc);
  });

  validatorTest("accepts the GCP document, with a multi-line CA", () => {
    expectValidCloudConfig(renderCloudConfig(gcpSpec));
  });

  validatorTest("rejects a deliberately broken document (so the check can fail)", () => {
    const broken = parsed(renderCloudConfig(awsSpec)) as unknown as Record<string, unknown>;
    // write_files entries need a path; runcmd must be a list.
    (broken.write_files as Array<Record<string, unknown>>)[0]!.path = undefined;
    delete (broken.write_files as Array<Record<string, unknown>>)[0]!.path;
    broken.runcmd = { start: "agent" };
    const r = cloudInitSchema(`#cloud-config\n${JSON.stringify(broken)}\n`);
    expect(r.valid).toBe(false);
    expect(r.output).toMatch(/runcmd/);
    expect(r.output).toMatch(/path/);
  });

  validatorTest("rejects a document without the #cloud-config header", () => {
    const r = cloudInitSchema(renderCloudConfig(awsSpec).replace("#cloud-config\n", ""));
    expect(r.valid).toBe(false);
    expect(r.output).toMatch(/#cloud-config/);
  });
});

describe("what the document does", () => {
  const aws = parsed(renderCloudConfig(awsSpec));
  const gcp = parsed(renderCloudConfig(gcpSpec));

  test("env file: mode 0600, root-owned, only settings and _SECRET references, sorted", () => {
    for (const doc of [aws, gcp]) {
      const f = fileOf(doc, ENV_FILE);
      expect(f.permissions).toBe("0600");
      expect(f.owner).toBe("root:root");
      const lines = f.content.split("\n").filter((l) => l && !l.startsWith("#"));
      for (const line of lines) expect(line).toMatch(/^[A-Z_][A-Z0-9_]*=\S+$/);
      const names = lines.map((l) => l.split("=")[0]!);
      expect(names).toEqual([...names].sort());
      // The secrets themselves never appear, only their references.
      expect(names).not.toContain("ANTHROPIC_API_KEY");
      expect(names).not.toContain("DATABASE_PASSWORD");
      expect(names).not.toContain("REDIS_PASSWORD");
      for (const n of names.filter((x) => x.endsWith("_SECRET"))) {
        expect(lines.find((l) => l.startsWith(`${n}=`))).toMatch(
          /^[A-Z_]+_SECRET=(aws-sm|gcp-sm):\/\//,
        );
      }
    }
    expect(fileOf(aws, ENV_FILE).content).toContain(
      `ANTHROPIC_API_KEY_SECRET=${awsEnv.ANTHROPIC_API_KEY_SECRET}`,
    );
    expect(fileOf(gcp, ENV_FILE).content).toContain(
      `REDIS_PASSWORD_SECRET=${gcpEnv.REDIS_PASSWORD_SECRET}`,
    );
  });

  test("multi-line values go to their own 0600 file, passed with --env, never into the env file", () => {
    expect(fileOf(gcp, ENV_FILE).content).not.toContain("REDIS_TLS_CA");
    const ca = fileOf(gcp, "/etc/agent/env.d/REDIS_TLS_CA");
    expect(ca.permissions).toBe("0600");
    expect(ca.content).toBe(CA);
    expect(dockerRunLine(startScript(gcpSpec))).toContain(
      `--env "REDIS_TLS_CA=$(cat /etc/agent/env.d/REDIS_TLS_CA)"`,
    );
    expect(aws.write_files.some((w) => w.path.includes("env.d"))).toBe(false);
  });

  test("docker run: read-only root, tmpfs /tmp, non-root user, no capabilities, stop timeout >= 30 s, port 8080", () => {
    for (const spec of [awsSpec, gcpSpec]) {
      const run = dockerRunLine(startScript(spec));
      expect(run).toContain("--read-only");
      expect(run).toMatch(/--tmpfs \/tmp:rw,noexec,nosuid,nodev,size=64m/);
      expect(run).toContain("--user 10001:10001");
      expect(run).toContain("--cap-drop ALL");
      expect(run).toContain("--security-opt no-new-privileges");
      expect(run).toContain("--publish 8080:8080");
      expect(run).toContain(`--env-file ${ENV_FILE}`);
      const stop = Number(/--stop-timeout (\d+)/.exec(run)![1]);
      expect(stop).toBeGreaterThanOrEqual(30);
      // The image by digest, last.
      expect(run.trim().endsWith(spec.imageRef)).toBe(true);
    }
  });

  test("AWS: docker installed, ECR login with the instance role, logs to the CloudWatch group", () => {
    const script = startScript(awsSpec);
    expect(aws.runcmd[0]).toEqual(["dnf", "install", "--assumeyes", "docker"]);
    expect(aws.runcmd).toContainEqual(["systemctl", "enable", "--now", "docker.service"]);
    expect(script).toContain(
      "aws ecr get-login-password --region us-east-1 | docker login --username AWS --password-stdin 123456789012.dkr.ecr.us-east-1.amazonaws.com",
    );
    const run = dockerRunLine(script);
    expect(run).toContain("--log-driver awslogs");
    expect(run).toContain("--log-opt awslogs-group=/agent/vm/agent-dev-1a2b3c4");
    expect(run).toContain("--log-opt awslogs-region=us-east-1");
    expect(run).not.toContain("gcplogs");
  });

  test("GCP: docker already on COS, Artifact Registry credentials for the image's registry, gcplogs", () => {
    const script = startScript(gcpSpec);
    expect(gcp.runcmd.flat()).not.toContain("dnf");
    expect(script).toContain(
      "docker-credential-gcr configure-docker --registries us-central1-docker.pkg.dev",
    );
    expect(script).not.toContain("aws ecr");
    const run = dockerRunLine(script);
    expect(run).toContain("--log-driver gcplogs");
    expect(run).not.toContain("awslogs");
  });

  test("a public image needs no registry login", () => {
    const script = startScript({ ...awsSpec, imageRef: `ghcr.io/example/agent@${DIGEST}` });
    expect(script).not.toContain("docker login");
    expect(script).toContain(`docker pull ghcr.io/example/agent@${DIGEST}`);
  });

  test("systemd unit: restarts forever, stops through docker within its own timeout, enabled at boot", () => {
    for (const doc of [aws, gcp]) {
      const unit = fileOf(doc, "/etc/systemd/system/agent.service");
      expect(unit.permissions).toBe("0644");
      expect(unit.content).toContain("Restart=always");
      expect(unit.content).toContain("StartLimitIntervalSec=0");
      expect(unit.content).toContain("Requires=docker.service");
      expect(unit.content).toContain(`ExecStart=/bin/sh ${START_SCRIPT}`);
      expect(unit.content).toContain("ExecStop=/usr/bin/docker stop --time 35 agent");
      expect(Number(/TimeoutStopSec=(\d+)/.exec(unit.content)![1])).toBeGreaterThan(30);
      expect(unit.content).toContain("WantedBy=multi-user.target");
      expect(doc.runcmd.slice(-2)).toEqual([
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", "agent.service"],
      ]);
      expect(fileOf(doc, START_SCRIPT).permissions).toBe("0700");
    }
  });

  test("the start script is valid sh and runs docker last with exec", () => {
    for (const spec of [awsSpec, gcpSpec]) {
      const script = startScript(spec);
      const r = spawnSync("sh", ["-n"], { input: script, encoding: "utf8" });
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      expect(script.startsWith("#!/bin/sh\n")).toBe(true);
      expect(script).toContain("set -eu");
      expect(
        script
          .trimEnd()
          .split("\n")
          .filter((l) => l.startsWith("exec ")),
      ).toHaveLength(1);
    }
  });

  test("custom port, user, stop timeout, unit name", () => {
    const spec: ContainerUserDataSpec = {
      ...gcpSpec,
      env: { ...gcpEnv, PORT: "9090" },
      port: 9090,
      user: "2000:2000",
      stopTimeoutSeconds: 45,
      serviceName: "api",
    };
    const doc = parsed(renderCloudConfig(spec));
    const run = dockerRunLine(startScript(spec));
    expect(run).toContain("--publish 9090:9090");
    expect(run).toContain("--user 2000:2000");
    expect(run).toContain("--stop-timeout 45");
    expect(run).toContain("--name api");
    expect(fileOf(doc, "/etc/systemd/system/api.service").content).toContain("TimeoutStopSec=60");
    expect(systemdUnit(spec)).toContain("ExecStop=/usr/bin/docker stop --time 45 api");
  });

  test("base64 decodes to the document", () => {
    expect(Buffer.from(userDataBase64(awsSpec), "base64").toString("utf8")).toBe(
      renderCloudConfig(awsSpec),
    );
  });

  test("the object and the YAML agree", () => {
    expect(parsed(renderCloudConfig(awsSpec))).toEqual(
      JSON.parse(JSON.stringify(cloudConfig(awsSpec))),
    );
  });
});

describe("no secret value reaches the document", () => {
  const SECRET = "sk-ant-api03-abcdefghijklmnop";

  test.each([
    [
      "a secret-named variable",
      { ANTHROPIC_API_KEY: SECRET },
      /ANTHROPIC_API_KEY looks like a secret: pass it as ANTHROPIC_API_KEY_SECRET/,
    ],
    [
      "a _SECRET variable holding a value",
      { DATABASE_PASSWORD_SECRET: "hunter2" },
      /DATABASE_PASSWORD_SECRET must be an aws-sm:\/\/ or gcp-sm:\/\/ reference/,
    ],
    [
      "credentials in a URL",
      { DATABASE_URL: "postgres://agent:hunter2@db:5432/agent" },
      /DATABASE_URL embeds credentials in a URL/,
    ],
    [
      "an Anthropic key under an innocent name",
      { GREETING: SECRET },
      /GREETING holds what looks like an Anthropic API key/,
    ],
    [
      "a private key",
      { TLS_BUNDLE: "-----BEGIN RSA PRIVATE KEY-----\nxx\n-----END RSA PRIVATE KEY-----" },
      /TLS_BUNDLE holds a private key/,
    ],
  ])("refuses %s", (_label, extra, message) => {
    const spec = { ...awsSpec, env: { ...awsEnv, ...extra } };
    expect(() => renderCloudConfig(spec)).toThrow(message);
    expect(envProblems(spec.env).length).toBeGreaterThan(0);
  });

  test("the rendered documents hold references only", () => {
    for (const doc of [renderCloudConfig(awsSpec), renderCloudConfig(gcpSpec)]) {
      expect(doc).not.toMatch(/sk-ant-/);
      expect(doc).not.toMatch(/^\s*(ANTHROPIC_API_KEY|DATABASE_PASSWORD|REDIS_PASSWORD)=/m);
      expect(doc).not.toMatch(/:\/\/[^/@\s]*:[^/@\s]*@/);
    }
  });

  test("a Pulumi secret in the environment fails the render", () => {
    expect(() => checkedCloudConfig(awsSpec, true)).toThrow(/Pulumi secret/);
    expect(checkedCloudConfig(awsSpec, false)).toBe(renderCloudConfig(awsSpec));
  });

  test("guardedCloudConfig resolves Outputs into the same document, not secret", async () => {
    const out = guardedCloudConfig({
      host: pulumi.output({
        cloud: "aws" as const,
        region: "us-east-1",
        logGroupName: awsSpec.host.cloud === "aws" ? awsSpec.host.logGroupName : "",
      }),
      imageRef: pulumi.output(ECR_IMAGE),
      env: Object.fromEntries(Object.entries(awsEnv).map(([k, v]) => [k, pulumi.output(v)])),
    });
    expect(await outputOf(out)).toBe(renderCloudConfig(awsSpec));
    expect(await isSecretOutput(out)).toBe(false);
  });
});

describe("spec validation says what to change", () => {
  test.each<[string, Partial<ContainerUserDataSpec>, RegExp]>([
    [
      "an image by tag",
      { imageRef: "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent:latest" },
      /not pinned by digest/,
    ],
    ["root", { user: "0:0" }, /is root: run the container as a non-root/],
    ["a named user", { user: "agent" }, /numeric uid\[:gid\]/],
    [
      "a stop timeout shorter than the drain",
      { stopTimeoutSeconds: 10 },
      /stopTimeoutSeconds 10 must be .* from 35/,
    ],
    ["a bad port", { port: 70000 }, /port 70000 is not a TCP port/],
    [
      "PORT disagreeing with the port",
      { port: 9090 },
      /env PORT is 8080 but the container port is 9090/,
    ],
    ["a bad unit name", { serviceName: "Agent Service" }, /serviceName "Agent Service"/],
    [
      "a bad log group",
      { host: { cloud: "aws", region: "us-east-1", logGroupName: "bad group!" } },
      /host.logGroupName "bad group!"/,
    ],
    [
      "a bad region",
      { host: { cloud: "aws", region: "mars-1", logGroupName: "/x" } },
      /host.region "mars-1"/,
    ],
    [
      "a bad variable name",
      { env: { ...awsEnv, "BAD-NAME": "x" } },
      /"BAD-NAME" is not a shell identifier/,
    ],
  ])("rejects %s", (_label, change, message) => {
    const spec = { ...awsSpec, ...change } as ContainerUserDataSpec;
    expect(userDataProblems(spec).join(" ")).toMatch(message);
    expect(() => renderCloudConfig(spec)).toThrow(/^Invalid VM user data: /);
  });

  test("a realistic spec has no problems", () => {
    expect(userDataProblems(awsSpec)).toEqual([]);
    expect(userDataProblems(gcpSpec)).toEqual([]);
  });

  test("AWS user data above EC2's 16 KB limit is refused", () => {
    const big = Object.fromEntries(
      Array.from({ length: 200 }, (_, i) => [`SETTING_${i}`, "x".repeat(100)]),
    );
    expect(() => renderCloudConfig({ ...awsSpec, env: { ...awsEnv, ...big } })).toThrow(
      new RegExp(`above EC2's ${AWS_USER_DATA_MAX_BYTES}`),
    );
    // GCP metadata takes it.
    expect(() => renderCloudConfig({ ...gcpSpec, env: { ...gcpEnv, ...big } })).not.toThrow();
  });
});

describe("helpers", () => {
  test("shellQuote round-trips through a real shell", () => {
    for (const word of [
      "plain",
      "with space",
      "it's",
      `"$(rm -rf /)"`,
      "a;b|c&d",
      "$HOME",
      "back\\slash",
    ]) {
      const r = spawnSync("sh", ["-c", `printf %s ${shellQuote(word)}`], { encoding: "utf8" });
      expect(r.stdout).toBe(word);
    }
    expect(shellQuote("/tmp:rw,size=64m")).toBe("/tmp:rw,size=64m");
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
  });

  test("ecrImage and googleRegistry parse image references", () => {
    expect(ecrImage(ECR_IMAGE)).toEqual({
      registry: "123456789012.dkr.ecr.us-east-1.amazonaws.com",
      accountId: "123456789012",
      region: "us-east-1",
      repository: "agent/service",
    });
    expect(ecrImage(AR_IMAGE)).toBeUndefined();
    expect(googleRegistry(AR_IMAGE)).toBe("us-central1-docker.pkg.dev");
    expect(googleRegistry(`gcr.io/p/agent@${DIGEST}`)).toBe("gcr.io");
    expect(googleRegistry(ECR_IMAGE)).toBeUndefined();
  });

  test("envFileContent keeps single-line values only", () => {
    expect(envFileContent({ B: "2", A: "1", C: "x\ny" }).split("\n").slice(1)).toEqual([
      "A=1",
      "B=2",
      "",
    ]);
  });

  test("dockerRunArguments ends with the image", () => {
    const words = dockerRunArguments(awsSpec);
    expect(words[words.length - 1]).toBe(ECR_IMAGE);
    expect(words).toContain("--rm");
  });
});
