/**
 * Provider-computed outputs and invokes for releases: the copies into a promoted stack's own
 * storage, the listings a rollback checks, and the release history's dynamic resource. Import it
 * once, after `setupPulumiMocks`, alongside `mock-outputs-targets`.
 *
 * What a stack's storage holds is not in any file: `setStoredReleases` says it (the offline plan
 * assumes the release a stack rolls back to is there; tests say both ways).
 */
import { bundleKey } from "../../components/aws/lambda-bundle";
import { recordRelease, type ReleaseRecord } from "../../components/release/history";
import { registerComputedOutputs, registerInvoke } from "./mock-runtime";

/** Image digests (`sha256:<hex>`) and bundle SHA-256s (base64) the stack's storage holds. */
let stored: string[] = [];

/** What the mocked registries and buckets list from now on. */
export function setStoredReleases(releases: readonly string[]): void {
  stored = [...releases];
}

const IMAGE = /^sha256:[a-f0-9]{64}$/;

/**
 * Whether the services and groups a progressive stack reads (its fixed-name Cloud Run service,
 * its instance group) exist yet: "absent" is a first deploy, "serving" a stack deployed before
 * (its previous revision or template serving everything).
 */
let live: "serving" | "absent" = "serving";

export function setLiveState(state: "serving" | "absent"): void {
  live = state;
}

/** The data sources' own failure for a missing resource (terraform-provider-google). */
function notFound(id: string): never {
  const error = new Error(`${id} not found`);
  throw Object.assign(error, { details: error.message });
}

/** The revision a deployed service serves: the one before the revision this update creates. */
export function previousRevision(service: string): string {
  return `${service}-00001-old`;
}

/** The template a deployed group runs before this update. */
export function previousTemplate(project: string, group: string): string {
  return `https://www.googleapis.com/compute/v1/projects/${project}/global/instanceTemplates/${group}-previous`;
}

registerInvoke("gcp:cloudrunv2/getService:getService", (ctx) => {
  const { project, location, name } = ctx.inputs as Record<string, string>;
  const id = `projects/${project}/locations/${location}/services/${name}`;
  if (live === "absent") notFound(id);
  const revision = previousRevision(name!);
  return {
    id,
    name,
    project,
    location,
    latestReadyRevision: revision,
    latestCreatedRevision: revision,
    trafficStatuses: [
      { type: "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", revision, percent: 100, tag: "", uri: "" },
    ],
  };
});

registerInvoke("gcp:compute/getRegionInstanceGroupManager:getRegionInstanceGroupManager", (ctx) => {
  const { project, region, name } = ctx.inputs as Record<string, string>;
  const id = `projects/${project}/regions/${region}/instanceGroupManagers/${name}`;
  if (live === "absent") notFound(id);
  return {
    id,
    name,
    project,
    region,
    versions: [
      { name: "stable", instanceTemplate: previousTemplate(project!, name!), targetSizes: [] },
    ],
  };
});

registerInvoke("aws:ecr/getImages:getImages", (ctx) => ({
  id: String(ctx.inputs.repositoryName),
  repositoryName: ctx.inputs.repositoryName,
  registryId: ctx.inputs.registryId ?? ctx.accountId,
  imageIds: stored
    .filter((d) => IMAGE.test(d))
    .map((imageDigest) => ({ imageDigest, imageTag: `release-${imageDigest.slice(7, 23)}` })),
}));

registerInvoke("gcp:artifactregistry/getDockerImages:getDockerImages", (ctx) => {
  const { project, location, repositoryId } = ctx.inputs as Record<string, string>;
  const path = `${location}-docker.pkg.dev/${project}/${repositoryId}/agent`;
  return {
    id: `projects/${project}/locations/${location}/repositories/${repositoryId}`,
    project,
    location,
    repositoryId,
    dockerImages: stored
      .filter((d) => IMAGE.test(d))
      .map((digest) => ({
        name: `projects/${project}/locations/${location}/repositories/${repositoryId}/dockerImages/agent@${digest}`,
        imageName: "agent",
        selfLink: `${path}@${digest}`,
        tags: [`release-${digest.slice(7, 23)}`],
        imageSizeBytes: "150000000",
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        buildTime: "2026-12-01T00:00:00Z",
        uploadTime: "2026-12-01T00:00:00Z",
        updateTime: "2026-12-01T00:00:00Z",
      })),
  };
});

registerInvoke("aws:s3/getObjects:getObjects", (ctx) => {
  const prefix = String(ctx.inputs.prefix ?? "");
  return {
    id: String(ctx.inputs.bucket),
    bucket: ctx.inputs.bucket,
    prefix,
    keys: stored.filter((d) => !IMAGE.test(d)).map((sha) => bundleKey(sha, prefix)),
    commonPrefixes: [],
    owners: [],
    requestCharged: "",
  };
});

/**
 * S3 computes the copy's SHA-256; the key is content-addressed (`<sha256 hex>.zip`), so an intact
 * object at that key has exactly that checksum.
 */
registerComputedOutputs("aws:s3/objectCopy:ObjectCopy", (ctx) => {
  const key = String(ctx.plainInputs.key ?? "");
  const hex = /([a-f0-9]{64})\.zip$/.exec(key)?.[1];
  return {
    id: key,
    checksumSha256: hex ? Buffer.from(hex, "hex").toString("base64") : "",
    etag: ctx.hash(32),
    versionId: ctx.hash(32, "version"),
  };
});

/** The release history's first deployment: the provider's `create`, on the mocked inputs. */
registerComputedOutputs("pulumi-nodejs:dynamic:Resource", (ctx) => {
  const record = ctx.plainInputs.record as ReleaseRecord | undefined;
  if (!record) return {};
  return { id: "releases", record, releases: recordRelease([], record) };
});

// --- CodeDeploy (Lambda canaries): names the provider would generate ----------------------------

registerComputedOutputs("aws:codedeploy/application:Application", (ctx) => {
  const name =
    typeof ctx.plainInputs.name === "string" ? ctx.plainInputs.name : `${ctx.name}-${ctx.hash(7)}`;
  return {
    id: name,
    name,
    arn: `arn:aws:codedeploy:${ctx.region}:${ctx.accountId}:application:${name}`,
  };
});

registerComputedOutputs("aws:codedeploy/deploymentConfig:DeploymentConfig", (ctx) => {
  const name =
    typeof ctx.plainInputs.deploymentConfigName === "string"
      ? ctx.plainInputs.deploymentConfigName
      : `${ctx.name}-${ctx.hash(7)}`;
  return {
    id: name,
    deploymentConfigName: name,
    deploymentConfigId: ctx.hash(8),
    arn: `arn:aws:codedeploy:${ctx.region}:${ctx.accountId}:deploymentconfig:${name}`,
  };
});
