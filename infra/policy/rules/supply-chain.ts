/**
 * Supply chain: what runs in staging and prod is the exact image that was verified (referenced by
 * digest, not by a movable tag), and ECR repositories scan on push and refuse to overwrite tags.
 */
import { LEVELS, resourceRule } from "../types";
import { UNKNOWN, get, list, str } from "../values";
import { COMPUTE } from "./compute";
import { WORKLOAD_TYPES, containersOf, podSpecOf } from "./kubernetes";
import { decodeUserData } from "./secrets";

const DIGEST = /@sha256:[a-f0-9]{64}$/;

export function isPinnedByDigest(image: string): boolean {
  return DIGEST.test(image.trim());
}

/** Image references in a script: anything on a known registry host, and whatever `docker pull` pulls. */
export function imageRefsIn(text: string): string[] {
  const refs = new Set<string>();
  const registry =
    /(?<![\w@/:.-])((?:[a-z0-9-]+\.)+(?:amazonaws\.com|pkg\.dev|gcr\.io|docker\.io|ghcr\.io|quay\.io|azurecr\.io)(?::\d+)?\/[a-z0-9._/-]*[a-z0-9])(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?/g;
  for (const m of text.matchAll(registry))
    refs.add(`${m[1]}${m[2] ?? ""}${m[3] ?? ""}`.replace(/\.$/, ""));
  for (const m of text.matchAll(/docker\s+pull\s+(?:--?[a-z-]+(?:[ =]\S+)?\s+)*([^\s\\;|&]+)/g))
    refs.add(m[1]!);
  return [...refs];
}

const FIX =
  "deploy by digest (<repository>@sha256:<digest>): build once, then promote that digest (stack config agent:promoteFrom) instead of a tag that can move";

export const imagesPinnedByDigest = resourceRule({
  name: "images-pinned-by-digest",
  description:
    "Container images are referenced by digest, so staging and prod run exactly the image that was tested.",
  domain: "supply-chain",
  enforcement: { dev: "advisory", staging: "mandatory", prod: "mandatory" },
  types: [
    ...WORKLOAD_TYPES,
    COMPUTE.cloudRunV2,
    COMPUTE.cloudRunV1,
    COMPUTE.lambda,
    COMPUTE.launchTemplate,
    COMPUTE.ec2Instance,
    COMPUTE.gcpInstanceTemplate,
    COMPUTE.gcpRegionInstanceTemplate,
    COMPUTE.gcpInstance,
  ],
  validateResource(r, _ctx, report) {
    const images: Array<[string, unknown]> = [];
    if ((WORKLOAD_TYPES as readonly string[]).includes(r.type)) {
      const containers = containersOf(podSpecOf(r));
      if (containers === UNKNOWN) return;
      for (const { label, container } of containers)
        images.push([`${label} image`, container.image]);
    } else if (r.type === COMPUTE.cloudRunV2 || r.type === COMPUTE.cloudRunV1) {
      const containers = list(
        get(
          r.props,
          r.type === COMPUTE.cloudRunV2 ? "template.containers" : "template.spec.containers",
        ),
      );
      if (containers === UNKNOWN) return;
      containers.forEach((c, i) => images.push([`containers[${i}].image`, get(c, "image")]));
    } else if (r.type === COMPUTE.lambda) {
      images.push(["imageUri", r.props.imageUri]);
    } else {
      const scripts =
        r.type === COMPUTE.launchTemplate || r.type === COMPUTE.ec2Instance
          ? [r.props.userData, r.props.userDataBase64]
          : [
              ...Object.values(
                (get(r.props, "metadata") as Record<string, unknown> | undefined) ?? {},
              ),
              r.props.metadataStartupScript,
            ];
      for (const s of scripts) {
        const text = str(s);
        if (text === UNKNOWN || text === undefined) continue;
        for (const ref of imageRefsIn(decodeUserData(text))) images.push(["user data image", ref]);
      }
    }
    for (const [where, value] of images) {
      const image = str(value);
      if (image === UNKNOWN || image === undefined || image === "") continue;
      if (!isPinnedByDigest(image)) report(`${where} "${image}" is not pinned by digest: ${FIX}.`);
    }
  },
});

export const ecrScanOnPush = resourceRule({
  name: "ecr-scan-on-push",
  description: "ECR repositories scan every pushed image for vulnerabilities.",
  domain: "supply-chain",
  enforcement: LEVELS.security,
  types: ["aws:ecr/repository:Repository"],
  validateResource(r, _ctx, report) {
    const scan = get(r.props, "imageScanningConfiguration.scanOnPush");
    if (scan === UNKNOWN) return;
    if (scan !== true && scan !== "true")
      report(
        "imageScanningConfiguration.scanOnPush is off: set imageScanningConfiguration: { scanOnPush: true }.",
      );
  },
});

export const ecrImmutableTags = resourceRule({
  name: "ecr-immutable-tags",
  description: "ECR repositories refuse to overwrite a tag, so a tag always names the same image.",
  domain: "supply-chain",
  enforcement: LEVELS.security,
  types: ["aws:ecr/repository:Repository"],
  validateResource(r, _ctx, report) {
    const m = str(r.props.imageTagMutability);
    if (m === UNKNOWN) return;
    if (m !== "IMMUTABLE" && m !== "IMMUTABLE_WITH_EXCLUSION") {
      report(
        `imageTagMutability is ${m ?? "unset (MUTABLE)"}: set it to "IMMUTABLE" and tag images with the commit SHA.`,
      );
    }
  },
});

export const supplyChainRules = [imagesPinnedByDigest, ecrScanOnPush, ecrImmutableTags];
