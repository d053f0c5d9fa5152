/**
 * The operator console: GET /console (the page), /console/app.js and /console/app.css, served by
 * the service itself under a strict Content-Security-Policy (console/page.ts). The page is public
 * and holds no data; its data comes from the admin API (GET /v1/admin/overview and the admin
 * routes it calls), which takes an admin key.
 */
import type { Context, Hono } from "hono";
import type { AppEnv } from "../http";
import { CONSOLE_CSP, CONSOLE_CSS, CONSOLE_HTML, CONSOLE_JS } from "../console/page";

function asset(c: Context<AppEnv>, body: string, type: string) {
  c.header("content-type", type);
  c.header("content-security-policy", CONSOLE_CSP);
  c.header("x-content-type-options", "nosniff");
  c.header("referrer-policy", "no-referrer");
  c.header("x-frame-options", "DENY");
  c.header("cross-origin-opener-policy", "same-origin");
  c.header("cache-control", "no-cache");
  return c.body(body);
}

export function registerConsoleRoutes(app: Hono<AppEnv>) {
  app.get("/console", (c) => asset(c, CONSOLE_HTML, "text/html; charset=utf-8"));
  app.get("/console/", (c) => c.redirect("/console", 301));
  app.get("/console/app.js", (c) => asset(c, CONSOLE_JS, "text/javascript; charset=utf-8"));
  app.get("/console/app.css", (c) => asset(c, CONSOLE_CSS, "text/css; charset=utf-8"));
}
