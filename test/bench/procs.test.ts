/**
 * The benchmark runs the service as the image does: the node flags of app/Dockerfile's CMD and the
 * process tuning its runtime stage sets with ENV (bench/lib/procs.ts).
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { checkImagePreload, imageNodeFlags, imageTuningEnv } from "../../bench/lib/procs";

function dockerfile(text: string): string {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), "dockerfile-")), "Dockerfile");
  writeFileSync(file, text);
  return file;
}

describe("the image's process settings, as the benchmark reads them", () => {
  it("takes LD_PRELOAD, MIMALLOC_*, MALLOC_*, UV_* and NODE_OPTIONS from the runtime stage's ENV, continuation lines included", () => {
    const file = dockerfile(
      [
        "FROM node:22 AS build",
        "ENV MALLOC_ARENA_MAX=8 UV_THREADPOOL_SIZE=16",
        "FROM node:22-slim AS runtime",
        "ENV NODE_ENV=production \\",
        "    PORT=8080 \\",
        "    MALLOC_ARENA_MAX=2",
        'ENV NODE_OPTIONS="--enable-source-maps"',
        "ENV LD_PRELOAD=libmimalloc.so.2 MIMALLOC_PURGE_DELAY=50 LD_LIBRARY_PATH=/opt/lib",
        'CMD ["node", "--max-semi-space-size=32", "dist/server/index.js"]',
      ].join("\n"),
    );
    // The build stage's values are not the image's; PORT and NODE_ENV are the benchmark's to set.
    expect(imageTuningEnv(file)).toEqual({
      MALLOC_ARENA_MAX: "2",
      NODE_OPTIONS: "--enable-source-maps",
      LD_PRELOAD: "libmimalloc.so.2",
      MIMALLOC_PURGE_DELAY: "50",
    });
    expect(imageNodeFlags(file)).toEqual(["--max-semi-space-size=32"]);
  });

  it("reads the repository's own Dockerfile", () => {
    expect(imageNodeFlags()).toContain("--no-allocation-site-pretenuring");
    expect(imageTuningEnv()).not.toHaveProperty("PORT");
    expect(imageTuningEnv().LD_PRELOAD).toBe("libmimalloc.so.2");
  });

  // ld.so only warns about a preload it cannot find, and the process runs on glibc's malloc.
  it("refuses to measure when the image's preloaded allocator does not load here, naming the package", () => {
    expect(() => checkImagePreload({ LD_PRELOAD: "libmimalloc-missing.so.9" })).toThrow(
      /preloads libmimalloc-missing\.so\.9 \(LD_PRELOAD\), which node does not load on this machine: install the packages/,
    );
    expect(() => checkImagePreload({})).not.toThrow();
  });

  it("passes when the preload loads: libc itself, present on every Linux machine", () => {
    expect(() => checkImagePreload({ LD_PRELOAD: "libc.so.6" })).not.toThrow();
  });
});
