/**
 * The agent service on Compute Engine: a regional Managed Instance Group of Container-Optimized
 * OS VMs in the data plane's subnet, each running the container image under systemd (user data
 * from `cloud-init.ts`), behind a global external Application Load Balancer.
 *
 * Secrets never reach the VM's metadata: user data carries `<NAME>_SECRET=gcp-sm://` references,
 * which the app resolves at start-up with the VM's own service account, granted exactly the data
 * plane's secrets.
 */
import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import type { ImageArtifact, TargetOutputs } from "../contracts";

import { ServiceUptimeCheck, type ServiceAlerts } from "../gcp/monitoring";

import type { SecretAccessGrant } from "../gcp/secrets";
import { CONTAINER_PORT } from "./cloud-init";
import {
  artifactRepository,
  requireArtifactRepository,
  type ArtifactRepository,
} from "../gcp/image";

export { artifactRepository, requireArtifactRepository, type ArtifactRepository };
import { serviceUrl } from "./service";
import {
  createGcpServiceAccount,
  createGcpServiceAlerts,
  grantGcpSecretAccess,
} from "../gcp/service-identity";
import { settingsOrFail } from "./problems";
import { gcpRolloutGates, heldVersions, liveGroupTemplate } from "../release/rollout-gcp";
import { RolloutDriver } from "../release/rollout-driver";
import { serviceCloudConfig } from "./vm-service";

import {
  CONNECTION_DRAINING_SECONDS,
  COS_IMAGE,
  GOOGLE_LB_RANGES,
  GcpNetwork,
  GcpVmGroupSettings,
  GcpVmGroupTargetArgs,
  HEALTH_CHECK_PATH,
  resolveGcpVmGroupSettings,
} from "./vm-group-gcp-settings";
import { SERVICE_CONTRACT } from "../../app/src/contract";
export * from "./vm-group-gcp-settings";

/**
 * The agent service on a regional Managed Instance Group behind a global external Application
 * Load Balancer.
 *
 * VMs have no external IP (outbound through the data plane's Cloud NAT), run Shielded VM with
 * secure boot, vTPM and integrity monitoring, refuse project-wide SSH keys and use OS Login for
 * any access. They carry the data plane's compute tag (which the stores admit); a firewall rule
 * admits only Google's health checkers and load balancer proxies to the service port on that tag.
 *
 * Without `domain` the load balancer listens on plain HTTP (port 80): for dev only, since API keys
 * would cross the internet unencrypted.
 *
 * Deploys: a new image digest changes the user data, hence the (immutable) instance template; the
 * group rolls to the new template proactively, adding VMs before removing any (maxUnavailable 0).
 * The COS image is the newest `cos-stable` when a template is created.
 *
 * Cost (us-central1): e2-small about $12/month per VM plus $2/month for a 20 GB pd-balanced disk;
 * the load balancer's forwarding rules about $18/month (the first five rules), plus $0.008 per GB
 * processed; the managed certificate, the in-use static IP and the alert policies are free. Dev
 * (1 VM) is about $32/month, prod (2 VMs minimum, up to 10) about $46/month at rest. Request logs
 * $0.50/GiB beyond the free tier (lower `logSampleRate` at volume).
 */
export class GcpVmGroupTarget extends pulumi.ComponentResource implements TargetOutputs {
  readonly target = "vmgroup" as const;
  readonly url: pulumi.Output<string>;
  readonly ipAddress: pulumi.Output<string>;
  /** Name of the regional instance group manager. */
  readonly instanceGroupManager: pulumi.Output<string>;
  readonly serviceAccountEmail: pulumi.Output<string>;

  /** Escape hatches. */
  readonly settings: GcpVmGroupSettings;
  readonly serviceAccount: gcp.serviceaccount.Account;
  readonly secretAccess: SecretAccessGrant;
  readonly imageAccess: gcp.artifactregistry.RepositoryIamMember;
  readonly projectRoles: gcp.projects.IAMMember[];
  readonly instanceTemplate: gcp.compute.InstanceTemplate;
  readonly autoHealingHealthCheck: gcp.compute.HealthCheck;
  readonly loadBalancerHealthCheck: gcp.compute.HealthCheck;
  readonly firewall: gcp.compute.Firewall;
  readonly mig: gcp.compute.RegionInstanceGroupManager;
  readonly autoscaler: gcp.compute.RegionAutoscaler;
  readonly address: gcp.compute.GlobalAddress;
  readonly backendService: gcp.compute.BackendService;
  readonly urlMap: gcp.compute.URLMap;
  readonly forwardingRules: gcp.compute.GlobalForwardingRule[];
  readonly certificate?: gcp.compute.ManagedSslCertificate;
  readonly alerts: ServiceAlerts;
  readonly uptimeCheck: ServiceUptimeCheck;
  readonly dnsRecord?: gcp.dns.RecordSet;
  /** The rendered `#cloud-config` document. */
  readonly userData: pulumi.Output<string>;

  /** With rollout steps: grows each new template as a canary version, or removes it. */
  readonly rolloutDriver?: RolloutDriver;

  private readonly name: string;

  constructor(name: string, args: GcpVmGroupTargetArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:targets:GcpVmGroup", name, {}, opts);
    this.name = name;
    this.settings = settingsOrFail(
      resolveGcpVmGroupSettings(name, args),
      `GcpVmGroupTarget "${name}"`,
      this,
    );
    const network = args.dataPlane.network;
    const artifact = args.artifact;

    this.serviceAccount = createGcpServiceAccount(this, name, args.project, {
      displayName: `Agent service (${name}) on a VM group`,
      description:
        "Runtime identity of the agent VMs: reads its secrets and image, writes logs and metrics.",
    });
    this.secretAccess = grantGcpSecretAccess(this, name, this.serviceAccount, args.dataPlane);
    this.imageAccess = this.grantImageAccess(artifact);
    this.projectRoles = this.grantTelemetryRoles(args);
    this.userData = serviceCloudConfig({ cloud: "gcp" }, artifact.imageRef, args.dataPlane, args);
    this.instanceTemplate = this.createInstanceTemplate(args, network);
    this.autoHealingHealthCheck = this.createHealthCheck(args, "autoheal-hc", {
      checkIntervalSec: 10,
      timeoutSec: 5,
      healthyThreshold: 2,
      unhealthyThreshold: 6,
    });
    this.loadBalancerHealthCheck = this.createHealthCheck(args, "lb-hc", {
      checkIntervalSec: 5,
      timeoutSec: 3,
      healthyThreshold: 2,
      unhealthyThreshold: 2,
    });
    this.firewall = this.admitGoogleFrontEnds(args, network);
    this.mig = this.createInstanceGroup(args, network);
    this.autoscaler = this.createAutoscaler(args, network);
    this.address = this.createAddress(args);
    this.backendService = this.createBackendService(args);
    this.urlMap = this.createUrlMap(args);
    const frontend = this.settings.domain
      ? this.exposeHttps(args, this.settings.domain)
      : this.exposeHttp(args);
    this.forwardingRules = frontend.rules;
    this.certificate = frontend.certificate;
    this.alerts = createGcpServiceAlerts(this, name, args.dataPlane, {
      project: args.project,
      kind: "https-lb",
      serviceName: this.urlMap.name,
      thresholds: args.alertThresholds,
      userLabels: this.settings.labels,
    });

    this.ipAddress = this.address.address;
    this.url = serviceUrl(this.settings.domain, this.address.address);
    this.dnsRecord = this.createDnsRecord(args);
    this.uptimeCheck = new ServiceUptimeCheck(
      `${name}-uptime`,
      {
        project: args.project,
        url: this.url,
        path: SERVICE_CONTRACT.probes.liveness,
        notificationChannelIds: args.dataPlane.monitoring.notificationChannelIds ?? [],
        userLabels: this.settings.labels,
      },
      { parent: this },
    );
    this.rolloutDriver = this.createRolloutDriver(args, network);
    this.instanceGroupManager = this.mig.name;
    this.serviceAccountEmail = this.serviceAccount.email;
    this.registerOutputs({
      url: this.url,
      ipAddress: this.ipAddress,
      instanceGroupManager: this.instanceGroupManager,
      serviceAccountEmail: this.serviceAccountEmail,
    });
  }

  /** The domain's A record to the load balancer's address, in the configured Cloud DNS zone. */
  private createDnsRecord(args: GcpVmGroupTargetArgs): gcp.dns.RecordSet | undefined {
    if (!args.dnsZone || !this.settings.domain) return undefined;
    return new gcp.dns.RecordSet(
      `${this.name}-dns`,
      {
        project: args.project,
        managedZone: args.dnsZone,
        name: `${this.settings.domain}.`,
        type: "A",
        ttl: 300,
        rrdatas: [this.address.address],
      },
      { parent: this },
    );
  }

  /**
   * Reader on the image's repository only, in whatever project holds it (a shared registry
   * serves every environment when one artifact is promoted).
   */
  private grantImageAccess(artifact: ImageArtifact): gcp.artifactregistry.RepositoryIamMember {
    const repo = artifact.imageRef.apply(requireArtifactRepository);
    return new gcp.artifactregistry.RepositoryIamMember(
      `${this.name}-image-reader`,
      {
        project: repo.project,
        location: repo.location,
        repository: repo.repository,
        role: "roles/artifactregistry.reader",
        member: this.serviceAccount.member,
      },
      { parent: this },
    );
  }

  /** The gcplogs driver and the COS agents write logs and metrics (these roles take no narrower resource). */
  private grantTelemetryRoles(args: GcpVmGroupTargetArgs): gcp.projects.IAMMember[] {
    return (
      [
        ["log-writer", "roles/logging.logWriter"],
        ["metric-writer", "roles/monitoring.metricWriter"],
      ] as const
    ).map(
      ([key, role]) =>
        new gcp.projects.IAMMember(
          `${this.name}-${key}`,
          { project: args.project, role, member: this.serviceAccount.member },
          { parent: this },
        ),
    );
  }

  private createInstanceTemplate(
    args: GcpVmGroupTargetArgs,
    network: GcpNetwork,
  ): gcp.compute.InstanceTemplate {
    const s = this.settings;
    return new gcp.compute.InstanceTemplate(
      `${this.name}-template`,
      {
        project: args.project,
        description: `Agent service VMs (${this.name})`,
        machineType: s.machineType,
        labels: s.labels,
        tags: [network.computeTag],
        disks: [
          {
            boot: true,
            autoDelete: true,
            sourceImage: args.sourceImage ?? COS_IMAGE,
            diskType: "pd-balanced",
            diskSizeGb: s.diskGb,
          },
        ],
        // No accessConfigs: no external IP.
        networkInterfaces: [{ network: network.networkId, subnetwork: network.subnetworkId }],
        serviceAccount: {
          email: this.serviceAccount.email,
          scopes: ["https://www.googleapis.com/auth/cloud-platform"],
        },
        shieldedInstanceConfig: {
          enableSecureBoot: true,
          enableVtpm: true,
          enableIntegrityMonitoring: true,
        },
        scheduling: { automaticRestart: true, onHostMaintenance: "MIGRATE" },
        canIpForward: false,
        metadata: {
          "user-data": this.userData,
          "block-project-ssh-keys": "true",
          "enable-oslogin": "TRUE",
          "google-logging-enabled": "true",
          "google-monitoring-enabled": "true",
        },
      },
      {
        parent: this,
        // A VM that starts before its grants exist fails to read its secrets and restarts.
        dependsOn: [this.secretAccess, this.imageAccess, ...this.projectRoles],
        // With progressive delivery the group still runs the old template when Pulumi would
        // delete it (GCE refuses to delete a template in use); the driver deletes it once the
        // new one serves everything.
        retainOnDelete: Boolean(args.rollout?.steps.length),
      },
    );
  }

  /** The driver runs after every new template, growing it through the steps behind the load balancer. */
  private createRolloutDriver(
    args: GcpVmGroupTargetArgs,
    network: GcpNetwork,
  ): RolloutDriver | undefined {
    const rollout = args.rollout;
    if (!rollout?.steps.length) return undefined;
    const gates = gcpRolloutGates(rollout, args.alertThresholds);
    return new RolloutDriver(
      `${this.name}-rollout`,
      {
        plan: pulumi
          .all([network.region, this.instanceTemplate.selfLinkUnique, this.urlMap.name])
          .apply(([region, instanceTemplate, urlMap]) => ({
            kind: "gce-mig" as const,
            project: args.project,
            region,
            instanceGroupManager: rollout.name,
            instanceTemplate,
            urlMap,
            steps: rollout.steps,
            gates,
          })),
        trigger: this.instanceTemplate.selfLinkUnique,
        command: rollout.driverCommand,
      },
      { parent: this, dependsOn: [this.mig, this.backendService, ...this.forwardingRules] },
    );
  }

  private createHealthCheck(
    args: GcpVmGroupTargetArgs,
    suffix: string,
    timing: {
      checkIntervalSec: number;
      timeoutSec: number;
      healthyThreshold: number;
      unhealthyThreshold: number;
    },
  ): gcp.compute.HealthCheck {
    return new gcp.compute.HealthCheck(
      `${this.name}-${suffix}`,
      {
        project: args.project,
        ...timing,
        httpHealthCheck: { port: CONTAINER_PORT, requestPath: HEALTH_CHECK_PATH },
      },
      { parent: this },
    );
  }

  private admitGoogleFrontEnds(
    args: GcpVmGroupTargetArgs,
    network: GcpNetwork,
  ): gcp.compute.Firewall {
    return new gcp.compute.Firewall(
      `${this.name}-allow-lb`,
      {
        project: args.project,
        network: network.networkId,
        description: "Google health checkers and load balancer proxies to the agent service port",
        direction: "INGRESS",
        priority: 1000,
        sourceRanges: [...GOOGLE_LB_RANGES],
        targetTags: [network.computeTag],
        allows: [{ protocol: "tcp", ports: [String(CONTAINER_PORT)] }],
      },
      { parent: this },
    );
  }

  private createInstanceGroup(
    args: GcpVmGroupTargetArgs,
    network: GcpNetwork,
  ): gcp.compute.RegionInstanceGroupManager {
    const s = this.settings;
    const rollout = args.rollout?.steps.length ? args.rollout : undefined;
    // `selfLinkUnique` names this template version, so a replaced template rolls the group; with
    // progressive delivery the group keeps the template it runs and the driver rolls it.
    const versions = rollout
      ? pulumi
          .all([
            liveGroupTemplate(
              { project: args.project, region: network.region, name: rollout.name },
              this,
            ),
            this.instanceTemplate.selfLinkUnique,
          ])
          .apply(([live, next]) => heldVersions(live, next))
      : [{ name: "primary", instanceTemplate: this.instanceTemplate.selfLinkUnique }];
    return new gcp.compute.RegionInstanceGroupManager(
      `${this.name}-mig`,
      {
        project: args.project,
        region: network.region,
        ...(rollout && { name: rollout.name }),
        baseInstanceName: this.name,
        versions,
        namedPorts: [{ name: "http", port: CONTAINER_PORT }],
        distributionPolicyZones: s.zones,
        // Recreate VMs that fail /ready for a minute, after the boot delay. Lenient on purpose:
        // replacing a VM takes minutes, while the load balancer's own check stops traffic in 10 s.
        autoHealingPolicies: {
          healthCheck: this.autoHealingHealthCheck.id,
          initialDelaySec: s.initialDelaySeconds,
        },
        updatePolicy: {
          type: "PROACTIVE",
          minimalAction: "REPLACE",
          replacementMethod: "SUBSTITUTE",
          instanceRedistributionType: "PROACTIVE",
          // Never fewer serving VMs than the target: new ones come up before old ones go.
          maxUnavailableFixed: 0,
          maxSurgeFixed: s.maxSurge,
          minReadySec: 60,
        },
        instanceLifecyclePolicy: { forceUpdateOnRepair: "YES", defaultActionOnFailure: "REPAIR" },
        // The autoscaler owns the size.
        waitForInstances: false,
      },
      { parent: this },
    );
  }

  private createAutoscaler(
    args: GcpVmGroupTargetArgs,
    network: GcpNetwork,
  ): gcp.compute.RegionAutoscaler {
    const v = this.settings.scaling;
    return new gcp.compute.RegionAutoscaler(
      `${this.name}-autoscaler`,
      {
        project: args.project,
        region: network.region,
        target: this.mig.id,
        autoscalingPolicy: {
          minReplicas: v.minInstances,
          maxReplicas: v.maxInstances,
          // Boot, image pull and start-up before a new VM's CPU counts.
          cooldownPeriod: 180,
          mode: "ON",
          cpuUtilization: { target: v.targetCpuPercent / 100 },
          // Shed at most one VM per 5 minutes: long streams end on their own, not mid-reply.
          scaleInControl: { maxScaledInReplicas: { fixed: 1 }, timeWindowSec: 300 },
        },
      },
      { parent: this },
    );
  }

  private createAddress(args: GcpVmGroupTargetArgs): gcp.compute.GlobalAddress {
    return new gcp.compute.GlobalAddress(
      `${this.name}-ip`,
      {
        project: args.project,
        addressType: "EXTERNAL",
        ipVersion: "IPV4",
        labels: this.settings.labels,
        description: `Agent service (${this.name})`,
      },
      { parent: this },
    );
  }

  private createBackendService(args: GcpVmGroupTargetArgs): gcp.compute.BackendService {
    return new gcp.compute.BackendService(
      `${this.name}-backend`,
      {
        project: args.project,
        description: `Agent service VMs (${this.name})`,
        loadBalancingScheme: "EXTERNAL_MANAGED",
        protocol: "HTTP",
        portName: "http",
        // The whole reply must arrive within it: streams are one long response.
        timeoutSec: this.settings.requestTimeoutSeconds,
        connectionDrainingTimeoutSec: CONNECTION_DRAINING_SECONDS,
        // Replies take seconds to minutes: prefer the VM with the fewest requests in flight.
        localityLbPolicy: "LEAST_REQUEST",
        healthChecks: this.loadBalancerHealthCheck.id,
        backends: [
          {
            group: this.mig.instanceGroup,
            balancingMode: "UTILIZATION",
            maxUtilization: 0.8,
            capacityScaler: 1,
          },
        ],
        logConfig: { enable: true, sampleRate: this.settings.logSampleRate },
      },
      { parent: this },
    );
  }

  private createUrlMap(args: GcpVmGroupTargetArgs): gcp.compute.URLMap {
    return new gcp.compute.URLMap(
      `${this.name}-urlmap`,
      {
        project: args.project,
        description: `Agent service (${this.name})`,
        defaultService: this.backendService.id,
      },
      { parent: this },
    );
  }

  private forwardingRule(
    args: GcpVmGroupTargetArgs,
    suffix: string,
    port: 80 | 443,
    target: pulumi.Input<string>,
  ): gcp.compute.GlobalForwardingRule {
    return new gcp.compute.GlobalForwardingRule(
      `${this.name}-${suffix}`,
      {
        project: args.project,
        loadBalancingScheme: "EXTERNAL_MANAGED",
        ipProtocol: "TCP",
        ipAddress: this.address.address,
        portRange: String(port),
        target,
        labels: this.settings.labels,
      },
      { parent: this },
    );
  }

  /** Dev only: see the class doc. */
  private exposeHttp(args: GcpVmGroupTargetArgs): {
    rules: gcp.compute.GlobalForwardingRule[];
    certificate?: undefined;
  } {
    const proxy = new gcp.compute.TargetHttpProxy(
      `${this.name}-http-proxy`,
      { project: args.project, urlMap: this.urlMap.id },
      { parent: this },
    );
    return { rules: [this.forwardingRule(args, "http", 80, proxy.id)] };
  }

  private exposeHttps(
    args: GcpVmGroupTargetArgs,
    domain: string,
  ): { rules: gcp.compute.GlobalForwardingRule[]; certificate: gcp.compute.ManagedSslCertificate } {
    const certificate = new gcp.compute.ManagedSslCertificate(
      `${this.name}-cert`,
      { project: args.project, type: "MANAGED", managed: { domains: [domain] } },
      { parent: this },
    );
    // TLS 1.2+ with forward-secret ciphers only (the ALB's TLS13-1-2 policy on AWS).
    const tls = new gcp.compute.SSLPolicy(
      `${this.name}-tls`,
      { project: args.project, profile: "MODERN", minTlsVersion: "TLS_1_2" },
      { parent: this },
    );
    const httpsProxy = new gcp.compute.TargetHttpsProxy(
      `${this.name}-https-proxy`,
      {
        project: args.project,
        urlMap: this.urlMap.id,
        sslCertificates: [certificate.id],
        sslPolicy: tls.id,
      },
      { parent: this },
    );
    const redirect = new gcp.compute.URLMap(
      `${this.name}-redirect`,
      {
        project: args.project,
        description: `HTTP to HTTPS for ${domain}`,
        defaultUrlRedirect: {
          httpsRedirect: true,
          redirectResponseCode: "MOVED_PERMANENTLY_DEFAULT",
          stripQuery: false,
        },
      },
      { parent: this },
    );
    const httpProxy = new gcp.compute.TargetHttpProxy(
      `${this.name}-http-proxy`,
      { project: args.project, urlMap: redirect.id },
      { parent: this },
    );
    return {
      certificate,
      rules: [
        this.forwardingRule(args, "https", 443, httpsProxy.id),
        this.forwardingRule(args, "http", 80, httpProxy.id),
      ],
    };
  }
}
