/**
 * The GitHub Actions workflows, checked without GitHub: two real validators (actionlint and
 * action-validator, through .github/scripts/lint-workflows.ts), then the rules this repository
 * holds its workflows to: pinned actions, OIDC instead of keys, least privilege, one deploy at
 * a time per stack, and deploy jobs that follow the stacks' promoteFrom lineage.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import type { Problem } from "../../.github/scripts/lint-workflows";
import { listStacks, readStackFile } from "../../infra/stack-files";

const ROOT = join(__dirname, "..", "..");
const WORKFLOW_DIR = join(ROOT, ".github", "workflows");
const LINT = join(ROOT, ".github", "scripts", "lint-workflows.ts");
const TSX = require.resolve("tsx/cli");

/**
 * Every action this repository may use, pinned to the commit its release tag points to, with
 * the inputs that version's action.yml declares. Verified from the actions' own repositories
 * (git snapshots of github.com/<owner>/<repo>): `git rev-parse <tag>^{commit}`, the tag being on
 * the default branch, and `git show <tag>:action.yml`; not guessed.
 */
const VERIFIED_PINS: Record<string, { sha: string; version: string; inputs: string }> = {
  "actions/checkout": {
    sha: "3d3c42e5aac5ba805825da76410c181273ba90b1",
    version: "v7.0.1",
    inputs:
      "allow-unsafe-pr-checkout clean fetch-depth fetch-tags filter github-server-url lfs path persist-credentials ref repository set-safe-directory show-progress sparse-checkout sparse-checkout-cone-mode ssh-key ssh-known-hosts ssh-strict ssh-user submodules token",
  },
  "actions/setup-node": {
    sha: "820762786026740c76f36085b0efc47a31fe5020",
    version: "v7.0.0",
    inputs:
      "architecture cache cache-dependency-path check-latest mirror mirror-token node-version node-version-file package-manager-cache registry-url scope token",
  },
  "aws-actions/configure-aws-credentials": {
    sha: "e6de054238d6b7531b4efff3b6587d9aade6a06c",
    version: "v6.2.3",
    inputs:
      "action-timeout-s allowed-account-ids audience aws-access-key-id aws-profile aws-region aws-secret-access-key aws-session-token custom-tags disable-retry force-skip-oidc http-proxy inline-session-policy managed-session-policies mask-aws-account-id no-proxy output-credentials output-env-credentials overwrite-aws-profile retry-max-attempts role-chaining role-duration-seconds role-external-id role-session-name role-skip-session-tagging role-to-assume special-characters-workaround sts-endpoint transitive-tag-keys unset-current-credentials use-existing-credentials web-identity-token-file",
  },
  "google-github-actions/auth": {
    sha: "7c6bc770dae815cd3e89ee6cdf493a5fab2cc093",
    version: "v3.0.0",
    inputs:
      "access_token_lifetime access_token_scopes access_token_subject audience cleanup_credentials create_credentials_file credentials_json delegates export_environment_variables id_token_audience id_token_include_email project_id request_reason service_account token_format universe workload_identity_provider",
  },
  "pulumi/actions": {
    sha: "8e5e406f4007fca908480587cb9893c07090f58d",
    version: "v7.0.0",
    inputs:
      "always-include-summary cloud-url color command comment-on-pr comment-on-pr-number comment-on-summary config-map continue-on-error debug diff edit-pr-comment exclude exclude-dependents exclude-protected expect-no-changes github-token log-flow log-verbosity message parallel plan policyPackConfigs policyPacks pulumi-version pulumi-version-file refresh remove replace secrets-provider stack-name suppress-outputs suppress-progress target target-dependents upsert work-dir",
  },
  "imjasonh/setup-crane": {
    sha: "6da1ae018866400525525ce74ff892880c099987",
    version: "v0.5",
    inputs: "version",
  },
  "docker/setup-qemu-action": {
    sha: "96fe6ef7f33517b61c61be40b68a1882f3264fb8",
    version: "v4.2.0",
    inputs: "cache-image image platforms reset",
  },
};

type Json = Record<string, unknown>;
interface Step {
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
  if?: string;
  id?: string;
  name?: string;
}
interface Job {
  name?: string;
  if?: string;
  needs?: string | string[];
  uses?: string;
  with?: Record<string, unknown>;
  secrets?: Record<string, string> | "inherit";
  permissions?: Record<string, string> | string;
  concurrency?: { group: string; "cancel-in-progress"?: boolean } | string;
  environment?: { name: string; url?: string } | string;
  strategy?: { matrix?: { stack?: string[] } };
  steps?: Step[];
  env?: Record<string, string>;
}
interface Workflow {
  name: string;
  on: Json;
  permissions?: unknown;
  env?: Record<string, string>;
  jobs: Record<string, Job>;
}

const files = readdirSync(WORKFLOW_DIR)
  .filter((f) => /\.ya?ml$/.test(f))
  .sort();
const raw = Object.fromEntries(files.map((f) => [f, readFileSync(join(WORKFLOW_DIR, f), "utf8")]));
const wf = Object.fromEntries(files.map((f) => [f, parse(raw[f]!) as Workflow])) as Record<
  string,
  Workflow
>;
const allJobs = () =>
  files.flatMap((f) => Object.entries(wf[f]!.jobs).map(([id, job]) => ({ file: f, id, job })));
const needsOf = (job: Job) =>
  job.needs === undefined ? [] : Array.isArray(job.needs) ? job.needs : [job.needs];

function lint(args: string[]): { status: number | null; problems: Problem[]; stderr: string } {
  const r = spawnSync(process.execPath, [TSX, LINT, "--json", ...args], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 120_000,
  });
  let problems: Problem[] = [];
  try {
    problems = (JSON.parse(r.stdout) as { problems: Problem[] }).problems;
  } catch {
    // leave empty: the status assertion reports stderr
  }
  return { status: r.status, problems, stderr: r.stderr };
}

/** The stack's cloud, as infra/config.ts derives it. */
function cloudOf(stack: string): "aws" | "gcp" {
  const v = readStackFile(stack).values;
  if (v["agent:target"] === "vmgroup") return v["agent:cloud"] as "aws" | "gcp";
  return v["agent:target"] === "cloudrun" ? "gcp" : "aws";
}
const promoteFromOf = (stack: string) => readStackFile(stack).values["agent:promoteFrom"];
const STACKS = listStacks();

describe("workflow files", () => {
  it("has the pull-request, deploy, reusable pulumi-up and drift workflows", () => {
    expect(files).toEqual(
      expect.arrayContaining(["pull-request.yml", "deploy.yml", "pulumi-up.yml", "drift.yml"]),
    );
  });
});

describe("real validators: actionlint + action-validator", () => {
  it("pass on every workflow in .github/workflows", () => {
    const r = lint(files.map((f) => join(WORKFLOW_DIR, f)));
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.problems).toEqual([]);
    expect(r.status).toBe(0);
  });

  describe("on fixtures", () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), "workflows-"));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it("accept a small valid workflow (the check is not 'reject everything')", () => {
      const file = join(dir, "good.yml");
      writeFileSync(
        file,
        [
          "name: good",
          "on:",
          "  push:",
          "    branches: [main]",
          "permissions: {}",
          "jobs:",
          "  build:",
          "    runs-on: ubuntu-24.04",
          "    permissions:",
          "      contents: read",
          "    steps:",
          "      - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1",
          "      - run: echo ok",
          "",
        ].join("\n"),
      );
      const r = lint([file]);
      expect(r.problems).toEqual([]);
      expect(r.status).toBe(0);
    });

    it("fail on a broken workflow, naming each defect", () => {
      const file = join(dir, "broken.yml");
      writeFileSync(
        file,
        [
          "name: broken",
          "on:",
          "  schedule:",
          '    - cron: "61 * * * *"',
          "permissions:",
          "  id-token: writ",
          "jobs:",
          "  deploy:",
          "    if: matrix.stack != ''", // matrix is not available in a job-level if
          "    runs-on: ubuntu-24.04",
          "    needs: [build]", // no such job
          "    strategy:",
          "      matrix:",
          "        stack: [a, b]",
          "    steps:",
          '      - run: echo "${{ github.no_such_property }}"',
          "",
        ].join("\n"),
      );
      const r = lint([file]);
      expect(r.status).toBe(1);
      const actionlint = r.problems.filter((p) => p.validator === "actionlint");
      const schema = r.problems.filter((p) => p.validator === "action-validator");
      expect(actionlint.map((p) => p.kind)).toEqual(
        expect.arrayContaining(["events", "permissions", "job-needs", "expression"]),
      );
      expect(
        actionlint.find(
          (p) => p.kind === "expression" && /"matrix" is not allowed/.test(p.message),
        ),
      ).toBeDefined();
      expect(actionlint.find((p) => /no_such_property/.test(p.message))).toBeDefined();
      expect(schema.map((p) => p.kind)).toContain("unresolved_job");
      for (const p of actionlint) expect(p.line).toBeGreaterThan(0);
    });

    it("exit 2 on a file that does not exist", () => {
      expect(lint([join(dir, "missing.yml")]).status).toBe(2);
    });
  });
});

describe("pinned actions", () => {
  const usesLines = files.flatMap((f) =>
    raw[f]!.split("\n")
      .map((line, i) => ({
        file: f,
        line: i + 1,
        m: /^\s*(?:-\s+)?uses:\s*(\S+)\s*(?:#\s*(\S+))?\s*$/.exec(line),
      }))
      .filter((x) => x.m !== null)
      .map((x) => ({ file: x.file, line: x.line, ref: x.m![1]!, comment: x.m![2] })),
  );

  it("finds the uses: lines (the scan itself works)", () => {
    expect(usesLines.length).toBeGreaterThan(20);
  });

  it.each(files)(
    "%s: every remote action is pinned to a verified 40-hex commit SHA with its version in a comment",
    (f) => {
      for (const u of usesLines.filter((x) => x.file === f && !x.ref.startsWith("./"))) {
        const m = /^([\w.-]+\/[\w.-]+)(\/[\w./-]+)?@([0-9a-f]{40})$/.exec(u.ref);
        expect({ at: `${f}:${u.line}`, ref: u.ref, pinned: m !== null }).toEqual({
          at: `${f}:${u.line}`,
          ref: u.ref,
          pinned: true,
        });
        const pin = VERIFIED_PINS[m![1]!];
        expect({ action: m![1], known: pin !== undefined }).toEqual({ action: m![1], known: true });
        expect({ at: `${f}:${u.line}`, sha: m![3], version: u.comment }).toEqual({
          at: `${f}:${u.line}`,
          sha: pin!.sha,
          version: pin!.version,
        });
      }
    },
  );

  it("every parsed uses: (steps and reusable-workflow calls) appears in the scanned lines", () => {
    const parsed = allJobs().flatMap(({ job }) =>
      [job.uses, ...(job.steps ?? []).map((s) => s.uses)].filter((u): u is string => Boolean(u)),
    );
    expect(parsed.length).toBe(usesLines.length);
  });

  it("passes only inputs the pinned version of each action declares", () => {
    for (const { file, id, job } of allJobs()) {
      for (const st of job.steps ?? []) {
        const action = /^([\w.-]+\/[\w.-]+)@/.exec(st.uses ?? "")?.[1];
        if (!action) continue;
        const declared = VERIFIED_PINS[action]!.inputs.split(" ");
        for (const key of Object.keys(st.with ?? {})) {
          expect({
            at: `${file}#${id}`,
            action,
            input: key,
            declared: declared.includes(key),
          }).toEqual({ at: `${file}#${id}`, action, input: key, declared: true });
        }
        if (action === "pulumi/actions")
          expect(Object.keys(st.with ?? {})).toEqual(
            expect.arrayContaining(["command", "stack-name"]),
          );
      }
    }
  });

  it("calls the reusable workflow with exactly its declared inputs and secrets", () => {
    const call = wf["pulumi-up.yml"]!.on.workflow_call as {
      inputs: Record<string, { required?: boolean; type: string }>;
      secrets: Record<string, { required?: boolean }>;
    };
    const required = Object.entries(call.inputs)
      .filter(([, v]) => v.required)
      .map(([k]) => k);
    const callers = allJobs().filter(({ job }) => job.uses === "./.github/workflows/pulumi-up.yml");
    // One job per stack, and the rollback job (any promoted stack).
    expect(callers.length).toBe(STACKS.length + 1);
    for (const { id, job } of callers) {
      for (const key of Object.keys(job.with ?? {}))
        expect({ id, input: key, declared: key in call.inputs }).toEqual({
          id,
          input: key,
          declared: true,
        });
      for (const key of required)
        expect({ id, input: key, given: key in (job.with ?? {}) }).toEqual({
          id,
          input: key,
          given: true,
        });
      expect(Object.keys(job.secrets as Record<string, string>)).toEqual(Object.keys(call.secrets));
    }
  });

  it("local reusable workflows exist", () => {
    for (const { job } of allJobs().filter(({ job }) => job.uses?.startsWith("./"))) {
      expect(files).toContain(job.uses!.replace("./.github/workflows/", ""));
    }
  });
});

describe("OIDC to the clouds, no long-lived keys", () => {
  const reachesCloud = (job: Job) =>
    job.uses === "./.github/workflows/pulumi-up.yml" ||
    (job.steps ?? []).some((s) =>
      /^(aws-actions\/configure-aws-credentials|google-github-actions\/auth)@/.test(s.uses ?? ""),
    );

  it("grants id-token: write to exactly the jobs that reach a cloud", () => {
    const jobs = allJobs();
    expect(jobs.filter(({ job }) => reachesCloud(job)).length).toBeGreaterThanOrEqual(15);
    for (const { file, id, job } of jobs) {
      const perms = typeof job.permissions === "object" ? job.permissions : {};
      expect({ job: `${file}#${id}`, idToken: perms["id-token"] }).toEqual({
        job: `${file}#${id}`,
        idToken: reachesCloud(job) ? "write" : undefined,
      });
    }
  });

  it("assumes roles: AWS through role-to-assume, GCP through workload identity federation", () => {
    for (const { job } of allJobs()) {
      for (const s of job.steps ?? []) {
        if (s.uses?.startsWith("aws-actions/configure-aws-credentials@")) {
          expect(Object.keys(s.with ?? {}).sort()).toEqual([
            "aws-region",
            "role-session-name",
            "role-to-assume",
          ]);
          expect(s.with!["role-to-assume"]).toBe("${{ vars.AWS_ROLE_ARN }}");
        }
        if (s.uses?.startsWith("google-github-actions/auth@")) {
          expect(Object.keys(s.with ?? {}).sort()).toEqual([
            "service_account",
            "workload_identity_provider",
          ]);
        }
      }
    }
  });

  it.each(files)(
    "%s references no access keys or JSON key files, and no secret but PULUMI_ACCESS_TOKEN",
    (f) => {
      expect(raw[f]).not.toMatch(
        /AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID|aws-secret-access-key|aws-access-key-id|credentials_json|GOOGLE_CREDENTIALS|GOOGLE_APPLICATION_CREDENTIALS_JSON|_SA_KEY|KEY_JSON/i,
      );
      const secrets = [...raw[f]!.matchAll(/secrets\.([A-Za-z0-9_]+)/g)].map((m) => m[1]);
      for (const s of secrets) expect(s).toBe("PULUMI_ACCESS_TOKEN");
      expect(raw[f]).not.toMatch(/secrets:\s*inherit/);
    },
  );
});

describe("least privilege", () => {
  it.each(files)("%s: no workflow-wide permissions; every job lists its own", (f) => {
    expect(wf[f]!.permissions).toEqual({});
    for (const [id, job] of Object.entries(wf[f]!.jobs)) {
      expect({ id, permissions: typeof job.permissions }).toEqual({ id, permissions: "object" });
    }
  });

  it("grants only read access to contents, plus the one write each job needs", () => {
    const allowed: Record<string, string> = {
      contents: "read",
      "id-token": "write",
      "pull-requests": "write",
    };
    for (const { file, id, job } of allJobs()) {
      for (const [scope, level] of Object.entries(job.permissions as Record<string, string>)) {
        expect({ job: `${file}#${id}`, scope, level }).toEqual({
          job: `${file}#${id}`,
          scope,
          level: allowed[scope],
        });
      }
    }
    const prWriters = allJobs().filter(
      ({ job }) => (job.permissions as Record<string, string>)["pull-requests"] === "write",
    );
    expect(prWriters.map(({ file, id }) => `${file}#${id}`)).toEqual(["pull-request.yml#plan"]);
  });

  it("never interpolates expressions into shell scripts (inputs and event fields go through env)", () => {
    for (const { file, id, job } of allJobs()) {
      for (const s of job.steps ?? []) {
        if (s.run)
          expect({
            step: `${file}#${id}:${s.name ?? s.run.slice(0, 30)}`,
            run: s.run.includes("${{"),
          }).toEqual({ step: `${file}#${id}:${s.name ?? s.run.slice(0, 30)}`, run: false });
      }
    }
  });

  it("checks out without leaving the token in .git/config", () => {
    for (const { job } of allJobs()) {
      for (const s of job.steps ?? [])
        if (s.uses?.startsWith("actions/checkout@"))
          expect(s.with?.["persist-credentials"]).toBe(false);
    }
  });
});

describe("Node 22 in CI", () => {
  it("sets up Node 22 before any npm or npx command", () => {
    for (const { file, id, job } of allJobs()) {
      const steps = job.steps ?? [];
      const firstNpm = steps.findIndex((s) => /\bnp[mx]\b/.test(s.run ?? ""));
      if (firstNpm === -1) continue;
      const setup = steps.findIndex((s) => s.uses?.startsWith("actions/setup-node@"));
      expect({ job: `${file}#${id}`, setupBeforeNpm: setup !== -1 && setup < firstNpm }).toEqual({
        job: `${file}#${id}`,
        setupBeforeNpm: true,
      });
      expect(String(steps[setup]!.with?.["node-version"])).toBe("22");
    }
  });
});

describe("stacks in the workflows", () => {
  const org = wf["pull-request.yml"]!.env?.PULUMI_ORG;

  it("take the Pulumi organisation from a repository variable; promoteFrom names stacks in it", () => {
    // A placeholder organisation in a workflow is a value only the user knows (issue 12).
    expect(org).toBe("${{ vars.PULUMI_ORG }}");
    const sources = STACKS.map(promoteFromOf).filter((s): s is string => Boolean(s));
    expect(sources.length).toBeGreaterThan(0);
    // A bare stack name: the same organisation and project as the stack that promotes.
    for (const s of sources) expect(STACKS).toContain(s);
    expect(wf["drift.yml"]!.env?.PULUMI_ORG).toBe(org);
    expect(wf["pulumi-up.yml"]!.jobs.up!.env?.PULUMI_ORG).toBe(org);
  });

  it.each([
    ["pull-request.yml", "preview-aws", "preview-gcp"],
    ["drift.yml", "drift-aws", "drift-gcp"],
  ])("%s covers every stack, each in its cloud's job", (f, awsJob, gcpJob) => {
    const aws = wf[f]!.jobs[awsJob]!.strategy!.matrix!.stack!;
    const gcp = wf[f]!.jobs[gcpJob]!.strategy!.matrix!.stack!;
    expect([...aws, ...gcp].sort()).toEqual(STACKS);
    for (const s of aws) expect(cloudOf(s)).toBe("aws");
    for (const s of gcp) expect(cloudOf(s)).toBe("gcp");
  });
});

describe("pull-request workflow", () => {
  const pr = wf["pull-request.yml"]!;

  it("runs on pull requests, cancelling superseded runs of the same PR", () => {
    expect(Object.keys(pr.on)).toEqual(["pull_request"]);
    expect(raw["pull-request.yml"]).toMatch(
      /group: pull-request-\$\{\{ github\.event\.pull_request\.number \}\}\n\s+cancel-in-progress: true/,
    );
  });

  it("installs, typechecks and tests, with the Postgres and Redis the tests require under CI", () => {
    const test = pr.jobs.test!;
    const runs = test.steps!.map((s) => s.run ?? "");
    const order = ["npm ci", "npm run typecheck", "npx jest"].map((c) =>
      runs.findIndex((r) => r.startsWith(c)),
    );
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(Object.keys((test as Job & { services: Json }).services).sort()).toEqual([
      "postgres",
      "redis",
    ]);
  });

  it("plans every stack and posts one comment through the marker script, only where the token may comment", () => {
    const steps = pr.jobs.plan!.steps!;
    expect(
      steps.some((s) =>
        (s.run ?? "").includes("npm run --silent plan -- --all --preflight --json > plan.json"),
      ),
    ).toBe(true);
    const post = steps.find((s) => (s.run ?? "").includes(".github/scripts/plan-comment.ts"))!;
    expect(post.run).toMatch(/--fail-on-mandatory/);
    expect(post.run).toMatch(/if \[ "\$SAME_REPO" = "true" \]; then args\+=\(--post\)/);
    expect(post.env?.SAME_REPO).toBe(
      "${{ github.event.pull_request.head.repo.full_name == github.repository }}",
    );
    // The plan's own failure still fails the job, after the comment is posted.
    expect(steps.at(-1)!.if).toBe("steps.plan.outputs.exit-code != '0'");
  });

  it.each([
    ["preview-aws", "vars.AWS_ROLE_ARN != ''"],
    ["preview-gcp", "vars.GCP_WORKLOAD_IDENTITY_PROVIDER != ''"],
  ])(
    "%s runs pulumi preview with the policy pack, only when credentials are configured",
    (id, condition) => {
      const job = pr.jobs[id]!;
      expect(job.if).toContain(condition);
      expect(job.if).toContain(
        "github.event.pull_request.head.repo.full_name == github.repository",
      );
      const pulumi = job.steps!.find((s) => s.uses?.startsWith("pulumi/actions@"))!;
      expect(pulumi.with).toMatchObject({
        command: "preview",
        policyPacks: "infra/policy",
        "stack-name": "${{ env.PULUMI_ORG }}/${{ matrix.stack }}",
      });
      expect(pulumi.with?.["comment-on-pr"]).toBeUndefined(); // one PR comment: the plan's
      expect(pulumi.env?.PULUMI_ACCESS_TOKEN).toBe("${{ secrets.PULUMI_ACCESS_TOKEN }}");
    },
  );
});

describe("deploy workflow: dev, then staging and prod through environments, along promoteFrom", () => {
  const deploy = wf["deploy.yml"]!;
  const up = wf["pulumi-up.yml"]!;

  it("runs on pushes to main and on demand with a ref (rollback) and a lineage", () => {
    expect(deploy.on).toMatchObject({ push: { branches: ["main"] } });
    const inputs = (deploy.on.workflow_dispatch as { inputs: Json }).inputs;
    expect(Object.keys(inputs).sort()).toEqual(["lineage", "ref", "release", "rollback"]);
    expect((inputs.lineage as { options: string[] }).options.sort()).toEqual([
      "all",
      "cloudrun",
      "eks",
      "lambda",
      "vm-aws",
      "vm-gcp",
    ]);
  });

  it("deploys only commits on the default branch, resolved once for the whole run", () => {
    const run = deploy.jobs.resolve!.steps!.find((s) => s.id === "resolve")!.run!;
    expect(run).toMatch(/git merge-base --is-ancestor "\$sha" "\$head"/);
    for (const [id, job] of Object.entries(deploy.jobs)) {
      if (id === "resolve") continue;
      expect(needsOf(job)).toContain("resolve");
      expect(job.with?.ref).toBe("${{ needs.resolve.outputs.sha }}");
    }
  });

  it.each(STACKS)(
    "%s: one job, in its stage's environment, after the job of the stack it promotes from",
    (stack) => {
      const job = deploy.jobs[stack];
      expect(job).toBeDefined();
      const values = readStackFile(stack).values;
      const source = promoteFromOf(stack)?.split("/").at(-1);
      expect(job!.uses).toBe("./.github/workflows/pulumi-up.yml");
      expect(job!.with).toMatchObject({
        stack,
        cloud: cloudOf(stack),
        environment: values["agent:environment"],
      });
      expect(job!.secrets).toEqual({ PULUMI_ACCESS_TOKEN: "${{ secrets.PULUMI_ACCESS_TOKEN }}" });
      if (source) {
        expect(needsOf(job!).sort()).toEqual([source, "resolve"].sort());
        expect(job!.with!.artifact).toBe("promoted");
        // infra/config.ts refuses agent:imageTag on a promoted stack.
        expect(job!.with!["image-tag"]).toBeUndefined();
        expect(["staging", "prod"]).toContain(values["agent:environment"]);
        // Skipped with its source, never run on its own.
        expect(job!.if).toBeUndefined();
      } else {
        expect(needsOf(job!)).toEqual(["resolve"]);
        expect(job!.with!.artifact).toBe(
          values["agent:target"] === "lambda" ? "lambda-zip" : "image",
        );
        expect(job!.if).toContain(
          cloudOf(stack) === "aws"
            ? "vars.AWS_ROLE_ARN != ''"
            : "vars.GCP_WORKLOAD_IDENTITY_PROVIDER != ''",
        );
        expect(job!.if).toContain(`inputs.lineage == '${stack.replace(/-dev$/, "")}'`);
      }
    },
  );

  it("has no job that is not a stack (besides resolve and rollback)", () => {
    expect(
      Object.keys(deploy.jobs)
        .filter((j) => j !== "resolve" && j !== "rollback")
        .sort(),
    ).toEqual(STACKS);
  });

  it("rolls back one promoted stack alone: only the rollback job runs, with agent:release for that run (issue 15)", () => {
    const inputs = (deploy.on.workflow_dispatch as { inputs: Json }).inputs;
    const promoted = STACKS.filter((stack) => promoteFromOf(stack) !== undefined);
    expect((inputs.rollback as { options: string[] }).options.sort()).toEqual(
      ["none", ...promoted].sort(),
    );
    const job = deploy.jobs.rollback!;
    expect(job.if).toBe("inputs.rollback != '' && inputs.rollback != 'none'");
    expect(job.with).toMatchObject({
      stack: "${{ inputs.rollback }}",
      artifact: "promoted",
      release: "${{ inputs.release }}",
      environment: "${{ needs.resolve.outputs.rollback-environment }}",
    });
    // Every other deployment is skipped: the builds say so, the promotions follow their source.
    for (const stack of STACKS) {
      const j = deploy.jobs[stack]!;
      if (promoteFromOf(stack)) expect(j.if).toBeUndefined();
      else expect(j.if).toContain("(inputs.rollback == '' || inputs.rollback == 'none')");
    }
    // The release reaches the stack as agent:release through the run's config map.
    const config = up.jobs.up!.steps!.find((s) => s.id === "config")!;
    expect(config.env).toMatchObject({ RELEASE: "${{ inputs.release }}" });
    expect(config.run).toContain("agent:release:");
    // The copies into a promoted stack's registry need crane, installed pinned.
    const crane = up.jobs.up!.steps!.find((s) => s.uses?.startsWith("imjasonh/setup-crane@"))!;
    expect(crane.if).toBe("inputs.artifact == 'promoted'");
    expect(crane.with?.version).toMatch(/^v\d+\.\d+\.\d+$/);
  });

  it("the lambda lineage goes dev -> staging -> prod", () => {
    expect(needsOf(deploy.jobs["lambda-staging"]!)).toContain("lambda-dev");
    expect(needsOf(deploy.jobs["lambda-prod"]!)).toContain("lambda-staging");
    expect(deploy.jobs["lambda-staging"]!.with!.environment).toBe("staging");
    expect(deploy.jobs["lambda-prod"]!.with!.environment).toBe("prod");
  });

  it("pulumi-up runs in the environment it is given, one run per stack at a time, never cancelled midway", () => {
    const job = up.jobs.up!;
    expect(job.environment).toEqual({
      name: "${{ inputs.environment }}",
      url: "${{ steps.up.outputs.url }}",
    });
    expect(job.concurrency).toEqual({
      group: "pulumi-up-${{ inputs.stack }}",
      "cancel-in-progress": false,
    });
    const pulumi = job.steps!.find((s) => s.uses?.startsWith("pulumi/actions@"))!;
    expect(pulumi.with).toMatchObject({
      command: "up",
      "stack-name": "${{ env.PULUMI_ORG }}/${{ inputs.stack }}",
    });
    expect(Object.keys(up.on)).toEqual(["workflow_call"]);
  });

  it("only pulumi-up.yml runs `pulumi up`; the other workflows preview", () => {
    for (const { file, job } of allJobs()) {
      for (const s of job.steps ?? []) {
        if (s.uses?.startsWith("pulumi/actions@"))
          expect({ file, command: s.with?.command }).toEqual({
            file,
            command: file === "pulumi-up.yml" ? "up" : "preview",
          });
        // As a command (line start or after ; && ||), not in a message that mentions it.
        expect(s.run ?? "").not.toMatch(/(^|\n|[;&|])\s*(npx\s+)?pulumi\s+(up|destroy|update)\b/);
      }
    }
  });

  it("documents required reviewers and the rollback path in the workflow", () => {
    expect(raw["deploy.yml"]).toMatch(/Required reviewers/);
    expect(raw["deploy.yml"]).toMatch(/Rollback/);
    expect(raw["deploy.yml"]).toMatch(/`ref` = the last good commit/);
  });
});

describe("drift workflow", () => {
  const drift = wf["drift.yml"]!;

  it("runs on a schedule and on demand", () => {
    expect(drift.on).toMatchObject({
      schedule: [{ cron: expect.stringMatching(/^\S+ \S+ \S+ \S+ \S+$/) }],
    });
    expect(drift.on).toHaveProperty("workflow_dispatch");
  });

  it.each(["drift-aws", "drift-gcp"])(
    "%s previews with refresh and fails on any change, then writes a summary",
    (id) => {
      const job = drift.jobs[id]!;
      expect(job.strategy).toMatchObject({ "fail-fast": false });
      const pulumi = job.steps!.find((s) => s.uses?.startsWith("pulumi/actions@"))!;
      expect(pulumi.with).toMatchObject({
        command: "preview",
        refresh: true,
        "expect-no-changes": true,
      });
      const summary = job.steps!.at(-1)!;
      expect(summary.if).toBe("always()");
      expect(summary.run).toContain("GITHUB_STEP_SUMMARY");
    },
  );

  it("reports across clouds and fails when any stack drifted", () => {
    const report = drift.jobs.report!;
    expect(needsOf(report).sort()).toEqual(["drift-aws", "drift-gcp"]);
    expect(report.if).toBe("always()");
    expect(report.steps![0]!.run).toMatch(/exit 1/);
  });
});
