/**
 * Static checks of app/Dockerfile and .dockerignore (no Docker engine here, so nothing is built):
 * the instructions are parsed the way the Dockerfile frontend reads them, and the image's
 * contract is asserted: stages, base, user, health check, secrets, what the runtime stage copies,
 * and that the build context holds every file the bundle is built from.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import * as esbuild from "esbuild";

const root = path.resolve(__dirname, "../..");

interface Instruction {
  keyword: string;
  /** Everything after the keyword and its --flags. */
  args: string;
  flags: Record<string, string>;
  /** Exec form (JSON array), when used. */
  exec?: string[];
  line: number;
}

interface Stage {
  image: string;
  name?: string;
  index: number;
  instructions: Instruction[];
}

/** Splits a Dockerfile into instructions: comments dropped, `\` continuations joined. */
export function parseDockerfile(text: string): {
  globalArgs: Record<string, string>;
  stages: Stage[];
} {
  const instructions: Instruction[] = [];
  let buffer = "";
  let startLine = 0;
  text.split(/\r?\n/).forEach((raw, i) => {
    const trimmed = raw.trim();
    if (!buffer && (trimmed === "" || trimmed.startsWith("#"))) return;
    if (buffer && trimmed.startsWith("#")) return; // comments inside a continuation are dropped
    if (!buffer) startLine = i + 1;
    if (trimmed.endsWith("\\")) {
      buffer += trimmed.slice(0, -1).trimEnd() + " ";
      return;
    }
    buffer += trimmed;
    const m = /^(\S+)\s*(.*)$/s.exec(buffer)!;
    let rest = m[2]!.trim();
    const flags: Record<string, string> = {};
    for (
      let f = /^--([a-z-]+)(?:=(\S+))?\s*/.exec(rest);
      f;
      f = /^--([a-z-]+)(?:=(\S+))?\s*/.exec(rest)
    ) {
      flags[f[1]!] = f[2] ?? "true";
      rest = rest.slice(f[0].length);
    }
    let exec: string[] | undefined;
    // HEALTHCHECK [flags] CMD <command>: the command's own form is what matters.
    const command = m[1]!.toUpperCase() === "HEALTHCHECK" ? rest.replace(/^CMD\s+/i, "") : rest;
    if (command.startsWith("[")) {
      try {
        exec = JSON.parse(command) as string[];
      } catch {
        exec = undefined; // shell form that happens to start with "["
      }
    }
    instructions.push({ keyword: m[1]!.toUpperCase(), args: rest, flags, exec, line: startLine });
    buffer = "";
  });
  if (buffer) throw new Error("Dockerfile ends inside a line continuation");

  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === "FROM") {
      const [image, as, name] = ins.args.split(/\s+/);
      const expanded = image!.replace(/\$\{?(\w+)\}?/g, (_, v: string) => globalArgs[v] ?? "");
      stages.push({
        image: expanded,
        name: as?.toUpperCase() === "AS" ? name : undefined,
        index: stages.length,
        instructions: [],
      });
    } else if (stages.length === 0) {
      if (ins.keyword !== "ARG")
        throw new Error(`line ${ins.line}: only ARG may precede the first FROM`);
      const [k, v = ""] = ins.args.split("=");
      globalArgs[k!.trim()] = v.trim();
    } else {
      stages.at(-1)!.instructions.push(ins);
    }
  }
  return { globalArgs, stages };
}

/** .dockerignore matching (Go filepath.Match per path segment, `**` for any depth, `!` re-includes). */
export function dockerIgnored(patterns: string[], file: string): boolean {
  let ignored = false;
  for (let p of patterns) {
    const negate = p.startsWith("!");
    if (negate) p = p.slice(1);
    p = p.replace(/^\/+/, "").replace(/\/+$/, "");
    const re = new RegExp(
      "^" +
        p
          .split("/")
          .map((seg) =>
            seg === "**"
              ? "(?:.*)"
              : seg
                  .replace(/[.+^${}()|[\]\\]/g, "\\$&")
                  .replace(/\*/g, "[^/]*")
                  .replace(/\?/g, "[^/]"),
          )
          .join("/")
          .replace(/\(\?:\.\*\)\//g, "(?:.*/)?") +
        "(?:/.*)?$",
    );
    if (re.test(file)) ignored = !negate;
  }
  return ignored;
}

const dockerfileText = fs.readFileSync(path.join(root, "app/Dockerfile"), "utf8");
const { globalArgs, stages } = parseDockerfile(dockerfileText);
const ignorePatterns = fs
  .readFileSync(path.join(root, ".dockerignore"), "utf8")
  .split(/\r?\n/)
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith("#"));
const final = stages.at(-1)!;
const all = (keyword: string, stage: Stage = final) =>
  stage.instructions.filter((i) => i.keyword === keyword);
const stageByName = (name: string) => stages.find((s) => s.name === name);

/** What scripts/build.mjs leaves out of the server bundle, read from the script itself. */
function buildExternals(): { runtime: string[]; optional: string[] } {
  const out = execFileSync(
    process.execPath,
    // The path goes in the environment: as argv[1] the script would think it was run directly.
    [
      "--input-type=module",
      "-e",
      "const m = await import(process.env.BUILD_SCRIPT); console.log(JSON.stringify({ runtime: m.RUNTIME_PACKAGES, optional: m.OPTIONAL_EXTERNAL }))",
    ],
    { cwd: root, env: { ...process.env, BUILD_SCRIPT: path.join(root, "scripts/build.mjs") } },
  );
  return JSON.parse(out.toString()) as { runtime: string[]; optional: string[] };
}

describe("the Dockerfile parser", () => {
  it("joins continuations, drops comments, reads flags and exec form", () => {
    const parsed = parseDockerfile(
      'ARG BASE=node:22-slim\nFROM ${BASE} AS a\n# c\nRUN echo 1 \\\n  # inner\n  && echo 2\nCOPY --from=a --chown=1:1 x y\nCMD ["node", "i.js"]\n',
    );
    expect(parsed.stages[0]).toMatchObject({ image: "node:22-slim", name: "a" });
    const [run, copy, cmd] = parsed.stages[0]!.instructions;
    expect(run).toMatchObject({ keyword: "RUN", args: "echo 1 && echo 2", line: 4 });
    expect(copy).toMatchObject({ flags: { from: "a", chown: "1:1" }, args: "x y" });
    expect(cmd?.exec).toEqual(["node", "i.js"]);
  });

  it("matches .dockerignore patterns like Docker", () => {
    expect(dockerIgnored(["node_modules"], "node_modules/x/y.js")).toBe(true);
    expect(dockerIgnored(["**/node_modules"], "app/node_modules/x")).toBe(true);
    expect(dockerIgnored(["*.md"], "app/README.md")).toBe(false);
    expect(dockerIgnored(["**/*.md"], "app/README.md")).toBe(true);
    expect(dockerIgnored(["test", "!test/keep"], "test/keep/a")).toBe(false);
    expect(dockerIgnored(["dist"], "distribution/a")).toBe(false);
  });
});

describe("app/Dockerfile", () => {
  it("is multi-stage: npm ci, then npm run build, then a runtime stage", () => {
    expect(stages.length).toBeGreaterThanOrEqual(3);
    for (const s of stages.slice(0, -1)) expect(s.name).toBeTruthy();
    expect(stages.some((s) => all("RUN", s).some((r) => /\bnpm ci\b/.test(r.args)))).toBe(true);
    expect(stages.some((s) => all("RUN", s).some((r) => /\bnpm run build\b/.test(r.args)))).toBe(
      true,
    );
    expect(all("RUN").some((r) => /\bnpm (ci|install|i)\b/.test(r.args))).toBe(false);
  });

  it("runs on Node 22 in the final stage", () => {
    expect(final.image).toMatch(/^(node:22([.-]|$)|gcr\.io\/distroless\/nodejs22)/);
    // Every stage runs the same major, so the bundle is built with the Node it runs on.
    for (const s of stages)
      expect(s.image === final.image || stageByName(s.image) !== undefined).toBe(true);
  });

  it("runs as a numeric non-root user", () => {
    const users = all("USER");
    expect(users.length).toBeGreaterThan(0);
    const [uid, gid] = users.at(-1)!.args.split(":");
    expect(uid).toMatch(/^\d+$/);
    expect(Number(uid)).toBeGreaterThan(0);
    if (gid !== undefined) expect(gid).toMatch(/^\d+$/);
  });

  it("sets production mode, the port, the stop signal and a health check without curl", () => {
    const env = all("ENV")
      .map((e) => e.args)
      .join(" ");
    expect(env).toMatch(/\bNODE_ENV=production\b/);
    expect(all("EXPOSE").map((e) => e.args)).toContain("8080");
    expect(all("STOPSIGNAL").map((e) => e.args)).toEqual(["SIGTERM"]);
    const [hc] = all("HEALTHCHECK");
    expect(hc).toBeDefined();
    expect(hc!.args).toMatch(/\/health\b/);
    expect(hc!.args).not.toMatch(/\b(curl|wget)\b/);
    expect(hc!.args).toMatch(/^CMD\s/);
    expect(hc!.exec?.[0]).toBe("node");
    expect(hc!.flags.timeout).toBeDefined();
  });

  // The idle RSS of glibc's malloc depended on allocation order (82 or 104 MB for one bundle);
  // the comment above the ENV in app/Dockerfile has the side-by-side figures.
  it("preloads mimalloc by a bare library name, installs it in the runtime stage and fails the build if node does not load it", () => {
    const env = all("ENV")
      .map((e) => e.args)
      .join(" ");
    // A bare name: the loader searches the system's library directories, whatever the architecture.
    expect(env).toMatch(/\bLD_PRELOAD=libmimalloc\.so\.2(\s|$)/);
    // glibc's tunables would not apply to mimalloc: none left to mislead.
    expect(env).not.toMatch(/\bMALLOC_/);
    const runs = all("RUN").map((r) => r.args);
    const install = runs.find((r) => /apt-get install\b.*\blibmimalloc2\.0\b/.test(r));
    expect(install).toBeDefined();
    expect(install).toMatch(/--no-install-recommends/);
    expect(install).toMatch(/rm -rf \/var\/lib\/apt\/lists/);
    expect(install).toMatch(/LD_PRELOAD=libmimalloc\.so\.2 node -e .*\/proc\/self\/maps/);
  });

  it("declares no secrets in ARG or ENV", () => {
    const declared = stages.flatMap((s) => [...all("ARG", s), ...all("ENV", s)]).map((i) => i.args);
    declared.push(...Object.keys(globalArgs));
    for (const d of declared) {
      for (const name of d.split(/\s+/).map((kv) => kv.split("=")[0]!)) {
        expect(name).not.toMatch(/KEY|TOKEN|PASSWORD|SECRET|CREDENTIAL/i);
      }
    }
  });

  it("copies runtime artifacts only from earlier build stages", () => {
    const copies = [...all("COPY"), ...all("ADD")];
    expect(copies.length).toBeGreaterThan(0);
    for (const c of copies) {
      expect(c.keyword).toBe("COPY"); // ADD could fetch URLs or unpack archives
      expect(c.flags.from).toBeDefined();
      const from = stageByName(c.flags.from!);
      expect(from).toBeDefined();
      expect(from!.index).toBeLessThan(final.index);
    }
  });

  it("starts the bundle the build writes, and ships the packages the bundle leaves out", () => {
    const cmd = all("CMD").at(-1)!;
    expect(cmd.exec).toBeDefined(); // exec form: node is PID 1 and receives SIGTERM itself
    expect(cmd.exec![0]).toBe("node");
    const script = cmd.exec!.find((a) => a.endsWith(".js"))!;
    expect(script).toBe("dist/server/index.js");
    const workdir = all("WORKDIR").at(-1)!.args;
    const copies = all("COPY").map((c) => {
      const parts = c.args.split(/\s+/);
      return {
        from: c.flags.from!,
        src: parts[0]!,
        dest: path.posix.resolve(workdir, parts.at(-1)!),
      };
    });
    // The bundle directory comes from the build stage, from where `npm run build` writes it.
    const bundle = copies.find((c) => path.posix.resolve(workdir, script).startsWith(c.dest + "/"));
    expect(bundle).toMatchObject({ from: "build" });
    const buildWorkdir = all("WORKDIR", stageByName("deps")!).at(-1)!.args;
    expect(bundle!.src).toBe(path.posix.join(buildWorkdir, "dist/server"));

    const { runtime } = buildExternals();
    expect(runtime.length).toBeGreaterThan(0);
    for (const pkg of runtime) {
      expect(copies).toContainEqual({
        from: "deps",
        src: path.posix.join(buildWorkdir, "node_modules", pkg),
        dest: path.posix.join(workdir, "node_modules", pkg),
      });
      // Copying one package directory only works for a package without dependencies of its own.
      const manifest = JSON.parse(
        fs.readFileSync(path.join(root, "node_modules", pkg, "package.json"), "utf8"),
      ) as { dependencies?: object };
      expect(Object.keys(manifest.dependencies ?? {})).toEqual([]);
    }
  });

  it("copies only context paths that exist and that .dockerignore lets through", () => {
    const contextCopies = stages.flatMap((s) => all("COPY", s).filter((c) => !c.flags.from));
    expect(contextCopies.length).toBeGreaterThan(0);
    for (const c of contextCopies) {
      const sources = c.args.split(/\s+/).slice(0, -1);
      for (const src of sources) {
        expect(fs.existsSync(path.join(root, src))).toBe(true);
        expect(dockerIgnored(ignorePatterns, path.posix.normalize(src).replace(/\/$/, ""))).toBe(
          false,
        );
      }
    }
  });

  it("sends every source file of the bundle in the build context, and nothing local", async () => {
    const copied = stages
      .flatMap((s) => all("COPY", s).filter((c) => !c.flags.from))
      .flatMap((c) => c.args.split(/\s+/).slice(0, -1))
      .map((p) => path.posix.normalize(p).replace(/\/$/, ""));
    const { runtime, optional } = buildExternals();
    for (const entry of ["app/entrypoints/server.ts", "app/entrypoints/lambda.ts"]) {
      const result = await esbuild.build({
        absWorkingDir: root,
        entryPoints: [entry],
        bundle: true,
        write: false,
        platform: "node",
        format: "cjs",
        metafile: true,
        logLevel: "silent",
        external: [...runtime, ...optional, "@aws-sdk/*"],
      });
      const sources = Object.keys(result.metafile!.inputs).filter(
        (f) => !/(^|\/)node_modules\//.test(f),
      );
      expect(sources.length).toBeGreaterThan(10);
      for (const file of sources) {
        const inContext = copied.some((c) => file === c || file.startsWith(c + "/"));
        if (!inContext || dockerIgnored(ignorePatterns, file))
          throw new Error(`${file} is bundled but not in the image's build context`);
      }
    }
    for (const local of [
      "node_modules",
      "dist",
      ".git",
      "test",
      ".data",
      ".env",
      "app/.data/pglite",
      "infra/index.ts",
    ]) {
      expect(dockerIgnored(ignorePatterns, local)).toBe(true);
    }
    for (const needed of [
      "package.json",
      "package-lock.json",
      "tsconfig.json",
      "scripts/build.mjs",
      "app/config/models.json",
    ]) {
      expect(dockerIgnored(ignorePatterns, needed)).toBe(false);
    }
  });
});
