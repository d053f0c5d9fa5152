/**
 * The agent service on Cloud Run v2: one service with its own runtime identity, secrets injected
 * by Cloud Run from Secret Manager, direct VPC egress to the private stores, probes, alerts and
 * an uptime check.
 */
import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import type { DataPlaneOutputs, ImageArtifact, TargetOutputs } from "../contracts";
import { environmentProfile } from "../environment";
import { plainServiceEnv, secretBindings } from "../runtime-env";
import type { SecretAccessGrant } from "../gcp/secrets";
import {
  ServiceUptimeCheck,
  type ServiceAlerts,
  type ServiceAlertThresholds,
} from "../gcp/monitoring";
import { checkAutonamedName, checkProjectId, GCP_NAME_PATTERN } from "../gcp/naming";
import { type ServiceEnvArgs, isPinnedByDigest } from "./service";
import { attempt, problemsOf, secretsProblem, settingsOrFail } from "./problems";
import {
  createGcpServiceAccount,
  createGcpServiceAlerts,
  grantGcpSecretAccess,
} from "../gcp/service-identity";
import { targetScaling, type CloudRunScaling } from "./scaling";
import { requireArtifactRepository } from "../gcp/image";
import { SERVICE_CONTRACT } from "../../app/src/contract";
import {
  gcpRolloutGates,
  heldTraffic,
  liveServingRevision,
  type GcpRollout,
} from "../release/rollout-gcp";
import { RolloutDriver } from "../release/rollout-driver";

// Moved to ./common (the GCP VM group shares them); still exported here.
export { secretGrantKeys, serviceAccountId } from "../gcp/service-identity";

export type CloudRunIngress =
  | "INGRESS_TRAFFIC_ALL"
  | "INGRESS_TRAFFIC_INTERNAL_ONLY"
  | "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER";
export const CLOUD_RUN_INGRESS: readonly CloudRunIngress[] = [
  "INGRESS_TRAFFIC_ALL",
  "INGRESS_TRAFFIC_INTERNAL_ONLY",
  "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
];

/** `"public"` (anyone may invoke; the app checks API keys) or IAM members such as `serviceAccount:x@p.iam.gserviceaccount.com`. */
export type CloudRunInvoker = "public" | string[];

export interface CloudRunTargetArgs extends ServiceEnvArgs {
  /** GCP project the service, its service account and its alerts live in. */
  project: string;
  /** The project's number, for its Cloud Run service agent. @default looked up from `project` */
  projectNumber?: pulumi.Input<string>;
  /** The GCP data plane's contract: stores, secrets, network, notification channels. */
  dataPlane: DataPlaneOutputs<"gcp">;
  /** The `image` artifact, pinned by digest. */
  artifact: ImageArtifact;
  /** @default targetScaling(env).cloudRun.minInstances (dev 0, staging 1, prod 2) */
  minInstances?: number;
  /** Always set: bounds cost. @default targetScaling(env).cloudRun.maxInstances (dev 5, staging 10, prod 20) */
  maxInstances?: number;
  /** Concurrent requests per instance. @default 80 */
  concurrency?: number;
  /** @default "1" */
  cpu?: string;
  /** @default "1Gi" */
  memory?: string;
  /** @default "INGRESS_TRAFFIC_ALL" */
  ingress?: CloudRunIngress;
  /** @default "public" */
  invoker?: CloudRunInvoker;
  /**
   * Refuse to delete the service (the provider's own flag, enforced on destroy and replace).
   * @default profile.protectData (prod true)
   */
  deletionProtection?: boolean;
  /** Request timeout: the longest a streamed reply may run (1-3600). @default 3600 */
  timeoutSeconds?: number;
  /** Labels on the service and its alerts (stack labels are added by the tagging transformation). @default {} */
  labels?: Record<string, string>;
  /** @default { errorRatio: 0.05, latencyP99Ms: 30000 } */
  alertThresholds?: ServiceAlertThresholds;
  /**
   * Progressive delivery: a new revision starts with no traffic and the rollout driver moves it
   * through `steps` against the gates (components/release/rollout-gcp.ts). No steps (or no
   * `rollout`): every revision takes all traffic once ready.
   */
  rollout?: GcpRollout;
}

export interface CloudRunSettings {
  scaling: CloudRunScaling;
  ingress: CloudRunIngress;
  /** IAM members granted `roles/run.invoker` (`allUsers` when public). */
  invokerMembers: string[];
  public: boolean;
  deletionProtection: boolean;
  timeoutSeconds: number;
  /** An uptime check can reach `/health` only on a public URL that admits unauthenticated calls. */
  uptimeCheck: boolean;
}

/** The port the container listens on. Cloud Run sets `PORT` itself (it is reserved). */
export const CLOUD_RUN_PORT: number = SERVICE_CONTRACT.port;
/** Cloud Run sends SIGKILL 10 s after SIGTERM; the app drains this long, then settles. */
export const CLOUD_RUN_SHUTDOWN_GRACE_MS = 10_000 - SERVICE_CONTRACT.drain.settleMs - 1_000;
/** Variables Cloud Run sets and refuses in a service's env. */
export const CLOUD_RUN_RESERVED_ENV = [
  "PORT",
  "K_SERVICE",
  "K_REVISION",
  "K_CONFIGURATION",
] as const;
export const CLOUD_RUN_MAX_TIMEOUT_SECONDS = 3600;
/** Cloud Run service names: at most 49 characters. */
const SERVICE_NAME_MAX = 49;

/** A fixed service name (progressive delivery reads the live service by it). */
function serviceNameProblem(name: string): string | undefined {
  return GCP_NAME_PATTERN.test(name) && name.length <= SERVICE_NAME_MAX
    ? undefined
    : `rollout.name "${name}" is not a Cloud Run service name: use at most ${SERVICE_NAME_MAX} lowercase letters, digits and hyphens, starting with a letter.`;
}

const MEMBER = /^(user|serviceAccount|group|domain|principal|principalSet):\S+$/;

export function invokerProblems(invoker: CloudRunInvoker): string[] {
  if (invoker === "public") return [];
  if (!Array.isArray(invoker))
    return [`invoker "${String(invoker)}" is unknown: use "public" or a list of IAM members.`];
  if (invoker.length === 0)
    return [
      'invoker is an empty list, so nobody could call the service: use "public" or list IAM members.',
    ];
  const problems: string[] = [];
  for (const m of invoker) {
    if (m === "allUsers" || m === "allAuthenticatedUsers") {
      problems.push(`invoker lists "${m}": use invoker "public" for an open service.`);
    } else if (!MEMBER.test(m)) {
      problems.push(
        `invoker member "${m}" is not an IAM member: write it as serviceAccount:<email>, user:<email>, group:<email> or domain:<domain>.`,
      );
    }
  }
  if (new Set(invoker).size !== invoker.length)
    problems.push("invoker lists a member twice: list each once.");
  return problems;
}

/**
 * Resolves settings and lists every problem with the args, each saying what to change. Returns
 * `settings` only when there are no problems.
 */
export function resolveCloudRunSettings(
  name: string,
  args: CloudRunTargetArgs,
): { settings?: CloudRunSettings; problems: string[] } {
  const dp = args.dataPlane;
  const ingress = args.ingress ?? "INGRESS_TRAFFIC_ALL";
  const invoker = args.invoker ?? "public";
  const timeoutSeconds = args.timeoutSeconds ?? CLOUD_RUN_MAX_TIMEOUT_SECONDS;
  const problems = problemsOf(
    checkProjectId(args.project),
    checkAutonamedName(`${name}-service`, SERVICE_NAME_MAX),
    CLOUD_RUN_INGRESS.includes(ingress)
      ? undefined
      : `ingress "${String(ingress)}" is unknown: use one of ${CLOUD_RUN_INGRESS.join(", ")}.`,
    invokerProblems(invoker),
    args.rollout && args.rollout.steps.length > 0
      ? serviceNameProblem(args.rollout.name)
      : undefined,
    secretsProblem(dp.secrets, "the service account must be granted the secrets it reads"),
    Number.isInteger(timeoutSeconds) &&
      timeoutSeconds >= 1 &&
      timeoutSeconds <= CLOUD_RUN_MAX_TIMEOUT_SECONDS
      ? undefined
      : `timeoutSeconds is ${timeoutSeconds}: use a whole number of seconds from 1 to ${CLOUD_RUN_MAX_TIMEOUT_SECONDS}.`,
  );
  // The shared builder refuses secret-looking extra names; ask it now, before creating anything.
  attempt(
    problems,
    () => plainServiceEnv(dp, { extra: args.extraEnv }),
    (m) => `extraEnv: ${m}.`,
  );
  const bound = new Set<string>([
    ...CLOUD_RUN_RESERVED_ENV,
    ...secretBindings(dp).map((b) => b.variable),
  ]);
  for (const key of Object.keys(args.extraEnv ?? {})) {
    if (bound.has(key))
      problems.push(`extraEnv sets ${key}, which Cloud Run or the target sets: remove it.`);
  }

  const scaling: CloudRunScaling | undefined = attempt(
    problems,
    () =>
      targetScaling(environmentProfile(args.dataPlane.environment).environment, {
        cloudRun: {
          minInstances: args.minInstances,
          maxInstances: args.maxInstances,
          concurrency: args.concurrency,
          cpu: args.cpu,
          memory: args.memory,
        },
      }).cloudRun,
  );
  if (problems.length > 0 || !scaling) return { problems };
  const isPublic = invoker === "public";
  return {
    problems,
    settings: {
      scaling,
      ingress,
      invokerMembers: isPublic ? ["allUsers"] : [...invoker],
      public: isPublic,
      deletionProtection:
        args.deletionProtection ?? environmentProfile(args.dataPlane.environment).protectData,
      timeoutSeconds,
      uptimeCheck: isPublic && ingress === "INGRESS_TRAFFIC_ALL",
    },
  };
}

export type CloudRunEnv = gcp.types.input.cloudrunv2.ServiceTemplateContainerEnv;

/**
 * The container's env: plain variables as values (minus those Cloud Run reserves), and the three
 * secrets as `valueSource.secretKeyRef`, which Cloud Run resolves with the service's own identity
 * when an instance starts. No secret value ever appears in the service's configuration.
 */
export function cloudRunEnv(
  dp: DataPlaneOutputs,
  options: { logLevel?: string; extraEnv?: Record<string, pulumi.Input<string>> } = {},
): CloudRunEnv[] {
  const plain = plainServiceEnv(dp, {
    port: CLOUD_RUN_PORT,
    logLevel: options.logLevel,
    // Cloud Run kills an instance 10 s after SIGTERM
    // (https://cloud.google.com/run/docs/container-contract#instance-shutdown): drain for 4 s,
    // leaving the app's settle time and a margin to write what it cut.
    extra: { SHUTDOWN_GRACE_MS: String(CLOUD_RUN_SHUTDOWN_GRACE_MS), ...options.extraEnv },
  });
  const reserved: readonly string[] = CLOUD_RUN_RESERVED_ENV;
  const envs: CloudRunEnv[] = Object.entries(plain)
    .filter(([k]) => !reserved.includes(k))
    .map(([k, v]) => ({ name: k, value: v }));
  for (const b of secretBindings(dp)) {
    envs.push({
      name: b.variable,
      valueSource: { secretKeyRef: { secret: b.secret.id, version: b.secret.version } },
    });
  }
  return envs;
}

/**
 * Probes. Cloud Run v2 has no GA readiness probe (it is in preview), so the startup probe targets
 * `/ready`: an instance receives traffic only once Postgres and Redis answer it. Liveness targets
 * `/health`, which touches no dependency, so a store outage never restarts healthy instances.
 * Trade-off: while a store is down, new instances (scale-out, new revisions) do not start.
 */
export function cloudRunProbes(port = CLOUD_RUN_PORT) {
  return {
    // Up to 2 minutes (24 x 5 s) for migrations, secret resolution and first connections.
    startupProbe: {
      httpGet: { path: SERVICE_CONTRACT.probes.readiness, port },
      periodSeconds: 5,
      timeoutSeconds: 3,
      failureThreshold: 24,
    },
    livenessProbe: {
      httpGet: { path: SERVICE_CONTRACT.probes.liveness, port },
      periodSeconds: 30,
      timeoutSeconds: 5,
      failureThreshold: 3,
    },
  };
}

/** A logical-name-safe key for an IAM member. */
export function memberKey(member: string): string {
  return member
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-|-$/g, "");
}

/**
 * The agent service on Cloud Run v2.
 *
 * Invoker: `public` grants `allUsers` the invoker role because the app authenticates every request
 * by API key (app/src/auth.ts); IAM authentication would require Google-signed identity tokens
 * from every client. Pass a member list to keep the service private to callers such as a gateway.
 *
 * Cost (us-central1, request-based billing, 1 vCPU / 1 GiB): about $0.000024 per vCPU-second and
 * $0.0000025 per GiB-second while serving, plus $0.40 per million requests; dev scales to zero.
 * Prod keeps 2 minimum instances, billed at the idle rate: about $30/month. maxInstances caps the
 * worst case (prod 20 instances x 80 requests). Alerts and uptime checks are free at this volume.
 */
export class CloudRunTarget extends pulumi.ComponentResource implements TargetOutputs {
  readonly target = "cloudrun" as const;
  readonly url: pulumi.Output<string>;
  readonly serviceName: pulumi.Output<string>;
  readonly serviceAccountEmail: pulumi.Output<string>;

  /** Escape hatches. */
  readonly settings: CloudRunSettings;
  readonly serviceAccount: gcp.serviceaccount.Account;
  readonly secretAccess: SecretAccessGrant;
  /** The Cloud Run service agent may pull the image from its repository (any project). */
  readonly imagePull: gcp.artifactregistry.RepositoryIamMember;
  readonly service: gcp.cloudrunv2.Service;
  readonly invokers: gcp.cloudrunv2.ServiceIamMember[];
  readonly alerts: ServiceAlerts;
  readonly uptimeCheck?: ServiceUptimeCheck;
  /** With rollout steps: moves each new revision's traffic step by step, or puts the old one back. */
  readonly rolloutDriver?: RolloutDriver;

  private readonly name: string;

  constructor(name: string, args: CloudRunTargetArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:targets:CloudRun", name, {}, opts);
    this.name = name;
    this.settings = settingsOrFail(
      resolveCloudRunSettings(name, args),
      `CloudRunTarget "${name}"`,
      this,
    );

    this.serviceAccount = createGcpServiceAccount(this, name, args.project, {
      displayName: `Agent service (${name}) on Cloud Run`,
      description:
        "Runtime identity of the agent Cloud Run service: reads its secrets, nothing else.",
    });
    this.secretAccess = grantGcpSecretAccess(this, name, this.serviceAccount, args.dataPlane);
    this.imagePull = this.grantImagePull(args);
    this.service = this.createService(args);
    this.invokers = this.grantInvokers(args);
    this.alerts = createGcpServiceAlerts(this, name, args.dataPlane, {
      project: args.project,
      kind: "cloud-run",
      serviceName: this.service.name,
      thresholds: args.alertThresholds,
      userLabels: args.labels,
    });
    this.uptimeCheck = this.createUptimeCheck(args);
    this.rolloutDriver = this.createRolloutDriver(args);

    this.url = this.service.uri;
    this.serviceName = this.service.name;
    this.serviceAccountEmail = this.serviceAccount.email;
    this.registerOutputs({
      url: this.url,
      serviceName: this.serviceName,
      serviceAccountEmail: this.serviceAccountEmail,
    });
  }

  private createService(args: CloudRunTargetArgs): gcp.cloudrunv2.Service {
    const s = this.settings;
    const dp = args.dataPlane;
    const network = dp.network;
    const artifact = args.artifact;
    const labels = {
      ...args.labels,
      target: "cloudrun",
      environment: environmentProfile(args.dataPlane.environment).environment,
    };
    const rollout = args.rollout?.steps.length ? args.rollout : undefined;
    return new gcp.cloudrunv2.Service(
      `${this.name}-service`,
      {
        project: args.project,
        location: network.region,
        ...(rollout && {
          name: rollout.name,
          traffics: liveServingRevision(
            { project: args.project, location: network.region, name: rollout.name },
            this,
          ).apply(heldTraffic),
        }),
        description: "Agent service",
        ingress: s.ingress,
        deletionProtection: s.deletionProtection,
        labels,
        template: {
          serviceAccount: this.serviceAccount.email,
          labels,
          scaling: {
            minInstanceCount: s.scaling.minInstances,
            maxInstanceCount: s.scaling.maxInstances,
          },
          maxInstanceRequestConcurrency: s.scaling.concurrency,
          // Streamed replies are one long request each.
          timeout: `${s.timeoutSeconds}s`,
          // Gen2 is required for direct VPC egress and gives full Linux compatibility.
          executionEnvironment: "EXECUTION_ENVIRONMENT_GEN2",
          vpcAccess: {
            // Direct VPC egress: private ranges (Memorystore, Cloud SQL) through the VPC with the
            // compute tag the store firewall admits; the LLM API goes straight out, without NAT.
            networkInterfaces: [
              {
                network: network.networkId,
                subnetwork: network.subnetworkId,
                tags: [network.computeTag],
              },
            ],
            egress: "PRIVATE_RANGES_ONLY",
          },
          containers: [
            {
              image: artifact.imageRef.apply(requireDigest),
              ports: { containerPort: CLOUD_RUN_PORT },
              resources: {
                limits: { cpu: s.scaling.cpu, memory: s.scaling.memory },
                // Request-based billing; the app does its work (ledger included) inside requests.
                cpuIdle: true,
                startupCpuBoost: true,
              },
              envs: cloudRunEnv(dp, { logLevel: args.logLevel, extraEnv: args.extraEnv }),
              ...cloudRunProbes(),
            },
          ],
        },
      },
      // A revision whose identity cannot read its secrets, or whose image the service agent
      // cannot pull, fails to deploy.
      { parent: this, dependsOn: [this.secretAccess, this.imagePull] },
    );
  }

  /**
   * Cloud Run pulls images as its service agent, which reads its own project's registries but
   * not another project's: a promoted image in the source project's repository needs
   * `roles/artifactregistry.reader` there (https://cloud.google.com/run/docs/deploying#other-projects).
   */
  private grantImagePull(args: CloudRunTargetArgs): gcp.artifactregistry.RepositoryIamMember {
    const artifact = args.artifact;
    const repo = artifact.imageRef.apply(requireArtifactRepository);
    const projectNumber =
      args.projectNumber ??
      gcp.organizations.getProjectOutput({ projectId: args.project }, { parent: this }).number;
    return new gcp.artifactregistry.RepositoryIamMember(
      `${this.name}-image-pull`,
      {
        project: repo.project,
        location: repo.location,
        repository: repo.repository,
        role: "roles/artifactregistry.reader",
        member: pulumi.interpolate`serviceAccount:${cloudRunServiceAgent(projectNumber)}`,
      },
      { parent: this },
    );
  }

  private grantInvokers(args: CloudRunTargetArgs): gcp.cloudrunv2.ServiceIamMember[] {
    return this.settings.invokerMembers.map(
      (member) =>
        new gcp.cloudrunv2.ServiceIamMember(
          `${this.name}-invoker-${memberKey(member)}`,
          {
            project: args.project,
            location: this.service.location,
            name: this.service.name,
            role: "roles/run.invoker",
            member,
          },
          { parent: this },
        ),
    );
  }

  /**
   * The driver runs after every new revision (`latestCreatedRevision` changes with the template:
   * a new image or new settings), moving its traffic through the steps.
   */
  private createRolloutDriver(args: CloudRunTargetArgs): RolloutDriver | undefined {
    const rollout = args.rollout;
    if (!rollout?.steps.length) return undefined;
    const gates = gcpRolloutGates(rollout, args.alertThresholds);
    return new RolloutDriver(
      `${this.name}-rollout`,
      {
        plan: pulumi.output(args.dataPlane.network.region).apply((region) => ({
          kind: "cloud-run" as const,
          project: args.project,
          region,
          service: rollout.name,
          steps: rollout.steps,
          gates,
        })),
        trigger: this.service.latestCreatedRevision,
        command: rollout.driverCommand,
      },
      { parent: this, dependsOn: [this.service, ...this.invokers] },
    );
  }

  private createUptimeCheck(args: CloudRunTargetArgs): ServiceUptimeCheck | undefined {
    if (!this.settings.uptimeCheck) return undefined;
    return new ServiceUptimeCheck(
      `${this.name}-uptime`,
      {
        project: args.project,
        url: this.service.uri,
        path: SERVICE_CONTRACT.probes.liveness,
        notificationChannelIds: args.dataPlane.monitoring.notificationChannelIds ?? [],
        userLabels: args.labels,
      },
      { parent: this },
    );
  }
}

/** The Cloud Run service agent of a project (it pulls images and attaches networks). */
export function cloudRunServiceAgent(projectNumber: pulumi.Input<string>): pulumi.Output<string> {
  return pulumi.interpolate`service-${projectNumber}@serverless-robot-prod.iam.gserviceaccount.com`;
}

/** Cloud Run must run exactly the verified artifact: a tag could move between deploys. */
export function requireDigest(imageRef: string): string {
  if (!isPinnedByDigest(imageRef)) {
    throw new Error(
      `image "${imageRef}" is not pinned by digest: pass <repository>@sha256:<digest> (the artifact's imageRef).`,
    );
  }
  return imageRef;
}
