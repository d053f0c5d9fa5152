/** The `cloudrun` target: a Cloud Run v2 service with direct VPC egress. */
import { z } from "zod";
import { CloudRunTarget } from "../../components/targets/cloud-run";
import { targetScaling } from "../../components/targets/scaling";
import { gcpImage, grantGcpUpstream, NAME } from "./shared";
import { gcpResourceId } from "../naming";
import { gcpDataPlane } from "../clouds";
import type { TargetModule } from "./types";

/** `agent:cloudrun` */
export const cloudRunSection = z.strictObject({
  concurrency: z.number().int().min(1).max(1000).optional(),
  cpu: z.enum(["1", "2", "4", "8"]).optional(),
  memory: z
    .string()
    .regex(/^\d+(Mi|Gi)$/, { message: 'must look like "512Mi" or "2Gi"' })
    .optional(),
  ingress: z
    .enum([
      "INGRESS_TRAFFIC_ALL",
      "INGRESS_TRAFFIC_INTERNAL_ONLY",
      "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
    ])
    .optional(),
  /** Members allowed to invoke; `allUsers` makes it public (the app still requires its API keys). */
  invokers: z.array(z.string().min(1)).optional(),
});
export type CloudRunSection = z.infer<typeof cloudRunSection>;

function invokerOf(invokers: string[] | undefined): "public" | string[] | undefined {
  if (!invokers) return undefined;
  return invokers.length === 1 && invokers[0] === "allUsers" ? "public" : invokers;
}

export const cloudRunTarget: TargetModule<"cloudrun"> = {
  key: "cloudrun",
  kind: "cloudrun",
  cloud: "gcp",
  section: cloudRunSection,
  deploy(config, ctx) {
    const c = config.cloudrun;
    const s = config.scaling;
    const scaling = targetScaling(config.environment, {
      cloudRun: {
        minInstances: s.min,
        maxInstances: s.max,
        concurrency: c.concurrency,
        cpu: c.cpu,
        memory: c.memory,
      },
    }).cloudRun;
    const dataPlane = gcpDataPlane(ctx.name, config, ctx.labels, ["run.googleapis.com"]);
    const artifact = gcpImage(config, dataPlane);
    const target = new CloudRunTarget(
      ctx.name,
      {
        project: dataPlane.project,
        dataPlane: dataPlane.outputs,
        artifact,
        minInstances: scaling.minInstances,
        maxInstances: scaling.maxInstances,
        concurrency: scaling.concurrency,
        cpu: scaling.cpu,
        memory: scaling.memory,
        ingress: c.ingress,
        invoker: invokerOf(c.invokers),
        logLevel: config.logLevel,
        extraEnv: ctx.extraEnv,
        labels: ctx.labels,
        rollout: {
          steps: config.rolloutSteps,
          // Fixed, so the program finds the live service; Cloud Run allows 49 characters.
          name: gcpResourceId(`${NAME}-${config.stack}`).slice(0, 49).replace(/-+$/, ""),
        },
      },
      dataPlane.opts,
    );
    grantGcpUpstream(ctx.name, config, dataPlane, target);
    return { url: target.url, artifact, dashboardUrl: dataPlane.outputs.monitoring.dashboardUrl };
  },
};
