// Managing a room from the page: its member list, inviting, removing and leaving; and the server's `room`
// frames, which push room-list changes (an invitation, a removal, a new public room) to every open page of the
// user, so nobody has to reload or wait for a poll to see a room they were just invited to.

import { h } from "./dom.js";
import { avatar, displayName } from "./view.js";

const $ = (id) => document.getElementById(id);

export class RoomAdmin {
  constructor(app) {
    this.app = app;
    this.room = null;
    this.admin = null; // whether the signed-in user is an admin, from GET /api/me
    this.el = {
      panel: $("members"),
      summary: $("members-summary"),
      list: $("member-list"),
      invite: $("invite-form"),
      name: $("invite-name"),
      error: $("members-error"),
      leave: $("leave-room"),
      closed: $("composer-closed"),
      hooks: $("hooks"),
      hookList: $("hook-list"),
      hookAdd: $("hook-add"),
      hookNew: $("hook-new"),
      hookUrl: $("hook-url"),
    };
    this.el.hookAdd.addEventListener("click", () => this.addHook());
    this.el.panel.addEventListener("toggle", () => {
      if (this.el.panel.open) this.load();
    });
    this.el.invite.addEventListener("submit", (e) => {
      e.preventDefault();
      this.invite(this.el.name.value.trim());
    });
    this.el.leave.addEventListener("click", () => this.leave());
  }

  /** The open room changed (or was reopened): show its panel, and keep a closed room's message box closed. */
  show(room) {
    this.room = room;
    this.el.panel.hidden = !room;
    this.el.error.textContent = "";
    this.el.summary.textContent = "Members";
    this.el.hooks.hidden = true;
    this.el.hookNew.hidden = true;
    if (!room) return;
    this.el.invite.hidden = room.dm;
    if (room.closedNote && !room.isPrivate) room.closedNote = ""; // opening a public room joins it again
    if (room.closedNote) this.closeComposer(room, room.closedNote);
    else this.openComposer();
    if (this.el.panel.open) this.load();
  }

  async load() {
    const room = this.room;
    if (!room) return;
    const api = this.app.api;
    const path = `/api/rooms/${encodeURIComponent(room.name)}`;
    let members, uids;
    let botNames; // bots are told by id (the answer's "bots"), shown by name like everyone here
    try {
      if (this.admin === null) this.admin = !!(await api.me()).admin;
      // Known from the room list, except for a room opened by name before the list had it.
      if (room.createdBy === undefined) room.createdBy = (await api.call("GET", path)).created_by;
      const got = await api.call("GET", `${path}/members`);
      ({ members, uids } = got);
      const bots = new Set(got.bots ?? []);
      botNames = new Set(members.filter((_, i) => bots.has(uids?.[i])));
    } catch (err) {
      if (room === this.room) this.el.error.textContent = err.message;
      return;
    }
    if (room !== this.room) return;
    const me = this.app.me;
    // A direct conversation is the two of them: nobody is added to it or removed from it.
    const mayRemove = !room.dm && (this.admin || room.createdBy === me);
    this.el.summary.textContent = `${members.length} member${members.length === 1 ? "" : "s"}`;
    const uidOf = new Map(members.map((u, i) => [u, uids?.[i]]));
    this.el.list.replaceChildren(...members.sort().map((u) => h("li", { dataset: { user: u, uid: uidOf.get(u) ?? "" } },
      avatar(u),
      h("span", { class: "member-name" }, u === me ? `${u} (you)` : u),
      displayName(this.app.people.displayOf(uidOf.get(u))),
      botNames.has(u) ? h("span", { class: "badge bot-badge", title: "A bot account" }, "bot") : null,
      u !== me && mayRemove
        ? h("button", {
          type: "button", class: "link remove-member", "aria-label": `Remove ${u} from #${room.name}`,
          onclick: () => this.remove(u),
        }, "Remove")
        : null)));
    this.el.leave.hidden = !members.includes(me);
    // Incoming webhooks are the room's creator's or an admin's to manage (the same people who may remove members).
    this.el.hooks.hidden = !mayRemove;
    if (mayRemove) this.loadHooks(room);
  }

  hooksPath(room) {
    return `/api/rooms/${encodeURIComponent(room.name)}/hooks`;
  }

  async loadHooks(room) {
    let hooks;
    try {
      hooks = (await this.app.api.call("GET", this.hooksPath(room))).hooks;
    } catch (err) {
      if (room === this.room) this.el.error.textContent = err.message;
      return;
    }
    if (room !== this.room) return;
    this.el.hookList.replaceChildren(...hooks.map((hook) => h("li", { dataset: { hook: hook.id } },
      h("span", { class: "member-name" }, hook.bot),
      h("span", { class: "badge bot-badge", title: "The bot this webhook posts as" }, "bot"),
      h("button", {
        type: "button", class: "link revoke-hook", "aria-label": `Revoke the webhook ${hook.bot}`,
        onclick: () => this.revokeHook(room, hook.id),
      }, "Revoke"))));
  }

  async addHook() {
    const room = this.room;
    if (!room) return;
    this.el.error.textContent = "";
    try {
      const made = await this.app.api.call("POST", this.hooksPath(room), { json: {} });
      this.el.hookUrl.textContent = made.url;
      this.el.hookNew.hidden = false;
    } catch (err) {
      this.el.error.textContent = err.message;
      return;
    }
    this.loadHooks(room);
  }

  async revokeHook(room, id) {
    this.el.error.textContent = "";
    try {
      await this.app.api.call("DELETE", `${this.hooksPath(room)}/${encodeURIComponent(id)}`);
    } catch (err) {
      this.el.error.textContent = err.message;
      return;
    }
    this.el.hookNew.hidden = true;
    this.loadHooks(room);
  }

  async invite(name) {
    const room = this.room;
    if (!room || !name) return;
    this.el.error.textContent = "";
    try {
      await this.app.api.call("POST", `/api/rooms/${encodeURIComponent(room.name)}/members`, { json: { user: name } });
    } catch (err) {
      this.el.error.textContent = err.code === "not_found" ? `There is no user called "${name}".` : err.message;
      return;
    }
    this.el.invite.reset();
    this.load();
  }

  async remove(user) {
    const room = this.room;
    if (!room) return;
    this.el.error.textContent = "";
    try {
      await this.app.api.call(
        "DELETE", `/api/rooms/${encodeURIComponent(room.name)}/members/${encodeURIComponent(user)}`);
    } catch (err) {
      this.el.error.textContent = err.message;
      return;
    }
    this.load();
  }

  async leave() {
    const room = this.room;
    if (!room) return;
    const me = this.app.me;
    try {
      await this.app.api.call(
        "DELETE", `/api/rooms/${encodeURIComponent(room.name)}/members/${encodeURIComponent(me)}`);
    } catch (err) {
      this.el.error.textContent = err.message;
      return;
    }
    // The server unsubscribes this page from a private room itself; a public room's live messages stop here.
    this.app.connection.send({ type: "leave", room: room.name });
    this.forget(room, "left", me);
    this.el.panel.open = false;
    const next = [...this.app.rooms.values()].filter((r) => r.member).map((r) => r.name).sort()[0];
    this.app.openRoom(next ?? null);
  }

  /** A `room` frame: the user's room list changed, here or in another of their sessions. */
  onPush(f) {
    const app = this.app;
    const known = app.rooms.get(f.room);
    if (f.change === "created") {
      if (known && known.member) return;
      const room = app.room(f.room);
      room.update({ private: !!f.private, member: f.by === app.me, last_seq: room.listedSeq });
      if (room.member && app.connection.state === "open") app.join(room);
    } else if (f.change === "invited") {
      const room = app.room(f.room);
      room.update({ private: !!f.private, member: true, last_seq: room.listedSeq });
      room.joinError = "";
      room.closedNote = "";
      if (room === this.room) {
        this.openComposer();
        app.renderHistoryEdge();
      }
      if (app.connection.state === "open") app.join(room);
    } else if (f.change === "removed" || f.change === "left" || f.change === "deleted") {
      if (known) this.forget(known, f.change, f.by);
    }
    app.queueRoomsRender();
  }

  /** We are no longer a member of ``room``: say why where the message box was, and close it. */
  forget(room, change, by) {
    room.member = false;
    room.live = false;
    const byWhom = by ? ` by ${by}` : "";
    let why;
    if (change === "deleted") {
      // Gone for everyone: keep it out of both lists, and keep its box closed even for a public room.
      room.isPrivate = true;
      room.closedNote = `${this.app.roomLabel(room)} was deleted${byWhom}.`;
      why = `it was deleted${byWhom}`;
    } else {
      const label = this.app.roomLabel(room);
      const note = change === "left" ? `You left ${label}.` : `You were removed from ${label}${byWhom}.`;
      room.closedNote = room.isPrivate ? note : `${note} Open it again to rejoin.`;
      why = change === "left" ? "you left it" : `you were removed${byWhom}`;
    }
    if (room.isPrivate) room.joinError = why; // shown as "You cannot read #room: <why>"
    room.presence.clear();
    if (room === this.room) {
      this.app.renderPresence();
      this.closeComposer(room, room.closedNote);
      this.app.renderHistoryEdge();
      if (this.el.panel.open) this.load();
    }
    this.app.queueRoomsRender();
  }

  closeComposer(room, note) {
    if (room !== this.room) return;
    const { input } = this.app.el;
    input.disabled = true;
    $("send-button").disabled = true;
    $("attach-button").disabled = true;
    this.el.closed.textContent = note;
    this.el.closed.hidden = false;
  }

  openComposer() {
    this.app.el.input.disabled = false;
    $("send-button").disabled = false;
    $("attach-button").disabled = false;
    this.el.closed.hidden = true;
    this.el.closed.textContent = "";
  }
}
