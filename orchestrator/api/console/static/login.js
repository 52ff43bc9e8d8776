"use strict";
// The login form: check the token with the server (which sets the session cookie for the
// pages), keep it in this tab's sessionStorage for the JSON calls, go to the console.
document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = document.getElementById("token").value;
  const error = document.getElementById("login-error");
  const response = await fetch("/console/login", {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({token}),
  });
  if (response.ok) {
    sessionStorage.setItem("orchestrator.token", token);
    location.href = "/console/#/executions";
  } else {
    error.textContent = "That is not the API token.";
    error.hidden = false;
  }
});
