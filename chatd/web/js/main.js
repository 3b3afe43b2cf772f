// Entry point: learn what the server is, restore or ask for a session, then start the chat screen.

import { Api, serverInfo } from "./api.js";
import { ChatApp } from "./chat.js";
import { signIn } from "./signin.js";
import { load, save } from "./storage.js";

const $ = (id) => document.getElementById(id);

async function fetchInfo() {
  // The server may be restarting when the page loads: keep asking, politely.
  for (let delay = 500; ; delay = Math.min(delay * 2, 10_000)) {
    try {
      return await serverInfo();
    } catch {
      $("boot-status").textContent = "Cannot reach the chat server; retrying…";
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/** A stored session the server still accepts, or null. */
async function restoreSession(info) {
  const session = load("session", null);
  if (!session || session.mode !== info.auth_mode) return null;
  try {
    await new Api(session).me();
    return session;
  } catch (err) {
    // Only a definite "no" forgets the session; a network blip must not sign the user out.
    return err.code === "unauthorized" ? null : session;
  }
}

async function main() {
  const info = await fetchInfo();
  const notice = sessionStorage.getItem("chatd.notice") ?? "";
  sessionStorage.removeItem("chatd.notice");
  let session = notice ? null : await restoreSession(info);
  if (!session) session = await signIn(info, notice);
  save("session", session);

  $("signin").hidden = true;
  $("app").hidden = false;
  document.body.dataset.view = "chat";
  const app = new ChatApp({
    session,
    info,
    onSignOut(message) {
      // Start from a clean page rather than unwinding every piece of state by hand.
      save("session", null);
      if (message) sessionStorage.setItem("chatd.notice", message);
      location.reload();
    },
  });
  window.chatd = app; // a handle for debugging from the console (and for the browser tests)
  await app.start();
  document.body.dataset.ready = "true";
}

main();
