// Small wrappers around localStorage. Every read and write may fail (private windows, full quota, storage
// disabled by policy); the client must keep working then, only forgetting more on reload.

const PREFIX = "chatd.";

export function load(key, fallback) {
  try {
    const raw = localStorage.getItem(PREFIX + key);
    return raw === null ? fallback : JSON.parse(raw);
  } catch {
    return fallback;
  }
}

export function save(key, value) {
  try {
    if (value === undefined || value === null) localStorage.removeItem(PREFIX + key);
    else localStorage.setItem(PREFIX + key, JSON.stringify(value));
  } catch {
    /* see the note at the top */
  }
}

/** The last seq the user has seen, per room. Kept per user, so two accounts in one browser do not mix. */
export class ReadMarks {
  constructor(user) {
    this.key = `read.${user}`;
    this.marks = load(this.key, {});
  }

  get(room) {
    return this.marks[room] ?? 0;
  }

  /** Forget the mark of a room whose history was replaced on the server (a reset join). */
  forget(room) {
    if (!(room in this.marks)) return;
    delete this.marks[room];
    save(this.key, this.marks);
  }

  /** Only ever moves forward: a late page of old history must not make read messages unread again. */
  advance(room, seq) {
    if (seq == null || seq <= this.get(room)) return false;
    this.marks[room] = seq;
    save(this.key, this.marks);
    return true;
  }
}

/** A client_id that stays unique across tabs and reloads. randomUUID needs a secure context; plain http on a
 * LAN address is not one, so fall back to getRandomValues, which works everywhere. */
export function newClientId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
