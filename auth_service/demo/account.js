// auth_service example SPA: the account screens (profile, email verification, password
// reset, deletion).
//
// - Links in emails land on this page when the API's FRONTEND_URL is the page's folder
//   (e.g. https://app.example.com/demo): /reset-password?token=... and
//   /verify-email#token=... (or ?status=... when there is nothing left to do). The page
//   takes the token out of the address bar at once, so it stays out of the history.
// - Opening a link changes nothing: the user presses a button (mail scanners open
//   links too, docs/adr/0401).
// - Forgot password answers the same whether or not the account exists: the page
//   shows the server's message and never guesses.
"use strict";

let linkToken = null;  // the token of the email link this page was opened with

const VERIFY_STATUS = {
  already_verified: ["Your email address was already verified.", "success"],
  expired: ["This link has expired; log in and ask for a new one.", "error"],
  invalid: ["This link is invalid or has already been used.", "error"],
};

// A link from an email: show its screen; false for any other address.
function openLinkFromEmail() {
  const query = new URLSearchParams(location.search);
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (ROUTE !== "reset-password" && ROUTE !== "verify-email") return false;
  linkToken = query.get("token") ?? fragment.get("token");
  history.replaceState(null, "", location.pathname);  // the token leaves the address bar
  if (ROUTE === "reset-password") {
    show("#reset-screen");
    showStatus(linkToken ? "" : "This link has no token; ask for a new one.");
  } else if (linkToken) {
    show("#verify-screen");
    showStatus("");
  } else {
    const [message, kind] = VERIFY_STATUS[query.get("status")] ?? VERIFY_STATUS.invalid;
    show("#verify-screen");
    $("#verify-email").hidden = true;
    showStatus(message, kind);
  }
  return true;
}

// --- signed out: forgot and reset password, verify an email address ------------------

$("#show-forgot").addEventListener("click", () => {
  $("#forgot-form").reset();
  $("#forgot-form [name=email]").value = $("#login-form [name=email]").value;
  show("#forgot-screen");
  showStatus("");
});

$("#forgot-form").addEventListener("submit", async (event) => {
  const result = await call("/auth/forgot-password", { method: "POST", body: form(event), token: null });
  if (!result.ok) return showStatus(errorText(result, "The email could not be sent."));
  showStatus(result.data.message, "success");
});

$("#reset-form").addEventListener("submit", async (event) => {
  const { new_password } = form(event);
  const result = await call("/auth/reset-password", {
    method: "POST", body: { token: linkToken, new_password }, token: null,
  });
  if (!result.ok) return showStatus(errorText(result, "The password could not be set."));
  linkToken = null;
  event.target.reset();
  // Every session of the account ended: this page's too, if it had one.
  history.replaceState(null, "", ROOT);
  signedOut(result.data.message, "success");
});

$("#verify-email").addEventListener("click", async () => {
  const result = await call("/auth/verify-email", { method: "POST", body: { token: linkToken }, token: null });
  if (!result.ok) return showStatus(errorText(result, "The email address could not be verified."));
  linkToken = null;
  $("#verify-email").hidden = true;
  showStatus(result.data.message, "success");
});

// --- signed in: profile, verification email, deletion --------------------------------

async function loadProfile() {
  const { ok, data } = await api("/auth/me");
  if (!ok) return;
  $("#me-name").textContent = data.full_name || data.username;
  // email_verified: a boolean, or (older servers) the time of verification or null.
  const rows = { Email: data.email, Username: data.username,
                 "Email verified": data.email_verified ? "yes" : "no",
                 "Two-step verification": data.mfa_enabled ? "on" : "off",
                 "Member since": new Date(data.created_at).toLocaleDateString() };
  $("#me").replaceChildren(...Object.entries(rows).flatMap(([key, value]) => {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = key;
    dd.textContent = value;  // textContent, never innerHTML: user data is not markup
    return [dt, dd];
  }));
  $("#unverified").hidden = Boolean(data.email_verified);
  const profile = $("#profile-form");
  profile.full_name.value = data.full_name ?? "";
  profile.username.value = data.username;
  // Provider-only accounts have no password to change or to confirm a deletion with.
  $("#password-form").hidden = !data.has_password;
  $("#delete-password").hidden = !data.has_password;
  $("#delete-form").password.required = data.has_password;
}

$("#resend-verification").addEventListener("click", async () => {
  const result = await api("/auth/verify-email/resend", { method: "POST" });
  if (result.status === 409) loadProfile();  // verified meanwhile (another tab)
  if (!result.ok) return showStatus(errorText(result, "The email could not be sent."));
  showStatus(result.data.message, "success");
});

$("#profile-form").addEventListener("submit", async (event) => {
  const result = await api("/users/me", { method: "PATCH", body: form(event) });
  if (!result.ok) return showStatus(errorText(result, "The profile could not be saved."));
  showStatus("Profile saved.", "success");
  loadProfile();
});

$("#password-form").addEventListener("submit", async (event) => {
  const result = await api("/auth/change-password", { method: "PUT", body: form(event) });
  if (!result.ok) return showStatus(errorText(result, "Password change failed."));
  event.target.reset();
  keepTokens(result.data);  // a fresh pair for this session; the others are gone
  showStatus("Password changed; every other session was logged out.", "success");
  loadSessions();
});

$("#delete-form").addEventListener("submit", async (event) => {
  const { password } = form(event);
  if (!confirm("Delete your account and everything in it? This cannot be undone.")) return;
  const body = $("#delete-password").hidden ? {} : { password };
  const result = await api("/users/me", { method: "DELETE", body });
  if (!result.ok) return showStatus(errorText(result, "The account could not be deleted."));
  event.target.reset();
  // Its sessions are gone with it; the cookie left behind no longer refreshes.
  signedOut("Your account has been deleted.", "success");
});
