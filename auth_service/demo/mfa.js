// auth_service example SPA: two-step verification (authenticator apps, TOTP).
//
// - Login: a right password (or Google/GitHub) on an account with a verified factor
//   answers `mfa_required` with a single-use, 5-minute mfa token instead of tokens.
//   POST /auth/login/mfa with a code finishes it. The page sends the token it got in
//   the login's answer; after a reload or a Google/GitHub redirect it holds none, and
//   the HttpOnly `mfa_token` cookie (path /auth/login/mfa) carries it instead, with
//   the CSRF value that GET /auth/login/mfa returns.
// - Step-up: changes that could lock the owner out (password, factors, deletion) need
//   a session that proved a code. Such a call answers 403 `mfa_required`; api() (app.js)
//   then asks for a code here, POSTs /auth/mfa/challenge and retries.
// - One input takes either a 6-digit code from the app or a recovery code.
"use strict";

let secondStep = null;  // the pending login: {token, csrf} (token null: it is in the cookie)
let enrolment = null;   // the factor being set up: {factor_id}

// {code} for six digits, else {recovery_code} (typed with or without dashes).
function codeBody(value) {
  const typed = value.replace(/\s+/g, "");
  return /^\d{6}$/.test(typed) ? { code: typed } : { recovery_code: typed };
}

// --- the login's second step ---------------------------------------------------------

function askSecondStep(pending) {
  secondStep = { token: pending.mfa_token ?? null, csrf: pending.csrf_token ?? null };
  show("#second-step-screen");
  showStatus("Your password was right. One more step.", "info");
  $("#second-step-form").reset();
  $("#second-step-form input").focus();
}

// A page that has just loaded: is a second step pending in the mfa cookie?
async function resumeSecondStep() {
  const result = await call("/auth/login/mfa", { token: null });
  if (result.ok) askSecondStep(result.data);
}

$("#second-step-form").addEventListener("submit", (event) => {
  finishSecondStep(codeBody(form(event).code));
});

// POST the second factor (a code, a recovery code or a passkey: passkeys.js).
async function finishSecondStep(body) {
  if (secondStep?.token) body.mfa_token = secondStep.token;
  const result = await call("/auth/login/mfa", {
    method: "POST", body, token: null, csrf: secondStep?.token ? false : secondStep?.csrf,
  });
  if (result.ok) {
    secondStep = null;
    $("#second-step-form").reset();
    return signedIn(result.data);
  }
  if (result.data?.error === "invalid_mfa_code" || result.status === 422 || result.status === 429) {
    return showStatus(errorText(result, "That code did not work."));  // try again
  }
  // The mfa token is used, expired or out of attempts: start the login again.
  secondStep = null;
  signedOut(errorText(result, "Please log in again."), "error");
}

// --- step-up -------------------------------------------------------------------------

let stepUpDone = null;  // resolves the stepUp() promise: true once a code was accepted

// Ask for a code and raise this session to aal2; false when the user cancels.
function stepUp() {
  $("#step-up-form").reset();
  $("#step-up-error").textContent = "";
  $("#step-up").showModal();
  return new Promise((resolve) => { stepUpDone = resolve; });
}

function closeStepUp(done) {
  $("#step-up").close();
  stepUpDone?.(done);
  stepUpDone = null;
}

$("#step-up-form").addEventListener("submit", async (event) => {
  const result = await api("/auth/mfa/challenge", { method: "POST", body: codeBody(form(event).code) });
  if (!result.ok) {
    $("#step-up-error").textContent = errorText(result, "That code did not work.");
    return;
  }
  keepTokens(result.data);  // a fresh pair for the same session, now at aal2
  closeStepUp(true);
});

$("#cancel-step-up").addEventListener("click", () => closeStepUp(false));
$("#step-up").addEventListener("cancel", () => closeStepUp(false));  // the Escape key

// --- factors and recovery codes ------------------------------------------------------

async function loadFactors() {
  const { ok, data } = await api("/auth/mfa/factors");
  if (!ok) return;
  const verified = data.factors.filter((factor) => factor.verified);
  $("#mfa-state").textContent = verified.length
    ? `On. ${data.recovery_codes_left} recovery codes left.`
    : "Off. Turn it on to ask for a code from your phone at every sign-in.";
  $("#factors").replaceChildren(...verified.map((factor) => {
    const item = document.createElement("li");
    const used = factor.last_used_at ? new Date(factor.last_used_at).toLocaleString() : "never";
    item.textContent = `Authenticator app, added ${new Date(factor.created_at).toLocaleDateString()}, last used ${used}`;
    const button = document.createElement("button");
    button.className = "link";
    button.textContent = "Remove";
    button.onclick = () => removeFactor(factor.id);
    item.append(" ", button);
    return item;
  }));
  $("#enrol-totp").textContent = verified.length ? "Add another authenticator app"
                                                 : "Set up an authenticator app";
  $("#new-recovery-codes").hidden = !verified.length;
}

async function removeFactor(factorId) {
  const result = await api(`/auth/mfa/factors/${encodeURIComponent(factorId)}`, { method: "DELETE" });
  if (!result.ok) return showStatus(errorText(result, "The factor could not be removed."));
  showStatus("The authenticator app was removed.", "success");
  loadFactors();
  loadProfile();
}

$("#enrol-totp").addEventListener("click", async () => {
  const result = await api("/auth/mfa/totp", { method: "POST" });
  if (!result.ok) return showStatus(errorText(result, "Could not start the setup."));
  enrolment = { factor_id: result.data.factor_id };
  showQrCode(result.data.qr_svg);
  $("#totp-secret").textContent = result.data.secret;
  $("#enrol-form").hidden = false;
  $("#enrol-totp").hidden = true;
  $("#enrol-form input").focus();
});

// The QR code is SVG markup made by the server from the otpauth URI. It is parsed
// into an inert document (DOMParser runs no script and loads nothing) and its <svg>
// moved into the page, once checked to hold nothing but drawing: no innerHTML, and
// nothing a script could hide in. (text/html, as the markup has no xmlns: the HTML
// parser puts a bare <svg> in the SVG namespace, an XML parser would not.)
const QR_ELEMENTS = new Set(["svg", "path", "rect", "g", "desc", "title"]);

function showQrCode(svgMarkup) {
  const svg = new DOMParser().parseFromString(svgMarkup, "text/html").body.firstElementChild;
  const box = $("#qr-code");
  const drawing = svg instanceof SVGSVGElement && [svg, ...svg.querySelectorAll("*")].every(
    (node) => QR_ELEMENTS.has(node.localName)
              && [...node.attributes].every((attribute) => !/^on|href$/i.test(attribute.name)));
  if (!drawing) {
    box.replaceChildren("The QR code cannot be shown; type the key instead.");
    return;
  }
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "QR code for your authenticator app");
  box.replaceChildren(document.adoptNode(svg));
}

$("#enrol-form").addEventListener("submit", async (event) => {
  const { code } = form(event);
  const result = await api("/auth/mfa/totp/verify", {
    method: "POST", body: { factor_id: enrolment?.factor_id, code: code.replace(/\s+/g, "") },
  });
  if (!result.ok) return showStatus(errorText(result, "That code did not work."));
  // A fresh pair at aal2 for this session; every other session has ended.
  keepTokens(result.data);
  endEnrolment();
  showRecoveryCodes(result.data.recovery_codes);
  showStatus("Two-step verification is on. Every other session was logged out.", "success");
  loadAccount();
});

function endEnrolment() {
  enrolment = null;
  $("#enrol-form").reset();
  $("#enrol-form").hidden = true;
  $("#enrol-totp").hidden = false;
  $("#qr-code").replaceChildren();
  $("#totp-secret").textContent = "";
}

$("#cancel-enrol").addEventListener("click", endEnrolment);

$("#new-recovery-codes").addEventListener("click", async () => {
  const result = await api("/auth/mfa/recovery-codes", { method: "POST" });
  if (!result.ok) return showStatus(errorText(result, "Could not make new recovery codes."));
  showRecoveryCodes(result.data.recovery_codes);
  showStatus("New recovery codes: the old ones no longer work.", "success");
  loadFactors();
});

function showRecoveryCodes(codes) {
  $("#recovery-code-list").replaceChildren(...codes.map((code) => {
    const item = document.createElement("li");
    item.textContent = code;
    return item;
  }));
  $("#recovery-codes").hidden = false;
}

// Once saved they leave the page: nothing keeps them after this.
$("#hide-recovery-codes").addEventListener("click", () => {
  $("#recovery-code-list").replaceChildren();
  $("#recovery-codes").hidden = true;
});
