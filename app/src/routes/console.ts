/**
 * The operator console: GET /console (the page), /console/app.js and /console/app.css, served by
 * the service itself under a strict Content-Security-Policy (console/page.ts). The page is public
 * and holds no data; its data comes from the admin API (GET /v1/admin/overview and the admin
 * routes it calls), which takes an admin key or a console session.
 *
 * With OIDC_ISSUER set, also the OIDC sign-in (console/oidc.ts): GET /console/oidc/login and
 * GET /console/oidc/callback, which ends on /console#session=<token> or /console#oidc_error=<why>.
 */
import type { Context, Hono } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { AppDeps } from "../deps";
import { errorMessage } from "../errors";
import { respond, setHeader, type AppContext, type AppEnv } from "../http";
import {
  OIDC_CALLBACK_PATH,
  OIDC_COOKIE,
  OIDC_LOGIN_PATH,
  OidcError,
  OidcSignIn,
  oidcSettings,
} from "../console/oidc";
import { CONSOLE_CSP, CONSOLE_CSS, consoleHtml } from "../console/page";
import { CONSOLE_JS } from "../console/page-script";
import { clientIp } from "./admin";

function asset(c: AppContext, body: string, type: string) {
  setHeader(c, "content-security-policy", CONSOLE_CSP);
  setHeader(c, "x-content-type-options", "nosniff");
  setHeader(c, "referrer-policy", "no-referrer");
  setHeader(c, "x-frame-options", "DENY");
  setHeader(c, "cross-origin-opener-policy", "same-origin");
  setHeader(c, "cache-control", "no-cache");
  return respond(c, body, 200, type);
}

export function registerConsoleRoutes(
  app: Hono<AppEnv>,
  deps?: Pick<AppDeps, "config" | "store" | "logger">,
) {
  const settings = deps && oidcSettings(deps.config);
  const oidc = settings && deps && new OidcSignIn(settings, deps.store.admin, deps.logger);
  const html = consoleHtml(oidc ? { issuerHost: oidc.issuerHost } : undefined);

  app.get("/console", (c) => asset(c, html, "text/html; charset=utf-8"));
  app.get("/console/", (c) => c.redirect("/console", 301));
  app.get("/console/app.js", (c) => asset(c, CONSOLE_JS, "text/javascript; charset=utf-8"));
  app.get("/console/app.css", (c) => asset(c, CONSOLE_CSS, "text/css; charset=utf-8"));
  if (!oidc || !deps) return;

  const log = deps.logger;
  const secureCookie = (c: Context<AppEnv>) =>
    new URL(oidc.redirectUri(c.req.url)).protocol === "https:";
  /** Back to the console, saying why in the fragment (never sent to a server). */
  const failed = (c: Context<AppEnv>, err: unknown) => {
    const reason = err instanceof OidcError ? err.reason : "unavailable";
    log.warn(
      { reason, err: err instanceof OidcError ? err.message : errorMessage(err) },
      "console OIDC sign-in failed",
    );
    const fragment = new URLSearchParams({ oidc_error: reason });
    if (err instanceof OidcError && err.email) fragment.set("email", err.email);
    return c.redirect(`/console#${fragment.toString()}`, 302);
  };
  const noStore = (c: Context<AppEnv>) => {
    setHeader(c, "cache-control", "no-store");
    setHeader(c, "referrer-policy", "no-referrer");
  };

  app.get(OIDC_LOGIN_PATH, async (c) => {
    noStore(c);
    try {
      const { location, binder } = await oidc.begin(c.req.url);
      setCookie(c, OIDC_COOKIE, binder, {
        path: "/console/oidc",
        httpOnly: true,
        secure: secureCookie(c),
        // Lax: sent on the provider's top-level redirect back to the callback.
        sameSite: "Lax",
        maxAge: 600,
      });
      return c.redirect(location, 302);
    } catch (err) {
      return failed(c, err);
    }
  });

  app.get(OIDC_CALLBACK_PATH, async (c) => {
    noStore(c);
    const binder = getCookie(c, OIDC_COOKIE);
    deleteCookie(c, OIDC_COOKIE, { path: "/console/oidc", secure: secureCookie(c) });
    try {
      const q = c.req.query();
      const session = await oidc.finish({ state: q.state, code: q.code, error: q.error }, binder);
      await deps.store.admin.recordAudit({
        admin: session.email,
        action: "oidc.login",
        target: session.email,
        ip: clientIp(c),
        userAgent: c.req.header("user-agent")?.slice(0, 512) ?? null,
        details: {
          issuer: oidc.settings.issuer,
          subject: session.subject,
          via: session.via,
          expires_at: session.expiresAt,
        },
      });
      c.set("admin", session.email);
      log.info({ admin: session.email, via: session.via }, "console OIDC sign-in");
      return c.redirect(
        `/console#${new URLSearchParams({ session: session.token }).toString()}`,
        302,
      );
    } catch (err) {
      return failed(c, err);
    }
  });
}
