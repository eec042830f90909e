// auth_service example SPA: how a browser app should hold and refresh its tokens.
// This file is the core (HTTP calls, the session, screens, login); mfa.js and
// account.js add the two-step verification and account screens on top of it.
//
// - The access token lives in a variable, never in localStorage/sessionStorage,
//   where any injected script could read it. A reload forgets it on purpose.
// - The refresh token is the HttpOnly cookie the API sets: no script can read it,
//   and it is only sent to /auth (its path). `credentials: "include"` makes the
//   browser send and store it, also when the API is on another origin.
// - Requests the cookie authenticates (refresh, logout) repeat the CSRF value in the
//   X-CSRF-TOKEN header. Login and refresh return it as `csrf_token`; after a reload
//   or a Google/GitHub redirect, GET /auth/csrf returns it for the current cookie.
// - User data goes into the page with textContent, never innerHTML.
"use strict";

const API = document.querySelector('meta[name="auth-api"]').content.replace(/\/$/, "");
const SAME_ORIGIN = !API || new URL(API).origin === location.origin;
// The page's folder (/demo/) and the route below it: links from emails land on
// /demo/reset-password and /demo/verify-email (FRONTEND_URL=https://host/demo).
const ROOT = location.pathname.replace(/[^/]*$/, "");
const ROUTE = location.pathname.slice(ROOT.length);

let accessToken = null;   // Bearer token for API calls (memory only)
let csrfToken = null;     // X-CSRF-TOKEN value of the session's refresh cookie
let refreshTimer = null;  // the silent refresh scheduled before expiry
let refreshing = null;    // the refresh in flight: every caller in this tab shares it
let refreshCount = 0;
let retrying = false;     // the status line says the server is unreachable

const $ = (selector) => document.querySelector(selector);
const PROVIDER_LABELS = { google: "Google", github: "GitHub" };
const SCREENS = ["#login-screen", "#second-step-screen", "#forgot-screen", "#reset-screen",
                 "#verify-screen", "#app-screen"];

// --- HTTP ----------------------------------------------------------------------------

// One HTTP call; never throws: returns {status, ok, data, retryAfter}, status 0 when
// there was no answer the page may read (network down, or this origin not allowed).
// `csrf`: true for the session's CSRF value, or another value (the login's second step).
async function call(path, { method = "GET", body, token = accessToken, csrf = false } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";  // never a form body
  if (token) headers.Authorization = `Bearer ${token}`;
  const csrfValue = csrf === true ? csrfToken : csrf;
  if (csrfValue) headers["X-CSRF-TOKEN"] = csrfValue;
  let response;
  try {
    response = await fetch(API + path, {
      method, headers, credentials: "include",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    return { status: 0, ok: false, retryAfter: 0,
             data: { message: "The server cannot be reached from this page." } };
  }
  // A 204 has no body (and may or may not say application/json): never parse one.
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  return { status: response.status, ok: response.ok, data,
           retryAfter: Number(response.headers.get("Retry-After")) || 0 };
}

// A call the refresh cookie authenticates. A 403 csrf_failed means our CSRF value
// belongs to an older session (a login in another tab): fetch the current one, retry once.
async function cookieCall(path, options) {
  const result = await call(path, { ...options, csrf: true });
  if (result.status === 403 && result.data?.error === "csrf_failed" && (await loadCsrf()).ok) {
    return call(path, { ...options, csrf: true });
  }
  return result;
}

// An API call with the access token. A 401 (say the token expired while the tab
// slept and its timer was late) gets one silent refresh and one retry; never a loop.
// A 403 mfa_required (a sensitive change on an account with two-step verification)
// asks for a code (mfa.js), then retries once.
async function api(path, options = {}) {
  let result = await call(path, options);
  if (result.status === 401 && accessToken && await refresh()) result = await call(path, options);
  if (result.status === 403 && result.data?.error === "mfa_required" && await stepUp()) {
    result = await call(path, options);
  }
  return result;
}

// The error text of a failed call, with the per-field messages of a validation error.
function errorText(result, fallback) {
  const fields = Object.values(result.data?.errors?.json ?? {}).flat().join(" ");
  return `${result.data?.message ?? fallback} ${fields}`.trim();
}

// --- the session ---------------------------------------------------------------------

// The CSRF value of the current cookie; 401 when there is no (valid) cookie.
async function loadCsrf() {
  const result = await call("/auth/csrf", { token: null });
  if (result.ok) csrfToken = result.data.csrf_token;
  return result;
}

// Exchange the refresh cookie for a new access token. Serialised per tab: concurrent
// callers share one request. Two *tabs* refreshing at once send the same cookie; the
// server answers both with the same new token (its grace window), so both stay in.
function refresh() {
  refreshing ??= doRefresh().finally(() => { refreshing = null; });
  return refreshing;
}

async function doRefresh() {
  let result = csrfToken ? null : await loadCsrf();  // after a reload or a redirect
  if (csrfToken) result = await cookieCall("/auth/refresh", { method: "POST", token: null });
  if (result.ok) return signedIn(result.data);
  if (result.status === 0 || result.status === 429 || result.status >= 500) {
    // Unreachable, rate limited or down: keep the session and try again later.
    if (!accessToken) signedOut();
    scheduleRefresh(result.retryAfter || 10);
    retrying = true;
    showStatus(`${result.data?.message ?? "The server is unavailable."} Retrying…`);
    return false;
  }
  // 401: no cookie, logged out in another tab, session revoked or expired. Back to the
  // login screen; the user logs in again (no retry, so no loop).
  return signedOut(accessToken ? "Your session has ended. Please log in again." : "");
}

function scheduleRefresh(seconds) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, seconds * 1000);
}

// Keep a new token pair of this session (a refresh, a step-up, a password change).
function keepTokens(tokens) {
  accessToken = tokens.access_token;
  if (tokens.csrf_token) csrfToken = tokens.csrf_token;
  // Refresh a little before expiry: at 80% of the lifetime, at most a minute early.
  const lifetime = tokens.expires_in;
  scheduleRefresh(Math.max(1, lifetime - Math.min(60, lifetime / 5)));
  $("#token-expiry").textContent = new Date(Date.now() + lifetime * 1000).toLocaleTimeString();
}

function signedIn(tokens) {
  keepTokens(tokens);
  if (retrying) showStatus("");
  retrying = false;
  if (!$("#app-screen").hidden) {  // a silent refresh: nothing else changes on screen
    $("#refresh-count").textContent = ++refreshCount;
    return true;
  }
  showStatus("");
  show("#app-screen");
  loadAccount();
  return true;
}

function signedOut(message = "", kind = "info") {
  accessToken = csrfToken = null;
  clearTimeout(refreshTimer);
  refreshCount = 0;
  $("#refresh-count").textContent = "0";
  show("#login-screen");
  showStatus(message, kind);
  loadProviders();
  return false;
}

// Everything the signed-in screen shows; each part reloads itself after a change.
function loadAccount() {
  loadProfile();
  loadSessions();
  loadFactors();
  loadPasskeys();
}

// --- screens and messages ------------------------------------------------------------

function show(screen) {
  for (const id of SCREENS) $(id).hidden = id !== screen;
}

// One status line for the whole page. `kind` colours it: "error" (red), "success"
// (green) or "info" (neutral), so a user tells a failure from a confirmation at a glance.
function showStatus(message, kind = "error") {
  const status = $("#status");
  status.textContent = message;
  status.className = message ? kind : "";
}

function form(event) {
  event.preventDefault();
  return Object.fromEntries(new FormData(event.target));
}

// Buttons that lead back to the login screen (cancel, continue) from any other screen.
for (const button of document.querySelectorAll("[data-back-to-login]")) {
  button.addEventListener("click", () => {
    secondStep = null;  // an abandoned second step (mfa.js)
    history.replaceState(null, "", ROOT);
    refresh();  // signed in meanwhile (a verified email in an open session)? else the login
  });
}

// --- signed out ----------------------------------------------------------------------

async function loadProviders() {
  const result = await call("/auth/providers", { token: null });
  const box = $("#providers");
  box.replaceChildren();
  // Where the provider login comes back to: this page (on the server's OAuth
  // allow-list: /demo is; another origin must be in OAUTH_REDIRECT_ALLOWLIST).
  const back = SAME_ORIGIN ? ROOT : location.origin + ROOT;
  for (const provider of result.data?.providers ?? []) {
    const link = document.createElement("a");
    link.className = `provider ${provider.name}`;
    link.href = `${API}${provider.login_url}?next=${encodeURIComponent(back)}`;
    link.textContent = `Sign in with ${PROVIDER_LABELS[provider.name] ?? provider.name}`;
    box.append(link);
  }
}

// A login's answer: a token pair, or (two-step verification on) the second step.
function loggedIn(result) {
  if (!result.ok) return showStatus(errorText(result, "Login failed."));
  if (result.data.mfa_required) return askSecondStep(result.data);
  return signedIn(result.data);
}

$("#login-form").addEventListener("submit", async (event) => {
  const { email, password } = form(event);
  loggedIn(await call("/auth/login", { method: "POST", body: { email, password }, token: null }));
});

$("#signup-form").addEventListener("submit", async (event) => {
  const fields = form(event);
  const result = await call("/auth/signup", { method: "POST", body: fields, token: null });
  if (!result.ok) return showStatus(errorText(result, "Signup failed."));
  loggedIn(await call("/auth/login", { method: "POST", token: null,
                                       body: { email: fields.email, password: fields.password } }));
});

// --- signed in -----------------------------------------------------------------------

async function loadSessions() {
  const { ok, data } = await api("/auth/active-sessions");
  if (!ok) return;
  $("#sessions").replaceChildren(...data.map((session) => {
    const item = document.createElement("li");
    const client = (session.user_agent ?? "").match(/(Firefox|Edg|Chrome|Safari|curl)\/\d+/)?.[0];
    const when = new Date(session.last_used_at).toLocaleString();
    item.textContent = `${client ?? "Unknown client"} · ${session.ip_address ?? "?"} · last used ${when}`;
    if (session.current) {
      item.append(" (this browser)");
    } else {
      const button = document.createElement("button");
      button.className = "link";
      button.textContent = "Revoke";
      button.onclick = async () => {
        await api(`/auth/active-sessions/${encodeURIComponent(session.id)}`, { method: "DELETE" });
        loadSessions();
      };
      item.append(" ", button);
    }
    return item;
  }));
}

$("#logout").addEventListener("click", async () => {
  // The cookie names the session to end; the API also clears both cookies.
  const result = await cookieCall("/auth/logout", { method: "POST" });
  if (result.status === 401 && await refresh()) await cookieCall("/auth/logout", { method: "POST" });
  signedOut("Logged out.");
});

$("#logout-all").addEventListener("click", async () => {
  await api("/auth/logout-all", { method: "POST" });
  signedOut("Logged out of every session.");
});

$("#reload-sessions").addEventListener("click", loadSessions);

// The browser tests (and curious developers) can trigger a refresh from the console.
window.authDemo = { refresh };

// On load (first visit, reload, back from Google/GitHub, or a link from an email).
// Deferred scripts run in order before DOMContentLoaded: by then mfa.js and account.js
// have defined their screens.
document.addEventListener("DOMContentLoaded", async () => {
  if (openLinkFromEmail()) return;  // account.js: /reset-password, /verify-email
  // The cookie, if any, is the session. Without one, a sign-in may be half done: the
  // password (or Google/GitHub) was right and the second step is pending (mfa.js).
  if (!(await refresh())) await resumeSecondStep();
});
