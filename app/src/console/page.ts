/**
 * The operator console's page (GET /console): an HTML shell, its stylesheet and its script, kept
 * here as strings so the server bundle (esbuild) and the Lambda bundle carry them with no file to
 * ship beside them. The page loads nothing else: no third-party script, font or stylesheet, and
 * runs under CONSOLE_CSP (no inline script or style; the script sets bar widths through the CSSOM,
 * which style-src does not restrict).
 *
 * With OIDC sign-in configured (console/oidc.ts) the sign-in form also links to
 * /console/oidc/login; the sign-in ends on /console#session=<token> (a fragment: never sent to a
 * server), which the script moves into sessionStorage and removes from the address bar, or on
 * /console#oidc_error=<reason>, which it explains. Sign-out then also revokes the session
 * (DELETE /v1/admin/session).
 *
 * The shell is public and holds no data. Signing in keeps the admin key in the tab's
 * sessionStorage (gone when the tab closes; never in a URL, a cookie or a log line) and sends it
 * as `x-api-key` to the admin API; a 401 brings the sign-in form back, a 403 says the key is not an
 * admin key. Everything shown comes from GET /v1/admin/overview, polled every POLL_MS while the
 * tab is visible, and is put in the DOM with textContent only.
 */

export const POLL_MS = 5000;

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join("; ");

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

/** The OIDC part of the sign-in form: a link to the sign-in, named after the issuer's host. */
function oidcSignin(issuerHost: string): string {
  return `
    <div id="oidc-signin">
      <p><a class="button" id="oidc-link" href="/console/oidc/login">Sign in with ${escapeHtml(issuerHost)}</a></p>
      <p class="muted">Single sign-on through your identity provider. Or use an admin API key:</p>
    </div>`;
}

/** The page; with OIDC sign-in configured, its sign-in form offers it. */
export function consoleHtml(oidc?: { issuerHost: string }): string {
  return CONSOLE_HTML.replace("<!--oidc-signin-->", oidc ? oidcSignin(oidc.issuerHost) : "");
}

export const CONSOLE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Operator console · agent service</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/console/app.css">
<script src="/console/app.js" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <h1>Operator console</h1>
  <p id="updated" class="muted">Not signed in</p>
  <button type="button" id="signout" hidden>Sign out</button>
</header>
<main id="main" tabindex="-1">
  <section id="signin" aria-labelledby="signin-h">
    <h2 id="signin-h">Sign in</h2>
    <p>Use an admin API key (ADMIN_API_KEYS, or one minted with POST /v1/admin/admin-keys). It is kept in this tab only (sessionStorage) and sent to the admin API as <code>x-api-key</code>.</p><!--oidc-signin-->
    <form id="signin-form" autocomplete="off">
      <label for="admin-key">Admin API key</label>
      <input id="admin-key" name="admin-key" type="password" required spellcheck="false" autocomplete="off">
      <button type="submit">Sign in</button>
    </form>
    <p id="signin-error" class="error" role="alert"></p>
  </section>

  <div id="dashboard" hidden>
    <section aria-labelledby="traffic-h">
      <h2 id="traffic-h">Today</h2>
      <dl class="kpis" aria-live="polite">
        <div><dt>Requests</dt><dd id="k-requests">–</dd></div>
        <div><dt>Response cache hit ratio</dt><dd id="k-hit-ratio">–</dd></div>
        <div><dt>Spent today</dt><dd id="k-spent-today">–</dd></div>
        <div><dt>Spent this month</dt><dd id="k-spent-month">–</dd></div>
        <div><dt>Saved by the response cache</dt><dd id="k-saved-response">–</dd></div>
        <div><dt>Saved by prompt caching</dt><dd id="k-saved-prompt">–</dd></div>
      </dl>
      <p class="muted" id="k-notes"></p>
    </section>

    <section aria-labelledby="budgets-h">
      <h2 id="budgets-h">Budgets</h2>
      <p class="muted">Spend from the usage ledger (UTC day and month). Bars turn amber at 80 % and red at 100 %.</p>
      <h3>Deployment</h3>
      <div id="b-deployment" class="bars"></div>
      <h3>Teams</h3>
      <div id="b-teams" class="bars"></div>
      <h3>Top users today</h3>
      <div id="b-users" class="bars"></div>
    </section>

    <section aria-labelledby="models-h">
      <h2 id="models-h">Models</h2>
      <table>
        <caption>Model mix today and circuit breaker state</caption>
        <thead><tr><th scope="col">Model</th><th scope="col">Requests</th><th scope="col">Cost</th><th scope="col">Breaker</th></tr></thead>
        <tbody id="t-models"></tbody>
      </table>
      <p class="muted" id="models-note"></p>
    </section>

    <section aria-labelledby="events-h">
      <h2 id="events-h">Recent refusals and alerts</h2>
      <p class="muted" id="events-note"></p>
      <table>
        <caption>Refusals</caption>
        <thead><tr><th scope="col">Time (UTC)</th><th scope="col">What</th><th scope="col">User</th><th scope="col">Scope</th></tr></thead>
        <tbody id="t-refusals"></tbody>
      </table>
      <table>
        <caption>Budget alerts</caption>
        <thead><tr><th scope="col">Time (UTC)</th><th scope="col">Budget</th><th scope="col">Scope</th><th scope="col">Threshold</th><th scope="col">Spent / limit</th></tr></thead>
        <tbody id="t-alerts"></tbody>
      </table>
    </section>

    <section aria-labelledby="manage-h">
      <h2 id="manage-h">Manage</h2>
      <div class="forms">
        <form id="team-form">
          <h3>Create a team</h3>
          <label for="team-name">Team name</label>
          <input id="team-name" name="team-name" required maxlength="128">
          <label for="team-daily">Daily budget, USD (optional)</label>
          <input id="team-daily" name="team-daily" type="number" min="0" step="any" inputmode="decimal">
          <label for="team-monthly">Monthly budget, USD (optional)</label>
          <input id="team-monthly" name="team-monthly" type="number" min="0" step="any" inputmode="decimal">
          <button type="submit">Create team</button>
          <p class="status" id="team-status" role="status"></p>
        </form>

        <form id="key-form">
          <h3>Mint a user key</h3>
          <label for="key-user">User id</label>
          <input id="key-user" name="key-user" required maxlength="128">
          <label for="key-team">Team (optional)</label>
          <select id="key-team" name="key-team"><option value="">No team</option></select>
          <label for="key-name">Key name (optional)</label>
          <input id="key-name" name="key-name" maxlength="200">
          <button type="submit">Mint key</button>
          <p class="status" id="key-status" role="status"></p>
          <div id="key-result" hidden>
            <label for="key-value">New key, shown once</label>
            <input id="key-value" readonly spellcheck="false">
            <button type="button" id="key-copy">Copy key</button>
          </div>
        </form>

        <form id="budget-form">
          <h3>Change a team's budget</h3>
          <label for="budget-team">Team</label>
          <select id="budget-team" name="budget-team" required><option value="">Choose a team</option></select>
          <label for="budget-daily">Daily budget, USD (empty: no limit)</label>
          <input id="budget-daily" name="budget-daily" type="number" min="0" step="any" inputmode="decimal">
          <label for="budget-monthly">Monthly budget, USD (empty: no limit)</label>
          <input id="budget-monthly" name="budget-monthly" type="number" min="0" step="any" inputmode="decimal">
          <button type="submit">Save budget</button>
          <p class="status" id="budget-status" role="status"></p>
        </form>
      </div>
    </section>
  </div>
</main>
<footer class="muted"><p>Served by the agent service itself. Refreshes every ${POLL_MS / 1000} s while this tab is visible.</p></footer>
</body>
</html>
`;

export const CONSOLE_CSS = `
:root { color-scheme: light; --fg: #111827; --muted: #4b5563; --bg: #f9fafb; --card: #ffffff;
  --line: #6b7280; --ok: #1d4ed8; --warn: #b45309; --over: #b91c1c; --focus: #1d4ed8; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
.skip { position: absolute; left: -999px; top: 0; background: #fff; padding: .5em; }
.skip:focus { left: .5em; }
.top { display: flex; gap: 1em; align-items: center; padding: .6em 1.2em; background: #1f2937; color: #fff; }
.top h1 { font-size: 1.25em; margin: 0; flex: 0 0 auto; }
.top .muted { color: #e5e7eb; flex: 1 1 auto; margin: 0; }
main { padding: 1em 1.2em; max-width: 1240px; margin: 0 auto; }
section { background: var(--card); border: 1px solid #d1d5db; border-radius: 6px; padding: .6em 1em 1em; margin-bottom: 1em; }
h2 { font-size: 1.1em; margin: .4em 0 .6em; }
h3 { font-size: 1em; margin: .8em 0 .4em; }
.muted { color: var(--muted); }
.error { color: var(--over); font-weight: 600; }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
[tabindex="-1"]:focus { outline: none; }
button { font: inherit; padding: .35em .9em; border: 1px solid #1f2937; border-radius: 4px; background: #1f2937; color: #fff; cursor: pointer; }
.top button { background: #fff; color: #1f2937; }
input, select { font: inherit; padding: .3em .4em; border: 1px solid var(--line); border-radius: 4px; width: 100%; max-width: 22em; color: var(--fg); background: #fff; }
label { display: block; margin: .5em 0 .15em; font-weight: 600; }
form button { margin-top: .6em; }
a.button { display: inline-block; padding: .35em .9em; border: 1px solid #1f2937; border-radius: 4px; background: #1f2937; color: #fff; text-decoration: none; }
#signin-form { display: flex; flex-wrap: wrap; gap: .4em; align-items: end; }
#signin-form label { flex-basis: 100%; }
.kpis { display: grid; grid-template-columns: repeat(auto-fill, minmax(11em, 1fr)); gap: .6em; margin: 0; }
.kpis div { border: 1px solid #d1d5db; border-radius: 4px; padding: .4em .6em; }
.kpis dt { color: var(--muted); font-size: .85em; }
.kpis dd { margin: 0; font-size: 1.35em; font-weight: 700; }
.bars { display: grid; gap: .35em; }
.bar { display: grid; grid-template-columns: minmax(9em, 14em) 1fr minmax(16em, 24em); gap: .6em; align-items: center; }
.bar .name { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.track { height: 1em; border: 1px solid var(--line); border-radius: 3px; background: #fff; overflow: hidden; }
.fill { height: 100%; width: 0; background: var(--ok); }
.bar.warn .fill { background: var(--warn); }
.bar.over .fill { background: var(--over); }
.bar.warn .value { color: var(--warn); }
.bar.over .value { color: var(--over); }
.value { font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; margin: .4em 0 .8em; }
caption { text-align: left; font-weight: 600; padding: .2em 0; }
th, td { text-align: left; padding: .25em .5em; border-bottom: 1px solid #e5e7eb; }
td.num { font-variant-numeric: tabular-nums; }
.state-open { color: var(--over); font-weight: 700; }
.state-half_open { color: var(--warn); font-weight: 700; }
.forms { display: grid; grid-template-columns: repeat(auto-fit, minmax(17em, 1fr)); gap: 1.2em; }
.status { min-height: 1.4em; }
footer { text-align: center; padding: 0 1em 1em; font-size: .85em; }
`;
