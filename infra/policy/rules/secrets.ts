/**
 * Secrets: nothing secret-looking in plaintext environment variables (Lambda, Cloud Run,
 * Kubernetes) or VM user data, and secret material only in the secret stores (Secrets Manager,
 * Secret Manager). Services receive references (`<NAME>_SECRET=aws-sm://arn:...`) and read the
 * value at start-up with a least-privilege identity, or get it injected by the platform
 * (Cloud Run `valueSource.secretKeyRef`, Kubernetes `valueFrom.secretKeyRef`).
 */
import { LEVELS, resourceRule, type ReportResource } from "../types";
import { UNKNOWN, get, list, record, str } from "../values";
import { COMPUTE } from "./compute";
import { K8S, WORKLOAD_TYPES, containersOf, podSpecOf } from "./kubernetes";

/** Variable names that say "I hold a secret". */
const SECRET_NAME =
  /(^|[_.-])(PASSWORD|PASSWD|PASS|PWD|SECRET|SECRET_?KEY|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIALS?|ACCESS_?KEY|CLIENT_?SECRET|AUTH_?TOKEN)([_.-]|$)/i;

/** Values that are references to a secret, not the secret: store URIs and ARNs, file paths, shell expansions. */
const REFERENCE = [
  /^aws-sm:\/\//,
  /^gcp-sm:\/\//,
  /^arn:aws[\w-]*:(secretsmanager|ssm|kms):/,
  /^projects\/[^/\s]+\/secrets\/[^/\s]+/,
  /^\//,
  /^\$[({A-Za-z_]/,
];

/** Values too plain to be secrets: booleans, numbers, empty. */
const PLAIN = /^(|true|false|yes|no|on|off|enabled|disabled|none|-?\d+(\.\d+)?)$/i;

/** Formats of well-known credentials, whatever the variable is called. */
const SECRET_VALUE: Array<[RegExp, string]> = [
  [/sk-ant-[A-Za-z0-9_-]{10,}/, "an Anthropic API key"],
  [/\b(AKIA|ASIA)[0-9A-Z]{16}\b/, "an AWS access key id"],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, "a private key"],
  [/\bgh[pousr]_[A-Za-z0-9]{30,}\b/, "a GitHub token"],
  [/\bxox[abprs]-[A-Za-z0-9-]{10,}/, "a Slack token"],
  [/\bAIza[0-9A-Za-z_-]{35}\b/, "a Google API key"],
  [/\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/, "a JSON Web Token"],
  [/\b[a-z][a-z0-9+.-]*:\/\/[^/\s:@'"]+:[^@\s/'"]+@/i, "a URL with a password"],
];

export function isSecretReference(value: string): boolean {
  return REFERENCE.some((re) => re.test(value.trim()));
}

/**
 * Why `name=value` looks like a plaintext secret, or undefined. Names like `DATABASE_PASSWORD`
 * must hold a reference; any value matching a known credential format is flagged whatever its name.
 */
export function secretProblem(name: string, value: string): string | undefined {
  for (const [re, what] of SECRET_VALUE) {
    if (re.test(value)) return `${name} holds ${what}`;
  }
  const v = value.trim();
  if (SECRET_NAME.test(name) && !PLAIN.test(v) && !isSecretReference(v)) {
    return `${name} looks like a secret and holds a literal value`;
  }
  return undefined;
}

const FIX_AWS =
  "store it in Secrets Manager and pass a reference instead (e.g. NAME_SECRET=aws-sm://<secret ARN>), read at start-up by the function's role";

function checkPairs(
  report: ReportResource,
  pairs: Array<[string, unknown]>,
  where: string,
  fix: string,
): void {
  for (const [name, value] of pairs) {
    if (typeof value !== "string") continue;
    const problem = secretProblem(name, value);
    if (problem) report(`${where}: ${problem}. Remove it and ${fix}.`);
  }
}

export const lambdaEnvNoSecrets = resourceRule({
  name: "lambda-env-no-plaintext-secrets",
  description:
    "Lambda environment variables hold no secrets (they are readable by anyone with lambda:GetFunctionConfiguration and sit in Pulumi state).",
  domain: "secrets",
  enforcement: LEVELS.security,
  types: [COMPUTE.lambda],
  validateResource(r, _ctx, report) {
    const vars = record(get(r.props, "environment.variables"));
    if (vars === UNKNOWN || vars === undefined) return;
    checkPairs(report, Object.entries(vars), "environment.variables", FIX_AWS);
  },
});

export const cloudRunEnvNoSecrets = resourceRule({
  name: "cloudrun-env-no-plaintext-secrets",
  description:
    "Cloud Run environment variables hold no secret values: secrets come from Secret Manager through valueSource.secretKeyRef.",
  domain: "secrets",
  enforcement: LEVELS.security,
  types: [COMPUTE.cloudRunV2, COMPUTE.cloudRunV1],
  validateResource(r, _ctx, report) {
    const containers = list(
      get(
        r.props,
        r.type === COMPUTE.cloudRunV2 ? "template.containers" : "template.spec.containers",
      ),
    );
    if (containers === UNKNOWN) return;
    containers.forEach((c, i) => {
      const envs = list(get(c, "envs"));
      if (envs === UNKNOWN) return;
      const pairs = envs.map(
        (e) => [String(get(e, "name") ?? "?"), get(e, "value")] as [string, unknown],
      );
      checkPairs(
        report,
        pairs,
        `containers[${i}].envs`,
        "create a Secret Manager secret and reference it with valueSource: { secretKeyRef: { secret, version } }",
      );
    });
  },
});

export const k8sEnvNoSecrets = resourceRule({
  name: "k8s-env-no-plaintext-secrets",
  description:
    "Kubernetes container env values hold no secrets: use valueFrom.secretKeyRef to a Secret synced from the secret store, or a reference the app resolves.",
  domain: "secrets",
  enforcement: LEVELS.security,
  types: WORKLOAD_TYPES,
  validateResource(r, _ctx, report) {
    const containers = containersOf(podSpecOf(r));
    if (containers === UNKNOWN) return;
    for (const { label, container } of containers) {
      const env = list(container.env);
      if (env === UNKNOWN) continue;
      const pairs = env.map(
        (e) => [String(get(e, "name") ?? "?"), get(e, "value")] as [string, unknown],
      );
      checkPairs(
        report,
        pairs,
        `${label} env`,
        "use valueFrom.secretKeyRef (a Secret synced from Secrets Manager) or pass a NAME_SECRET=aws-sm://<ARN> reference",
      );
    }
  },
});

/** Decodes base64 user data when it is base64 (launch templates), else returns it unchanged. */
export function decodeUserData(value: string): string {
  const compact = value.replace(/\s+/g, "");
  if (compact.length >= 16 && compact.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(compact)) {
    const decoded = Buffer.from(compact, "base64").toString("utf8");
    // Mostly printable text: it was base64 of a script or cloud-config.
    const printable = decoded.replace(/[^\x09\x0a\x0d\x20-\x7e]/g, "").length;
    if (decoded.length > 0 && printable / decoded.length > 0.95) return decoded;
  }
  return value;
}

/** `NAME=value`, `export NAME=value`, `--env NAME=value`, `NAME: value` lines of a script or cloud-config. */
export function assignmentsIn(text: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const line of text.split(/\r?\n/)) {
    const m =
      /^\s*(?:-\s+)?(?:export\s+|--env\s+["']?|-e\s+["']?)?([A-Za-z_][A-Za-z0-9_.-]*)\s*[=:]\s*["']?(.*?)["']?\s*\\?$/.exec(
        line,
      );
    if (m && m[2] !== undefined && m[2] !== "|" && m[2] !== ">") out.push([m[1]!, m[2]]);
    for (const e of line.matchAll(/--env\s+["']?([A-Za-z_][A-Za-z0-9_]*)=([^"'\s]*)/g))
      out.push([e[1]!, e[2]!]);
  }
  return out;
}

export function userDataProblems(text: string): string[] {
  const problems = new Set<string>();
  for (const [re, what] of SECRET_VALUE) {
    if (re.test(text)) problems.add(`it contains ${what}`);
  }
  for (const [name, value] of assignmentsIn(text)) {
    const problem = secretProblem(name, value);
    if (problem) problems.add(problem);
  }
  return [...problems];
}

export const vmUserDataNoSecrets = resourceRule({
  name: "vm-user-data-no-plaintext-secrets",
  description:
    "VM user data and startup metadata hold no secrets (readable from the instance metadata service and the console).",
  domain: "secrets",
  enforcement: LEVELS.security,
  types: [
    COMPUTE.launchTemplate,
    COMPUTE.ec2Instance,
    COMPUTE.gcpInstanceTemplate,
    COMPUTE.gcpRegionInstanceTemplate,
    COMPUTE.gcpInstance,
  ],
  validateResource(r, _ctx, report) {
    const texts: Array<[string, unknown]> = [];
    if (r.type === COMPUTE.launchTemplate || r.type === COMPUTE.ec2Instance) {
      texts.push(["userData", r.props.userData], ["userDataBase64", r.props.userDataBase64]);
    } else {
      const metadata = record(r.props.metadata);
      if (metadata !== UNKNOWN && metadata)
        texts.push(
          ...Object.entries(metadata).map(([k, v]) => [`metadata["${k}"]`, v] as [string, unknown]),
        );
      texts.push(["metadataStartupScript", r.props.metadataStartupScript]);
    }
    for (const [field, value] of texts) {
      const s = str(value);
      if (s === UNKNOWN || s === undefined) continue;
      const problems = userDataProblems(decodeUserData(s));
      if (problems.length > 0) {
        report(
          `${field}: ${problems.join("; ")}. Put the value in the secret store and write only a NAME_SECRET=<secret reference> line; the service reads it at start-up with the instance's role.`,
        );
      }
    }
  },
});

export const secretsOnlyFromStores = resourceRule({
  name: "secrets-only-from-secret-stores",
  description:
    "Secret material lives in Secrets Manager or Secret Manager: no Kubernetes Secret with inline data, no plain-String SSM parameter holding a secret.",
  domain: "secrets",
  enforcement: LEVELS.security,
  types: [K8S.secret, "aws:ssm/parameter:Parameter"],
  validateResource(r, _ctx, report) {
    if (r.type === K8S.secret) {
      const data = record(r.props.data);
      const stringData = record(r.props.stringData);
      if (data === UNKNOWN || stringData === UNKNOWN) return;
      const keys = [...Object.keys(data ?? {}), ...Object.keys(stringData ?? {})];
      if (keys.length > 0) {
        report(
          `This Secret carries ${keys.join(", ")} inline (in Pulumi state and the manifest): keep the value in Secrets Manager and sync it with External Secrets or the Secrets Store CSI driver, or have the app read it through its IAM role.`,
        );
      }
      return;
    }
    const type = str(r.props.type);
    const name = str(r.props.name) ?? r.name;
    if (type === UNKNOWN || name === UNKNOWN) return;
    if (type === "String" && SECRET_NAME.test(name.replace(/\//g, "_"))) {
      report(
        `Parameter "${name}" looks like a secret but is a plain String: use type "SecureString" with a KMS key, or Secrets Manager.`,
      );
    }
  },
});

export const secretsRules = [
  lambdaEnvNoSecrets,
  cloudRunEnvNoSecrets,
  k8sEnvNoSecrets,
  vmUserDataNoSecrets,
  secretsOnlyFromStores,
];
