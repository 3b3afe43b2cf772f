// The chat screen: wires the connection, the rooms and the outbox to the page.
//
// Message path: a frame arrives -> Room decides whether it is new and where it goes (room.js) -> this file
// renders it. A message the user writes goes into the Outbox first (shown as pending), onto the wire when its
// room is live, and leaves the Outbox on its ack or on its own message frame, whichever comes first.

import { Api } from "./api.js";
import { Connection } from "./connection.js";
import { EVENT_TYPES, Features } from "./features.js";
import { RoomAdmin } from "./members.js";
import { RoomHooks } from "./webhooks.js";
import { Outbox } from "./outbox.js";
import { People } from "./people.js";
import { Room } from "./room.js";
import { ReadMarks, load, newClientId, save } from "./storage.js";
import { h } from "./dom.js";
import { avatar, insertBySeq, messageItem, pendingItem, regroup, regroupAll, roomLink } from "./view.js";

const PAGE = 50; // history page size
const TYPING_EVERY_MS = 3000; // at most one typing frame per this interval
const TYPING_SHOWN_MS = 6000; // how long "x is typing" stays after the last typing frame
// Room-list changes are pushed (members.js); this only catches up on what a lost push missed, and on unread
// counts of rooms we could not join.
const ROOMS_REFRESH_MS = 120_000;
const NEAR_BOTTOM_PX = 80;
const NEAR_TOP_PX = 150;
const BACKGROUND_MAX = 1000; // messages kept for a room that is not on screen...
const BACKGROUND_KEEP = 200; // ...trimmed down to this many
const JOIN_REFUSALS = new Set(["forbidden", "not_found", "bad_frame", "not_member"]);
const UNREAD_LOAD_MAX = 1000; // opening a room loads back to its first unread message, but no further than this
// A join the server could not complete (its store failed, or the room's history was replaced): it names the room,
// the room is not followed any more, and joining it again (with backoff) resumes from what we have.
const JOIN_RETRIES = new Set(["unavailable", "internal"]);
const REJOIN_BASE_MS = 500;
const REJOIN_MAX_MS = 15_000;

const $ = (id) => document.getElementById(id);

const STATUS_TEXT = {
  connecting: "Connecting…",
  open: "Connected",
  waiting: "Reconnecting…",
  offline: "Offline: waiting for the network",
  refused: "Disconnected",
  stopped: "Disconnected",
};

export class ChatApp {
  constructor({ session, info, onSignOut, onSwitchUser }) {
    this.session = session;
    this.me = session.user;
    this.info = info;
    this.onSignOut = onSignOut;
    this.onSwitchUser = onSwitchUser;
    this.api = new Api(session);
    this.connection = new Connection(() => this.api.wsUrl());
    this.outbox = new Outbox(this.me);
    this.reads = new ReadMarks(this.me);
    this.rooms = new Map(); // name -> Room
    this.joinQueue = []; // rooms whose join is unanswered, oldest first (the server answers frames in order)
    this.active = null;
    this.lastTypingSent = 0;
    this.uploads = []; // attachments being prepared for the next message
    this.roomsRenderQueued = false;
    this.urlFor = (id) => this.api.uploadUrl(id);
    this.people = new People(this);
    this.features = new Features(this);
    this.el = {
      log: $("log"),
      messages: $("messages"),
      pending: $("pending"),
      input: $("composer-input"),
      composer: $("composer"),
      roomTitle: $("room-title"),
    };
  }

  async start() {
    this.bindUi();
    this.features.bind();
    this.people.bind();
    this.api.me().then((me) => this.people.knowMe(me), () => {});
    this.admin = new RoomAdmin(this);
    this.hooks = new RoomHooks(this);
    const c = this.connection;
    c.addEventListener("state", (e) => this.onState(e.detail.state));
    c.addEventListener("hello", (e) => {
      this.uid = e.detail?.uid ?? this.uid; // who we are: names may change (user frames), the id does not
      this.onHello();
    });
    c.addEventListener("frame", (e) => this.onFrame(e.detail));
    c.addEventListener("refused", (e) => this.onRefused(e.detail.code));
    $("me").textContent = this.me;
    $("attach-button").hidden = !this.info.uploads;
    // Offer what the server takes (images, PDF, text…): it sniffs every upload anyway, this only guides the picker.
    const types = this.info.upload_types ?? [];
    $("attach-input").accept = types.length ? types.join(",") : "image/*";
    await this.refreshRooms();
    await this.features.loadReads();
    c.start();
    const first = [...this.rooms.values()].filter((r) => r.member).map((r) => r.name).sort()[0];
    this.openRoom(this.roomFromHash() ?? load(`active.${this.me}`) ?? first ?? null);
    this.ticker = setInterval(() => this.tick(), 1000);
    this.roomsTimer = setInterval(() => this.refreshRooms(), ROOMS_REFRESH_MS);
  }

  room(name) {
    let room = this.rooms.get(name);
    if (!room) {
      room = new Room({ name, private: false, member: false, last_seq: 0 });
      this.rooms.set(name, room);
    }
    return room;
  }

  join(room, { again = false } = {}) {
    // A capped replay continues with its own join (again = true) once the replayed messages are in.
    if (room.joining || ((room.live || room.capped) && !again)) return;
    if (this.connection.send(room.joinFrame())) {
      room.joining = true;
      this.joinQueue.push(room.name);
    }
  }

  // --- connection events ----------------------------------------------------------------------------------

  onState(state) {
    document.body.dataset.conn = state;
    this.renderStatus();
    if (state === "open") return;
    for (const room of this.rooms.values()) room.disconnected();
    this.joinQueue = [];
    this.outbox.disconnected();
    if (this.active) {
      this.renderPresence();
      this.renderTyping();
      this.renderPendingList();
    }
  }

  onHello() {
    // The active room first, so what the user looks at is live soonest; then every room we belong to, for
    // live unread counts.
    if (this.active) this.join(this.active);
    for (const room of this.rooms.values()) if (room.member && !room.joinError) this.join(room);
    this.refreshRooms();
  }

  onRefused(code) {
    if (code === 4401) {
      this.stop();
      this.onSignOut("Your session has ended. Please sign in again.");
    } else {
      this.showError(code === 4403
        ? "The server refused this page's origin. Open chatd at the address the server expects."
        : `The server refused the connection (${code}).`);
    }
  }

  onFrame(f) {
    switch (f.type) {
      case "joined": return this.onJoined(f);
      case "message": return this.onMessage(f);
      case "ack": return this.onAck(f);
      case "error": return this.onError(f);
      case "typing": return this.onTyping(f);
      case "presence": return this.onPresence(f);
      case "left": return this.onLeft(f);
      case "room": return this.admin.onPush(f);
      case "read": return this.features.onRead(f);
      case "mention": return this.features.onMention(f);
      case "dm": return this.features.onDm(f);
      case "user": return this.features.onUser(f);
      default:
        if (EVENT_TYPES.has(f.type)) return this.features.onEvent(f);
        return undefined; // frames from a newer protocol revision: ignore
    }
  }

  onJoined(f) {
    const room = this.room(f.room);
    room.joining = false;
    room.joinError = "";
    room.rejoins = 0;
    const at = this.joinQueue.indexOf(f.room);
    if (at >= 0) this.joinQueue.splice(at, 1);
    this.features.joined(room, f);
    const live = room.joined(f);
    if (f.reset) {
      // Another history than the one we held (the room was made again, or the server's store restored): what
      // was on screen is gone; reload it as on a first visit.
      console.info(`chatd: #${room.name} was reset by the server (epoch ${f.epoch}); reloading it`);
      this.reads.forget(room.name);
      this.features.forgetRoom(room.name);
      if (room === this.active) this.renderTimeline();
    }
    if (live) {
      this.flush(room);
      if (room === this.active) {
        this.loadPresence(room);
        this.ensureHistory(room);
        this.renderHistoryEdge();
        this.features.renderTopic(); // a first join made us a member: the topic may be set now
        if (room.createdBy === undefined) this.refreshRooms(); // a room our join created: learn that it is ours
        if (this.hooks.el.panel.hidden) this.hooks.show(room); // the room may exist only since this join
        this.placeUnread();
      }
    }
    this.queueRoomsRender();
  }

  onMessage(m) {
    const room = this.room(m.room);
    const { fresh, gap, rejoin } = room.streamed(m);
    if ((m.uid ? m.uid === this.uid : m.from === this.me) && this.outbox.settle(m.client_id)) {
      this.removePending(m.client_id);
    }
    if (room === this.active) {
      if (fresh) this.renderMessage(m);
      this.renderTyping();
      this.queueSeen();
    } else if (room.messages.size > BACKGROUND_MAX) {
      room.trim(BACKGROUND_KEEP);
    }
    if (gap) this.fillGap(room, gap);
    if (rejoin) this.join(room, { again: true });
    this.queueRoomsRender();
  }

  onAck(a) {
    const entry = this.outbox.settle(a.client_id);
    if (!entry) return; // our message frame came first, or another tab sent it
    this.removePending(a.client_id);
    const room = this.room(a.room);
    // Show it as delivered right away. The message frame (or a replay) with the same seq is then a duplicate.
    // Below the loaded window it belongs to history that scroll-back will load.
    if (room.floor === null || a.seq < room.floor) return;
    const m = {
      type: "message", room: a.room, seq: a.seq, from: this.me, uid: this.uid, body: entry.body,
      client_id: a.client_id, ts: a.ts, attachments: entry.attachments ?? [],
    };
    if (entry.reply_to) m.reply_to = entry.reply_to; // the sender sees the quote at once, as everyone else does
    if (room.add(m) && room === this.active) this.renderMessage(m, true);
  }

  onError(f) {
    const entry = f.ref ? this.outbox.failed(f.ref, f.code, f.message, Date.now()) : null;
    if (entry) {
      this.renderPending(entry);
    } else if (!f.ref && f.room && JOIN_RETRIES.has(f.code) && this.rooms.has(f.room)) {
      this.rejoinLater(this.rooms.get(f.room), f);
    } else if (!f.ref && JOIN_REFUSALS.has(f.code) && this.joinQueue.length) {
      // The refusal names its room; from a server that does not, it answers the oldest unanswered join (frames
      // are answered in order).
      const at = f.room ? this.joinQueue.indexOf(f.room) : 0;
      const room = this.room(at >= 0 ? this.joinQueue.splice(at, 1)[0] : this.joinQueue.shift());
      room.joining = false;
      room.joinError = f.message || f.code;
      // A refused room may have been listed under "browse" while its join was in flight: drop it now, in the same
      // task that shows the refusal.
      this.renderRooms();
      if (room === this.active) this.renderHistoryEdge();
      else this.showError(`${this.roomLabel(room)}: ${room.joinError}`);
    } else {
      this.showError(f.message || f.code);
    }
  }

  /** The server could not complete a join (or dropped a followed room to be joined again): the room is not
   * live; join it again after a backoff, from what we have (hi and epoch), so nothing is missed. */
  rejoinLater(room, f) {
    console.warn(`chatd: #${room.name}: ${f.code}: ${f.message}; joining it again`);
    room.joining = false;
    room.live = false;
    room.replayLeft = 0;
    room.capped = false;
    const at = this.joinQueue.indexOf(room.name);
    if (at >= 0) this.joinQueue.splice(at, 1);
    room.rejoins = (room.rejoins ?? 0) + 1;
    const ceiling = Math.min(REJOIN_MAX_MS, REJOIN_BASE_MS * 2 ** (room.rejoins - 1));
    clearTimeout(room.rejoinTimer);
    room.rejoinTimer = setTimeout(() => {
      const wanted = room.member || room === this.active;
      if (this.connection.state === "open" && wanted && !room.joinError) this.join(room);
    }, ceiling * (0.5 + Math.random() / 2));
    this.queueRoomsRender();
  }

  onLeft(f) {
    const room = this.rooms.get(f.room);
    if (!room) return;
    room.live = false;
    if (f.reason === "removed") {
      // Removed from a private room by its owner or an admin.
      room.member = false;
      room.joinError = "You were removed from this room.";
      if (room === this.active) this.renderHistoryEdge();
      this.admin.forget(room, "removed", ""); // the room frame that follows names who did it
    }
    this.queueRoomsRender();
  }

  onTyping(f) {
    if (f.user === this.me) return;
    const room = this.room(f.room);
    room.typing.set(f.user, Date.now() + TYPING_SHOWN_MS);
    if (room === this.active) this.renderTyping();
  }

  onPresence(f) {
    const room = this.room(f.room);
    if (f.online) room.presence.add(f.user);
    else room.presence.delete(f.user);
    if (room === this.active) this.renderPresence();
  }

  // --- REST loads -----------------------------------------------------------------------------------------

  async refreshRooms() {
    let list;
    try {
      list = await this.api.rooms();
    } catch (err) {
      if (err.code === "unauthorized") this.onRefused(4401);
      return; // offline: keep what we know
    }
    const listed = new Set();
    for (const info of list) {
      listed.add(info.name);
      const room = this.rooms.get(info.name);
      if (room) room.update(info);
      else this.rooms.set(info.name, new Room(info));
      // A membership gained elsewhere (another tab, an invite): join to hear about it.
      if (info.member && this.connection.state === "open" && !this.rooms.get(info.name).joinError) {
        this.join(this.rooms.get(info.name));
      }
    }
    // Private rooms we were removed from drop out of the list.
    for (const room of this.rooms.values()) if (!listed.has(room.name) && !room.live) room.member = false;
    this.queueRoomsRender();
    if (this.active) this.features.renderTopic(); // who may set the topic comes with the list
  }

  async loadPresence(room) {
    try {
      const users = await this.api.presence(room.name);
      room.presence = new Set(users);
      if (room.live) room.presence.add(this.me);
    } catch {
      return; // frames still keep it roughly right
    }
    if (room === this.active) this.renderPresence();
  }

  /** Load history until the room shows a page of messages (or all it has). */
  ensureHistory(room) {
    if (room.hi !== null && room.messages.size < PAGE && !room.complete) this.loadOlder(room);
  }

  async loadOlder(room) {
    if (room.loading || room.complete || room.floor === null) return;
    if (room.floor <= 1) {
      room.complete = true;
      this.renderHistoryEdge();
      return;
    }
    room.loading = true;
    this.renderHistoryEdge();
    try {
      const page = await this.api.history(room.name, { before: room.floor, limit: PAGE });
      const fresh = room.addHistory(page.messages, page.has_more);
      if (room === this.active) this.prependMessages(fresh);
    } catch (err) {
      if (room === this.active) this.showError(`Could not load older messages: ${err.message}`);
      return;
    } finally {
      room.loading = false;
      if (room === this.active) this.renderHistoryEdge();
    }
    if (room === this.active) {
      this.placeUnread();
      this.noteSeen(); // the page may have filled what is on screen
      this.fillViewport();
    }
  }

  /** The stream skipped seqs (it never should; the server promises no gap). Fetch them so nothing is lost. */
  async fillGap(room, [from, to]) {
    console.warn(`chatd: stream gap in ${room.name}: ${from}..${to}; fetching it`);
    let after = from - 1;
    while (after < to) {
      const page = await this.api.history(room.name, { after, limit: Math.min(500, to - after) }).catch(() => null);
      if (!page?.messages.length) return;
      for (const m of page.messages) if (m.seq <= to && room.add(m) && room === this.active) this.renderMessage(m);
      after = page.messages.at(-1).seq;
      if (!page.has_more) return;
    }
  }

  // --- sending --------------------------------------------------------------------------------------------

  /** Put due outbox entries of a live room on the wire. */
  flush(room) {
    if (!room.live) return;
    const now = Date.now();
    for (const entry of this.outbox.due(room.name, now)) {
      if (!this.connection.send(this.outbox.frame(entry))) return;
      this.outbox.sent(entry, now);
      this.renderPending(entry);
    }
  }

  submit() {
    const room = this.active;
    if (!room) return;
    const body = this.el.input.value.trim();
    if (this.features.submitEdit(body)) {
      this.el.input.value = "";
      this.autosize();
      return;
    }
    if (this.uploads.some((u) => u.state === "uploading")) {
      this.showError("Wait for the attachments to finish uploading.");
      return;
    }
    const attachments = this.uploads.filter((u) => u.state === "done").map((u) => u.id);
    if (!body && !attachments.length) return;
    // Leave room for the frame's other fields under the server's frame limit.
    if (new TextEncoder().encode(body).length > this.info.max_frame_bytes - 1024) {
      this.showError("That message is too long.");
      return;
    }
    const entry = this.outbox.add(room.name, body, attachments, this.features.replyTo(room.name));
    this.el.input.value = "";
    this.autosize();
    this.clearUploads();
    this.lastTypingSent = 0;
    this.renderPending(entry);
    this.scrollToBottom();
    this.flush(room);
  }

  retry(clientId) {
    const entry = this.outbox.retry(clientId);
    if (!entry) return;
    this.renderPending(entry);
    this.flush(this.room(entry.room));
  }

  discard(clientId) {
    this.outbox.discard(clientId);
    this.removePending(clientId);
  }

  typed() {
    const room = this.active;
    const now = Date.now();
    if (!room?.live || !this.el.input.value.trim() || now - this.lastTypingSent < TYPING_EVERY_MS) return;
    this.lastTypingSent = now;
    this.connection.send({ type: "typing", room: room.name });
  }

  // --- attachments ----------------------------------------------------------------------------------------

  async attach(file) {
    const room = this.active;
    if (!room || !this.info.uploads) return;
    const item = { key: newClientId(), name: file.name || "image", state: "uploading", id: null, error: "" };
    item.preview = file.type.startsWith("image/") ? URL.createObjectURL(file) : null;
    const types = this.info.upload_types ?? [];
    if (types.length && !types.includes(file.type)) {
      item.state = "error";
      item.error = "this file type is not accepted";
    } else if (this.info.upload_max_bytes && file.size > this.info.upload_max_bytes) {
      item.state = "error";
      item.error = "too large";
    }
    this.uploads.push(item);
    this.renderUploads();
    if (item.state === "error") return;
    try {
      const res = await this.api.upload(room.name, file);
      item.id = res.id;
      item.state = "done";
    } catch (err) {
      if (err.status === 404 || err.status === 405) {
        // This server has no upload route after all: stop offering attachments.
        this.info.uploads = false;
        $("attach-button").hidden = true;
        this.removeUpload(item.key);
        this.showError("This server does not accept attachments.");
        return;
      }
      item.state = "error";
      item.error = err.code === "too_large" ? "too large" : err.message;
    }
    this.renderUploads();
  }

  removeUpload(key) {
    const item = this.uploads.find((u) => u.key === key);
    if (item?.preview) URL.revokeObjectURL(item.preview);
    this.uploads = this.uploads.filter((u) => u.key !== key);
    this.renderUploads();
  }

  clearUploads() {
    for (const u of this.uploads) if (u.preview) URL.revokeObjectURL(u.preview);
    this.uploads = [];
    this.renderUploads();
  }

  // --- rooms ----------------------------------------------------------------------------------------------

  roomFromHash() {
    const raw = location.hash.slice(1);
    if (!raw) return null;
    try {
      return decodeURIComponent(raw);
    } catch {
      return null;
    }
  }

  openRoom(name) {
    if (!name) {
      this.active = null;
      this.renderEmpty();
      this.admin.show(null);
      this.hooks.show(null);
      return;
    }
    const room = this.room(name);
    const hash = `#${encodeURIComponent(name)}`;
    if (location.hash !== hash) history.replaceState(null, "", hash);
    this.closeDrawer();
    if (room === this.active) return;
    this.active?.trim(BACKGROUND_KEEP);
    this.active = room;
    // Where the reader left this room: it opens there, below a "New messages" line (placeUnread).
    this.unreadAt = { room, after: this.reads.get(name), placed: false };
    save(`active.${this.me}`, name);
    this.clearUploads();
    document.body.dataset.room = name;
    this.renderTitle();
    this.features.stopComposing();
    this.features.renderTopic();
    this.el.input.disabled = false;
    $("send-button").disabled = false;
    this.renderTimeline();
    this.renderPresence();
    this.renderTyping();
    this.queueRoomsRender();
    this.admin.show(room);
    this.hooks.show(room);
    if (room.live) {
      this.loadPresence(room);
      this.ensureHistory(room);
    } else if (this.connection.state === "open") {
      room.joinError = ""; // opening it is a fresh attempt
      this.join(room);
    }
  }

  async createRoom(form) {
    const name = $("new-room-name").value.trim();
    const isPrivate = $("new-room-private").checked;
    const error = $("create-room-error");
    error.textContent = "";
    if (!form.reportValidity()) return;
    try {
      await this.api.createRoom(name, isPrivate);
    } catch (err) {
      error.textContent = err.code === "conflict" ? `A room called "${name}" already exists.` : err.message;
      return;
    }
    form.reset();
    await this.refreshRooms();
    this.openRoom(name);
    this.el.input.focus();
  }

  /** Alt+Up / Alt+Down: the previous or next of the user's rooms, in the order the sidebar shows them. */
  switchRoom(step) {
    const names = [...document.querySelectorAll("#room-list .room-link")].map((a) => a.dataset.room);
    if (!names.length) return;
    const at = names.indexOf(this.active?.name);
    const next = names[(at + step + names.length) % names.length];
    this.openRoom(next);
    document.querySelector(`#room-list .room-link[data-room="${CSS.escape(next)}"]`)?.focus();
  }

  unread(room) {
    return this.features.unread(room);
  }

  /**
   * Move the read position over what the reader has actually had on screen: up to the last message whose end is
   * inside the log's visible area (everything above it was scrolled past), and to the room's newest seq once the
   * newest message is seen. Nothing while the tab is hidden, and nothing before the room was opened at its first
   * unread message (placeUnread), so a backlog is never marked read unseen.
   */
  noteSeen() {
    const room = this.active;
    if (!room || room.hi === null || document.visibilityState !== "visible") return;
    if (this.unreadAt?.room === room && !this.unreadAt.placed) return;
    if (this.nearBottom()) $("jump-latest").hidden = true;
    const seen = this.lastSeenSeq();
    if (seen === null) return;
    const newest = Number(this.el.messages.lastElementChild.dataset.seq);
    // The loaded messages are one gap-free run up to hi, so having seen the newest means having seen them all
    // (seqs after it are room events, which count as nothing unread).
    const upTo = seen >= newest ? room.hi : seen;
    if (this.reads.advance(room.name, upTo)) {
      this.features.sendRead(room.name, upTo);
      this.queueRoomsRender();
    }
  }

  /** noteSeen at most once a frame: finding where the rows are costs a layout, and messages may come in bursts. */
  queueSeen() {
    if (this.seenQueued) return;
    this.seenQueued = true;
    requestAnimationFrame(() => {
      this.seenQueued = false;
      this.noteSeen();
    });
  }

  /** The seq of the last message whose bottom edge is on screen in the log (binary search: rows are in order). */
  lastSeenSeq() {
    const items = this.el.messages.children;
    const bottom = this.el.log.getBoundingClientRect().bottom + 1;
    let lo = 0;
    let hi = items.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (items[mid].getBoundingClientRect().bottom <= bottom) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found < 0 ? null : Number(items[found].dataset.seq);
  }

  /**
   * Open the active room at its first unread message: load history back to it (at most UNREAD_LOAD_MAX
   * messages), put a "New messages" line above it and scroll it to the top. Called again as the join and the
   * history pages arrive, until it has placed the line (or found nothing unread, and gone to the bottom).
   */
  placeUnread() {
    const room = this.active;
    const at = this.unreadAt;
    if (!room || at?.room !== room || at.placed || room.hi === null) return;
    // A room never read has no place to go back to: it opens at its newest messages.
    if (at.after === 0 || at.after >= room.hi) {
      at.placed = true;
      this.scrollToBottom();
      return;
    }
    const reached = room.complete || (room.floor !== null && room.floor <= at.after + 1);
    if (!reached && room.messages.size < UNREAD_LOAD_MAX) {
      this.loadOlder(room); // calls this again when the page is in
      return;
    }
    at.placed = true;
    const first = room.sorted().find((m) => m.seq > at.after && m.from !== this.me && !m.deleted);
    const item = first && this.el.messages.querySelector(`.msg[data-seq="${first.seq}"]`);
    if (!item) {
      this.scrollToBottom();
      return;
    }
    item.prepend(h("div", { class: "new-divider", role: "separator" }, "New messages"));
    regroup(item);
    const log = this.el.log;
    log.scrollTop += item.getBoundingClientRect().top - log.getBoundingClientRect().top - 4;
    $("jump-latest").hidden = this.nearBottom();
    this.noteSeen();
  }

  // --- rendering ------------------------------------------------------------------------------------------

  queueRoomsRender() {
    if (this.roomsRenderQueued) return;
    this.roomsRenderQueued = true;
    requestAnimationFrame(() => {
      this.roomsRenderQueued = false;
      this.renderRooms();
    });
  }

  renderRooms() {
    const rooms = [...this.rooms.values()].sort((a, b) => a.name.localeCompare(b.name));
    const mine = rooms.filter((r) => r.member && !r.dm);
    const dms = rooms.filter((r) => r.member && r.dm);
    const others = rooms.filter((r) => !r.member && !r.isPrivate && !r.joinError);
    let total = 0;
    $("room-list").replaceChildren(...mine.map((r) => {
      const unread = this.unread(r);
      total += unread;
      return roomLink(r, { active: r === this.active, unread });
    }));
    $("room-list-empty").hidden = mine.length > 0;
    $("dm-list").replaceChildren(...dms.map((r) => {
      const unread = this.unread(r);
      total += unread;
      return roomLink(r, { active: r === this.active, unread, label: this.features.dmPartner(r) });
    }));
    $("browse-list").replaceChildren(...others.map((r) => roomLink(r, { active: r === this.active, unread: 0 })));
    $("browse").hidden = others.length === 0;
    document.title = total ? `(${total}) chatd` : "chatd";
  }

  /** How the page names a room to a person: "#plans", or the other person of a direct conversation. */
  roomLabel(room) {
    return room.dm ? this.features.dmPartner(room) : `#${room.name}`;
  }

  /** The open room's title and the message box's placeholder; a DM is titled by the other person. */
  renderTitle() {
    const room = this.active;
    if (!room) return;
    const title = this.el.roomTitle;
    title.dataset.kind = room.dm ? "dm" : "room";
    title.textContent = room.dm ? this.features.dmPartner(room) : room.name;
    this.el.input.placeholder = `Message ${this.roomLabel(room)}`;
  }

  renderEmpty() {
    document.body.dataset.room = "";
    this.el.roomTitle.dataset.kind = "none";
    this.el.roomTitle.textContent = "No room open";
    this.el.messages.replaceChildren();
    this.el.pending.replaceChildren();
    this.el.input.disabled = true;
    $("send-button").disabled = true;
    $("load-older").hidden = true;
    $("history-start").hidden = false;
    $("history-start").textContent = "Pick a room on the left, or create one.";
    this.renderPresence();
  }

  renderTimeline() {
    const room = this.active;
    this.el.messages.replaceChildren(...room.sorted().map((m) => messageItem(m, this.me, this.urlFor, this.features.ctx)));
    regroupAll(this.el.messages);
    this.renderPendingList();
    this.renderHistoryEdge();
    $("jump-latest").hidden = true;
    this.scrollToBottom();
    this.placeUnread();
  }

  renderMessage(m, forceScroll = false) {
    const stick = forceScroll || this.nearBottom();
    insertBySeq(this.el.messages, messageItem(m, this.me, this.urlFor, this.features.ctx));
    if (this.el.messages.childElementCount === 1) this.renderHistoryEdge(); // "no messages yet" is over
    if (stick) this.scrollToBottom();
    else if (m.seq >= (this.active.hi ?? 0)) $("jump-latest").hidden = false;
  }

  /** Our own name changed (an admin renamed us): the page follows (a reload takes the name from GET /api/me). */
  renamed(name) {
    this.me = name;
    this.features.ctx.me = name;
    this.session.user = name;
    $("me").textContent = name;
  }

  /** Draw the names the active room shows again (after a rename). */
  renderActive() {
    const room = this.active;
    if (!room) return;
    this.renderTitle();
    for (const seq of room.messages.keys()) this.rerenderMessage(seq);
    this.renderPresence();
  }

  /** A message changed in place (edit, delete, reaction): draw it again where it is. */
  rerenderMessage(seq) {
    const m = this.active?.messages.get(seq);
    const old = this.el.messages.querySelector(`.msg[data-seq="${seq}"]`);
    if (!m || !old) return;
    const item = messageItem(m, this.me, this.urlFor, this.features.ctx);
    const divider = old.querySelector(".new-divider");
    if (divider) item.prepend(divider);
    old.replaceWith(item);
    regroup(item);
  }

  /** Older messages go on top without moving what the reader is looking at. */
  prependMessages(messages) {
    if (!messages.length) return;
    const log = this.el.log;
    const fromBottom = log.scrollHeight - log.scrollTop;
    const list = this.el.messages;
    const firstSeq = Number(list.firstElementChild?.dataset.seq ?? Infinity);
    const sorted = [...messages].sort((a, b) => a.seq - b.seq);
    if (sorted.at(-1).seq < firstSeq) {
      list.prepend(...sorted.map((m) => messageItem(m, this.me, this.urlFor, this.features.ctx)));
      regroupAll(list);
    } else {
      for (const m of sorted) insertBySeq(list, messageItem(m, this.me, this.urlFor, this.features.ctx));
    }
    log.scrollTop = log.scrollHeight - fromBottom;
  }

  /** Keep loading until the log can scroll, so scrolling up is possible at all. */
  fillViewport() {
    const room = this.active;
    const log = this.el.log;
    if (room && !room.complete && log.scrollHeight <= log.clientHeight + NEAR_TOP_PX) this.loadOlder(room);
  }

  renderHistoryEdge() {
    const room = this.active;
    if (!room) return;
    const older = $("load-older");
    if (room.joinError) {
      older.hidden = true;
      $("history-start").hidden = false;
      $("history-start").textContent = `You cannot read ${this.roomLabel(room)}: ${room.joinError}`;
      return;
    }
    older.hidden = room.complete || room.floor === null;
    older.disabled = room.loading;
    older.textContent = room.loading ? "Loading older messages…" : "Load older messages";
    const start = $("history-start");
    start.hidden = !room.complete;
    if (room.dm) {
      const other = this.features.dmPartner(room);
      start.textContent = room.messages.size ? `This is the beginning of your conversation with ${other}.` :
        `No messages with ${other} yet. Say hello!`;
    } else {
      start.textContent = room.messages.size ? `This is the beginning of #${room.name}.` :
        `No messages in #${room.name} yet. Say hello!`;
    }
  }

  renderPendingList() {
    const room = this.active;
    const items = room ? this.outbox.forRoom(room.name).map((e) => this.pendingElement(e)) : [];
    this.el.pending.replaceChildren(...items);
  }

  pendingElement(entry) {
    return pendingItem(entry, this.me, this.urlFor, {
      onRetry: (id) => this.retry(id),
      onDiscard: (id) => this.discard(id),
    });
  }

  renderPending(entry) {
    if (entry.room !== this.active?.name) return;
    const item = this.pendingElement(entry);
    const old = this.findPending(entry.client_id);
    if (old) old.replaceWith(item);
    else this.el.pending.append(item);
  }

  removePending(clientId) {
    this.findPending(clientId)?.remove();
  }

  findPending(clientId) {
    return [...this.el.pending.children].find((li) => li.dataset.clientId === clientId);
  }

  renderPresence() {
    const users = this.active ? [...this.active.presence].sort() : [];
    $("presence-summary").textContent = `${users.length} online`;
    $("presence-list").replaceChildren(...users.map((u) =>
      h("li", { dataset: { user: u } }, avatar(u), h("span", {}, u === this.me ? `${u} (you)` : u))));
  }

  renderTyping() {
    const users = this.active ? this.active.typingUsers(Date.now()) : [];
    let text = "";
    if (users.length === 1) text = `${users[0]} is typing…`;
    else if (users.length === 2) text = `${users[0]} and ${users[1]} are typing…`;
    else if (users.length > 2) text = "Several people are typing…";
    const el = $("typing");
    if (el.textContent !== text) el.textContent = text;
  }

  renderStatus() {
    const state = this.connection.state;
    let text = STATUS_TEXT[state] ?? state;
    if (state === "waiting") {
      const secs = Math.max(0, Math.ceil((this.connection.retryAt - Date.now()) / 1000));
      text = secs > 0 ? `Reconnecting in ${secs}s…` : "Reconnecting…";
    }
    const status = $("conn-status");
    status.dataset.state = state;
    if (status.textContent !== text) status.textContent = text;
    $("reconnect-now").hidden = !(state === "waiting" || state === "offline");
  }

  renderUploads() {
    $("attachment-chips").replaceChildren(...this.uploads.map((u) => {
      const label = { uploading: "Uploading…", done: "Ready", error: `Failed: ${u.error}` }[u.state];
      return h("li", { class: "chip", dataset: { state: u.state } },
        u.preview ? h("img", { src: u.preview, alt: "" }) : null,
        h("span", { class: "chip-name" }, u.name),
        h("span", { class: "chip-state" }, label),
        h("button", {
          type: "button", class: "icon-button", "aria-label": `Remove ${u.name}`,
          onclick: () => this.removeUpload(u.key),
        }, "×"));
    }));
  }

  showError(text) {
    const el = $("chat-error");
    el.textContent = text;
    el.hidden = false;
    clearTimeout(this.errorTimer);
    this.errorTimer = setTimeout(() => {
      el.hidden = true;
    }, 8000);
  }

  nearBottom() {
    const log = this.el.log;
    return log.scrollHeight - log.scrollTop - log.clientHeight < NEAR_BOTTOM_PX;
  }

  scrollToBottom() {
    this.el.log.scrollTop = this.el.log.scrollHeight;
    this.noteSeen();
  }

  autosize() {
    const input = this.el.input;
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
  }

  openDrawer() {
    document.body.dataset.drawer = "open";
    $("rooms-toggle").setAttribute("aria-expanded", "true");
    document.querySelector("#sidebar a, #sidebar input")?.focus();
  }

  closeDrawer() {
    if (document.body.dataset.drawer !== "open") return false;
    document.body.dataset.drawer = "";
    $("rooms-toggle").setAttribute("aria-expanded", "false");
    return true;
  }

  // --- wiring ---------------------------------------------------------------------------------------------

  tick() {
    for (const room of this.rooms.values()) if (room.live) this.flush(room);
    this.renderTyping();
    if (this.connection.state === "waiting") this.renderStatus();
  }

  bindUi() {
    const { input, composer, log } = this.el;
    composer.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    input.addEventListener("keydown", (e) => {
      // Enter sends, Shift+Enter is a new line; never while an input method is composing a character.
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      }
    });
    input.addEventListener("input", () => {
      this.autosize();
      this.typed();
    });
    input.addEventListener("paste", (e) => {
      const files = [...(e.clipboardData?.files ?? [])];
      if (files.length && this.info.uploads) {
        e.preventDefault();
        files.forEach((f) => this.attach(f));
      }
    });
    $("attach-button").addEventListener("click", () => $("attach-input").click());
    $("attach-input").addEventListener("change", (e) => {
      [...e.target.files].forEach((f) => this.attach(f));
      e.target.value = "";
    });
    log.addEventListener("scroll", () => {
      if (log.scrollTop < NEAR_TOP_PX && this.active) this.loadOlder(this.active);
      this.queueSeen();
    }, { passive: true });
    $("load-older").addEventListener("click", () => this.active && this.loadOlder(this.active));
    $("jump-latest").addEventListener("click", () => {
      this.scrollToBottom();
      input.focus();
    });
    $("reconnect-now").addEventListener("click", () => this.connection.retryNow());
    $("create-room").addEventListener("submit", (e) => {
      e.preventDefault();
      this.createRoom(e.target);
    });
    $("signout").addEventListener("click", () => this.signOut());
    $("switch-user").addEventListener("click", () => {
      this.stop();
      this.onSwitchUser();
    });
    $("rooms-toggle").addEventListener("click", () => {
      if (!this.closeDrawer()) this.openDrawer();
    });
    addEventListener("hashchange", () => this.openRoom(this.roomFromHash()));
    document.addEventListener("visibilitychange", () => this.noteSeen());
    document.addEventListener("keydown", (e) => {
      if (e.altKey && (e.key === "ArrowUp" || e.key === "ArrowDown")) {
        e.preventDefault();
        this.switchRoom(e.key === "ArrowUp" ? -1 : 1);
      } else if (e.key === "Escape") {
        this.closeDrawer();
        this.features.stopComposing();
        this.features.closeSearch();
        if (!input.disabled) input.focus();
      }
    });
  }

  stop() {
    clearInterval(this.ticker);
    clearInterval(this.roomsTimer);
    this.connection.stop();
  }

  async signOut() {
    this.stop();
    if (this.session.token) await this.api.logout().catch(() => null);
    this.onSignOut("");
  }
}
