/** The `lambda` target: AWS Lambda behind a Function URL or an HTTP API. */
import { z } from "zod";
import { LambdaTarget } from "../../components/targets/lambda";
import { targetScaling } from "../../components/targets/scaling";
import { awsDataPlane } from "../clouds";
import { grantAwsUpstream, lambdaZip } from "./shared";
import type { TargetModule } from "./types";

/** `agent:lambda` */
export const lambdaSection = z.strictObject({
  memoryMb: z.number().int().min(128).max(10240).optional(),
  timeoutSeconds: z.number().int().min(1).max(900).optional(),
  reservedConcurrency: z.number().int().min(1).max(10000).optional(),
  provisionedConcurrency: z.number().int().min(0).max(10000).optional(),
  exposure: z.enum(["function-url", "http-api"]).optional(),
  /** HTTP API stage throttling. */
  throttleRatePerSecond: z.number().int().positive().optional(),
  throttleBurst: z.number().int().positive().optional(),
});
export type LambdaSection = z.infer<typeof lambdaSection>;

export const lambdaTarget: TargetModule<"lambda"> = {
  key: "lambda",
  kind: "lambda",
  cloud: "aws",
  section: lambdaSection,
  deploy(config, ctx) {
    const l = config.lambda;
    const scaling = targetScaling(config.environment, {
      lambda: {
        memoryMb: l.memoryMb,
        timeoutSeconds: l.timeoutSeconds,
        reservedConcurrency: l.reservedConcurrency,
        provisionedConcurrency: l.provisionedConcurrency,
      },
    }).lambda;
    const dataPlane = awsDataPlane(ctx.name, config, ctx.tags);
    const artifact = lambdaZip(config);
    const target = new LambdaTarget(ctx.name, {
      dataPlane: dataPlane.outputs,
      artifact,
      exposure: l.exposure,
      memoryMb: scaling.memoryMb,
      timeoutSeconds: scaling.timeoutSeconds,
      reservedConcurrency: scaling.reservedConcurrency,
      provisionedConcurrency: scaling.provisionedConcurrency,
      scaling:
        l.throttleBurst || l.throttleRatePerSecond
          ? { throttleBurst: l.throttleBurst, throttleRatePerSecond: l.throttleRatePerSecond }
          : undefined,
      logLevel: config.logLevel,
      extraEnv: ctx.extraEnv,
      rollout: { steps: config.rolloutSteps },
      upstream: config.upstream.kind,
    });
    grantAwsUpstream(ctx.name, config, target);
    return { url: target.url, artifact, dashboardUrl: dataPlane.outputs.monitoring.dashboardUrl };
  },
};
