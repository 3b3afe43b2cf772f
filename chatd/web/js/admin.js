// The admin page: what `chatd users`, `chatd rooms` and `chatd invites` do, over the same REST API any client has
// (/api/admin/...). Users are acted on by id, so a rename between loading the list and clicking changes nothing.
// It uses the chat page's session (this tab's, else the browser's); the server decides who is an admin.

import { Api } from "./api.js";
import { confirmInPage } from "./dialogs.js";
import { h } from "./dom.js";
import { load } from "./storage.js";

const $ = (id) => document.getElementById(id);
const PAGE = 50;
const SEARCH_DELAY_MS = 250;
const when = (ms) => new Date(ms).toLocaleString();

function session() {
  try {
    const mine = JSON.parse(sessionStorage.getItem("chatd.session") ?? "undefined");
    if (mine !== undefined) return mine;
  } catch {
    /* no tab session: the browser's */
  }
  return load("session", null);
}

class AdminPage {
  constructor(api, me) {
    this.api = api;
    this.me = me;
    this.after = null; // the users page's next
    this.resetFor = null; // the user whose password the reset form sets
    this.searchTimer = null;
  }

  async start() {
    $("me").textContent = this.me.name;
    $("user-search").addEventListener("submit", (e) => {
      e.preventDefault();
      this.loadUsers();
    });
    $("user-q").addEventListener("input", () => {
      clearTimeout(this.searchTimer);
      this.searchTimer = setTimeout(() => this.loadUsers(), SEARCH_DELAY_MS);
    });
    $("users-more").addEventListener("click", () => this.loadUsers(true));
    $("reset-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.resetPassword();
    });
    $("reset-cancel").addEventListener("click", () => this.closeReset());
    $("invite-create").addEventListener("submit", (e) => {
      e.preventDefault();
      this.createInvites(Number($("invite-count").value), Number($("invite-days").value));
    });
    await Promise.all([this.loadUsers(), this.loadRooms(), this.loadInvites()]);
  }

  /** Run an admin call; a refusal is shown in the banner instead of thrown. Returns the answer, or null. */
  async act(method, path, json) {
    const banner = $("admin-error");
    banner.hidden = true;
    try {
      return await this.api.call(method, path, json === undefined ? {} : { json });
    } catch (err) {
      banner.textContent = err.message;
      banner.hidden = false;
      return null;
    }
  }

  // --- users ----------------------------------------------------------------------------------------------

  async loadUsers(more = false) {
    const q = $("user-q").value.trim();
    const params = { q, limit: PAGE };
    if (more && this.after) params.after = this.after;
    let page;
    try {
      page = await this.api.call("GET", "/api/admin/accounts", { params });
    } catch (err) {
      $("admin-error").textContent = err.message;
      $("admin-error").hidden = false;
      return;
    }
    if (q !== $("user-q").value.trim()) return; // typed on meanwhile: a newer search answers
    const rows = page.users.map((u) => this.userRow(u));
    if (more) $("user-rows").append(...rows);
    else $("user-rows").replaceChildren(...rows);
    this.after = page.next;
    $("users-more").hidden = !page.next;
  }

  userRow(u) {
    const self = u.uid === this.me.id;
    const role = u.admin ? "admin" : u.bot ? "bot" : "user";
    const name = `${u.name}${u.display_name ? ` (${u.display_name})` : ""}`;
    const button = (label, onclick, cls = "secondary small") =>
      h("button", { type: "button", class: cls, "aria-label": `${label}: ${u.name}`, onclick }, label);
    return h("tr", { dataset: { uid: String(u.uid), user: u.name } },
      h("td", {}, h("bdi", { class: "from" }, u.name), self ? " (you)" : ""),
      h("td", {}, h("bdi", {}, u.display_name)),
      h("td", { class: "role" }, role),
      h("td", { class: "state" }, u.disabled ? "disabled" : "active"),
      h("td", { class: "actions" }, self ? h("span", { class: "hint" }, "another admin changes your account") : [
        u.disabled
          ? button("Enable", () => this.setUser(u, { disabled: false }))
          : button("Disable", async () => {
            const ok = await confirmInPage({
              title: `Disable ${name}?`,
              text: "They cannot sign in, their tokens stop working and their open pages close, until enabled again. " +
                "Their messages stay.",
              ok: "Disable",
              danger: true,
            });
            if (ok) this.setUser(u, { disabled: true });
          }),
        u.admin
          ? button("Demote", () => this.setUser(u, { admin: false }))
          : button("Promote", () => this.setUser(u, { admin: true })),
        u.bot ? null : button("Reset password", () => this.openReset(u)),
      ]));
  }

  async setUser(u, change) {
    const updated = await this.act("PATCH", `/api/admin/accounts/${u.uid}`, change);
    if (!updated) return;
    const old = $("user-rows").querySelector(`tr[data-uid="${u.uid}"]`);
    old?.replaceWith(this.userRow(updated));
  }

  openReset(u) {
    this.resetFor = u;
    $("reset-title").textContent = `New password for ${u.name}`;
    $("reset-form").reset();
    $("reset-form").hidden = false;
    $("reset-password").focus();
  }

  closeReset() {
    this.resetFor = null;
    $("reset-form").hidden = true;
  }

  async resetPassword() {
    const u = this.resetFor;
    if (!u) return;
    const done = await this.act("POST", `/api/admin/accounts/${u.uid}/password`, {
      password: $("reset-password").value,
      keep_tokens: $("reset-keep").checked,
    });
    if (!done) return;
    this.closeReset();
    this.say(`Set a new password for ${done.name}; ${done.revoked} token(s) revoked.`);
  }

  say(text) {
    $("admin-status").textContent = text;
    $("admin-status").hidden = false;
  }

  // --- rooms ----------------------------------------------------------------------------------------------

  async loadRooms() {
    const answer = await this.act("GET", "/api/admin/rooms");
    if (!answer) return;
    $("room-rows").replaceChildren(...answer.rooms.map((r) => this.roomRow(r)));
  }

  roomRow(r) {
    return h("tr", { dataset: { room: r.name } },
      h("td", {}, h("bdi", {}, r.name)),
      h("td", {}, r.private ? "private" : "public"),
      h("td", {}, String(r.members)),
      h("td", {}, String(r.last_seq)),
      h("td", { class: "state" }, r.archived ? "archived" : "open"),
      h("td", { class: "actions" }, h("button", {
        type: "button", class: "secondary small", "aria-label": `${r.archived ? "Unarchive" : "Archive"}: ${r.name}`,
        onclick: () => this.archive(r, !r.archived),
      }, r.archived ? "Unarchive" : "Archive")));
  }

  async archive(r, archived) {
    if (archived) {
      const ok = await confirmInPage({
        title: `Archive ${r.name}?`,
        text: "Its history stays readable; nobody can post, edit, react or set its topic until it is unarchived.",
        ok: "Archive",
      });
      if (!ok) return;
    }
    const done = await this.act("PATCH", `/api/admin/rooms/${encodeURIComponent(r.name)}`, { archived });
    if (!done) return;
    r.archived = done.archived;
    $("room-rows").querySelector(`tr[data-room="${CSS.escape(r.name)}"]`)?.replaceWith(this.roomRow(r));
  }

  // --- invites --------------------------------------------------------------------------------------------

  async loadInvites() {
    const answer = await this.act("GET", "/api/admin/invites");
    if (!answer) return;
    const now = Date.now();
    $("invite-rows").replaceChildren(...answer.invites.map((i) => h("tr", { dataset: { invite: i.id } },
      h("td", {}, h("code", {}, i.id)),
      h("td", {}, i.created_by ?? "(operator)"),
      h("td", {}, when(i.expires)),
      h("td", { class: "state" }, i.used_by ? `used by ${i.used_by}` : i.expires <= now ? "expired" : "open"))));
  }

  async createInvites(count, days) {
    const made = await this.act("POST", "/api/admin/invites", { count, days });
    if (!made) return;
    $("new-codes").replaceChildren(...made.codes.map((code) => h("li", {}, h("code", {}, code))));
    $("registration-note").textContent = made.registration === "invite"
      ? "Registration needs an invite code on this server."
      : `Registration is "${made.registration}" on this server: codes are not needed until it is set to "invite".`;
    this.loadInvites();
  }
}

async function main() {
  const status = $("admin-status");
  const s = session();
  if (!s) {
    status.replaceChildren("Sign in on the ", h("a", { href: "./" }, "chat page"), " first.");
    document.body.dataset.view = "signed-out";
    return;
  }
  const api = new Api(s);
  let me;
  try {
    me = await api.me();
  } catch (err) {
    status.textContent = err.code === "unauthorized" ? "Your session has ended: sign in on the chat page." : err.message;
    document.body.dataset.view = "signed-out";
    return;
  }
  if (!me.admin) {
    status.textContent = "This page is for admins.";
    document.body.dataset.view = "not-admin";
    return;
  }
  status.hidden = true;
  $("admin").hidden = false;
  const page = new AdminPage(api, me);
  window.chatdAdmin = page; // a handle for debugging (and for the browser tests)
  await page.start();
  document.body.dataset.view = "admin";
  document.body.dataset.ready = "true";
}

main();
