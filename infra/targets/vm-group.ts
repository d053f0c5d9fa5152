/** The `vmgroup` target on either cloud: an Auto Scaling Group behind an ALB, or a regional MIG behind a global load balancer. */
import { z } from "zod";
import { AwsVmGroupTarget } from "../../components/targets/vm-group-aws";
import { GcpVmGroupTarget } from "../../components/targets/vm-group-gcp";
import { targetScaling } from "../../components/targets/scaling";
import type { StackConfig } from "../config";
import {
  awsCertificateArn,
  awsImage,
  awsPlatformFor,
  gcpImage,
  grantAwsUpstream,
  grantGcpUpstream,
  NAME,
} from "./shared";
import { gcpResourceId } from "../naming";
import { awsDataPlane, gcpDataPlane } from "../clouds";
import type { TargetModule } from "./types";

/** `agent:vmgroup` */
export const vmGroupSection = z.strictObject({
  /** AWS instance type (e.g. t4g.small) or GCP machine type (e.g. e2-small). */
  instanceType: z.string().min(1).optional(),
  diskGb: z.number().int().min(10).max(1000).optional(),
  /**
   * The machine image, pinned so a new image release is not drift: an AMI id on AWS (required;
   * bump it with the command in the README), a Container-Optimized OS image on GCP (default: the
   * cos-stable family, which a template resolves once).
   */
  imageId: z
    .string()
    .regex(/^(ami-[0-9a-f]{8,17}|projects\/[a-z][-a-z0-9]*\/global\/images\/[-a-z0-9/]+)$/, {
      message:
        'must be an AMI id ("ami-...") or a GCP image ("projects/cos-cloud/global/images/...")',
    })
    .optional(),
});
export type VmGroupSection = z.infer<typeof vmGroupSection>;

function vmScaling(config: StackConfig) {
  const s = config.scaling;
  return targetScaling(config.environment, {
    vm: { minInstances: s.min, maxInstances: s.max, targetCpuPercent: s.cpuTargetPercent },
  }).vm;
}

export const awsVmGroupTarget: TargetModule<"vmgroup-aws"> = {
  key: "vmgroup-aws",
  kind: "vmgroup",
  cloud: "aws",
  section: vmGroupSection,
  deploy(config, ctx) {
    const v = config.vmgroup;
    const scaling = vmScaling(config);
    const dataPlane = awsDataPlane(ctx.name, config, ctx.tags);
    const artifact = awsImage(config, awsPlatformFor([v.instanceType ?? "t4g.small"]));
    const target = new AwsVmGroupTarget(ctx.name, {
      dataPlane: dataPlane.outputs,
      artifact,
      instanceType: v.instanceType,
      minInstances: scaling.minInstances,
      maxInstances: scaling.maxInstances,
      targetCpuPercent: scaling.targetCpuPercent,
      diskGb: v.diskGb,
      imageId: v.imageId,
      domain: config.domain,
      certificateArn: awsCertificateArn(config),
      hostedZoneId: config.dnsZone,
      logLevel: config.logLevel,
      extraEnv: ctx.extraEnv,
      rollout: { steps: config.rolloutSteps },
    });
    grantAwsUpstream(ctx.name, config, target);
    return {
      url: target.url,
      artifact,
      dashboardUrl: dataPlane.outputs.monitoring.dashboardUrl,
      entry: { value: target.albDnsName, recordType: "CNAME" },
    };
  },
};

export const gcpVmGroupTarget: TargetModule<"vmgroup-gcp"> = {
  key: "vmgroup-gcp",
  kind: "vmgroup",
  cloud: "gcp",
  section: vmGroupSection,
  deploy(config, ctx) {
    const v = config.vmgroup;
    const scaling = vmScaling(config);
    const dataPlane = gcpDataPlane(
      ctx.name,
      config,
      ctx.labels,
      config.dnsZone ? ["dns.googleapis.com"] : [],
    );
    const artifact = gcpImage(config, dataPlane);
    const target = new GcpVmGroupTarget(
      ctx.name,
      {
        project: dataPlane.project,
        dataPlane: dataPlane.outputs,
        artifact,
        machineType: v.instanceType,
        minInstances: scaling.minInstances,
        maxInstances: scaling.maxInstances,
        targetCpuPercent: scaling.targetCpuPercent,
        diskGb: v.diskGb,
        sourceImage: v.imageId,
        domain: config.domain,
        dnsZone: config.dnsZone,
        logLevel: config.logLevel,
        extraEnv: ctx.extraEnv,
        labels: ctx.labels,
        // Fixed, so the program finds the live group.
        rollout: { steps: config.rolloutSteps, name: gcpResourceId(`${NAME}-${config.stack}`) },
      },
      dataPlane.opts,
    );
    grantGcpUpstream(ctx.name, config, dataPlane, target);
    return {
      url: target.url,
      artifact,
      dashboardUrl: dataPlane.outputs.monitoring.dashboardUrl,
      entry: { value: target.ipAddress, recordType: "A" },
    };
  },
};
