/**
 * What both VM groups share: the environment's scaling under the args' overrides, and the user
 * data that runs the container under systemd.
 */
import type * as pulumi from "@pulumi/pulumi";
import type { DataPlaneOutputs, Environment } from "../contracts";
import { serviceEnv } from "../runtime-env";
import {
  CONTAINER_PORT,
  type ContainerHost,
  MIN_STOP_TIMEOUT_SECONDS,
  guardedCloudConfig,
} from "./cloud-init";
import { attempt } from "./problems";
import type { ServiceEnvArgs } from "./service";
import { targetScaling, type VmScaling } from "./scaling";

/** A VM group's scaling: the environment's defaults under the args' overrides. */
export function resolveVmScaling(
  problems: string[],
  environment: Environment,
  args: { minInstances?: number; maxInstances?: number; targetCpuPercent?: number },
): VmScaling | undefined {
  return attempt(
    problems,
    () =>
      targetScaling(environment, {
        vm: {
          minInstances: args.minInstances,
          maxInstances: args.maxInstances,
          targetCpuPercent: args.targetCpuPercent,
        },
      }).vm,
  );
}

/**
 * A VM group's user data: the container by digest on the service port, with the service's
 * environment (secret references, never values), stopped no faster than the app drains.
 * `hostEnv` is what the host adds (AWS_REGION on EC2); `extraEnv` may override it.
 */
export function serviceCloudConfig(
  host: pulumi.Input<ContainerHost>,
  imageRef: pulumi.Input<string>,
  dp: DataPlaneOutputs,
  args: ServiceEnvArgs,
  hostEnv: Record<string, pulumi.Input<string>> = {},
): pulumi.Output<string> {
  return guardedCloudConfig({
    host,
    imageRef,
    env: serviceEnv(dp, {
      port: CONTAINER_PORT,
      logLevel: args.logLevel,
      extra: { ...hostEnv, ...args.extraEnv },
    }),
    stopTimeoutSeconds: MIN_STOP_TIMEOUT_SECONDS,
  });
}
