/**
 * The operator console's script (/console/app.js), kept as a string like the page and its
 * stylesheet (page.ts, whose comment says what the page does and how it signs in).
 */
import { POLL_MS } from "./page";

/** Plain ES2022, no template literals: it lives inside one. */
export const CONSOLE_JS = `"use strict";
(function () {
  var KEY = "agent-console-admin-key";
  var KIND = "agent-console-credential";
  var OIDC_ERRORS = {
    unavailable: "Single sign-on failed: the identity provider could not be reached. Try again later.",
    busy: "Single sign-on failed: too many sign-ins are under way. Try again in a few minutes.",
    provider: "Single sign-on failed: the identity provider did not sign you in.",
    state: "Single sign-on failed: the sign-in expired, was already used or was started in another browser. Sign in again.",
    token: "Single sign-on failed: the identity provider did not issue a token for this sign-in.",
    id_token: "Single sign-on failed: the identity provider's ID token did not pass verification.",
    email: "Single sign-on failed: the identity provider gave no verified e-mail address."
  };
  var POLL_MS = ${POLL_MS};
  var timer = null;
  var inFlight = false;
  var teamsSig = "";
  var lastTeams = [];
  var $ = function (id) { return document.getElementById(id); };

  function adminKey() { return sessionStorage.getItem(KEY); }
  function isSession() { return sessionStorage.getItem(KIND) === "oidc"; }
  function forget() { sessionStorage.removeItem(KEY); sessionStorage.removeItem(KIND); }

  // The end of an OIDC sign-in: a session token, or why there is none, in the fragment. Taken out
  // of the address bar at once (history and bookmarks never hold it). Returns a message or "".
  function takeFragment() {
    if (!location.hash || location.hash.length < 2) return "";
    var params = new URLSearchParams(location.hash.slice(1));
    var session = params.get("session");
    var error = params.get("oidc_error");
    if (session === null && error === null) return "";
    history.replaceState(null, "", location.pathname + location.search);
    if (session) {
      sessionStorage.setItem(KEY, session);
      sessionStorage.setItem(KIND, "oidc");
      return "";
    }
    if (error === "not_admin") {
      return "Single sign-on failed: " + (params.get("email") || "this account") +
        " is not an admin of this service (OIDC_ADMINS). Ask an operator to add you.";
    }
    return Object.prototype.hasOwnProperty.call(OIDC_ERRORS, error) ? OIDC_ERRORS[error] : "Single sign-on failed.";
  }

  function usd(n) {
    if (n === null || n === undefined) return "–";
    if (n !== 0 && Math.abs(n) < 0.01) return "$" + n.toFixed(4);
    return "$" + n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }
  function setText(el, text) { if (el.textContent !== text) el.textContent = text; }
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }
  function time(iso) { return iso ? iso.slice(11, 19) : ""; }
  function when(iso) { return iso ? iso.slice(0, 10) + " " + iso.slice(11, 16) + " UTC" : "start"; }

  function api(method, path, body) {
    var headers = { "x-api-key": adminKey() || "" };
    if (body !== undefined) headers["content-type"] = "application/json";
    return fetch(path, { method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store", credentials: "omit" })
      .then(function (res) {
        return res.json().catch(function () { return {}; }).then(function (json) { return { status: res.status, json: json }; });
      });
  }
  function errorText(r) {
    var e = r.json && r.json.error;
    return (e && e.message ? e.message : "request failed") + " (HTTP " + r.status + ")";
  }

  function showSignin(message) {
    stop();
    $("dashboard").hidden = true;
    $("signout").hidden = true;
    $("signin").hidden = false;
    setText($("signin-error"), message || "");
    setText($("updated"), "Not signed in");
  }
  function showDashboard() {
    $("signin").hidden = true;
    $("dashboard").hidden = false;
    $("signout").hidden = false;
  }

  function handleAuth(r) {
    if (r.status === 401) {
      var session = isSession();
      forget();
      showSignin(session ? "Your single sign-on session has ended (401): sign in again." :
        "The admin API did not accept this key (401): sign in with an admin key.");
      return true;
    }
    if (r.status === 403) {
      forget();
      showSignin("This key is not an admin key (403): it is a user's key. Sign in with an admin API key.");
      return true;
    }
    return false;
  }

  function bar(name, spent, limit, detail) {
    var row = document.createElement("div");
    row.className = "bar";
    var label = document.createElement("span");
    label.className = "name";
    label.textContent = name;
    label.title = name;
    var track = document.createElement("div");
    track.className = "track";
    var fill = document.createElement("div");
    fill.className = "fill";
    track.appendChild(fill);
    var value = document.createElement("span");
    value.className = "value";
    var text;
    if (limit === null || limit === undefined || limit <= 0) {
      text = usd(spent) + " (no limit)";
      track.setAttribute("aria-hidden", "true");
    } else {
      var pct = (spent / limit) * 100;
      var shown = Math.round(pct);
      fill.style.width = Math.min(100, pct).toFixed(2) + "%";
      if (pct >= 100) row.classList.add("over");
      else if (pct >= 80) row.classList.add("warn");
      text = usd(spent) + " of " + usd(limit) + " (" + shown + "%" + (pct >= 100 ? ", over budget" : pct >= 80 ? ", near limit" : "") + ")";
      track.setAttribute("role", "meter");
      track.setAttribute("aria-valuemin", "0");
      track.setAttribute("aria-valuemax", String(limit));
      track.setAttribute("aria-valuenow", String(Math.min(spent, limit)));
      track.setAttribute("aria-valuetext", text);
      track.setAttribute("aria-label", name);
    }
    value.textContent = detail ? text + " " + detail : text;
    row.appendChild(label);
    row.appendChild(track);
    row.appendChild(value);
    row.setAttribute("data-name", name);
    return row;
  }
  function replace(container, nodes, empty) {
    container.replaceChildren.apply(container, nodes);
    if (nodes.length === 0) {
      var p = document.createElement("p");
      p.className = "muted";
      p.textContent = empty;
      container.appendChild(p);
    }
  }

  function render(o) {
    setText($("k-requests"), o.requests.today.toLocaleString("en-US"));
    setText($("k-hit-ratio"), o.requests.cache_hit_ratio === null ? "–" : (o.requests.cache_hit_ratio * 100).toFixed(1) + "%");
    setText($("k-spent-today"), usd(o.deployment.spent_today_usd));
    setText($("k-spent-month"), usd(o.deployment.spent_month_usd));
    setText($("k-saved-response"), usd(o.savings.response_cache.saved_usd));
    setText($("k-saved-prompt"), usd(o.savings.prompt_cache.saved_usd));
    setText($("k-notes"), o.requests.cached + " cached answers and " + o.requests.errors + " failed requests today. Prompt caching: " +
      o.savings.prompt_cache.read_tokens.toLocaleString("en-US") + " cache-read tokens today. Response cache: " + o.savings.response_cache.hits +
      " hits on this replica since " + when(o.savings.response_cache.since) + ".");

    replace($("b-deployment"), [
      bar("Daily budget", o.deployment.spent_today_usd, o.deployment.daily_limit_usd, "")
    ], "");
    var teams = [];
    o.teams.forEach(function (t) {
      teams.push(bar(t.name + " · daily", t.spent_today_usd, t.daily_limit_usd, ""));
      teams.push(bar(t.name + " · monthly", t.spent_month_usd, t.monthly_limit_usd, ""));
    });
    replace($("b-teams"), teams, "No teams yet.");
    replace($("b-users"), o.top_users.map(function (u) {
      return bar(u.user + (u.team ? " (" + u.team.name + ")" : ""), u.spent_today_usd, u.daily_limit_usd,
        "· " + u.requests_today + (u.requests_today === 1 ? " request" : " requests"));
    }), "No spend today.");

    var breakersByModel = {};
    o.breakers.forEach(function (b) { breakersByModel[b.model] = b.state; });
    var rows = o.models.map(function (m) {
      var tr = document.createElement("tr");
      cell(tr, m.model);
      cell(tr, String(m.requests), "num");
      cell(tr, usd(m.cost_usd), "num");
      var state = m.breaker || "–";
      cell(tr, state.replace("_", "-"), "state-" + state);
      delete breakersByModel[m.model];
      return tr;
    });
    Object.keys(breakersByModel).forEach(function (model) {
      var tr = document.createElement("tr");
      cell(tr, model);
      cell(tr, "0", "num");
      cell(tr, usd(0), "num");
      cell(tr, breakersByModel[model].replace("_", "-"), "state-" + breakersByModel[model]);
      rows.push(tr);
    });
    replace($("t-models"), rows, "");
    setText($("models-note"), o.breakers.length ? "Breaker states are this replica's." :
      "No circuit breakers: the offline model calls no upstream.");
    if (rows.length === 0) {
      var tr = document.createElement("tr");
      cell(tr, "No requests today.").colSpan = 4;
      $("t-models").replaceChildren(tr);
    }

    var a = o.activity;
    setText($("events-note"), "Kept in memory by the replica that answered (its newest " + a.capacity + " of each, since " + when(a.since) +
      "): " + a.refusals_total + " refusals and " + a.alerts_total + " alerts so far. Other replicas keep their own.");
    var refusals = a.refusals.map(function (r) {
      var tr = document.createElement("tr");
      cell(tr, time(r.at));
      cell(tr, (r.kind === "budget" ? "budget: " : "rate limit: ") + r.limit);
      cell(tr, r.user);
      cell(tr, r.scope_id || "");
      return tr;
    });
    replace($("t-refusals"), refusals, "");
    if (refusals.length === 0) { var e1 = document.createElement("tr"); cell(e1, "No refusals.").colSpan = 4; $("t-refusals").replaceChildren(e1); }
    var alerts = a.alerts.map(function (x) {
      var tr = document.createElement("tr");
      cell(tr, time(x.at));
      cell(tr, x.budget);
      cell(tr, x.scope_id);
      cell(tr, x.threshold + "%");
      cell(tr, usd(x.spent_usd) + " / " + usd(x.limit_usd), "num");
      return tr;
    });
    replace($("t-alerts"), alerts, "");
    if (alerts.length === 0) { var e2 = document.createElement("tr"); cell(e2, "No alerts.").colSpan = 5; $("t-alerts").replaceChildren(e2); }

    lastTeams = o.teams;
    var sig = JSON.stringify(o.teams.map(function (t) { return [t.id, t.name]; }));
    if (sig !== teamsSig) {
      teamsSig = sig;
      fillTeams($("key-team"), "No team");
      fillTeams($("budget-team"), "Choose a team");
    }
    setText($("updated"), "Updated " + time(o.at) + " UTC");
  }

  function fillTeams(select, none) {
    var value = select.value;
    var options = [new Option(none, "")];
    lastTeams.forEach(function (t) { options.push(new Option(t.name, t.id)); });
    select.replaceChildren.apply(select, options);
    select.value = lastTeams.some(function (t) { return t.id === value; }) ? value : "";
  }

  function refresh() {
    if (inFlight || !adminKey()) return Promise.resolve();
    inFlight = true;
    return api("GET", "/v1/admin/overview").then(function (r) {
      if (handleAuth(r)) return;
      if (r.status !== 200) { setText($("updated"), "Refresh failed: " + errorText(r)); return; }
      showDashboard();
      render(r.json);
    }).catch(function () {
      setText($("updated"), "Refresh failed: the service did not answer");
    }).finally(function () { inFlight = false; });
  }

  function start() {
    stop();
    if (document.hidden || !adminKey()) return;
    timer = setInterval(refresh, POLL_MS);
  }
  function stop() { if (timer !== null) { clearInterval(timer); timer = null; } }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) stop();
    else if (adminKey()) { refresh(); start(); }
  });

  function numberOrNull(input) {
    var v = input.value.trim();
    return v === "" ? null : Number(v);
  }

  function init() {
    $("signin-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var input = $("admin-key");
      sessionStorage.setItem(KEY, input.value.trim());
      sessionStorage.removeItem(KIND);
      input.value = "";
      setText($("signin-error"), "");
      refresh().then(function () {
        if (adminKey()) { start(); $("main").focus(); }
      });
    });
    $("signout").addEventListener("click", function () {
      var done = function () {
        forget();
        showSignin("Signed out.");
        $("admin-key").focus();
      };
      // A single sign-on session is revoked on the server too; an admin key stays valid.
      if (isSession()) api("DELETE", "/v1/admin/session").then(done, done);
      else done();
    });

    $("team-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var budgets = {};
      var d = numberOrNull($("team-daily"));
      var m = numberOrNull($("team-monthly"));
      if (d !== null) budgets.daily_usd = d;
      if (m !== null) budgets.monthly_usd = m;
      var name = $("team-name").value.trim();
      api("POST", "/v1/admin/teams", { name: name, budgets: budgets }).then(function (r) {
        if (handleAuth(r)) return;
        if (r.status !== 201) { setText($("team-status"), "Not created: " + errorText(r)); return; }
        setText($("team-status"), "Created team " + r.json.name + ".");
        $("team-form").reset();
        return refresh();
      });
    });

    $("key-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var body = { user: $("key-user").value.trim() };
      if ($("key-team").value) body.team = $("key-team").value;
      if ($("key-name").value.trim()) body.name = $("key-name").value.trim();
      $("key-result").hidden = true;
      $("key-value").value = "";
      api("POST", "/v1/admin/keys", body).then(function (r) {
        if (handleAuth(r)) return;
        if (r.status !== 201) { setText($("key-status"), "Not minted: " + errorText(r)); return; }
        $("key-value").value = r.json.key;
        $("key-result").hidden = false;
        setText($("key-status"), "Key minted for " + r.json.user + ". Copy it now: it is not shown again.");
        $("key-value").focus();
        $("key-value").select();
        return refresh();
      });
    });
    $("key-copy").addEventListener("click", function () {
      var value = $("key-value").value;
      var done = function () { setText($("key-status"), "Key copied to the clipboard."); };
      var fallback = function () {
        $("key-value").select();
        var ok = false;
        try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
        if (ok) done(); else setText($("key-status"), "Copy failed: select the key and copy it.");
      };
      if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(value).then(done, fallback);
      else fallback();
    });

    $("budget-team").addEventListener("change", function () {
      var team = lastTeams.find(function (t) { return t.id === $("budget-team").value; });
      $("budget-daily").value = team && team.daily_limit_usd !== null ? String(team.daily_limit_usd) : "";
      $("budget-monthly").value = team && team.monthly_limit_usd !== null ? String(team.monthly_limit_usd) : "";
    });
    $("budget-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var id = $("budget-team").value;
      if (!id) { setText($("budget-status"), "Choose a team first."); return; }
      var body = { budgets: { daily_usd: numberOrNull($("budget-daily")), monthly_usd: numberOrNull($("budget-monthly")) } };
      api("PATCH", "/v1/admin/teams/" + encodeURIComponent(id), body).then(function (r) {
        if (handleAuth(r)) return;
        if (r.status !== 200) { setText($("budget-status"), "Not saved: " + errorText(r)); return; }
        setText($("budget-status"), "Saved the budget of " + r.json.name + ".");
        return refresh();
      });
    });

    var message = takeFragment();
    if (adminKey()) refresh().then(start);
    else showSignin(message);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
`;
