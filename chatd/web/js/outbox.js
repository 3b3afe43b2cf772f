// Messages the user wrote that the server has not acknowledged yet.
//
// Each keeps the client_id it was born with through every retry, so the server's idempotency turns a resend of
// something already stored into an ack with "duplicate": true and the original seq; a message can never be
// posted twice. The outbox is saved in localStorage, so a message typed just before a reload is still sent.

import { load, newClientId, save } from "./storage.js";

const ACK_TIMEOUT_MS = 10_000; // no ack on a live connection this long: resend (harmless, see above)
const RETRYABLE = new Set(["rate_limited", "unavailable", "internal"]);

export class Outbox {
  constructor(user) {
    this.key = `outbox.${user}`;
    this.entries = new Map();
    for (const e of load(this.key, [])) {
      this.entries.set(e.client_id, { ...e, state: e.state === "failed" ? "failed" : "queued", sentAt: 0 });
    }
  }

  add(room, body, attachments, replyTo = 0) {
    const entry = {
      client_id: newClientId(),
      room,
      body,
      attachments,
      reply_to: replyTo,
      state: "queued", // queued -> sent -> (acked: removed) | failed
      created: Date.now(),
      sentAt: 0,
      retryAt: 0,
      tries: 0,
      error: "",
    };
    this.entries.set(entry.client_id, entry);
    this.persist();
    return entry;
  }

  get(clientId) {
    return this.entries.get(clientId);
  }

  forRoom(room) {
    return [...this.entries.values()].filter((e) => e.room === room).sort((a, b) => a.created - b.created);
  }

  /** Entries of a live room that should go (again) on the wire now. */
  due(room, now) {
    return this.forRoom(room).filter(
      (e) => (e.state === "queued" && e.retryAt <= now) || (e.state === "sent" && now - e.sentAt > ACK_TIMEOUT_MS),
    );
  }

  frame(entry) {
    const frame = { type: "send", room: entry.room, body: entry.body, client_id: entry.client_id };
    if (entry.attachments?.length) frame.attachments = entry.attachments;
    if (entry.reply_to) frame.reply_to = entry.reply_to;
    return frame;
  }

  sent(entry, now) {
    entry.state = "sent";
    entry.sentAt = now;
    entry.tries += 1;
  }

  /** The server has it (ack or our own message frame): forget it. Returns the entry, if it was ours. */
  settle(clientId) {
    const entry = this.entries.get(clientId);
    if (entry) {
      this.entries.delete(clientId);
      this.persist();
    }
    return entry;
  }

  /** An error frame about this entry. Transient codes retry later; the rest wait for the user. */
  failed(clientId, code, message, now) {
    const entry = this.entries.get(clientId);
    if (!entry) return null;
    if (RETRYABLE.has(code)) {
      entry.state = "queued";
      entry.retryAt = now + Math.min(30_000, 1000 * 2 ** Math.min(entry.tries, 5));
    } else {
      entry.state = "failed";
      entry.error = message || code;
    }
    this.persist();
    return entry;
  }

  retry(clientId) {
    const entry = this.entries.get(clientId);
    if (entry) {
      entry.state = "queued";
      entry.retryAt = 0;
      entry.error = "";
      this.persist();
    }
    return entry;
  }

  discard(clientId) {
    this.settle(clientId);
  }

  /** The connection dropped: whatever was in flight goes again after the next join. */
  disconnected() {
    for (const e of this.entries.values()) if (e.state === "sent") e.state = "queued";
  }

  persist() {
    save(this.key, [...this.entries.values()].map(({ sentAt, ...rest }) => rest));
  }
}
