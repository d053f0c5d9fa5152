/**
 * The rollout driver as a resource: a command `pulumi up` runs after the target's new release
 * exists, carrying out a `RolloutPlan` (infra/rollout/cli.ts): start and follow a CodeDeploy
 * deployment, follow an instance refresh, or move a Cloud Run or managed instance group canary
 * step by step against the gates. It fails the deployment when the release was rolled back, so
 * `pulumi up` (and the deploy workflow) reports what the platform did.
 *
 * The command runs where `pulumi up` runs, in the project directory, with the deployer's cloud
 * credentials; `pulumi preview` does not run it. Nothing runs on delete.
 */
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { ROLLOUT_PLAN_ENV, type RolloutPlan } from "./rollout-plan";

/** What runs the plan: the repository's driver, through tsx (a dependency of the project). */
export const DRIVER_COMMAND = "npx --no-install tsx infra/rollout/cli.ts";

export interface RolloutDriverArgs {
  plan: pulumi.Input<RolloutPlan>;
  /** A new value runs the driver again (the new function version, launch template version...). */
  trigger: pulumi.Input<string>;
  /** @default DRIVER_COMMAND */
  command?: string;
  /** @default the directory `pulumi up` runs in (the project's) */
  dir?: string;
}

export class RolloutDriver extends pulumi.ComponentResource {
  readonly command: command.local.Command;

  constructor(name: string, args: RolloutDriverArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:release:RolloutDriver", name, {}, opts);
    this.command = new command.local.Command(
      `${name}-run`,
      {
        create: args.command ?? DRIVER_COMMAND,
        dir: args.dir,
        environment: {
          [ROLLOUT_PLAN_ENV]: pulumi.output(args.plan).apply((p) => JSON.stringify(p)),
        },
        // A new release replaces the command, which runs it again; the old one has nothing to undo.
        triggers: [args.trigger],
        logging: "stdoutAndStderr",
      },
      { parent: this },
    );
    this.registerOutputs({ stdout: this.command.stdout });
  }
}
