/**
 * Headless Chromium for the console's page tests: Debian's `chromium` (or CHROMIUM_PATH) driven by
 * playwright-core. Required when CI=true (.ci/run installs it); elsewhere the tests skip without it.
 */
import { existsSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.CI === "true")
  throw new Error(`${CHROMIUM} is missing (required when CI=true: .ci/run installs chromium)`);

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
    ],
  });
}

/**
 * Collects into `problems` what should never happen on the page: console errors and warnings,
 * CSP violations (reported as console errors naming the directive), uncaught errors and failed
 * requests. Call before the first navigation.
 */
export async function watchPageProblems(page: Page, problems: string[]): Promise<void> {
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") problems.push(`${m.type()}: ${m.text()}`);
  });
  // (Browser code as a string: the project's TypeScript has no DOM types.)
  await page.addInitScript(
    `document.addEventListener("securitypolicyviolation", (e) =>
      console.error("CSP violation: " + e.violatedDirective + " " + e.blockedURI))`,
  );
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("requestfailed", (r) => problems.push(`requestfailed: ${r.url()}`));
}
