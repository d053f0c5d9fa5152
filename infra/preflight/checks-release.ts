/**
 * Preflight rules for releases and model access. Promotion: a promoted stack's source exists and is deployed first, and a
 * promotion across accounts or projects has the source's read grant (agent:promotionReaders).
 */
import { awsReaderAccount, gcpReaderProject } from "../../components/release/readers";
import type { StackFacts } from "./facts";
import type { Add } from "./checks";

export function promotion(stacks: readonly StackFacts[], add: Add): void {
  const byName = new Map(stacks.map((s) => [s.stack, s]));
  for (const s of stacks) {
    if (!s.promoteFrom) continue;
    const sourceName = s.promoteFrom.split("/").at(-1)!;
    const source = byName.get(sourceName);
    if (!source) {
      add({
        severity: "warning",
        rule: "promotion.source",
        stack: s.stack,
        resource: "agent:promoteFrom",
        message: `${s.promoteFrom} is not among the stacks checked here: its artifact and grants cannot be checked`,
        fix: "check the stack name, or run the preflight with the source stack's file",
      });
    } else {
      if (source.target !== s.target || source.cloud !== s.cloud) {
        add({
          severity: "blocker",
          rule: "promotion.source",
          stack: s.stack,
          resource: "agent:promoteFrom",
          message: `${sourceName} is a ${source.target} stack on ${source.cloud}; ${s.stack} (${s.target} on ${s.cloud}) cannot run its artifact`,
          fix: "promote from a stack of the same target and cloud",
        });
      }
      crossAccountPromotion(s, source, add);
    }
    for (const g of s.gcp?.crossProjectGrants ?? []) {
      add({
        severity: "warning",
        rule: "promotion.cross-project",
        stack: s.stack,
        resource: `${g.project}/${g.repository}`,
        message: `${s.stack} grants ${g.member} pulls on repository ${g.repository} in project ${g.project}: whoever runs its pulumi up needs artifactregistry.repositories.setIamPolicy there`,
        fix: `give the deploy identity of ${s.stack} roles/artifactregistry.admin on that repository: gcloud artifacts repositories add-iam-policy-binding ${g.repository} --project ${g.project} --location <region> --member serviceAccount:<deployer> --role roles/artifactregistry.admin`,
      });
    }
  }
}

/**
 * A promotion copies the source stack's release into the promoted stack's own storage, with the
 * promoted stack's deployer: across accounts or projects, the source must grant it read
 * (`agent:promotionReaders` on the source stack: an ECR repository policy and a bucket policy, or
 * roles/artifactregistry.reader on the repository).
 */
function crossAccountPromotion(s: StackFacts, source: StackFacts, add: Add): void {
  const sourceName = source.stack;
  const setReader = (example: string) =>
    `on ${sourceName}: pulumi config set --path 'agent:promotionReaders[0]' ${example} (then pulumi up ${sourceName} before promoting)`;
  if (s.cloud === "aws") {
    if (!(source.accountPinned && s.accountPinned) || source.account === s.account) return;
    const granted = source.promotionReaders.some((r) => awsReaderAccount(r) === s.account);
    if (granted) return;
    add({
      severity: "blocker",
      rule: "promotion.cross-account",
      stack: s.stack,
      resource: "agent:promoteFrom",
      message: `${s.stack} (account ${s.account}) copies ${sourceName}'s releases from account ${source.account}, whose agent:promotionReaders grant ${s.account} nothing: the copy is refused`,
      fix: setReader(`arn:aws:iam::${s.account}:role/<${s.stack} deploy role>`),
    });
    return;
  }
  if (source.account === s.account) return;
  // Projects taken from stacks/offline-samples.yaml say nothing about the user's projects (they
  // may well be one): the missing grant is then a warning, and config.sample already asks for
  // the projects themselves.
  const sampled = [s, source].filter((x) => x.sampled.includes("gcp:project")).map((x) => x.stack);
  if (source.promotionReaders.length === 0) {
    add({
      severity: sampled.length > 0 ? "warning" : "blocker",
      rule: "promotion.cross-project",
      stack: s.stack,
      resource: "agent:promoteFrom",
      message:
        `${s.stack} (project ${s.account}) copies ${sourceName}'s images from project ${source.account}, which grants no one outside it read on its repository: the copy is refused` +
        (sampled.length > 0
          ? ` (the project of ${sampled.join(" and ")} is a sample: if you set both stacks to one project, no grant is needed)`
          : ""),
      fix: setReader(`serviceAccount:<deployer>@${s.account}.iam.gserviceaccount.com`),
    });
    return;
  }
  const projects = source.promotionReaders.map(gcpReaderProject);
  if (projects.every((p) => p !== undefined && p !== s.account)) {
    add({
      severity: "warning",
      rule: "promotion.cross-project",
      stack: s.stack,
      resource: "agent:promoteFrom",
      message: `${sourceName} grants read to service accounts of ${[...new Set(projects)].join(", ")}, none of them in ${s.account}, where ${s.stack} deploys from`,
      fix: `check that ${s.stack}'s deploy identity is among ${sourceName}'s agent:promotionReaders, or add it ${setReader(`serviceAccount:<deployer>@${s.account}.iam.gserviceaccount.com`)}`,
    });
  }
}

/**
 * Claude on the cloud is granted by IAM but served only once the account or project has access
 * to the models, which no API of the deploy can switch on: Bedrock needs Anthropic's one-time use
 * case form per account (Bedrock console > Model catalog), Vertex AI needs each model enabled in
 * Model Garden per project. Said before the first deploy, as a warning.
 */
export function cloudModelAccess(s: StackFacts, add: Add): void {
  const { kind, where, models } = s.upstream;
  if (kind === "bedrock") {
    add({
      severity: "warning",
      rule: "upstream.model-access",
      stack: s.stack,
      resource: "agent:upstream",
      message: `the service calls ${models.join(", ")} on Amazon Bedrock (${where === "none" ? "in-Region" : `${where} inference profiles`}) from ${s.region}; Bedrock answers AccessDeniedException until ${s.account} has access to Anthropic's models`,
      fix: "in the Bedrock console of that account: Model catalog > an Anthropic model > submit the use case details once (granted at once)",
    });
  } else if (kind === "vertex") {
    add({
      severity: "warning",
      rule: "upstream.model-access",
      stack: s.stack,
      resource: "agent:upstream",
      message: `the service calls ${models.join(", ")} on Vertex AI (${where}) in project ${s.account}; each model must be enabled there first`,
      fix: "Vertex AI > Model Garden > each Claude model > Enable (accept the terms) in that project",
    });
  }
}
