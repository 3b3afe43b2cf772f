// Entry point: learn what the server is, restore or ask for a session, then start the chat screen.

import { Api, serverInfo, ssoSession } from "./api.js";
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

// A session per tab: this tab's own (sessionStorage) comes first, so signing in as someone else in another tab
// changes nothing here, even on reload; a new tab starts as whoever signed in last (localStorage). "Switch user"
// leaves this tab's session without revoking it, so two people can use two tabs of one browser.
const TAB_SESSION = "chatd.session";

/** This tab's session; null once the tab switched user (nobody yet); undefined if the tab never had one. */
function tabSession() {
  try {
    const raw = sessionStorage.getItem(TAB_SESSION);
    return raw === null ? undefined : JSON.parse(raw);
  } catch {
    return undefined;
  }
}

function same(a, b) {
  return !!a && !!b && a.mode === b.mode && a.user === b.user && a.token === b.token;
}

function keepSession(session) {
  const mine = tabSession();
  try {
    sessionStorage.setItem(TAB_SESSION, JSON.stringify(session)); // null: this tab has nobody until sign-in
  } catch {
    /* storage disabled: the session lasts as long as the page */
  }
  // Signing out forgets the browser-wide session only when it is this tab's: another tab's user stays signed in.
  if (session) save("session", session);
  else if (!mine || same(load("session", null), mine)) save("session", null);
}

/** A stored session the server still accepts, or null. */
async function restoreSession(info) {
  const mine = tabSession();
  const session = mine === undefined ? load("session", null) : mine;
  if (!session || session.mode !== info.auth_mode) return null;
  try {
    const me = await new Api(session).me();
    if (me?.name) session.user = me.name; // an admin may have renamed us meanwhile: we are the same id
    return session;
  } catch (err) {
    // Only a definite "no" forgets the session; a network blip must not sign the user out.
    return err.code === "unauthorized" ? null : session;
  }
}

/** Back from the single sign-on provider (/#sso): the session the server left for this browser, or the refusal
 * in words. Undefined when this load is not such a return. */
async function ssoReturn() {
  if (location.hash !== "#sso") return undefined;
  history.replaceState(null, "", location.pathname + location.search); // a reload must not pick it up again
  try {
    const res = await ssoSession();
    return { session: { mode: "token", user: res.user.name, token: res.token } };
  } catch (err) {
    const why = err.code === "network" ? "Cannot reach the server. Check your connection and try again." : err.message;
    return { notice: `Single sign-on failed: ${why}` };
  }
}

async function main() {
  const info = await fetchInfo();
  const back = await ssoReturn();
  const notice = sessionStorage.getItem("chatd.notice") ?? back?.notice ?? "";
  sessionStorage.removeItem("chatd.notice");
  let session = back?.session ?? (notice ? null : await restoreSession(info));
  if (!session) session = await signIn(info, notice);
  keepSession(session);

  $("signin").hidden = true;
  $("app").hidden = false;
  document.body.dataset.view = "chat";
  const app = new ChatApp({
    session,
    info,
    onSignOut(message) {
      // Start from a clean page rather than unwinding every piece of state by hand.
      keepSession(null);
      if (message) sessionStorage.setItem("chatd.notice", message);
      location.reload();
    },
    onSwitchUser() {
      // This tab forgets its session, which stays valid for the other tabs using it.
      try {
        sessionStorage.setItem(TAB_SESSION, "null");
      } catch {
        save("session", null); // without sessionStorage, switching can only forget the shared session
      }
      location.reload();
    },
  });
  window.chatd = app; // a handle for debugging from the console (and for the browser tests)
  await app.start();
  document.body.dataset.ready = "true";
}

main();
