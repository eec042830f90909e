// auth_service example SPA: passkeys (WebAuthn).
//
// Every ceremony is two calls around the browser's own dialog: options from the API
// (with a challenge it keeps for 5 minutes, once), navigator.credentials.create() or
// .get() with them, then the credential as JSON back to the API. The JSON on both sides
// is WebAuthn's (PublicKeyCredential.parse*OptionsFromJSON and toJSON()).
// - "Sign in with a passkey": no email typed; the authenticator offers the passkeys it
//   holds for this site (discoverable credentials).
// - The login's second step and step-up (mfa.js's screens) can use a passkey instead of
//   a code.
// - The account screen lists the passkeys, adds one and removes one.
"use strict";

// An assertion of one of this site's passkeys, or null (cancelled, none, not allowed).
async function passkeyAssertion() {
  const options = await call("/auth/passkeys/login/options", { method: "POST", body: {}, token: null });
  if (!options.ok) {
    showStatus(errorText(options, "Passkeys are not available."));
    return null;
  }
  try {
    const credential = await navigator.credentials.get({
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.data),
    });
    return credential.toJSON();
  } catch (error) {
    showStatus(`No passkey was used (${error.name}).`);
    return null;
  }
}

$("#passkey-login").addEventListener("click", async () => {
  const assertion = await passkeyAssertion();
  if (!assertion) return;
  const result = await call("/auth/passkeys/login", { method: "POST", body: assertion, token: null });
  if (!result.ok) return showStatus(errorText(result, "That passkey did not work."));
  loggedIn(result);
});

// The login's second step (mfa.js keeps the pending mfa token in secondStep).
$("#second-step-passkey").addEventListener("click", async () => {
  const assertion = await passkeyAssertion();
  if (!assertion) return;
  await finishSecondStep({ passkey: assertion });
});

$("#step-up-passkey").addEventListener("click", async () => {
  const assertion = await passkeyAssertion();
  if (!assertion) return;
  const result = await call("/auth/mfa/passkey", { method: "POST", body: assertion });
  if (!result.ok) {
    $("#step-up-error").textContent = errorText(result, "That passkey did not work.");
    return;
  }
  keepTokens(result.data);  // a fresh pair for the same session, now at aal2
  closeStepUp(true);
});

// --- the account's passkeys ----------------------------------------------------------

async function loadPasskeys() {
  const { ok, data } = await api("/users/me/passkeys");
  if (!ok) return;
  $("#passkeys").replaceChildren(...data.passkeys.map((passkey) => {
    const item = document.createElement("li");
    const used = passkey.last_used_at ? new Date(passkey.last_used_at).toLocaleString() : "never";
    item.textContent = `${passkey.name}, added ${new Date(passkey.created_at).toLocaleDateString()}, last used ${used}`;
    const button = document.createElement("button");
    button.className = "link";
    button.textContent = "Remove";
    button.onclick = () => removePasskey(passkey.id);
    item.append(" ", button);
    return item;
  }));
}

async function removePasskey(passkeyId) {
  const result = await api(`/users/me/passkeys/${encodeURIComponent(passkeyId)}`, { method: "DELETE" });
  if (!result.ok) return showStatus(errorText(result, "The passkey could not be removed."));
  showStatus("The passkey was removed.", "success");
  loadAccount();
}

$("#add-passkey-form").addEventListener("submit", async (event) => {
  const { name } = form(event);
  const options = await api("/auth/passkeys/register/options", {
    method: "POST", body: name ? { name } : {},
  });
  if (!options.ok) return showStatus(errorText(options, "Could not start adding a passkey."));
  let credential;
  try {
    credential = await navigator.credentials.create({
      publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options.data),
    });
  } catch (error) {
    return showStatus(`No passkey was created (${error.name}).`);
  }
  const result = await api("/auth/passkeys/register", { method: "POST", body: credential.toJSON() });
  if (!result.ok) return showStatus(errorText(result, "The passkey could not be added."));
  // A fresh aal2 pair for this session (the first passkey ends every other session).
  keepTokens(result.data);
  event.target.reset();
  showStatus(`The passkey "${result.data.name}" was added.`, "success");
  loadAccount();
});
