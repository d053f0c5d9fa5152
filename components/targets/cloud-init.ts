/**
 * The user data that turns a plain VM into one replica of the agent service: a `#cloud-config`
 * document that runs the container image (by digest) with Docker under a systemd unit. Shared
 * by the AWS Auto Scaling Group (Amazon Linux 2023) and the GCP Managed Instance Group
 * (Container-Optimized OS), so both clouds run the container the same way.
 *
 * The builder (`renderCloudConfig`) is pure: plain strings in, text out; tests feed its result to
 * the real validator (`cloud-init schema --config-file`). `guardedCloudConfig` is the thin Output
 * adapter both targets use: it resolves their Outputs and refuses Pulumi secrets.
 *
 * What ends up on the instance:
 * - `/etc/agent/agent.env` (0600): the service's non-secret variables and `<NAME>_SECRET`
 *   references (`aws-sm://<arn>`, `gcp-sm://...`), which the app resolves at start-up with the
 *   VM's own identity. No secret value is ever written: `userDataProblems` rejects anything that
 *   looks like one, and the components refuse Pulumi secrets.
 * - `/etc/agent/env.d/<NAME>` (0600): multi-line values (a PEM CA), which Docker's `--env-file`
 *   cannot carry; the start script passes them with `--env NAME="$(cat file)"`.
 * - `/etc/agent/start.sh`: logs in to the registry with the instance identity (ECR through
 *   `aws ecr get-login-password`, Artifact Registry through `docker-credential-gcr`), pulls the
 *   image and `exec`s `docker run`: read-only root filesystem with a tmpfs `/tmp`, non-root user,
 *   all capabilities dropped, `--stop-timeout` covering the app's 25 s drain, the container port
 *   published on the host, logs to CloudWatch (`awslogs`) or Cloud Logging (`gcplogs`).
 * - `/etc/systemd/system/<service>.service`: runs the script, restarts it forever
 *   (`Restart=always`, no start limit), stops the container with `docker stop --time`.
 *
 * The script runs through `/bin/sh <path>` rather than being executed: on Container-Optimized OS
 * most writable mounts are `noexec`. Every literal in it is single-quoted unless it holds only
 * plainly safe characters, so no value can inject shell syntax.
 */
import * as pulumi from "@pulumi/pulumi";
import { Document } from "yaml";
import { SERVICE_CONTRACT, stopSeconds } from "../../app/src/contract";

/** Where the container runs. */
export type ContainerHost =
  | {
      cloud: "aws";
      /** Region of the instance: where the awslogs driver sends logs. */
      region: string;
      /** CloudWatch Logs group the container's stdout and stderr go to (created by the target). */
      logGroupName: string;
    }
  | {
      cloud: "gcp";
    };

export interface ContainerUserDataSpec {
  host: ContainerHost;
  /** `<repository>@sha256:<64 hex>`: the verified artifact, never a tag. */
  imageRef: string;
  /**
   * Non-secret variables and `<NAME>_SECRET` references (`serviceEnv`). Never secret values.
   */
  env: Record<string, string>;
  /** Container port, published on the same host port. @default SERVICE_CONTRACT.port */
  port?: number;
  /** `uid[:gid]` the container runs as; never 0. @default "10001:10001" (the image's user) */
  user?: string;
  /**
   * Seconds `docker stop` waits after SIGTERM before SIGKILL. At least 30: the app drains
   * in-flight streams for up to 25 s.
   * @default 30
   */
  stopTimeoutSeconds?: number;
  /** Name of the systemd unit and the container. @default "agent" */
  serviceName?: string;
  /** Size of the tmpfs mounted on /tmp, in MiB. @default 64 */
  tmpfsMiB?: number;
}

export const CONTAINER_PORT = SERVICE_CONTRACT.port;
export const CONTAINER_USER = "10001:10001";
/** The app drains, then settles what it cut (app/src/contract.ts); Docker must wait longer before SIGKILL. */
export const MIN_STOP_TIMEOUT_SECONDS = stopSeconds() + 5;
/** EC2 rejects user data above 16 KB (before base64). GCP allows 256 KB per metadata value. */
export const AWS_USER_DATA_MAX_BYTES = 16 * 1024;

export const AGENT_CONFIG_DIR = "/etc/agent";
export const ENV_FILE = `${AGENT_CONFIG_DIR}/agent.env`;
export const ENV_DIR = `${AGENT_CONFIG_DIR}/env.d`;
export const START_SCRIPT = `${AGENT_CONFIG_DIR}/start.sh`;
/** Where the registry credentials go (`$HOME/.docker/config.json`): writable on both OSes. */
export const RUNTIME_HOME = "/var/lib/agent";

const DIGEST_REF = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d+)?\/[a-z0-9._\/-]+@sha256:[a-f0-9]{64}$/;
const ECR_REF =
  /^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?\/([a-z0-9._\/-]+)@sha256:[a-f0-9]{64}$/;
const GOOGLE_REGISTRY = /^((?:[a-z0-9-]+-docker\.pkg\.dev)|(?:(?:[a-z]+\.)?gcr\.io))\//;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SECRET_NAME = /(KEY|TOKEN|PASSWORD|SECRET|CREDENTIAL)/i;
const SECRET_REFERENCE = /^(aws-sm|gcp-sm):\/\/\S+$/;
const LOG_GROUP = /^[.\-_/#A-Za-z0-9]{1,512}$/;
const AWS_REGION = /^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$/;
const UNIT_NAME = /^[a-z][a-z0-9-]{0,62}$/;
const USER = /^(\d+)(:(\d+))?$/;

/** An image in Amazon ECR: what the instance role must be allowed to pull, and where to log in. */
export interface EcrImage {
  registry: string;
  accountId: string;
  region: string;
  repository: string;
}

/** The ECR registry, account, region and repository of an image reference, if it is in ECR. */
export function ecrImage(imageRef: string): EcrImage | undefined {
  const m = ECR_REF.exec(imageRef);
  if (!m) return undefined;
  return {
    registry: imageRef.slice(0, imageRef.indexOf("/")),
    accountId: m[1]!,
    region: m[2]!,
    repository: m[4]!,
  };
}

/** The Google registry host (`<region>-docker.pkg.dev`, `gcr.io`) of an image, if it is in one. */
export function googleRegistry(imageRef: string): string | undefined {
  return GOOGLE_REGISTRY.exec(imageRef)?.[1];
}

/**
 * Why an environment cannot go into user data (anyone who can describe the instance or its
 * template can read it), or [] when it holds only settings and secret references.
 */
export function envProblems(env: Record<string, string>): string[] {
  const problems: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!ENV_NAME.test(name)) {
      problems.push(
        `environment variable name "${name}" is not a shell identifier: use letters, digits and _.`,
      );
      continue;
    }
    if (typeof value !== "string") {
      problems.push(`${name} is not a string.`);
      continue;
    }
    if (name.endsWith("_SECRET")) {
      if (!SECRET_REFERENCE.test(value)) {
        problems.push(
          `${name} must be an aws-sm:// or gcp-sm:// reference to the secret store, not a value.`,
        );
      }
    } else if (SECRET_NAME.test(name) && !name.startsWith("OTEL_")) {
      problems.push(
        `${name} looks like a secret: pass it as ${name}_SECRET (a secret store reference) instead.`,
      );
    }
    if (/:\/\/[^/@\s]*:[^/@\s]*@/.test(value)) {
      problems.push(`${name} embeds credentials in a URL: keep the password in the secret store.`);
    }
    if (/sk-ant-[A-Za-z0-9_-]{8,}/.test(value))
      problems.push(`${name} holds what looks like an Anthropic API key.`);
    if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(value))
      problems.push(`${name} holds a private key.`);
    if (value.includes("\0")) problems.push(`${name} contains a NUL character.`);
  }
  return problems;
}

/** Every problem with a spec, each saying what to change. */
export function userDataProblems(spec: ContainerUserDataSpec): string[] {
  const problems: string[] = [];
  if (!DIGEST_REF.test(spec.imageRef)) {
    problems.push(
      `image "${spec.imageRef}" is not pinned by digest: pass <repository>@sha256:<digest> (the artifact's imageRef).`,
    );
  }
  const port = spec.port ?? CONTAINER_PORT;
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    problems.push(`port ${port} is not a TCP port (1-65535).`);
  const user = spec.user ?? CONTAINER_USER;
  const u = USER.exec(user);
  if (!u) {
    problems.push(`user "${user}" must be a numeric uid[:gid] such as "10001:10001".`);
  } else if (Number(u[1]) === 0 || (u[3] !== undefined && Number(u[3]) === 0)) {
    problems.push(
      `user "${user}" is root: run the container as a non-root uid:gid such as "10001:10001".`,
    );
  }
  const stop = spec.stopTimeoutSeconds ?? MIN_STOP_TIMEOUT_SECONDS;
  if (!Number.isInteger(stop) || stop < MIN_STOP_TIMEOUT_SECONDS || stop > 600) {
    problems.push(
      `stopTimeoutSeconds ${stop} must be a whole number from ${MIN_STOP_TIMEOUT_SECONDS} to 600: the app drains for up to ${SERVICE_CONTRACT.drain.graceMs / 1000} s after SIGTERM, then settles what it cut for up to ${SERVICE_CONTRACT.drain.settleMs / 1000} s.`,
    );
  }
  const tmpfs = spec.tmpfsMiB ?? 64;
  if (!Number.isInteger(tmpfs) || tmpfs < 1 || tmpfs > 4096)
    problems.push(`tmpfsMiB ${tmpfs} must be a whole number of MiB from 1 to 4096.`);
  const unit = spec.serviceName ?? "agent";
  if (!UNIT_NAME.test(unit) || unit === "docker") {
    problems.push(
      `serviceName "${unit}" must be lowercase letters, digits and hyphens, starting with a letter (and not "docker").`,
    );
  }
  if (spec.host.cloud === "aws") {
    if (!AWS_REGION.test(spec.host.region))
      problems.push(`host.region "${spec.host.region}" is not an AWS region such as "us-east-1".`);
    if (!LOG_GROUP.test(spec.host.logGroupName)) {
      problems.push(
        `host.logGroupName "${spec.host.logGroupName}" is not a CloudWatch Logs group name.`,
      );
    }
  } else if (spec.host.cloud !== "gcp") {
    problems.push(
      `host.cloud "${String((spec.host as { cloud: unknown }).cloud)}" must be "aws" or "gcp".`,
    );
  }
  problems.push(...envProblems(spec.env));
  if (spec.env.PORT !== undefined && spec.env.PORT !== String(port)) {
    problems.push(
      `env PORT is ${spec.env.PORT} but the container port is ${port}: make them equal (the host publishes ${port}).`,
    );
  }
  return problems;
}

/** Quotes a word for POSIX sh when it holds anything beyond plainly safe characters. */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** A `docker run` argument: a literal (quoted when rendered) or a shell expression (kept as is). */
export type ShellWord = string | { shell: string };

function render(word: ShellWord): string {
  return typeof word === "string" ? shellQuote(word) : word.shell;
}

/** Variables whose values span lines: Docker's `--env-file` cannot carry them. */
function multiline(env: Record<string, string>): string[] {
  return Object.keys(env)
    .filter((k) => /[\r\n]/.test(env[k]!))
    .sort();
}

/** The `--env-file` contents: one `NAME=value` per line, sorted, single-line values only. */
export function envFileContent(env: Record<string, string>): string {
  const skip = new Set(multiline(env));
  const lines = Object.keys(env)
    .filter((k) => !skip.has(k))
    .sort()
    .map((k) => `${k}=${env[k]}`);
  return [
    "# Non-secret settings and <NAME>_SECRET references; the service reads the secrets itself at start-up.",
    ...lines,
    "",
  ].join("\n");
}

/** One `docker run` option: a flag and, for most, its value. */
export type DockerFlag = [flag: string, value?: ShellWord];

/** The options of `docker run` (the image follows them). */
export function dockerRunFlags(spec: ContainerUserDataSpec): DockerFlag[] {
  const port = spec.port ?? CONTAINER_PORT;
  const name = spec.serviceName ?? "agent";
  const flags: DockerFlag[] = [
    ["--name", name],
    ["--rm"],
    ["--env-file", ENV_FILE],
    ...multiline(spec.env).map((k): DockerFlag => [
      "--env",
      { shell: `"${k}=$(cat ${shellQuote(`${ENV_DIR}/${k}`)})"` },
    ]),
    ["--publish", `${port}:${port}`],
    ["--user", spec.user ?? CONTAINER_USER],
    // Nothing in the image changes at run time; scratch space is memory-backed and not executable.
    ["--read-only"],
    ["--tmpfs", `/tmp:rw,noexec,nosuid,nodev,size=${spec.tmpfsMiB ?? 64}m`],
    ["--cap-drop", "ALL"],
    ["--security-opt", "no-new-privileges"],
    ["--stop-signal", "SIGTERM"],
    ["--stop-timeout", String(spec.stopTimeoutSeconds ?? MIN_STOP_TIMEOUT_SECONDS)],
  ];
  if (spec.host.cloud === "aws") {
    flags.push(
      ["--log-driver", "awslogs"],
      ["--log-opt", `awslogs-region=${spec.host.region}`],
      ["--log-opt", `awslogs-group=${spec.host.logGroupName}`],
      // One stream per instance, so a replica's lines stay together across container restarts.
      ["--log-opt", { shell: `"awslogs-stream=${name}/$(hostname)"` }],
    );
  } else {
    flags.push(["--log-driver", "gcplogs"]);
  }
  // A slow log backend must never block the app's writes to stdout (and so its requests).
  flags.push(["--log-opt", "mode=non-blocking"], ["--log-opt", "max-buffer-size=4m"]);
  return flags;
}

function flagWords(flag: DockerFlag): ShellWord[] {
  return flag.filter((w): w is ShellWord => w !== undefined);
}

/** The arguments after `docker run`, image last. */
export function dockerRunArguments(spec: ContainerUserDataSpec): ShellWord[] {
  return [...dockerRunFlags(spec).flatMap(flagWords), spec.imageRef];
}

/** Registry login with the instance's identity, or nothing for a public registry. */
export function registryLoginCommands(spec: ContainerUserDataSpec): string[] {
  if (spec.host.cloud === "aws") {
    const ecr = ecrImage(spec.imageRef);
    if (!ecr) return [];
    // ECR tokens last 12 hours: logging in on every (re)start keeps restarts working.
    return [
      `aws ecr get-login-password --region ${shellQuote(ecr.region)} | docker login --username AWS --password-stdin ${shellQuote(ecr.registry)}`,
    ];
  }
  const registry = googleRegistry(spec.imageRef);
  if (!registry) return [];
  return [`docker-credential-gcr configure-docker --registries ${shellQuote(registry)}`];
}

/** The script the unit runs: log in, pull, then become `docker run`. */
export function startScript(spec: ContainerUserDataSpec): string {
  // One option per line, image last.
  const lines = [
    ...dockerRunFlags(spec).map((f) => flagWords(f).map(render).join(" ")),
    shellQuote(spec.imageRef),
  ];
  return [
    "#!/bin/sh",
    "# Starts the agent container (generated by components/targets/cloud-init.ts; run by systemd).",
    "set -eu",
    `export HOME=${shellQuote(RUNTIME_HOME)}`,
    'mkdir -p -m 0700 "$HOME"',
    ...registryLoginCommands(spec),
    `docker pull ${shellQuote(spec.imageRef)}`,
    `exec docker run \\\n  ${lines.join(" \\\n  ")}`,
    "",
  ].join("\n");
}

/** The systemd unit: restarts forever, stops the container gracefully. */
export function systemdUnit(spec: ContainerUserDataSpec): string {
  const name = spec.serviceName ?? "agent";
  const stop = spec.stopTimeoutSeconds ?? MIN_STOP_TIMEOUT_SECONDS;
  return [
    "[Unit]",
    `Description=Agent service container (${name})`,
    "Wants=network-online.target",
    "After=network-online.target docker.service",
    "Requires=docker.service",
    // A registry or NAT outage at boot must not leave the instance idle for good.
    "StartLimitIntervalSec=0",
    "",
    "[Service]",
    `Environment=HOME=${RUNTIME_HOME}`,
    `ExecStartPre=-/usr/bin/docker rm --force ${name}`,
    `ExecStart=/bin/sh ${START_SCRIPT}`,
    `ExecStop=/usr/bin/docker stop --time ${stop} ${name}`,
    "Restart=always",
    "RestartSec=5",
    // Longer than docker's own stop timeout, so systemd never kills a draining container.
    `TimeoutStopSec=${stop + 15}`,
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

interface WriteFile {
  path: string;
  permissions: string;
  owner: string;
  content: string;
}

/** The cloud-config as a plain object (what the YAML document serialises). */
export interface CloudConfig {
  write_files: WriteFile[];
  runcmd: string[][];
}

/** Throws with every problem of the spec; returns the cloud-config object. */
export function cloudConfig(spec: ContainerUserDataSpec): CloudConfig {
  const problems = userDataProblems(spec);
  if (problems.length > 0) throw new Error(`Invalid VM user data: ${problems.join(" ")}`);
  const name = spec.serviceName ?? "agent";
  const secretFile = (path: string, content: string): WriteFile => ({
    path,
    permissions: "0600",
    owner: "root:root",
    content,
  });
  const files: WriteFile[] = [
    secretFile(ENV_FILE, envFileContent(spec.env)),
    ...multiline(spec.env).map((k) => secretFile(`${ENV_DIR}/${k}`, spec.env[k]!)),
    { path: START_SCRIPT, permissions: "0700", owner: "root:root", content: startScript(spec) },
    {
      path: `/etc/systemd/system/${name}.service`,
      permissions: "0644",
      owner: "root:root",
      content: systemdUnit(spec),
    },
  ];
  const runcmd: string[][] =
    spec.host.cloud === "aws"
      ? [
          // Amazon Linux 2023 ships without Docker; installing in runcmd orders it before the unit.
          ["dnf", "install", "--assumeyes", "docker"],
          ["systemctl", "enable", "--now", "docker.service"],
        ]
      : // Container-Optimized OS ships Docker; its /etc and cloud-init state are reset on every
        // boot, so this document is applied again at each boot.
        [];
  runcmd.push(["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", `${name}.service`]);
  return { write_files: files, runcmd };
}

/** The `#cloud-config` document. Throws with what to change when the spec is invalid. */
export function renderCloudConfig(spec: ContainerUserDataSpec): string {
  const doc = new Document(cloudConfig(spec));
  // Each runcmd entry on one line (`- [systemctl, daemon-reload]`), as cloud-init docs write them.
  const runcmd = doc.get("runcmd") as { items: Array<{ flow?: boolean }> };
  for (const item of runcmd.items) item.flow = true;
  doc.commentBefore = ` Agent service on ${spec.host.cloud === "aws" ? "Amazon Linux 2023" : "Container-Optimized OS"}: runs ${spec.imageRef}.`;
  const text = `#cloud-config\n${doc.toString({ lineWidth: 0 })}`;
  if (spec.host.cloud === "aws" && Buffer.byteLength(text, "utf8") > AWS_USER_DATA_MAX_BYTES) {
    throw new Error(
      `Invalid VM user data: the document is ${Buffer.byteLength(text, "utf8")} bytes, above EC2's ${AWS_USER_DATA_MAX_BYTES}: drop extra environment variables.`,
    );
  }
  return text;
}

/** Base64 of the document, as EC2 launch templates take user data. */
export function userDataBase64(spec: ContainerUserDataSpec): string {
  return Buffer.from(renderCloudConfig(spec), "utf8").toString("base64");
}

/**
 * `renderCloudConfig`, refusing an environment that holds a Pulumi secret: user data is readable
 * by anyone who may describe the instance or its template, and it is stored in plain text.
 */
export function checkedCloudConfig(spec: ContainerUserDataSpec, envIsSecret: boolean): string {
  if (envIsSecret) {
    throw new Error(
      "Invalid VM user data: an environment value is a Pulumi secret; pass secrets as <NAME>_SECRET references to the secret store, never as values.",
    );
  }
  return renderCloudConfig(spec);
}

/** What `guardedCloudConfig` takes: the spec with Outputs where the targets have them. */
export interface CloudConfigInputs extends Omit<
  ContainerUserDataSpec,
  "host" | "imageRef" | "env"
> {
  host: pulumi.Input<ContainerHost>;
  imageRef: pulumi.Input<string>;
  env: Record<string, pulumi.Input<string>>;
}

/** The document as an Output that fails the deployment rather than ship a secret or a bad spec. */
export function guardedCloudConfig(inputs: CloudConfigInputs): pulumi.Output<string> {
  const { host, imageRef, env, ...options } = inputs;
  const vars = pulumi.all(env);
  return pulumi
    .all([vars, pulumi.isSecret(vars), pulumi.output(imageRef), pulumi.output(host)])
    .apply(([e, secret, image, h]) =>
      checkedCloudConfig({ ...options, host: h as ContainerHost, imageRef: image, env: e }, secret),
    );
}
