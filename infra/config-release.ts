/**
 * The stack config's release keys, checked and resolved: `agent:release` (a rollback on a promoted
 * stack), `agent:rollout.steps` (progressive delivery, the environment's default when unset) and
 * `agent:promotionReaders` (who may copy this stack's releases). Problems are pushed with the key
 * they concern and what to change, like every other stack-config check (infra/config.ts).
 */
import type { Cloud, Environment, TargetKind } from "../components/contracts";
import { environmentProfile } from "../components/environment";
import { releaseName } from "../components/release/history";
import { readerProblems } from "../components/release/readers";
import {
  codeDeployTrafficRouting,
  instanceRefreshCheckpoints,
  rolloutProblems,
  type RolloutStep,
} from "../components/release/rollout-plan";

const NS = "agent";

interface ReleaseKeys {
  target: TargetKind;
  environment: Environment;
  promoteFrom?: string;
  release?: string;
  rollout?: { steps: RolloutStep[] };
  promotionReaders?: string[];
}

export function releaseSettings(
  c: ReleaseKeys,
  cloud: Cloud,
  problems: string[],
): { release?: string; rolloutSteps: RolloutStep[] } {
  const release =
    c.release === undefined
      ? undefined
      : releaseName(c.release, c.target === "lambda" ? "zip" : "image");
  if (c.release !== undefined && !c.promoteFrom) {
    problems.push(
      `${NS}:release rolls back to a release in the storage a promoted stack owns, and this stack builds its own (no ${NS}:promoteFrom): remove ${NS}:release and deploy the older commit instead (Actions > deploy with ref = that commit)`,
    );
  } else if (c.release !== undefined && !release) {
    problems.push(
      c.target === "lambda"
        ? `${NS}:release "${c.release}" is not a bundle SHA-256 (44 base64 characters or 64 hex, as \`npm run release -- list\` shows)`
        : `${NS}:release "${c.release}" is not an image digest (sha256:<64 hex>, as \`npm run release -- list\` shows)`,
    );
  }
  const rolloutSteps = c.rollout?.steps ?? environmentProfile(c.environment).rolloutSteps;
  const stepProblems = rolloutProblems(rolloutSteps, `${NS}:rollout.steps`);
  problems.push(...stepProblems);
  if (stepProblems.length === 0 && rolloutSteps.length > 0) {
    try {
      // The platforms' own shapes: CodeDeploy is a canary or linear; instance refresh one delay.
      if (c.target === "lambda") codeDeployTrafficRouting(rolloutSteps, `${NS}:rollout.steps`);
      if (c.target === "vmgroup" && cloud === "aws")
        instanceRefreshCheckpoints(rolloutSteps, `${NS}:rollout.steps`);
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  problems.push(...readerProblems(cloud, c.promotionReaders ?? [], `${NS}:promotionReaders`));
  return { release, rolloutSteps };
}
