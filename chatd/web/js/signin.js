// The sign-in screen. Token mode: log in or register with a password. Open mode: just a name.
// Resolves with a session {mode, user, token?} the server has accepted.

import { Api, authenticate } from "./api.js";

const $ = (id) => document.getElementById(id);

const USER_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;

export function signIn(info, notice = "") {
  const open = info.auth_mode === "open";
  const form = $("signin-form");
  const name = $("signin-name");
  const password = $("signin-password");
  const error = $("signin-error");

  $("signin-title").textContent = open ? "Join the chat" : "Sign in to chatd";
  $("signin-hint").textContent = open
    ? "This server is in open mode: pick a name and you are in."
    : info.registration_mode === "invite"
      ? "Log in with your account, or register a new one with an invite code."
      : "Log in with your account, or register a new one.";
  $("password-row").hidden = open;
  if (info.password_min) {
    $("signin-password-rules").textContent = `A new account's password has at least ${info.password_min} characters.`;
  }
  const fields = { username: name, password, invite: $("signin-invite") };
  for (const input of Object.values(fields)) input.addEventListener("input", () => input.removeAttribute("aria-invalid"));
  // Say what is wrong, and mark the field it is about (the server names it in an "invalid" answer).
  const fail = (message, input) => {
    error.textContent = message;
    for (const other of Object.values(fields)) other.removeAttribute("aria-invalid");
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  };
  password.required = !open;
  $("login-button").textContent = open ? "Enter chat" : "Log in";
  $("register-button").hidden = open || !info.registration;
  const byInvite = !open && info.registration_mode === "invite";
  $("invite-row").hidden = !byInvite;
  // Single sign-on: a button that leaves for the provider, which sends the browser back to /#sso (see main.js).
  const sso = !open && info.sso;
  $("sso-row").hidden = !sso;
  if (sso) {
    $("sso-button").textContent = info.sso;
    $("sso-button").classList.toggle("secondary", open || info.password_sign_in !== false); // the only way in: primary
    $("sso-button").onclick = () => location.assign("/api/auth/oidc/start");
  }
  const passwords = open || info.password_sign_in !== false;
  if (!passwords) {
    for (const id of ["name-row", "password-row", "invite-row", "password-actions"]) $(id).hidden = true;
    $("signin-hint").textContent = "This server signs you in with your organisation's account.";
  }
  error.textContent = notice;
  document.body.dataset.view = "signin";
  $("signin").hidden = false;
  $("app").hidden = true;
  (passwords ? name : $("sso-button")).focus();

  return new Promise((resolve) => {
    async function submit(e) {
      e.preventDefault();
      error.textContent = "";
      const user = name.value.trim();
      if (!USER_RE.test(user)) {
        fail("Names are 1-32 letters, digits, '_', '.' or '-', starting with a letter or digit.", name);
        return;
      }
      if (!open && !password.value) {
        fail("Enter your password.", password);
        return;
      }
      const kind = e.submitter?.value === "register" ? "register" : "login";
      form.setAttribute("aria-busy", "true");
      try {
        let session;
        if (open) {
          session = { mode: "open", user };
          await new Api(session).me(); // the server has the last word on what a valid name is
        } else {
          const res = await authenticate(kind, user, password.value, $("signin-invite").value.trim());
          session = { mode: "token", user: res.user.name, token: res.token };
        }
        form.removeEventListener("submit", submit);
        password.value = "";
        resolve(session);
      } catch (err) {
        fail(explain(err, kind), fields[err.field]);
      } finally {
        form.removeAttribute("aria-busy");
      }
    }
    form.addEventListener("submit", submit);
  });
}

function explain(err, kind) {
  if (err.code === "conflict") return "That name is taken. Log in instead, or pick another name.";
  if (err.code === "unauthorized") return kind === "register" ? err.message : "Wrong name or password.";
  if (err.code === "forbidden" && kind === "register") {
    return /invite/.test(err.message) ? err.message : "Registration is closed on this server.";
  }
  if (err.code === "network") return "Cannot reach the server. Check your connection and try again.";
  if (err.code === "invalid" && err.message) return err.message[0].toUpperCase() + err.message.slice(1) + ".";
  return err.message || "Something went wrong.";
}
