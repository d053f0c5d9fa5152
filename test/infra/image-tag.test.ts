/**
 * Issue 12, item 10: ECR tags are immutable (`imageTagMutability: IMMUTABLE`), so the image tag
 * must change exactly when what `docker build` reads changes: the build context after
 * `.dockerignore` (https://docs.docker.com/build/concepts/context/#dockerignore-files), the
 * Dockerfile, and the platform. A tag that stays while the context changes is refused at push.
 */
import { cpSync, mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildContextFiles, REPO_ROOT, sourceTag } from "../../infra/artifact";

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "agent-context-"));
  for (const p of [
    ".dockerignore",
    "package.json",
    "app/Dockerfile",
    "scripts/shims",
    "scripts/build.mjs",
  ]) {
    cpSync(join(REPO_ROOT, p), join(root, p), { recursive: true });
  }
  mkdirSync(join(root, "app/src"), { recursive: true });
  writeFileSync(join(root, "app/src/index.ts"), "export {};\n");
  mkdirSync(join(root, "test"), { recursive: true });
  writeFileSync(join(root, "test/x.test.ts"), "test\n");
  writeFileSync(join(root, "README.md"), "# readme\n");
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const tag = (platform = "linux/arm64") => sourceTag({ root, platform });

test("the context is what .dockerignore lets through: shims yes; tests, docs, infra no", () => {
  const files = buildContextFiles(root);
  expect(files).toEqual(
    expect.arrayContaining(["package.json", "scripts/build.mjs", "app/src/index.ts"]),
  );
  expect(files.some((f) => f.startsWith("scripts/shims/"))).toBe(true);
  expect(files).not.toContain("README.md");
  expect(files.some((f) => f.startsWith("test/"))).toBe(false);
});

test("a change under scripts/shims/ (in the context) gives a new tag", () => {
  const before = tag();
  writeFileSync(join(root, "scripts/shims/debug.cjs"), "module.exports = () => () => {};\n");
  expect(tag()).not.toBe(before);
});

test("a new file in the context gives a new tag; a change to an ignored file does not", () => {
  const before = tag();
  writeFileSync(join(root, "README.md"), "# changed\n");
  writeFileSync(join(root, "test/x.test.ts"), "changed\n");
  expect(tag()).toBe(before);
  writeFileSync(join(root, "app/src/new.ts"), "export const x = 1;\n");
  expect(tag()).not.toBe(before);
});

test("the Dockerfile (sent even though .dockerignore lists it) and the platform are part of the tag", () => {
  const before = tag();
  expect(tag("linux/amd64")).not.toBe(before);
  writeFileSync(join(root, "app/Dockerfile"), "FROM scratch\n");
  expect(tag()).not.toBe(before);
});

test("the repository's own tag is stable and valid for ECR", () => {
  const a = sourceTag({ platform: "linux/arm64" });
  expect(a).toMatch(/^src-[0-9a-f]{16}$/);
  expect(sourceTag({ platform: "linux/arm64" })).toBe(a);
});
