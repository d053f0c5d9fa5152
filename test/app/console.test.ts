/**
 * The operator console (GET /console) in headless Chromium (Debian's, driven by playwright-core)
 * against the real service on the embedded defaults: the page under its CSP with no errors, the
 * sign-in (401 and 403 messages), the numbers of a seeded ledger, creating a team, minting a key
 * that then works on /v1/messages, changing a budget, and a label on every form field. Takes the
 * screenshot README.md shows: into docs/console.png with UPDATE_SCREENSHOTS=1 (commit it then),
 * else into a temporary directory, so a test run leaves the checkout clean.
 *
 * Chromium is required under CI=true (.ci/run installs it); elsewhere the test skips without it.
 */
import { mkdirSync, mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { CONSOLE_CSP } from "../../app/src/console/page";
import { haveChromium, launchChromium, watchPageProblems } from "../support/chromium";
import { startService, type RunningService } from "../support/service";

const run = randomBytes(4).toString("hex");
const ADMIN_KEY = `console-admin-${run}-0123456789`;
const USER = { user: "static-user", key: `console-user-${run}` };
const SCREENSHOT =
  process.env.UPDATE_SCREENSHOTS === "1"
    ? join(__dirname, "..", "..", "docs", "console.png")
    : join(mkdtempSync(join(tmpdir(), "console-shot-")), "console.png");

(haveChromium ? describe : describe.skip)("operator console in Chromium", () => {
  let service: RunningService;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];

  const admin = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${service.url}${path}`, {
      method,
      headers: {
        "x-api-key": ADMIN_KEY,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    expect(res.status).toBeLessThan(300);
    return (await res.json()) as T;
  };

  const message = (key: string, text: string) =>
    fetch(`${service.url}/v1/messages`, {
      method: "POST",
      headers: {
        "x-api-key": key,
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
      },
      body: JSON.stringify({
        model: "claude-haiku-4-5",
        max_tokens: 16,
        messages: [{ role: "user", content: text }],
      }),
    });

  beforeAll(async () => {
    service = await startService({
      DATA_DIR: "memory://",
      AGENT_API_KEYS: `${USER.user}:${USER.key}`,
      ADMIN_API_KEYS: `ops:${ADMIN_KEY}`,
      BUDGET_USER_DAILY_USD: "10",
      BUDGET_DAILY_USD: "40",
    });
    // The seeded ledger: a team near its daily budget, a user over theirs.
    const team = await admin<{ id: string }>("POST", "/v1/admin/teams", {
      name: "Research",
      budgets: { daily_usd: 10, monthly_usd: 200 },
    });
    await admin("PATCH", "/v1/admin/users/ada", { team: team.id });
    await admin("PUT", "/v1/admin/users/grace/budgets", { user_daily: 5 });
    const at = new Date().toISOString();
    const entry = (userId: string, model: string, costUsd: number, cacheRead = 0) => ({
      requestId: `req-${randomBytes(6).toString("hex")}`,
      userId,
      model,
      inputTokens: 1000,
      outputTokens: 200,
      cacheCreationInputTokens: 0,
      cacheReadInputTokens: cacheRead,
      costUsd,
      status: "ok" as const,
      createdAt: at,
    });
    await service.deps.store.recordUsage([
      entry("ada", "claude-sonnet-4-6", 8.25, 2_000_000),
      entry("grace", "claude-haiku-4-5", 6),
      entry("linus", "claude-haiku-4-5", 1.5),
    ]);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await watchPageProblems(page, problems);
    page.on("request", (r) => {
      if (!r.url().startsWith(service.url)) problems.push(`third-party request: ${r.url()}`);
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await service?.close();
  });

  it("serves the page and its assets under a strict CSP", async () => {
    const res = await fetch(`${service.url}/console`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    expect(res.headers.get("content-security-policy")).toBe(CONSOLE_CSP);
    expect(CONSOLE_CSP).toContain("script-src 'self'");
    const html = await res.text();
    expect(html).not.toMatch(/<script>|<style|\sstyle=|\son[a-z]+=/i);
    expect(html).not.toMatch(/https?:\/\//);
    for (const [path, type] of [
      ["/console/app.js", /^text\/javascript/],
      ["/console/app.css", /^text\/css/],
    ] as const) {
      const asset = await fetch(`${service.url}${path}`);
      expect(asset.status).toBe(200);
      expect(asset.headers.get("content-type")).toMatch(type);
      expect(asset.headers.get("x-content-type-options")).toBe("nosniff");
    }
  });

  it("signs in, shows the seeded ledger, creates a team, mints a key, changes a budget; no errors", async () => {
    await page.goto(`${service.url}/console`);
    await expect(page.getByRole("heading", { name: "Sign in" }).isVisible()).resolves.toBe(true);

    // A user's key: the 403 message, and the form stays.
    await page.getByLabel("Admin API key").fill(USER.key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("This key is not an admin key (403)").waitFor();
    // An unknown key: 401.
    await page.getByLabel("Admin API key").fill("not-a-key-at-all");
    await page.keyboard.press("Enter");
    await page.getByText("did not accept this key (401)").waitFor();
    expect(await page.evaluate("sessionStorage.length")).toBe(0);

    // The admin key, typed and submitted from the keyboard.
    await page.getByLabel("Admin API key").fill(ADMIN_KEY);
    await page.keyboard.press("Enter");
    await page.locator("#dashboard").waitFor({ state: "visible" });
    expect(page.url()).toBe(`${service.url}/console`); // no key in the URL

    const text = (id: string) => page.locator(`#${id}`).innerText();
    expect(await text("k-requests")).toBe("3");
    expect(await text("k-spent-today")).toBe("$15.75");
    // 2M cache-read tokens on Sonnet: $3.00/MTok input less $0.30/MTok read.
    expect(await text("k-saved-prompt")).toBe("$5.40");
    const bar = (name: string) => page.locator(`.bar[data-name="${name}"]`);
    expect(await bar("Daily budget").innerText()).toContain("$15.75 of $40.00 (39%)");
    const research = bar("Research · daily");
    expect(await research.innerText()).toContain("$8.25 of $10.00 (83%, near limit)");
    expect(await research.getAttribute("class")).toBe("bar warn");
    expect(await bar("Research · monthly").innerText()).toContain("$8.25 of $200.00 (4%)");
    const grace = bar("grace");
    expect(await grace.innerText()).toContain("$6.00 of $5.00 (120%, over budget)");
    expect(await grace.getAttribute("class")).toBe("bar over");
    expect(await bar("ada (Research)").innerText()).toContain("(83%, near limit)");
    expect(await bar("linus").innerText()).toContain("$1.50 of $10.00 (15%)");
    const models = await page.locator("#t-models tr").allInnerTexts();
    expect(models[0]).toMatch(/^claude-sonnet-4-6\s+1\s+\$8\.25/);
    expect(models[1]).toMatch(/^claude-haiku-4-5\s+2\s+\$7\.50/);

    // A refusal: grace is over her daily budget. The next poll lists it.
    const { key: graceKey } = await admin<{ key: string }>("POST", "/v1/admin/keys", {
      user: "grace",
    });
    expect((await message(graceKey, "one more question")).status).toBe(429);
    const refusal = page.locator("#t-refusals tr", { hasText: "budget: user_daily" });
    await refusal.waitFor({ timeout: 15_000 });
    expect(await refusal.innerText()).toMatch(/budget: user_daily\s+grace\s+grace/);

    // The screenshot README.md shows: the seeded ledger, before the forms are used.
    await page.evaluate("window.scrollTo(0, 0)");
    mkdirSync(join(SCREENSHOT, ".."), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: false });
    expect(statSync(SCREENSHOT).size).toBeGreaterThan(10_000);

    // Every form field has a label.
    for (const label of [
      "Team name",
      "Daily budget, USD (optional)",
      "Monthly budget, USD (optional)",
      "User id",
      "Team (optional)",
      "Key name (optional)",
      "Team",
      "Daily budget, USD (empty: no limit)",
      "Monthly budget, USD (empty: no limit)",
    ])
      expect(await page.getByLabel(label, { exact: true }).count()).toBe(1);
    const unlabelled = await page.evaluate(
      `[...document.querySelectorAll("input, select")].filter((el) => !el.labels || el.labels.length === 0).map((el) => el.id)`,
    );
    expect(unlabelled).toEqual([]);

    // Create a team.
    await page.getByLabel("Team name").fill("Platform <b>ops</b>");
    await page.getByLabel("Daily budget, USD (optional)").fill("25");
    await page.getByLabel("Monthly budget, USD (optional)").fill("300");
    await page.getByRole("button", { name: "Create team" }).click();
    await page.getByText("Created team Platform <b>ops</b>.").waitFor();
    const teams = await admin<{ data: Array<{ id: string; name: string; budgets: unknown }> }>(
      "GET",
      "/v1/admin/teams",
    );
    const platform = teams.data.find((t) => t.name === "Platform <b>ops</b>");
    expect(platform?.budgets).toEqual({ daily_usd: 25, monthly_usd: 300 });
    await bar("Platform <b>ops</b> · daily").waitFor();
    expect(await page.locator("b").count()).toBe(0); // shown as text, never as markup

    // Mint a key for a new user in that team.
    await page.getByLabel("User id").fill("margaret");
    await page.getByLabel("Team (optional)").selectOption({ label: "Platform <b>ops</b>" });
    await page.getByLabel("Key name (optional)").fill("laptop");
    await page.getByRole("button", { name: "Mint key" }).click();
    await page.getByText("Key minted for margaret").waitFor();
    const key = await page.getByLabel("New key, shown once").inputValue();
    expect(key).toMatch(/^ak_[A-Za-z0-9_-]{43}$/);
    const keys = await admin<{ data: Array<{ user: string; name: string; prefix: string }> }>(
      "GET",
      "/v1/admin/keys?user=margaret",
    );
    expect(keys.data).toEqual([
      expect.objectContaining({ user: "margaret", name: "laptop", prefix: key.slice(0, 11) }),
    ]);
    const team = await admin<{ members: string[] }>("GET", `/v1/admin/teams/${platform!.id}`);
    expect(team.members).toEqual(["margaret"]);
    expect((await message(key, "hello from the console test")).status).toBe(200);

    // Change the team's budget: the form shows the current one; emptying a field lifts it.
    await page.getByLabel("Team", { exact: true }).selectOption({ label: "Platform <b>ops</b>" });
    expect(await page.getByLabel("Daily budget, USD (empty: no limit)").inputValue()).toBe("25");
    await page.getByLabel("Daily budget, USD (empty: no limit)").fill("40");
    await page.getByLabel("Monthly budget, USD (empty: no limit)").fill("");
    await page.getByRole("button", { name: "Save budget" }).click();
    await page.getByText("Saved the budget of Platform <b>ops</b>.").waitFor();
    const changed = await admin<{ budgets: unknown }>("GET", `/v1/admin/teams/${platform!.id}`);
    expect(changed.budgets).toEqual({ daily_usd: 40, monthly_usd: null });
    await page.getByText("$0.00 of $40.00 (0%)").first().waitFor();

    // The minted key's request has reached the ledger: the next poll counts it.
    await service.deps.usage.flush();
    await page.locator("#k-requests", { hasText: "4" }).waitFor({ timeout: 15_000 });

    // Keyboard: Tab reaches the form's button, and its focus is visible.
    await page.getByLabel("Monthly budget, USD (optional)").focus();
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(
      `({ text: document.activeElement.textContent, outline: getComputedStyle(document.activeElement).outlineStyle })`,
    );
    expect(focused).toEqual({ text: "Create team", outline: "solid" });

    // Chromium logs every 4xx answer to fetch: the two sign-ins refused above, and nothing else.
    const refused = /^error: Failed to load resource: the server responded with a status of (\d+)/;
    expect(problems.map((p) => refused.exec(p)?.[1] ?? p)).toEqual(["403", "401"]);
  }, 60_000);
});
