/**
 * The agent service on Kubernetes (EKS): a hardened Deployment with an HorizontalPodAutoscaler, a
 * PodDisruptionBudget where there are replicas to spare, a NetworkPolicy, and a load balancer
 * (an NLB Service, or an ALB Ingress for the AWS Load Balancer Controller).
 *
 * Secrets never enter Kubernetes. The pods read `<NAME>_SECRET=aws-sm://<arn>` references at
 * start-up with their own IAM role (IRSA), which may read exactly the data plane's secrets.
 */
import * as aws from "@pulumi/aws";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { type AlarmSpec, checkAlarmSpec, createAlarms } from "../../aws/alarms";
import { secretReadPolicy } from "../../aws/secrets";
import type { NetworkAttachment, TargetOutputs } from "../../contracts";
import { serviceEnv } from "../../runtime-env";
import { serviceUrl } from "../service";
import { failOnProblems } from "../problems";
import { irsaTrustPolicy } from "./iam";
import {
  IRSA_TOKEN_FILE,
  albIngressAnnotations,
  albIngressSpec,
  clusterServiceSpec,
  deploymentSpec,
  healthyHostsQuery,
  hpaSpec,
  loadBalancerAnnotations,
  loadBalancerNameOf,
  loadBalancerServiceSpec,
  namespaceMetadata,
  networkPolicySpec,
  nlbEntryAlarmSpec,
  pdbSpec,
  podRestartAlarmSpec,
  selectorLabels,
} from "./specs";
import { SERVICE_CONTRACT } from "../../../app/src/contract";
import { defaultGates } from "../../release/rollout-plan";
import { type ArgoCanary, ROLLOUT_API_VERSION, createArgoCanary } from "./rollouts";
import {
  type EksTargetArgs,
  type Settings,
  checkEksTargetArgs,
  checkImageRef,
  resolveEksTargetSettings,
} from "./target-settings";

export * from "./target-settings";

/**
 * The agent on EKS. Compute is the cluster's nodes (see EksCluster); this adds an NLB (about
 * $16/month plus LCUs, or an ALB about $16/month plus LCUs), the CNAME, and one alarm (~$0.10).
 */
export class EksTarget extends pulumi.ComponentResource implements TargetOutputs {
  readonly target = "eks" as const;
  /** `https://<domain>` when a domain is set, else `http://<load balancer hostname>`. */
  readonly url: pulumi.Output<string>;
  readonly loadBalancerHostname: pulumi.Output<string>;
  readonly namespace: pulumi.Output<string>;
  readonly serviceAccountRoleArn: pulumi.Output<string>;
  readonly deploymentName: pulumi.Output<string>;

  readonly namespaceResource: k8s.core.v1.Namespace;
  readonly role: aws.iam.Role;
  readonly serviceAccount: k8s.core.v1.ServiceAccount;
  readonly deployment: k8s.apps.v1.Deployment;
  readonly service: k8s.core.v1.Service;
  /** The NLB Service or the ALB Ingress. */
  readonly exposure: k8s.core.v1.Service | k8s.networking.v1.Ingress;
  readonly autoscaler: k8s.autoscaling.v2.HorizontalPodAutoscaler;
  readonly disruptionBudget?: k8s.policy.v1.PodDisruptionBudget;
  readonly networkPolicy: k8s.networking.v1.NetworkPolicy;
  readonly dnsRecord?: aws.route53.Record;
  readonly alarms: aws.cloudwatch.MetricAlarm[];
  /** With rollout steps: the Argo Rollouts canary that runs the pods. */
  readonly canary?: ArgoCanary;

  private readonly name: string;
  private readonly k8sOpts: pulumi.CustomResourceOptions;

  constructor(name: string, args: EksTargetArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:targets:Eks", name, {}, opts);
    this.name = name;
    const s = resolveEksTargetSettings(args);
    this.validate(args, s);
    const network = args.dataPlane.network;
    this.k8sOpts = { parent: this, provider: args.cluster.provider };
    const labels = selectorLabels(s.appName, name);

    this.namespaceResource = this.createNamespace(s);
    this.namespace = this.namespaceResource.metadata.name;
    this.role = this.createServiceAccountRole(args, s);
    this.serviceAccount = this.createServiceAccount(s);
    this.deployment = this.createDeployment(args, s, labels);
    this.deploymentName = this.deployment.metadata.name;
    this.service = this.createService(s, labels);
    this.exposure =
      s.ingress === "alb"
        ? this.createIngress(args, s, network)
        : this.createLoadBalancer(args, s, network, labels);
    this.loadBalancerHostname = (
      this.exposure.status as pulumi.Output<LoadBalancerStatusHolder>
    ).apply(
      (status) =>
        status?.loadBalancer?.ingress?.[0]?.hostname ??
        status?.loadBalancer?.ingress?.[0]?.ip ??
        "",
    );
    this.canary = this.createCanary(args, s, labels);
    this.autoscaler = this.createAutoscaler(s);
    this.disruptionBudget = s.podDisruptionBudget
      ? this.createDisruptionBudget(s, labels)
      : undefined;
    this.networkPolicy = this.createNetworkPolicy(args, s, network, labels);

    this.dnsRecord = this.createDnsRecord(args);
    this.alarms = this.createAlarms(args, s);
    this.url = serviceUrl(args.domain, this.loadBalancerHostname);
    this.serviceAccountRoleArn = this.role.arn;

    this.registerOutputs({
      url: this.url,
      loadBalancerHostname: this.loadBalancerHostname,
      namespace: this.namespace,
      serviceAccountRoleArn: this.serviceAccountRoleArn,
      deploymentName: this.deploymentName,
    });
  }

  private validate(args: EksTargetArgs, s: Settings): void {
    failOnProblems(checkEksTargetArgs(args, s), `EksTarget "${this.name}"`, this);
  }

  private createNamespace(s: Settings): k8s.core.v1.Namespace {
    return new k8s.core.v1.Namespace(
      `${this.name}-ns`,
      { metadata: namespaceMetadata(s.namespace) },
      this.k8sOpts,
    );
  }

  /** IRSA: only this namespace's service account may assume it; it may read exactly the data plane's secrets. */
  private createServiceAccountRole(args: EksTargetArgs, s: Settings): aws.iam.Role {
    const { oidcProviderArn, oidcProviderUrl } = args.cluster;
    const role = new aws.iam.Role(
      `${this.name}-sa-role`,
      {
        description: `IRSA role of ${s.namespace}/${s.appName}: reads the agent's secrets`,
        assumeRolePolicy: pulumi
          .all([oidcProviderArn, oidcProviderUrl])
          .apply(([arn, url]) => JSON.stringify(irsaTrustPolicy(arn, url, s.namespace, s.appName))),
      },
      { parent: this },
    );
    new aws.iam.RolePolicy(
      `${this.name}-sa-secrets`,
      {
        role: role.name,
        policy: secretReadPolicy(args.dataPlane.secrets, args.secretKmsKeyArns ?? []),
      },
      { parent: this },
    );
    return role;
  }

  private createServiceAccount(s: Settings): k8s.core.v1.ServiceAccount {
    return new k8s.core.v1.ServiceAccount(
      `${this.name}-sa`,
      {
        metadata: {
          name: s.appName,
          namespace: this.namespace,
          // Read by the pod identity webhook; the Deployment also wires the token itself.
          annotations: { "eks.amazonaws.com/role-arn": this.role.arn },
        },
        automountServiceAccountToken: false,
      },
      this.k8sOpts,
    );
  }

  private createDeployment(
    args: EksTargetArgs,
    s: Settings,
    labels: Record<string, string>,
  ): k8s.apps.v1.Deployment {
    const artifact = args.artifact;
    const image = artifact.imageRef.apply((ref) => {
      const problem = checkImageRef(ref);
      if (problem) throw new pulumi.ResourceError(`EksTarget "${this.name}": ${problem}`, this);
      return ref;
    });
    const env = {
      ...serviceEnv(args.dataPlane, {
        port: SERVICE_CONTRACT.port,
        logLevel: args.logLevel,
        extra: {
          SHUTDOWN_GRACE_MS: String(s.shutdownGraceMs),
          AWS_REGION: args.dataPlane.region,
          // The root filesystem is read-only; embedded state (unused with DATABASE_URL) would go here.
          DATA_DIR: "/tmp/agent",
          ...args.extraEnv,
        },
      }),
      // AWS SDK configuration for the web-identity token (IRSA), not secrets: the token is a file.
      AWS_ROLE_ARN: this.role.arn,
      AWS_WEB_IDENTITY_TOKEN_FILE: pulumi.output(IRSA_TOKEN_FILE),
    };
    return new k8s.apps.v1.Deployment(
      `${this.name}-deploy`,
      {
        metadata: { name: s.appName, namespace: this.namespace, labels },
        spec: deploymentSpec({
          selectorLabels: labels,
          image,
          serviceAccountName: this.serviceAccount.metadata.name,
          env,
          requests: s.scaling.requests,
          limits: s.scaling.limits,
          runAsUser: s.runAsUser,
          runAsGroup: s.runAsUser,
          shutdownGraceMs: s.shutdownGraceMs,
          preStopSeconds: s.preStopSeconds,
        }),
      },
      this.k8sOpts,
    );
  }

  private createService(s: Settings, labels: Record<string, string>): k8s.core.v1.Service {
    return new k8s.core.v1.Service(
      `${this.name}-svc`,
      {
        metadata: { name: s.appName, namespace: this.namespace, labels },
        spec: clusterServiceSpec(labels),
      },
      this.k8sOpts,
    );
  }

  private exposureInput(args: EksTargetArgs, s: Settings, network: NetworkAttachment<"aws">) {
    const subnetIds =
      s.scheme === "internet-facing" ? network.publicSubnetIds : network.privateSubnetIds;
    return {
      scheme: s.scheme,
      subnets: subnetIds.apply((ids) => {
        if (ids.length === 0) {
          throw new pulumi.ResourceError(
            `EksTarget "${this.name}": no ${s.scheme === "internet-facing" ? "public" : "private"} subnets for the load balancer.`,
            this,
          );
        }
        return ids.join(",");
      }),
      certificateArn: args.certificateArn,
    };
  }

  private createLoadBalancer(
    args: EksTargetArgs,
    s: Settings,
    network: NetworkAttachment<"aws">,
    labels: Record<string, string>,
  ): k8s.core.v1.Service {
    return new k8s.core.v1.Service(
      `${this.name}-lb`,
      {
        metadata: {
          name: `${s.appName}-public`,
          namespace: this.namespace,
          labels,
          annotations: loadBalancerAnnotations(
            s.nlbController,
            this.exposureInput(args, s, network),
          ),
        },
        spec: loadBalancerServiceSpec(labels, args.certificateArn !== undefined),
      },
      this.k8sOpts,
    );
  }

  private createIngress(
    args: EksTargetArgs,
    s: Settings,
    network: NetworkAttachment<"aws">,
  ): k8s.networking.v1.Ingress {
    return new k8s.networking.v1.Ingress(
      `${this.name}-ingress`,
      {
        metadata: {
          name: s.appName,
          namespace: this.namespace,
          annotations: albIngressAnnotations(this.exposureInput(args, s, network)),
        },
        spec: albIngressSpec(this.service.metadata.name, args.domain),
      },
      this.k8sOpts,
    );
  }

  private createAutoscaler(s: Settings): k8s.autoscaling.v2.HorizontalPodAutoscaler {
    return new k8s.autoscaling.v2.HorizontalPodAutoscaler(
      `${this.name}-hpa`,
      {
        metadata: { name: s.appName, namespace: this.namespace },
        spec: hpaSpec({
          deploymentName: this.deploymentName,
          target: this.canary && {
            apiVersion: ROLLOUT_API_VERSION,
            kind: "Rollout",
            name: this.canary.rollout.metadata.name,
          },
          minReplicas: s.scaling.minReplicas,
          maxReplicas: s.scaling.maxReplicas,
          targetCpuPercent: s.scaling.targetCpuPercent,
          targetMemoryPercent: s.targetMemoryPercent,
        }),
      },
      this.k8sOpts,
    );
  }

  private createCanary(
    args: EksTargetArgs,
    s: Settings,
    labels: Record<string, string>,
  ): ArgoCanary | undefined {
    const rollout = args.rollout;
    if (!rollout?.steps.length) return undefined;
    const lb = aws.lb.getLoadBalancerOutput(
      { name: this.loadBalancerHostname.apply(loadBalancerNameOf) },
      { parent: this },
    );
    return createArgoCanary(this, {
      name: this.name,
      namespace: this.namespace,
      appName: s.appName,
      labels,
      deploymentName: this.deploymentName,
      steps: rollout.steps,
      gates: rollout.gates ?? defaultGates(60_000),
      signals: { kind: s.ingress, loadBalancerArnSuffix: lb.arnSuffix },
      readyPath: SERVICE_CONTRACT.probes.readiness,
      controller:
        rollout.installController === false
          ? undefined
          : {
              provider: args.cluster.provider,
              oidcProviderArn: args.cluster.oidcProviderArn,
              oidcProviderUrl: args.cluster.oidcProviderUrl,
              region: args.dataPlane.region,
            },
      canaryServiceSpec: clusterServiceSpec(labels),
      k8sOpts: this.k8sOpts,
    });
  }

  private createDisruptionBudget(
    s: Settings,
    labels: Record<string, string>,
  ): k8s.policy.v1.PodDisruptionBudget {
    return new k8s.policy.v1.PodDisruptionBudget(
      `${this.name}-pdb`,
      { metadata: { name: s.appName, namespace: this.namespace }, spec: pdbSpec(labels) },
      this.k8sOpts,
    );
  }

  private createNetworkPolicy(
    args: EksTargetArgs,
    s: Settings,
    network: NetworkAttachment<"aws">,
    labels: Record<string, string>,
  ): k8s.networking.v1.NetworkPolicy {
    const vpcCidr =
      args.vpcCidrBlock ?? aws.ec2.getVpcOutput({ id: network.vpcId }, { parent: this }).cidrBlock;
    return new k8s.networking.v1.NetworkPolicy(
      `${this.name}-netpol`,
      {
        metadata: { name: s.appName, namespace: this.namespace },
        spec: networkPolicySpec({
          selectorLabels: labels,
          vpcCidr,
          storePorts: [args.dataPlane.postgres.port, args.dataPlane.redis.port],
        }),
      },
      this.k8sOpts,
    );
  }

  private createDnsRecord(args: EksTargetArgs): aws.route53.Record | undefined {
    if (args.hostedZoneId === undefined || args.domain === undefined) return undefined;
    // A CNAME, not an alias: the controller creates the load balancer, so its zone id is unknown here.
    return new aws.route53.Record(
      `${this.name}-dns`,
      {
        zoneId: args.hostedZoneId,
        name: args.domain,
        type: "CNAME",
        ttl: 60,
        records: [this.loadBalancerHostname],
      },
      { parent: this },
    );
  }

  /**
   * The entry point's alarm (the NLB has no healthy pod behind it) in every environment, and a
   * restart alarm where Container Insights feeds CloudWatch.
   */
  private createAlarms(args: EksTargetArgs, s: Settings): aws.cloudwatch.MetricAlarm[] {
    const topic = args.dataPlane.monitoring.alarmTopicArn;
    if (!topic) {
      pulumi.log.info(
        `EksTarget "${this.name}": no alarms (the data plane has no alarm topic).`,
        this,
      );
      return [];
    }
    const specs: AlarmSpec[] = [];
    if (s.ingress === "nlb") {
      // Kubernetes names the NLB (in its status hostname); its dimension exists only then.
      const lb = aws.lb.getLoadBalancerOutput(
        { name: this.loadBalancerHostname.apply(loadBalancerNameOf) },
        { parent: this },
      );
      specs.push(nlbEntryAlarmSpec(lb.arnSuffix.apply(healthyHostsQuery)));
    }
    const clusterName = args.cluster.clusterName;
    if (clusterName && args.cluster.containerInsights) {
      specs.push(podRestartAlarmSpec(clusterName, this.namespace, this.deploymentName));
    } else {
      pulumi.log.info(
        `EksTarget "${this.name}": no restart alarm (needs the cluster name and the amazon-cloudwatch-observability add-on).`,
        this,
      );
    }
    for (const spec of specs)
      failOnProblems(checkAlarmSpec(spec), `EksTarget "${this.name}"`, this);
    return createAlarms(this.name, specs, topic, this);
  }
}

/** The part of `ServiceStatus` / `IngressStatus` that carries the load balancer's address. */
interface LoadBalancerStatusHolder {
  loadBalancer?: { ingress?: Array<{ hostname?: string; ip?: string }> };
}
