/**
 * What every rendered stack must satisfy, and what each target must look like. Each file under
 * test/infra/stacks/ renders one stack file and calls `describeStack`.
 */
import type { RecordedResource, ResourceQuery } from "../support/pulumi";
import { describeRollout } from "./rollout-assertions";
import { estimateCost } from "../../infra/plan/cost";
import { invocationsOf, outputOf } from "../support/pulumi";
import { apiForType } from "../../components/gcp/apis";
import { EKS_VERSIONS, eksVersionProblem } from "../../components/versions";
import { envSchema } from "../../app/src/config";
import { SERVICE_CONTRACT } from "../../app/src/contract";
import {
  stackRenderer,
  TEST_ANTHROPIC_KEY,
  PROMOTED_DIGEST,
  exportedArtifactOf,
  type RenderedStack,
} from "../support/render-stack";
import { AWS_TAG_KEYS } from "../../components/tagging";
import { bundleKey } from "../../components/aws/lambda-bundle";
import { parseS3Location } from "../../components/release/zip-copy";
import { imageRepositoryPath } from "../../components/gcp/image";

const json = (v: unknown) => JSON.stringify(v) ?? "";
const one = (q: ResourceQuery, type: string): RecordedResource => {
  const found = q.findByType(type);
  if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}`);
  return found[0]!;
};

/** One render per test file, shared by the assertions here and the policy pack's. */
export function sharedRender(
  stack: string,
  overrides: Record<string, string> = {},
): () => Promise<RenderedStack> {
  const render = stackRenderer(stack, overrides);
  let once: Promise<RenderedStack> | undefined;
  return () => (once ??= render());
}

export function describeStack(stack: string, render = sharedRender(stack)): void {
  let s: RenderedStack;
  beforeAll(async () => {
    s = await render();
  }, 120_000);
  describeRollout(stack, () => s);

  describe(`stack ${stack}`, () => {
    test("the Anthropic key appears only in secret inputs", () => {
      const leaks = s.q.all().flatMap((r) =>
        Object.entries(r.inputs as Record<string, unknown>)
          .filter(([k, v]) => !r.secretInputs.has(k) && json(v).includes(TEST_ANTHROPIC_KEY))
          .map(([k]) => `${r.type} ${r.name}.${k}`),
      );
      expect(leaks).toEqual([]);
      const holders = s.q
        .all()
        .filter((r) =>
          [...r.secretInputs].some((k) =>
            json((r.inputs as Record<string, unknown>)[k]).includes(TEST_ANTHROPIC_KEY),
          ),
        );
      // One secret holds it; none on Bedrock or Vertex, which need no key (issue 16).
      expect(holders.length).toBe(s.config.upstream.kind === "anthropic" ? 1 : 0);
    });

    test("generated passwords are secret outputs", () => {
      for (const p of s.q.findByType("random:index/randomPassword:RandomPassword")) {
        expect(p.options.additionalSecretOutputs).toContain("result");
      }
    });

    test("every taggable resource carries the stack's tags or labels", () => {
      const c = s.config;
      if (c.cloud === "aws") {
        // Which types take tags at all is pinned by components/tagging's own test against the SDK.
        const taggable = s.q
          .all()
          .filter(
            (r) =>
              r.type.startsWith("aws:") &&
              (r.inputs as { tags?: unknown }).tags !== undefined &&
              !Array.isArray((r.inputs as { tags?: unknown }).tags),
          );
        expect(taggable.length).toBeGreaterThan(10);
        for (const r of taggable) {
          expect({
            resource: `${r.type} ${r.name}`,
            tags: (r.inputs as { tags?: unknown }).tags,
          }).toMatchObject({
            tags: {
              [AWS_TAG_KEYS.app]: "agent",
              [AWS_TAG_KEYS.environment]: c.environment,
              [AWS_TAG_KEYS.owner]: c.owner,
              [AWS_TAG_KEYS.costCenter]: c.costCenter,
            },
          });
        }
      } else {
        // A notification channel's `labels` is its configuration (the e-mail address), not metadata.
        const labellable = s.q
          .all()
          .filter(
            (r) =>
              r.type.startsWith("gcp:") &&
              r.type !== "gcp:monitoring/notificationChannel:NotificationChannel" &&
              (r.inputs as { labels?: unknown }).labels !== undefined,
          );
        expect(labellable.length).toBeGreaterThan(5);
        for (const r of labellable) {
          expect({
            resource: `${r.type} ${r.name}`,
            labels: (r.inputs as { labels?: unknown }).labels,
          }).toMatchObject({ labels: { app: "agent", environment: c.environment } });
        }
      }
    });

    test("data stores are encrypted, private, and protected in prod", () => {
      const prod = s.config.environment === "prod";
      if (s.config.cloud === "aws") {
        const db = one(s.q, "aws:rds/instance:Instance");
        const inputs = db.inputs as Record<string, unknown>;
        expect(inputs.storageEncrypted).toBe(true);
        expect(inputs.publiclyAccessible).toBe(false);
        expect(inputs.deletionProtection).toBe(prod);
        expect(inputs.multiAz).toBe(prod);
        expect(db.options.protect).toBe(prod);
        const redis = one(s.q, "aws:elasticache/replicationGroup:ReplicationGroup")
          .inputs as Record<string, unknown>;
        expect(redis).toMatchObject({
          transitEncryptionEnabled: true,
          atRestEncryptionEnabled: true,
        });
      } else {
        const sql = one(s.q, "gcp:sql/databaseInstance:DatabaseInstance");
        const settings = (sql.inputs as { settings: Record<string, any> }).settings;
        expect(settings.ipConfiguration.ipv4Enabled).toBe(false);
        expect(settings.ipConfiguration.sslMode).toBe("ENCRYPTED_ONLY");
        expect(settings.availabilityType).toBe(prod ? "REGIONAL" : "ZONAL");
        expect(sql.options.protect).toBe(prod);
        const redis = one(s.q, "gcp:redis/instance:Instance").inputs as Record<string, unknown>;
        expect(redis).toMatchObject({
          authEnabled: true,
          transitEncryptionMode: "SERVER_AUTHENTICATION",
          tier: prod ? "STANDARD_HA" : "BASIC",
        });
      }
    });

    test("the plan's estimate prices every resource, or says why not (no type without a price rule)", () => {
      const items = estimateCost(s.q.all(), { environment: s.config.environment }).items;
      expect(
        items.filter((i) => i.pricing === "not-priced" && /no price rule/.test(i.detail)),
      ).toEqual([]);
    });

    test("a cost budget alerts at 50, 80 and 100 %", () => {
      if (s.config.cloud === "aws") {
        const b = one(s.q, "aws:budgets/budget:Budget").inputs as {
          notifications: Array<{ threshold: number; notificationType: string }>;
        };
        expect(
          b.notifications
            .filter((n) => n.notificationType === "ACTUAL")
            .map((n) => n.threshold)
            .sort((x, y) => x - y),
        ).toEqual([50, 80, 100]);
      } else {
        const b = one(s.q, "gcp:billing/budget:Budget").inputs as {
          thresholdRules: Array<{ thresholdPercent: number; spendBasis?: string }>;
        };
        const current = b.thresholdRules
          .filter((r) => r.spendBasis !== "FORECASTED_SPEND")
          .map((r) => r.thresholdPercent);
        expect(current.sort()).toEqual([0.5, 0.8, 1]);
      }
    });

    test("the artifact is built here, or promoted into storage the stack owns with the source's digest (issue 15)", async () => {
      const builds =
        s.q.findByType("docker:index/image:Image").length +
        s.q.findByType("aws:s3/bucketObjectv2:BucketObjectv2").length;
      const exported = await outputOf(s.outputs.artifact);
      if (!s.config.promoteFrom) {
        expect(builds).toBe(1);
        expect(s.q.findByType("pulumi:pulumi:StackReference")).toHaveLength(0);
        return;
      }
      expect(builds).toBe(0);
      expect(
        s.q
          .findByType("pulumi:pulumi:StackReference")
          .map((r) => (r.inputs as { name: string }).name),
      ).toEqual([s.config.promoteFrom]);
      const source = exportedArtifactOf(s.config.promoteFrom);
      const own = ownStorage(s);
      if (source.kind === "lambda-zip" && exported.kind === "lambda-zip") {
        // Same bytes (the SHA-256 S3 computed for the copy is checked against the source's)...
        expect(exported.sha256).toBe(source.sha256);
        // ...under the same content-addressed key, in this stack's bucket, kept when replaced.
        expect(exported.location).toBe(`s3://${own}/${bundleKey(source.sha256)}`);
        const copy = one(s.q, "aws:s3/objectCopy:ObjectCopy");
        expect(copy.inputs).toMatchObject({
          bucket: own,
          source: source.location.slice("s3://".length),
          checksumAlgorithm: "SHA256",
          serverSideEncryption: "AES256",
        });
        expect(copy.options.retainOnDelete).toBe(true);
      } else if (source.kind === "image" && exported.kind === "image") {
        expect(exported.digest).toBe(source.digest);
        expect(exported.imageRef).toBe(`${own}@${source.digest}`);
        expect(exported.imageRef).not.toBe(source.imageRef);
        // The copy (crane, by digest) is verified: it fails unless the copy's digest is the source's.
        const copies = s.q
          .findByType("command:local:Command")
          .map((r) => r.inputs as { create: string })
          .filter((i) => i.create.includes("crane copy"));
        expect(copies).toHaveLength(1);
        const copy = copies[0]!;
        expect(copy.create).toContain(`crane copy '${source.imageRef}' '${own}:release-`);
        expect(copy.create).toContain(`!= '${source.digest}'`);
      } else {
        throw new Error(`artifact kinds differ: ${exported.kind} vs ${source.kind}`);
      }
    });

    test("a promoted stack's compute references only its own storage (issue 15)", async () => {
      if (!s.config.promoteFrom) return;
      const source = exportedArtifactOf(s.config.promoteFrom);
      const own = ownStorage(s);
      // The copies read the source; the release history only names the release.
      const copies = new Set([
        "command:local:Command",
        "aws:s3/objectCopy:ObjectCopy",
        "pulumi-nodejs:dynamic:Resource",
      ]);
      const sourceStore =
        source.kind === "image"
          ? source.imageRef.slice(0, source.imageRef.lastIndexOf("@"))
          : parseS3Location(source.location).bucket;
      // Launch templates carry their user data base64-encoded: read it decoded.
      const text = (r: RecordedResource) =>
        json(r.inputs) +
        (typeof r.inputs.userData === "string"
          ? Buffer.from(r.inputs.userData, "base64").toString("utf8")
          : "");
      const readers = s.q
        .all()
        .filter((r) => !copies.has(r.type) && r.type !== "pulumi:pulumi:StackReference")
        .filter((r) => text(r).includes(sourceStore));
      expect(readers.map((r) => `${r.type} ${r.name}`)).toEqual([]);
      const compute = s.q
        .all()
        .filter((r) => !copies.has(r.type))
        .filter((r) =>
          text(r).includes(source.kind === "image" ? source.digest : bundleKey(source.sha256)),
        );
      expect(compute.length).toBeGreaterThan(0);
      for (const r of compute) expect(text(r)).toContain(own);
    });

    test("the service URL is exported", async () => {
      expect(await outputOf(s.outputs.url)).toMatch(/^https?:\/\/[a-z0-9.-]+/);
    });

    test(`the ${stackTargetLabel(stack)} target is wired as configured`, async () => {
      await assertTarget(s);
    });
  });

  describe(`stack ${stack}: what a first pulumi up would hit (issue 12)`, () => {
    test("GCP: every API a resource calls is enabled by the stack, never disabled on destroy, and waited for", () => {
      if (s.config.cloud !== "gcp") return;
      const services = s.q.findByType("gcp:projects/service:Service");
      for (const svc of services) {
        expect(svc.inputs).toMatchObject({ disableOnDestroy: false, project: s.config.gcpProject });
      }
      const serviceUrn = new Map(services.map((x) => [String(x.inputs.service), x.urn]));
      const providers = new Map(
        s.q.findByType("pulumi:providers:gcp").map((p) => [`${p.urn}::${p.id}`, p]),
      );
      const gcpResources = s.q
        .all()
        .filter(
          (r) => r.custom && r.type.startsWith("gcp:") && r.type !== "gcp:projects/service:Service",
        );
      expect(gcpResources.length).toBeGreaterThan(20);
      for (const r of gcpResources) {
        const api = apiForType(r.type);
        expect({ resource: `${r.type} ${r.name}`, api }).toEqual({
          resource: `${r.type} ${r.name}`,
          api: expect.stringMatching(/\.googleapis\.com$/),
        });
        const provider = providers.get(r.options.provider);
        expect({ resource: `${r.type} ${r.name}`, gated: provider?.options.dependencies }).toEqual({
          resource: `${r.type} ${r.name}`,
          gated: expect.arrayContaining([serviceUrn.get(api!)]),
        });
      }
    });

    test("GCP: the budget counts this stack's labelled spend, through the stack's own quota project", () => {
      if (s.config.cloud !== "gcp") return;
      const budget = one(s.q, "gcp:billing/budget:Budget");
      const stackLabel = (
        s.q.findByType("gcp:redis/instance:Instance")[0]!.inputs.labels as Record<string, string>
      )["pulumi-stack"];
      expect((budget.inputs as any).budgetFilter.labels).toEqual({ "pulumi-stack": stackLabel });
      expect((budget.inputs as any).displayName).toBe(`agent-${s.config.stack}`);
      const provider = s.q
        .findByType("pulumi:providers:gcp")
        .find((p) => budget.options.provider.startsWith(`${p.urn}::`))!;
      expect(provider.inputs).toMatchObject({
        userProjectOverride: "true",
        billingProject: s.config.gcpProject,
      });
    });

    test("names unique per project or account carry the stack's name", () => {
      for (const repo of s.q.findByType("gcp:artifactregistry/repository:Repository")) {
        expect(repo.inputs.repositoryId).toBe(`agent-${s.config.stack}`);
      }
      for (const db of s.q.findByType("aws:rds/instance:Instance")) {
        const id = (db.inputs as { finalSnapshotIdentifier?: string }).finalSnapshotIdentifier;
        if (id !== undefined)
          expect(id).toMatch(new RegExp(`-${s.config.stack}-final-[0-9a-f]{8}$`));
      }
    });

    test("Cloud Run may pull its image: the service agent reads the stack's own repository", async () => {
      if (s.config.target !== "cloudrun") return;
      const pull = s.q
        .findByType("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")
        .find((m) =>
          String(m.inputs.member).includes("@serverless-robot-prod.iam.gserviceaccount.com"),
        )!;
      expect(pull.inputs.role).toBe("roles/artifactregistry.reader");
      const image = (one(s.q, "gcp:cloudrunv2/service:Service").inputs as any).template
        .containers[0].image as string;
      expect(image).toContain(`/${String(pull.inputs.project)}/${String(pull.inputs.repository)}/`);
      // Promoted stacks too: they run their own copy, never the source project's repository.
      expect(pull.inputs.project).toBe(s.config.gcpProject);
      expect(one(s.q, "gcp:cloudrunv2/service:Service").options.dependencies).toContain(pull.urn);
    });

    test("EKS: the preview/drift role reads the cluster through an access entry; standard support unless opted in", () => {
      if (s.config.target !== "eks") return;
      const viewers = s.q
        .findByType("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
        .filter((a) => String(a.inputs.policyArn).endsWith("/AmazonEKSViewPolicy"));
      expect(viewers.map((v) => v.inputs.principalArn)).toEqual(s.config.eks.viewerPrincipalArns);
      const cluster = one(s.q, "aws:eks/cluster:Cluster").inputs as any;
      expect(cluster.upgradePolicy).toEqual({ supportType: "STANDARD" });
      expect(eksVersionProblem(cluster.version, EKS_VERSIONS.takenOn, false)).toBeUndefined();
    });

    test("a domain gets its certificate and record in the configured zone, or the stack exports what to create", async () => {
      const records = await outputOf(s.outputs.dnsRecords);
      if (!s.config.domain) {
        expect(records).toEqual([]);
        return;
      }
      expect(records).toEqual([
        expect.objectContaining({ name: s.config.domain, managed: Boolean(s.config.dnsZone) }),
      ]);
      if (s.config.cloud === "aws" && s.config.dnsZone) {
        const routes = s.q.findByType("aws:route53/record:Record");
        expect(routes.map((r) => r.inputs.zoneId)).toEqual([s.config.dnsZone, s.config.dnsZone]);
        expect(routes.map((r) => r.inputs.name)).toContain(s.config.domain);
        expect(one(s.q, "aws:acm/certificate:Certificate").inputs).toMatchObject({
          domainName: s.config.domain,
          validationMethod: "DNS",
        });
      }
      if (s.config.cloud === "gcp") {
        expect(s.q.findByType("gcp:dns/recordSet:RecordSet")).toHaveLength(
          s.config.dnsZone ? 1 : 0,
        );
      }
    });

    test("the VM image is pinned by the stack: no AMI lookup that drifts", () => {
      if (s.config.target !== "vmgroup" || s.config.cloud !== "aws") return;
      expect((one(s.q, "aws:ec2/launchTemplate:LaunchTemplate").inputs as any).imageId).toBe(
        s.config.vmgroup.imageId,
      );
      expect(invocationsOf("aws:ssm/getParameter:getParameter")).toEqual([]);
    });

    test("every variable the target sets is one the service reads (app/src/config.ts, app/src/contract.ts)", () => {
      const names = new Set<string>();
      for (const fn of s.q.findByType("aws:lambda/function:Function"))
        Object.keys((fn.inputs as any).environment.variables).forEach((n) => names.add(n));
      for (const svc of s.q.findByType("gcp:cloudrunv2/service:Service"))
        (svc.inputs as any).template.containers[0].envs.forEach((e: { name: string }) =>
          names.add(e.name),
        );
      for (const dep of s.q.findByType("kubernetes:apps/v1:Deployment"))
        (dep.inputs as any).spec.template.spec.containers[0].env.forEach((e: { name: string }) =>
          names.add(e.name),
        );
      for (const lt of [
        ...s.q
          .findByType("aws:ec2/launchTemplate:LaunchTemplate")
          .map((r) => Buffer.from(String((r.inputs as any).userData), "base64").toString()),
        ...s.q
          .findByType("gcp:compute/instanceTemplate:InstanceTemplate")
          .map((r) => String((r.inputs as any).metadata["user-data"])),
      ]) {
        for (const m of lt.matchAll(/^\s+([A-Z][A-Z0-9_]+)=/gm)) names.add(m[1]!);
      }
      expect(names.size).toBeGreaterThan(5);
      const reads = new Set<string>([
        ...Object.keys(envSchema.shape),
        ...SERVICE_CONTRACT.entrypointEnv,
      ]);
      // The platform's own: the AWS SDK's region and IRSA's web identity.
      const platform = new Set([
        "AWS_REGION",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "HOME",
      ]);
      const unknown = [...names].filter(
        (n) =>
          !reads.has(n) &&
          !platform.has(n) &&
          !(n.endsWith("_SECRET") && reads.has(n.slice(0, -7))),
      );
      expect(unknown).toEqual([]);
    });

    test("every entry point is watched: an uptime check (GCP) or an alarm on it (AWS)", () => {
      if (s.config.cloud === "gcp") {
        expect(s.q.findByType("gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig")).toHaveLength(
          1,
        );
      } else {
        const alarms = s.q.findByType("aws:cloudwatch/metricAlarm:MetricAlarm").map((a) => a.name);
        const entry =
          s.config.target === "eks"
            ? /no-healthy-targets$/
            : s.config.target === "lambda"
              ? /error-rate$/
              : /unhealthy|5xx|error/;
        expect(alarms.some((n) => entry.test(n))).toBe(true);
      }
    });

    test("a dev ECR repository can be destroyed with images in it; others keep theirs", () => {
      for (const repo of s.q.findByType("aws:ecr/repository:Repository")) {
        expect(repo.inputs.forceDelete).toBe(s.config.environment === "dev");
      }
    });
  });
}

/** Where the stack keeps its releases: its bucket's name, or its repository's path. */
function ownStorage(s: RenderedStack): string {
  if (s.config.target === "lambda") {
    return String(one(s.q, "aws:s3/bucketV2:BucketV2").state.bucket);
  }
  if (s.config.cloud === "aws") {
    return String(one(s.q, "aws:ecr/repository:Repository").state.repositoryUrl);
  }
  const repo = one(s.q, "gcp:artifactregistry/repository:Repository").inputs;
  return imageRepositoryPath(
    String(repo.location),
    String(repo.project),
    String(repo.repositoryId),
  );
}

function stackTargetLabel(stack: string) {
  return stack.replace(/-(dev|staging|prod)$/, "");
}

async function assertTarget(s: RenderedStack): Promise<void> {
  const c = s.config;
  const q = s.q;
  const promoted = Boolean(c.promoteFrom);
  switch (c.target) {
    case "lambda": {
      const fn = one(q, "aws:lambda/function:Function").inputs as Record<string, any>;
      expect(fn).toMatchObject({
        runtime: "nodejs22.x",
        architectures: ["arm64"],
        tracingConfig: { mode: "Active" },
      });
      expect(fn.memorySize).toBe(c.lambda.memoryMb);
      expect(fn.reservedConcurrentExecutions).toBe(c.lambda.reservedConcurrency);
      expect(fn.vpcConfig.subnetIds.length).toBeGreaterThanOrEqual(2);
      const env = fn.environment.variables as Record<string, string>;
      expect(env.ANTHROPIC_API_KEY).toBeUndefined();
      if (c.upstream.kind === "anthropic")
        expect(env.ANTHROPIC_API_KEY_SECRET).toMatch(/^aws-sm:\/\/arn:aws:secretsmanager:/);
      else expect(env.ANTHROPIC_API_KEY_SECRET).toBeUndefined();
      if (promoted)
        expect(fn.s3Key).toContain(
          exportedArtifactOf(c.promoteFrom!).kind === "lambda-zip" ? "lambda/" : "",
        );
      const secretsPolicy = q
        .findByType("aws:iam/rolePolicy:RolePolicy")
        .map((p) => json((p.inputs as { policy: unknown }).policy))
        .join("\n");
      expect(secretsPolicy).toContain("secretsmanager:GetSecretValue");
      expect(secretsPolicy).not.toMatch(
        /"Resource":"\*"[^}]*GetSecretValue|GetSecretValue[^}]*"Resource":"\*"/,
      );
      expect(
        q.findByType("aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig"),
      ).toHaveLength(c.lambda.provisionedConcurrency ? 1 : 0);
      break;
    }
    case "cloudrun": {
      const svc = one(q, "gcp:cloudrunv2/service:Service").inputs as Record<string, any>;
      expect(svc.template.scaling.maxInstanceCount).toBe(c.scaling.max);
      expect(svc.template.scaling.minInstanceCount).toBe(c.scaling.min);
      const container = svc.template.containers[0];
      if (promoted) expect(container.image).toContain(`@${PROMOTED_DIGEST}`);
      const secretEnv = container.envs
        .filter((e: any) => e.valueSource)
        .map((e: any) => e.name)
        .sort();
      expect(secretEnv).toEqual([
        ...(c.upstream.kind === "anthropic" ? ["ANTHROPIC_API_KEY"] : []),
        "DATABASE_PASSWORD",
        "REDIS_PASSWORD",
      ]);
      expect(
        container.envs.filter(
          (e: any) => e.value !== undefined && json(e.value).includes(TEST_ANTHROPIC_KEY),
        ),
      ).toEqual([]);
      expect(container.startupProbe.httpGet.path).toBe("/ready");
      expect(container.livenessProbe.httpGet.path).toBe("/health");
      expect(svc.template.vpcAccess.egress).toBe("PRIVATE_RANGES_ONLY");
      break;
    }
    case "eks": {
      const hpa = one(q, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler").inputs as Record<
        string,
        any
      >;
      expect(hpa.spec.minReplicas).toBe(c.scaling.min);
      expect(hpa.spec.maxReplicas).toBe(c.scaling.max);
      const dep = one(q, "kubernetes:apps/v1:Deployment").inputs as Record<string, any>;
      const container = dep.spec.template.spec.containers[0];
      if (promoted) expect(container.image).toContain(`@${PROMOTED_DIGEST}`);
      expect(container.securityContext).toMatchObject({
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
      });
      expect(container.readinessProbe.httpGet.path).toBe("/ready");
      expect(dep.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
      // A disruption budget only makes sense with two or more replicas to keep one of.
      expect(q.findByType("kubernetes:policy/v1:PodDisruptionBudget")).toHaveLength(
        (c.scaling.min ?? 1) >= 2 ? 1 : 0,
      );
      expect(
        q.findByType("kubernetes:networking.k8s.io/v1:NetworkPolicy").length,
      ).toBeGreaterThanOrEqual(1);
      const addons = q
        .findByType("aws:eks/addon:Addon")
        .map((a) => (a.inputs as { addonName: string }).addonName);
      expect(addons).toContain("metrics-server");
      if (c.domain) {
        const svc = q
          .findByType("kubernetes:core/v1:Service")
          .find((x) => (x.inputs as any).spec?.type === "LoadBalancer")!;
        // The configured certificate, or the one the stack issues and validates in its zone.
        const cert =
          c.certificateArn ??
          String(
            one(q, "aws:acm/certificateValidation:CertificateValidation").state.certificateArn,
          );
        expect(cert).toMatch(new RegExp(`^arn:aws:acm:${c.region}:`));
        expect(json((svc.inputs as any).metadata.annotations)).toContain(cert);
      }
      break;
    }
    case "vmgroup": {
      if (c.cloud === "aws") {
        const lt = one(q, "aws:ec2/launchTemplate:LaunchTemplate").inputs as Record<string, any>;
        expect(lt.metadataOptions.httpTokens).toBe("required");
        expect(lt.networkInterfaces[0].associatePublicIpAddress).toBe("false");
        expect(lt.blockDeviceMappings[0].ebs.encrypted).toBe("true");
        const asg = one(q, "aws:autoscaling/group:Group").inputs as Record<string, any>;
        expect(asg.minSize).toBe(c.scaling.min);
        expect(asg.maxSize).toBe(c.scaling.max);
        const userData = Buffer.from(lt.userData, "base64").toString("utf8");
        expect(userData).not.toContain(TEST_ANTHROPIC_KEY);
        if (promoted) expect(userData).toContain(PROMOTED_DIGEST);
        const listeners = q
          .findByType("aws:lb/listener:Listener")
          .map((l) => (l.inputs as any).protocol)
          .sort();
        expect(listeners).toEqual(c.domain ? ["HTTP", "HTTPS"] : ["HTTP"]);
      } else {
        const tpl = one(q, "gcp:compute/instanceTemplate:InstanceTemplate").inputs as Record<
          string,
          any
        >;
        expect(tpl.networkInterfaces[0].accessConfigs ?? []).toEqual([]);
        expect(tpl.shieldedInstanceConfig).toMatchObject({ enableSecureBoot: true });
        expect(json(tpl.metadata)).not.toContain(TEST_ANTHROPIC_KEY);
        if (promoted) expect(json(tpl.metadata)).toContain(PROMOTED_DIGEST);
        const as = one(q, "gcp:compute/regionAutoscaler:RegionAutoscaler").inputs as Record<
          string,
          any
        >;
        expect(as.autoscalingPolicy.minReplicas).toBe(c.scaling.min);
        expect(as.autoscalingPolicy.maxReplicas).toBe(c.scaling.max);
        expect(
          q.findByType("gcp:compute/managedSslCertificate:ManagedSslCertificate"),
        ).toHaveLength(c.domain ? 1 : 0);
      }
      break;
    }
  }
}
