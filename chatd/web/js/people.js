// People beyond the rooms on screen: display names (shown beside names, by id), the user directory that the People
// box and the Members panel search, and the account dialog where a person sets their display name and changes their
// password. Everything is keyed by the user's id: names change (user frames), ids do not.

import { h } from "./dom.js";

const $ = (id) => document.getElementById(id);
const LOOKUP_DELAY_MS = 50; // batch the ids of a page of history into one GET /api/users?ids=
const LOOKUP_MAX = 200; // the server's bound on ids per request
const SEARCH_DELAY_MS = 200;
const SUGGEST_MAX = 20;

export class People {
  constructor(app) {
    this.app = app;
    this.displays = new Map(); // uid -> display name ("" when none), as the directory or a user frame said
    this.wanted = new Set(); // uids to look up in the next batch
    this.lookupTimer = null;
    this.searchTimers = new Map(); // input id -> timer
  }

  bind() {
    this.suggestFrom("people-name", "people-known");
    this.suggestFrom("invite-name", "invite-known");
    $("account-open").addEventListener("click", () => this.openAccount());
    $("display-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.saveDisplayName($("display-name").value);
    });
    $("password-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.changePassword($("old-password").value, $("new-password").value);
    });
    $("account-close").addEventListener("click", () => $("account-dialog").close());
  }

  /** Whom we are, from GET /api/me: our own display name, and the admin link for admins. */
  knowMe(me) {
    if (me?.id === undefined) return;
    this.displays.set(me.id, me.display_name ?? "");
    $("admin-link").hidden = !me.admin;
  }

  // --- display names --------------------------------------------------------------------------------------

  /** The display name of ``uid``, "" when none or not known yet (then it is looked up, and the page redrawn). */
  displayOf(uid) {
    if (!uid) return "";
    const known = this.displays.get(uid);
    if (known !== undefined) return known;
    this.want(uid);
    return "";
  }

  want(uid) {
    this.wanted.add(uid);
    if (!this.lookupTimer) this.lookupTimer = setTimeout(() => this.lookup(), LOOKUP_DELAY_MS);
  }

  async lookup() {
    this.lookupTimer = null;
    const ids = [...this.wanted].slice(0, LOOKUP_MAX);
    ids.forEach((uid) => this.wanted.delete(uid));
    if (this.wanted.size) this.lookupTimer = setTimeout(() => this.lookup(), LOOKUP_DELAY_MS);
    if (!ids.length) return;
    for (const uid of ids) this.displays.set(uid, ""); // asked once: a deleted user stays without one
    let users;
    try {
      users = (await this.app.api.call("GET", "/api/users", { params: { ids: ids.join(",") } })).users;
    } catch {
      ids.forEach((uid) => this.displays.delete(uid)); // ask again next time they are drawn
      return;
    }
    let changed = false;
    for (const u of users) {
      if (u.display_name) changed = true;
      this.displays.set(u.uid, u.display_name);
    }
    if (changed) this.app.renderActive();
  }

  /** A `user` frame: a rename, or a display name set (``display_name`` present). */
  onUser(f) {
    if (f.display_name === undefined) return false;
    this.displays.set(f.uid, f.display_name);
    if (f.uid === this.app.uid) $("display-name").value = f.display_name;
    return true;
  }

  // --- the directory --------------------------------------------------------------------------------------

  /** Up to ``limit`` users whose name or display name starts with ``q``, from GET /api/users. */
  async search(q, limit = SUGGEST_MAX) {
    const page = await this.app.api.call("GET", "/api/users", { params: { q, limit } });
    for (const u of page.users) this.displays.set(u.uid, u.display_name);
    return page.users;
  }

  /** Offer directory matches for what is typed into ``inputId``, as ``listId``'s options (name, display name). */
  suggestFrom(inputId, listId) {
    const input = $(inputId);
    const fill = async () => {
      const q = input.value.trim();
      let users;
      try {
        users = await this.search(q);
      } catch {
        return; // suggestions are a help; typing a name still works
      }
      if (input.value.trim() !== q) return; // typed on meanwhile: a newer search answers
      $(listId).replaceChildren(...users
        .filter((u) => u.uid !== this.app.uid)
        .map((u) => h("option", { value: u.name, label: u.display_name ? `${u.name} · ${u.display_name}` : u.name })));
    };
    input.addEventListener("focus", fill);
    input.addEventListener("input", () => {
      clearTimeout(this.searchTimers.get(inputId));
      this.searchTimers.set(inputId, setTimeout(fill, SEARCH_DELAY_MS));
    });
  }

  // --- the account dialog ---------------------------------------------------------------------------------

  openAccount() {
    $("display-name").value = this.displays.get(this.app.uid) ?? "";
    $("display-status").textContent = "";
    $("password-status").textContent = "";
    $("password-form").reset();
    // Open mode has no passwords, nor has a server that turned password sign-in off (single sign-on only).
    $("password-form").hidden = !this.app.session.token || this.app.info.password_sign_in === false;
    $("account-dialog").showModal();
    $("display-name").focus();
  }

  async saveDisplayName(value) {
    const status = $("display-status");
    status.textContent = "";
    status.classList.remove("error");
    try {
      const me = await this.app.api.call("PATCH", "/api/me", { json: { display_name: value } });
      this.displays.set(me.id, me.display_name);
      $("display-name").value = me.display_name;
      status.textContent = me.display_name ? `Saved: others see you as ${me.display_name}.` : "Display name removed.";
      this.app.renderActive();
    } catch (err) {
      status.classList.add("error");
      status.textContent = err.message;
    }
  }

  async changePassword(oldPassword, newPassword) {
    const status = $("password-status");
    status.textContent = "";
    status.classList.remove("error");
    try {
      const done = await this.app.api.call("POST", "/api/me/password", {
        json: { old_password: oldPassword, new_password: newPassword },
      });
      $("password-form").reset();
      const others = done.revoked === 1 ? "1 other session was" : `${done.revoked} other sessions were`;
      status.textContent = `Password changed. ${others} signed out; this one stays signed in.`;
    } catch (err) {
      status.classList.add("error");
      status.textContent = err.field === "old_password" ? "Your current password is not right." : err.message;
    }
  }
}
