// The WebSocket half of the protocol: one socket at a time, reconnected with capped, jittered exponential
// backoff. It knows frames and close codes, not rooms; the chat layer re-joins rooms on every "hello".
//
// Events (all CustomEvents, payload in .detail):
//   state    {state}  connecting | open | waiting | offline | refused | stopped
//   hello    the hello frame; the connection is usable from here on
//   frame    any other server frame (ping/pong are answered and swallowed here)
//   refused  {code, reason}  a 44xx close: do not reconnect with these credentials

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 15_000;
const TOO_MANY_BASE_MS = 5_000; // 4029: the server or user is at its connection cap, so back off harder
const HANDSHAKE_TIMEOUT_MS = 10_000; // socket opened (or not) but no hello: give up on this attempt
const DEFAULT_HEARTBEAT_MS = 30_000;

export class Connection extends EventTarget {
  constructor(urlFor) {
    super();
    this.urlFor = urlFor;
    this.ws = null;
    this.state = "stopped";
    this.attempt = 0;
    this.retryTimer = null;
    this.retryAt = 0;
    this.heartbeatMs = DEFAULT_HEARTBEAT_MS;
    this.lastHeard = 0;
    this.lastPing = 0;
    this.since = 0; // when the current attempt started
    this.watchdog = null;
    this.onOnline = () => this.retryNow();
    this.onOffline = () => this.goOffline();
  }

  start() {
    if (this.state !== "stopped") return;
    addEventListener("online", this.onOnline);
    addEventListener("offline", this.onOffline);
    this.watchdog = setInterval(() => this.checkAlive(), 1000);
    this.open();
  }

  stop() {
    this.opening = (this.opening ?? 0) + 1; // a ticket request still in flight must not open a socket
    removeEventListener("online", this.onOnline);
    removeEventListener("offline", this.onOffline);
    clearInterval(this.watchdog);
    clearTimeout(this.retryTimer);
    this.abandon(1000, "bye");
    this.setState("stopped");
  }

  /** Send one frame; false when there is no usable connection (the caller keeps it and retries later). */
  send(frame) {
    if (this.state !== "open") return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Skip the rest of the backoff wait (the user asked, or the browser came back online). */
  retryNow() {
    if (this.state === "waiting" || this.state === "offline") {
      this.attempt = 0;
      this.open();
    }
  }

  /** Drop the current socket as if the network had (used by the offline event and, in tests, on purpose). */
  drop() {
    if (!this.ws) return;
    this.abandon(4000, "client dropped the connection");
    this.scheduleRetry(1006);
  }

  async open() {
    clearTimeout(this.retryTimer);
    if (!navigator.onLine) {
      this.setState("offline");
      return;
    }
    this.setState("connecting");
    this.since = Date.now();
    // The URL may need a request first (a one-use ticket); a newer attempt or a stop makes this one moot.
    const attempt = (this.opening = (this.opening ?? 0) + 1);
    let url;
    try {
      url = await this.urlFor();
    } catch (err) {
      if (attempt !== this.opening || this.state !== "connecting") return;
      if (err.code === "unauthorized") {
        clearInterval(this.watchdog);
        this.setState("refused");
        this.emit("refused", { code: 4401, reason: err.message });
      } else {
        this.scheduleRetry(1006);
      }
      return;
    }
    if (attempt !== this.opening || this.state !== "connecting") return;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onmessage = (ev) => this.receive(ev.data);
    // An error event is always followed by a close event, which is where we decide what to do.
    ws.onclose = (ev) => this.closed(ws, ev.code, ev.reason);
  }

  receive(text) {
    this.lastHeard = Date.now();
    // The server may pack several frames into one message, separated by newlines.
    for (const line of String(text).split("\n")) {
      if (!line) continue;
      let frame;
      try {
        frame = JSON.parse(line);
      } catch {
        console.warn("chatd: ignoring a frame that is not JSON", line);
        continue;
      }
      if (frame.type === "ping") {
        this.ws?.send('{"type":"pong"}');
      } else if (frame.type === "pong") {
        /* lastHeard is all a pong is for */
      } else if (frame.type === "hello") {
        this.attempt = 0;
        this.node = frame.node ?? ""; // which server node this socket reached (several sit behind one address)
        this.heartbeatMs = frame.heartbeat_interval > 0 ? frame.heartbeat_interval * 1000 : DEFAULT_HEARTBEAT_MS;
        this.setState("open");
        this.emit("hello", frame);
      } else {
        this.emit("frame", frame);
      }
    }
  }

  closed(ws, code, reason) {
    if (ws !== this.ws) return; // a socket we had already given up on
    this.ws = null;
    if (this.state === "stopped") return;
    if (code >= 4400 && code < 4500) {
      // 44xx: reconnecting with the same credentials or origin cannot work.
      clearInterval(this.watchdog);
      this.setState("refused");
      this.emit("refused", { code, reason });
      return;
    }
    this.scheduleRetry(code);
  }

  scheduleRetry(code) {
    clearTimeout(this.retryTimer);
    if (!navigator.onLine) {
      this.setState("offline");
      return;
    }
    const base = code === 4029 ? TOO_MANY_BASE_MS : BACKOFF_BASE_MS;
    const ceiling = Math.min(BACKOFF_MAX_MS * (code === 4029 ? 4 : 1), base * 2 ** this.attempt);
    // Full jitter over the upper half: after a server restart, thousands of clients must not arrive together.
    const delay = ceiling * (0.5 + Math.random() / 2);
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.setState("waiting");
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  goOffline() {
    this.abandon(4000, "browser went offline");
    clearTimeout(this.retryTimer);
    this.setState("offline");
  }

  /** Forget the current socket without waiting for its close event, which a dead network may never deliver. */
  abandon(code, reason) {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    ws.onmessage = null;
    ws.onclose = null;
    try {
      ws.close(code, reason);
    } catch {
      /* already closing */
    }
  }

  checkAlive() {
    const now = Date.now();
    if (this.state === "connecting" && now - this.since > HANDSHAKE_TIMEOUT_MS) {
      this.abandon(4000, "no hello");
      this.scheduleRetry(1006);
    } else if (this.state === "open") {
      const quiet = now - this.lastHeard;
      if (quiet > 2 * this.heartbeatMs + 10_000) {
        // Our pings went unanswered: the socket is dead even if the browser has not noticed.
        this.abandon(4000, "heartbeat timeout");
        this.scheduleRetry(1006);
      } else if (quiet > this.heartbeatMs && now - this.lastPing > this.heartbeatMs) {
        this.lastPing = now;
        this.ws.send('{"type":"ping"}');
      }
    }
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.emit("state", { state });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
