// What the client knows about one room. No DOM and no I/O here, so the ordering rules are easy to read.
//
// The loaded messages always form one gap-free run of seqs, floor..hi:
//   - hi is the highest seq up to which the stream is complete. The first join (no since) sets it to the
//     room's last seq; every streamed message (replay or live) raises it, and a re-join asks for since=hi, so
//     the server replays exactly what we missed.
//   - floor is the lowest loaded seq. History pages (REST, before=floor) lower it until has_more is false.
//   - epoch names the incarnation of the room's stream that hi counts in. A re-join sends it with since; when
//     the server answers reset (the room was made again, or its store restored, or hi is past its end), what we
//     hold belongs to another history: it is all dropped and the room loads again as on a first visit.
// Messages are kept by seq, so a message seen twice (replay after an ack, an ack after the message) is stored
// once, and rendering sorts by seq.

export class Room {
  constructor(info) {
    this.name = info.name;
    this.hi = null; // null until the first joined frame: we know nothing about the stream yet
    this.epoch = null; // the stream's epoch, from the last joined frame
    this.floor = null;
    this.complete = false; // history reaches the room's first message
    this.loading = false;
    this.messages = new Map(); // seq -> message frame
    this.rev = 0; // bumped whenever ``messages`` gains, loses or changes one, so counts over it can be kept
    this.live = false; // joined on the current connection and receiving live messages
    this.joining = false; // a join is on the wire, unanswered
    this.joinError = ""; // why the server refused our last join (private room, bad name...)
    this.replayLeft = 0; // replayed messages still due after a joined frame
    this.capped = false; // the replay was capped: join again once it has arrived
    this.presence = new Set();
    this.typing = new Map(); // user -> time (ms) the indicator expires
    this.update(info);
  }

  /** Facts from GET /api/rooms. */
  update(info) {
    this.isPrivate = !!info.private;
    this.dm = !!info.dm;
    // The other member of a DM, by their current name (the room list's "with"), and their id ("with_uid").
    this.with = info.with ?? this.with ?? "";
    this.withUid = info.with_uid ?? this.withUid;
    this.topic = info.topic ?? this.topic ?? "";
    this.createdBy = info.created_by ?? this.createdBy; // decides who may remove others
    // A room list read before our own join committed says "not a member"; a live room is one we belong to.
    this.member = !!info.member || this.live;
    this.listedSeq = Math.max(this.listedSeq ?? 0, info.last_seq ?? 0);
  }

  /** The newest seq we know exists, from the stream or, for rooms never joined, from the room list. */
  get latest() {
    return Math.max(this.hi ?? 0, this.listedSeq ?? 0);
  }

  joinFrame() {
    if (this.hi === null) return { type: "join", room: this.name };
    const frame = { type: "join", room: this.name, since: this.hi };
    if (this.epoch) frame.epoch = this.epoch;
    return frame;
  }

  /** Apply a joined frame. Returns true when live delivery has started (not capped). A reset frame first drops
   * everything held of the room (check ``reset`` on the frame to redraw). */
  joined(frame) {
    this.member = true;
    if (frame.reset) this.forget();
    if (frame.epoch) this.epoch = frame.epoch;
    if (this.hi === null) {
      // First join ever, without since: everything after frame.seq arrives live; older messages come from
      // history pages.
      this.hi = frame.seq;
      this.floor = frame.seq + 1;
      this.complete = frame.seq === 0;
    } else if (frame.deleted_through > this.hi) {
      // Retention deleted these seqs on the server: the replay starts after them, and that is not a gap to fill.
      this.hi = frame.deleted_through;
    }
    this.capped = !!frame.capped;
    this.replayLeft = frame.replay ?? 0;
    this.live = !this.capped;
    return this.live;
  }

  /**
   * A message frame from the stream (replay or live). Returns {fresh, gap, rejoin}:
   * fresh - not seen before; gap - [from, to] of seqs the stream skipped (it should not; fetch them by REST);
   * rejoin - a capped replay has fully arrived, so join again with since=hi.
   */
  streamed(m) {
    let gap = null;
    if (this.hi !== null && m.seq > this.hi + 1) gap = [this.hi + 1, m.seq - 1];
    if (this.hi === null || m.seq > this.hi) this.hi = m.seq;
    if (this.floor === null) this.floor = m.seq;
    const fresh = this.add(m);
    this.typing.delete(m.from);
    let rejoin = false;
    if (this.replayLeft > 0) {
      this.replayLeft -= 1;
      rejoin = this.replayLeft === 0 && this.capped;
    }
    return { fresh, gap, rejoin };
  }

  /** Drop every message and the stream position: the server's history for this room is another one now. */
  forget() {
    this.messages.clear();
    this.hi = null;
    this.floor = null;
    this.complete = false;
    this.replayLeft = 0;
    this.capped = false;
    this.unreadMemo = null;
    this.rev += 1;
  }

  /** Store a message; false when its seq is already known. Does not move hi: only the stream does. */
  add(m) {
    if (this.messages.has(m.seq)) return false;
    this.messages.set(m.seq, m);
    this.rev += 1;
    return true;
  }

  /** A page of history (oldest first). Returns the messages that were new. */
  addHistory(messages, hasMore) {
    const fresh = messages.filter((m) => this.add(m));
    if (messages.length) this.floor = Math.min(this.floor ?? Infinity, messages[0].seq);
    if (!hasMore) this.complete = true;
    return fresh;
  }

  /** Forget all but the newest ``keep`` messages (a room in the background must not grow without bound).
   * The kept ones are still a gap-free run, so floor simply moves up; scroll-back reloads the rest. */
  trim(keep) {
    if (this.messages.size <= keep) return;
    const seqs = [...this.messages.keys()].sort((a, b) => a - b);
    const cut = seqs[seqs.length - keep];
    for (const seq of seqs) {
      if (seq >= cut) break;
      this.messages.delete(seq);
    }
    this.floor = cut;
    this.complete = false;
    this.rev += 1;
  }

  /** Messages in seq order. */
  sorted() {
    return [...this.messages.values()].sort((a, b) => a.seq - b.seq);
  }

  /** The connection dropped: nothing is live, and presence/typing are unknown until the next join. */
  disconnected() {
    this.live = false;
    this.joining = false;
    this.replayLeft = 0;
    this.capped = false;
    this.presence.clear();
    this.typing.clear();
  }

  typingUsers(now) {
    for (const [user, until] of this.typing) if (until <= now) this.typing.delete(user);
    return [...this.typing.keys()].sort();
  }

  /** A room event (edit, delete, reaction, topic) from the stream: it has a seq of its own and moves the stream
   * position like a message, but it is not one (features.js applies it). Returns {gap, rejoin} as streamed() does. */
  streamedEvent(f) {
    let gap = null;
    if (this.hi !== null && f.seq > this.hi + 1) gap = [this.hi + 1, f.seq - 1];
    if (this.hi === null || f.seq > this.hi) this.hi = f.seq;
    let rejoin = false;
    if (this.replayLeft > 0) {
      this.replayLeft -= 1;
      rejoin = this.replayLeft === 0 && this.capped;
    }
    return { gap, rejoin };
  }
}
