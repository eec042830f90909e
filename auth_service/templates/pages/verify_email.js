"use strict";
// The token stays on this origin: it is read from the address bar and POSTed back to
// the very path the link opened, and only when a person presses the button.
document.getElementById("verify").addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = event.target.querySelector("button");
  const result = document.getElementById("result");
  const token = new URLSearchParams(location.search).get("token") || "";
  button.disabled = true;
  let message = "The server could not be reached; try again.";
  try {
    const response = await fetch(location.pathname, {
      method: "POST", credentials: "omit", cache: "no-store",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify({ token }),
    });
    const data = await response.json().catch(() => null);
    message = (data && data.message) || `The server answered ${response.status}.`;
    if (response.ok) {
      event.target.hidden = true;
    }
  } catch (error) {
    // message already says what happened
  }
  button.disabled = false;
  result.textContent = message;
});
