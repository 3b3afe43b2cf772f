// What a team expects on day one, on top of plain messages: edits, deletes, reactions, replies, topics (room
// events in the stream), read state across devices, mentions, direct messages and search.
//
// Room events arrive in the room's stream with their own seq (protocol.md, "Room changes"): each carries the
// resulting state, so applying one twice is harmless. Read positions, mentions and DM notices are per-user frames
// that reach every connection of the user. Everything user-written goes into the DOM as text (markdown.js).

import { bidiSafe } from "./bidi.js";
import { confirmInPage, promptInPage } from "./dialogs.js";
import { h } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { newClientId } from "./storage.js";

export const EVENT_TYPES = new Set(["edit", "delete", "reaction", "topic"]);
export const QUICK_EMOJI = ["👍", "❤️", "😂", "🎉", "👀", "✅"];
const SEARCH_DELAY_MS = 250;

/** Apply a room event to what the room holds. Returns the seq of the message it changed (or null). */
export function applyEvent(room, f) {
  if (f.type === "topic") {
    room.topic = f.topic;
    return null;
  }
  const target = room.messages.get(f.target);
  if (!target) return null; // not loaded: history will bring it in its current state
  if (f.type === "edit") {
    if (target.deleted) return null;
    target.body = f.body;
    target.edited = f.ts;
  } else if (f.type === "delete") {
    Object.assign(target, { deleted: true, body: "", attachments: [], reactions: {} });
    delete target.edited;
  } else if (f.type === "reaction") {
    if (target.deleted) return null;
    const reactions = { ...(target.reactions ?? {}) };
    const uids = { ...(target.reaction_uids ?? {}) };
    if (f.users.length) {
      reactions[f.emoji] = f.users;
      uids[f.emoji] = f.uids ?? [];
    } else {
      delete reactions[f.emoji];
      delete uids[f.emoji];
    }
    target.reactions = reactions;
    target.reaction_uids = uids;
  }
  room.rev += 1;
  return target.seq;
}

// The server's rule (chatd/rules/mentions.py): not after a word character or @, so ann@example.com names nobody.
const MENTION = /(?<![\w@])@([A-Za-z0-9][A-Za-z0-9_.-]{0,31})/g;

/** Wrap each ``@name`` in the text of ``root`` (not inside code or links) in a span; ``@you`` gets ``.me``. */
export function markMentions(root, me) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode: (n) => (n.parentElement?.closest("code, pre, a") ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT),
  });
  const texts = [];
  while (walker.nextNode()) if (walker.currentNode.data.includes("@")) texts.push(walker.currentNode);
  const mine = me.toLowerCase();
  for (const node of texts) {
    const parts = [];
    let last = 0;
    for (const m of node.data.matchAll(MENTION)) {
      // "@bob." at the end of a sentence names bob, as the server reads it.
      const name = m[1].replace(/[._-]+$/, "");
      const end = m.index + 1 + name.length;
      if (m.index > last) parts.push(node.data.slice(last, m.index));
      const you = name.toLowerCase() === mine;
      parts.push(h("span", { class: you ? "mention me" : "mention", title: you ? "mentions you" : null },
        node.data.slice(m.index, end)));
      last = end;
    }
    if (!parts.length) continue;
    if (last < node.data.length) parts.push(node.data.slice(last));
    node.replaceWith(...parts);
  }
}

/** A user was renamed (the `user` frame): show the new name wherever this room shows theirs, by id. Returns
 * whether anything changed. */
export function applyRename(room, f) {
  let changed = false;
  for (const m of room.messages.values()) {
    if (m.uid === f.uid) {
      m.from = f.name;
      changed = true;
    }
    for (const [emoji, uids] of Object.entries(m.reaction_uids ?? {})) {
      uids.forEach((uid, i) => {
        if (uid === f.uid && m.reactions?.[emoji]) {
          m.reactions[emoji][i] = f.name;
          changed = true;
        }
      });
    }
  }
  if (room.withUid === f.uid) {
    room.with = f.name;
    changed = true;
  }
  if (room.presence.delete(f.was)) room.presence.add(f.name);
  if (changed) room.rev += 1;
  return changed;
}

/** The body of a message: a tombstone when deleted, else safe Markdown with mentions marked. */
export function messageBody(m, ctx = null) {
  if (m.deleted) return h("p", { class: "body deleted" }, "message deleted");
  if (!m.body) return null;
  const body = h("div", { class: "body", dir: "auto" });
  body.append(renderMarkdown(m.body));
  if (ctx && m.body.includes("@")) markMentions(body, ctx.me);
  return body;
}

/** The quoted original above a reply; clicking it jumps there. */
export function replyQuote(m, ctx) {
  if (!m.reply_to || !ctx) return null;
  const original = ctx.original(m.reply_to);
  let text = "an earlier message";
  if (original?.deleted) text = "message deleted";
  else if (original) text = original.body.length > 120 ? `${original.body.slice(0, 120)}…` : original.body;
  return h("button", {
    type: "button", class: "reply-quote", dataset: { replyTo: String(m.reply_to) },
    onclick: () => ctx.jump(m.reply_to),
  }, original && !original.deleted ? h("bdi", { class: "reply-from" }, original.from) : null, " ", bidiSafe(text));
}

export function editedMark(m) {
  return m.edited && !m.deleted ? h("span", { class: "edited", title: new Date(m.edited).toLocaleString() }, "(edited)")
    : null;
}

/** Reaction chips (emoji, count, who) that toggle the user's own reaction. */
export function reactionBar(m, ctx) {
  const entries = Object.entries(m.reactions ?? {});
  if (m.deleted || !entries.length || !ctx) return null;
  return h("div", { class: "reactions" }, entries.map(([emoji, users]) => {
    const mine = users.includes(ctx.me);
    return h("button", {
      type: "button", class: mine ? "reaction mine" : "reaction", title: users.join(", "),
      "aria-pressed": mine ? "true" : "false", dataset: { emoji },
      onclick: () => ctx.react(m, emoji, !mine),
    }, bidiSafe(emoji), ` ${users.length}`);
  }));
}

/** Reply, react, edit and delete buttons for a stored message. */
export function messageActions(m, ctx) {
  if (!ctx || m.deleted) return null;
  const mine = m.from === ctx.me;
  const picker = h("div", { class: "emoji-picker", hidden: true },
    QUICK_EMOJI.map((emoji) => h("button", {
      type: "button", class: "emoji", "aria-label": `React with ${emoji}`,
      onclick: () => {
        picker.hidden = true;
        ctx.react(m, emoji, !(m.reactions?.[emoji] ?? []).includes(ctx.me));
      },
    }, emoji)));
  // A toolbar that shows on hover, and when keyboard focus enters it (the buttons stay in the tab order).
  return h("div", { class: "msg-actions", role: "toolbar", "aria-label": `Message from ${m.from}` },
    h("button", { type: "button", class: "act act-reply", onclick: () => ctx.reply(m) }, "Reply"),
    h("button", {
      type: "button", class: "act act-react", "aria-label": "Add a reaction", "aria-expanded": "false",
      onclick: (e) => {
        picker.hidden = !picker.hidden;
        e.currentTarget.setAttribute("aria-expanded", String(!picker.hidden));
      },
    }, "React"),
    mine ? h("button", { type: "button", class: "act act-edit", onclick: () => ctx.edit(m) }, "Edit") : null,
    mine ? h("button", { type: "button", class: "act act-delete", onclick: () => ctx.remove(m) }, "Delete") : null,
    picker);
}

/** Search result snippet parts as text, the matched words in <mark>. */
function snippet(parts) {
  return h("span", { class: "snippet" }, parts.map((p) => (p.match ? h("mark", {}, bidiSafe(p.text)) : bidiSafe(p.text))));
}

/**
 * Everything beyond plain messages, bound to one ChatApp. The app calls in from its frame switch, its rendering
 * and its composer; this class never replaces the app's own logic.
 */
export class Features {
  constructor(app) {
    this.app = app;
    this.serverReads = new Map(); // room -> {seq, last_seq, unread}, as the server last said
    this.mentions = 0; // mentions not yet looked at
    this.composing = null; // {kind: "reply" | "edit", room, message}
    this.dmWith = new Map(); // dm room -> the other person
    this.searchTimer = null;
    this.ctx = {
      me: app.me,
      original: (seq) => app.active?.messages.get(seq) ?? null,
      jump: (seq) => this.jump(seq),
      react: (m, emoji, on) => this.react(m, emoji, on),
      reply: (m) => this.startComposing("reply", m),
      edit: (m) => this.startComposing("edit", m),
      remove: (m) => this.remove(m),
      displayOf: (uid) => app.people.displayOf(uid),
    };
  }

  bind() {
    const $ = (id) => document.getElementById(id);
    $("search-input").addEventListener("input", () => {
      clearTimeout(this.searchTimer);
      this.searchTimer = setTimeout(() => this.search($("search-input").value), SEARCH_DELAY_MS);
    });
    $("search-close").addEventListener("click", () => this.closeSearch());
    $("compose-cancel").addEventListener("click", () => this.stopComposing());
    $("topic-edit").addEventListener("click", () => this.editTopic());
    $("people-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.openDm($("people-name").value.trim());
    });
    $("notify-enable").addEventListener("click", () => this.askNotifications());
    $("notify-enable").hidden = !("Notification" in window) || Notification.permission !== "default";
    $("mention-badge").addEventListener("click", () => this.showMentions());
  }

  // --- frames ---------------------------------------------------------------------------------------------

  /** A room event from the stream: move the stream position, apply it, re-render what it changed. */
  onEvent(f) {
    const app = this.app;
    const room = app.room(f.room);
    const { gap, rejoin } = room.streamedEvent(f);
    const changed = applyEvent(room, f);
    if (room === app.active) {
      if (changed !== null) app.rerenderMessage(changed);
      if (f.type === "topic") this.renderTopic();
    }
    if (gap) app.fillGap(room, gap);
    if (rejoin) app.join(room, { again: true });
    app.queueRoomsRender();
  }

  onRead(f) {
    const app = this.app;
    const known = this.serverReads.get(f.room);
    this.serverReads.set(f.room, { seq: f.seq, last_seq: Math.max(f.seq, known?.last_seq ?? 0), unread: f.unread });
    app.reads.advance(f.room, f.seq);
    app.queueRoomsRender();
  }

  onMention(f) {
    if (f.room === this.app.active?.name && document.visibilityState === "visible") return;
    this.mentions += 1;
    this.renderMentionBadge();
    if (document.visibilityState === "hidden" && "Notification" in window && Notification.permission === "granted") {
      // The notification carries text only; the browser renders it, never as HTML.
      const where = this.app.rooms.get(f.room)?.dm ? "a direct message" : `#${f.room}`;
      const note = new Notification(`${f.from} mentioned you in ${where}`, { body: f.body.slice(0, 200), tag: `${f.room}:${f.seq}` });
      note.onclick = () => {
        window.focus();
        this.app.openRoom(f.room);
      };
    }
  }

  onDm(f) {
    this.dmWith.set(f.room, f.with);
    const room = this.app.rooms.get(f.room);
    if (room) Object.assign(room, { with: f.with, withUid: f.uid ?? room.withUid });
    this.app.refreshRooms();
    if (this.app.active?.name === f.room) this.app.renderTitle();
  }

  /** Someone was renamed: every room redraws their name; if it is us, the page's own identity follows. */
  onUser(f) {
    const app = this.app;
    const display = app.people.onUser(f); // a display name set: every message of theirs shows it
    if (f.uid === app.uid) app.renamed(f.name);
    let redraw = display;
    for (const room of app.rooms.values()) {
      if (applyRename(room, f) && room === app.active) redraw = true;
    }
    if (redraw) app.renderActive();
    app.queueRoomsRender();
  }

  // --- read state -----------------------------------------------------------------------------------------

  async loadReads() {
    try {
      const { rooms } = await this.app.api.call("GET", "/api/read");
      for (const r of rooms) {
        this.serverReads.set(r.room, r);
        this.app.reads.advance(r.room, r.seq);
      }
    } catch {
      return; // an older server, or offline: local marks still work
    }
    this.app.queueRoomsRender();
  }

  /** A join answered: messages stored between our last look at the server's counts and this join arrive neither
   * live nor in the counts, so ask the server again (once for a burst of joins). */
  joined(room, f) {
    const server = this.serverReads.get(room.name);
    if (server && f.seq <= server.last_seq) return;
    clearTimeout(this.readsTimer);
    this.readsTimer = setTimeout(() => this.loadReads(), 200);
  }

  /** A room's history was replaced on the server (a reset join): what we knew of its read state is stale. */
  forgetRoom(name) {
    this.serverReads.delete(name);
    clearTimeout(this.readsTimer);
    this.readsTimer = setTimeout(() => this.loadReads(), 200);
  }

  /** The user has seen ``room`` up to ``seq``: tell the server, which tells the user's other devices. */
  sendRead(room, seq) {
    this.app.connection.send({ type: "read", room, seq });
  }

  /** Unread messages from others: the server's count at its position, plus what arrived since. */
  unread(room) {
    const mark = this.app.reads.get(room.name);
    const server = this.serverReads.get(room.name);
    // Every frame re-renders the room list, which asks this of every room: count each room's loaded messages
    // again only when they or the mark changed.
    const countAfter = (after) => {
      const memo = room.unreadMemo;
      if (memo && memo.rev === room.rev && memo.after === after) return memo.n;
      let n = 0;
      for (const m of room.messages.values()) if (m.seq > after && m.from !== this.app.me && !m.deleted) n += 1;
      room.unreadMemo = { rev: room.rev, after, n };
      return n;
    };
    if (server && mark <= server.seq) return server.unread + countAfter(Math.max(server.last_seq, mark));
    if (room.messages.size === 0) return Math.max(0, room.latest - mark); // nothing loaded: the seq distance
    return countAfter(mark);
  }

  // --- room changes ---------------------------------------------------------------------------------------

  send(frame) {
    if (!this.app.connection.send({ ...frame, client_id: newClientId() })) {
      this.app.showError("Not connected: try again in a moment.");
    }
  }

  react(m, emoji, on) {
    const frame = { type: "react", room: m.room, seq: m.seq, emoji };
    if (!on) frame.remove = true;
    this.send(frame);
  }

  async remove(m) {
    const text = m.body.length > 80 ? `${m.body.slice(0, 80)}…` : m.body;
    const sure = await confirmInPage({
      title: "Delete this message?",
      text: `“${text}” is deleted for everyone in the room, with its attachments and reactions.`,
      ok: "Delete",
      danger: true,
    });
    if (sure) this.send({ type: "delete", room: m.room, seq: m.seq });
  }

  startComposing(kind, m) {
    const app = this.app;
    this.composing = { kind, room: m.room, message: m };
    const $ = (id) => document.getElementById(id);
    $("compose-mode").hidden = false;
    $("compose-mode-text").replaceChildren(kind === "edit" ? "Editing your message" : `Replying to ${m.from}: `,
      kind === "reply" ? bidiSafe(m.body.slice(0, 80)) : "");
    if (kind === "edit") app.el.input.value = m.body;
    app.autosize();
    app.el.input.focus();
  }

  stopComposing() {
    if (!this.composing) return false;
    if (this.composing.kind === "edit") this.app.el.input.value = "";
    this.composing = null;
    document.getElementById("compose-mode").hidden = true;
    return true;
  }

  /** The composer's submit while replying or editing. Returns true when it handled it (an edit). */
  submitEdit(body) {
    const c = this.composing;
    if (!c || c.kind !== "edit") return false;
    if (body && body !== c.message.body) this.send({ type: "edit", room: c.room, seq: c.message.seq, body });
    this.stopComposing();
    return true;
  }

  /** The seq the next send answers, if the user is replying in ``room``. */
  replyTo(room) {
    const c = this.composing;
    if (!c || c.kind !== "reply" || c.room !== room) return 0;
    this.stopComposing();
    return c.message.seq;
  }

  jump(seq) {
    const item = document.querySelector(`#messages .msg[data-seq="${seq}"]`);
    if (!item) {
      this.app.showError("That message is further back: scroll up to load it.");
      return;
    }
    item.scrollIntoView({ block: "center" });
    item.classList.add("flash");
    setTimeout(() => item.classList.remove("flash"), 1500);
  }

  // --- topic ----------------------------------------------------------------------------------------------

  renderTopic() {
    const room = this.app.active;
    const el = document.getElementById("room-topic");
    el.replaceChildren(bidiSafe(room?.topic ?? "")); // stored before the server refused bidi controls in topics
    // A public room's topic is its creator's (or an admin's, whom the server lets through anyway); a direct
    // conversation has none.
    const mayEdit = room?.member && !room.dm && (room.isPrivate || room.createdBy === this.app.me);
    document.getElementById("topic-edit").hidden = !mayEdit;
  }

  async editTopic() {
    const room = this.app.active;
    if (!room) return;
    const topic = await promptInPage({
      title: `Topic of #${room.name}`,
      text: "Everyone in the room sees it under the room's name. Leave it empty to clear it.",
      label: "Topic",
      value: room.topic ?? "",
      ok: "Save topic",
      maxlength: 300,
    });
    if (topic === null) return;
    this.send({ type: "topic", room: room.name, topic: topic.trim().slice(0, 300) });
  }

  // --- direct messages ------------------------------------------------------------------------------------

  async openDm(name) {
    if (!name) return;
    const error = document.getElementById("people-error");
    error.textContent = "";
    try {
      const dm = await this.app.api.call("POST", "/api/dms", { json: { user: name } });
      this.dmWith.set(dm.room, dm.user);
      await this.app.refreshRooms();
      document.getElementById("people-name").value = "";
      this.app.openRoom(dm.room);
    } catch (err) {
      error.textContent = err.code === "not_found" ? `Nobody called "${name}" here.` : err.message;
    }
  }

  /** Who a DM room is with: the room list's ``with`` (their current name), else a dm frame's; never read from the
   * room's name, which the server makes from the two people's ids. */
  dmPartner(room) {
    return room.with || this.dmWith.get(room.name) || room.name;
  }

  // --- mentions -------------------------------------------------------------------------------------------

  renderMentionBadge() {
    const badge = document.getElementById("mention-badge");
    badge.hidden = this.mentions === 0;
    badge.textContent = `@ ${this.mentions}`;
    badge.setAttribute("aria-label", `${this.mentions} new mention${this.mentions === 1 ? "" : "s"}`);
  }

  async askNotifications() {
    if (!("Notification" in window)) return;
    await Notification.requestPermission();
    document.getElementById("notify-enable").hidden = Notification.permission !== "default";
  }

  async showMentions() {
    this.mentions = 0;
    this.renderMentionBadge();
    try {
      const { mentions } = await this.app.api.call("GET", "/api/mentions", { params: { limit: 20 } });
      this.showResults("Mentions of you", mentions.map((m) => ({
        room: m.room, seq: m.seq, from: m.from, ts: m.ts, snippet: [{ text: m.body, match: false }],
      })));
    } catch (err) {
      this.app.showError(`Could not load mentions: ${err.message}`);
    }
  }

  // --- search ---------------------------------------------------------------------------------------------

  async search(q) {
    if (!q.trim()) {
      this.closeSearch();
      return;
    }
    try {
      const page = await this.app.api.call("GET", "/api/search", { params: { q, limit: 30 } });
      this.showResults(`Results for “${q}”`, page.results);
    } catch (err) {
      // A word still being typed (shorter than the server's search.prefix_min): wait for the next keystroke.
      if (err.code === "invalid" && err.field === "q") return;
      this.app.showError(`Search failed: ${err.message}`);
    }
  }

  showResults(title, results) {
    const $ = (id) => document.getElementById(id);
    $("search-title").textContent = title;
    $("search-results").replaceChildren(...results.map((r) => h("li", {},
      h("button", {
        type: "button", class: "result", dataset: { room: r.room, seq: String(r.seq) },
        onclick: () => this.openResult(r),
      },
      h("span", { class: "result-meta" }, `${this.app.roomLabel(this.app.room(r.room))} · `, h("bdi", {}, r.from), ` · ${new Date(r.ts).toLocaleString()}`),
      snippet(r.snippet)))));
    $("search-empty").hidden = results.length > 0;
    $("search-panel").hidden = false;
  }

  closeSearch() {
    document.getElementById("search-panel").hidden = true;
  }

  async openResult(r) {
    this.closeSearch();
    this.app.openRoom(r.room);
    const room = this.app.room(r.room);
    // Load back until the message is on the page (bounded: a search result may be far back).
    for (let i = 0; i < 20 && !room.messages.has(r.seq) && !room.complete; i += 1) {
      await this.app.loadOlder(room);
      if (room.floor === null) break;
    }
    this.jump(r.seq);
  }
}
