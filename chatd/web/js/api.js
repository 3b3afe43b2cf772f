// The REST half of the protocol. Every failure becomes an ApiError carrying the server's error code, so callers
// branch on codes (unauthorized, not_found, too_large...) and never on message text.

export class ApiError extends Error {
  /** ``field``: the request field an ``invalid`` answer is about (the server names it), or undefined. */
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field ?? undefined;
  }
}

async function request(url, { method = "GET", headers = {}, json, body } = {}) {
  const init = { method, headers: { ...headers } };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  let res;
  try {
    res = await fetch(url, init);
  } catch (err) {
    throw new ApiError(0, "network", `cannot reach the server (${err.message})`);
  }
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    throw new ApiError(res.status, data?.code ?? `http_${res.status}`, data?.message ?? res.statusText, data?.field);
  }
  return data;
}

/** What the server is: auth mode, limits, whether it takes uploads. Needs no credentials. */
export function serverInfo() {
  return request("/api/server");
}

/** Register or log in (token mode). Returns {token, user}. ``invite``: the code a registration needs on a server
 * with auth.registration = "invite". */
export function authenticate(kind, username, password, invite = "") {
  const json = { username, password };
  if (kind === "register" && invite) json.invite = invite;
  return request(`/api/auth/${kind === "register" ? "register" : "login"}`, { method: "POST", json });
}

/** After single sign-on: the {token, user} the sign-in left for this browser (once), or the refusal as an ApiError. */
export function ssoSession() {
  return request("/api/auth/oidc/session", { method: "POST" });
}

/** An API client bound to one session: {mode, user, token?}. */
export class Api {
  constructor(session) {
    this.session = session;
  }

  /** Open mode's credentials as query parameters, for the WebSocket URL and <img src>, which cannot carry
   * headers. A token never goes into a URL: see wsUrl and uploadUrl. */
  credentialParams() {
    return { user: this.session.user };
  }

  url(path, params = {}) {
    const url = new URL(path, location.origin);
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) url.searchParams.set(k, v);
    if (!this.session.token) url.searchParams.set("user", this.session.user);
    return url.toString();
  }

  /** The WebSocket URL. With a token it carries a one-use ticket that expires in seconds, not the token, which
   * would otherwise end up in proxy logs. Fetching the ticket also renews the attachment key. */
  async wsUrl() {
    const url = new URL("/ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    if (this.session.token) {
      url.searchParams.set("ticket", (await this.fetchTicket()).ticket);
    } else {
      for (const [k, v] of Object.entries(this.credentialParams())) url.searchParams.set(k, v);
    }
    return url.toString();
  }

  /** POST /api/auth/ticket: a WebSocket ticket, and a media key for attachment URLs (kept until half its life). */
  async fetchTicket() {
    const t = await this.call("POST", "/api/auth/ticket");
    this.media = { key: t.media_key, renewAt: Date.now() + t.media_expires_in * 500 };
    return t;
  }

  call(method, path, { params, json, body, type } = {}) {
    const headers = {};
    if (this.session.token) headers.Authorization = `Bearer ${this.session.token}`;
    if (type) headers["Content-Type"] = type;
    return request(this.url(path, params), { method, headers, json, body });
  }

  me() {
    return this.call("GET", "/api/me");
  }

  logout() {
    return this.call("POST", "/api/auth/logout");
  }

  async rooms() {
    return (await this.call("GET", "/api/rooms")).rooms;
  }

  createRoom(name, isPrivate) {
    return this.call("POST", "/api/rooms", { json: { name, private: isPrivate } });
  }

  /** One page of history, oldest first: {messages, has_more}. */
  history(room, { before, after, limit = 50 } = {}) {
    return this.call("GET", `/api/rooms/${encodeURIComponent(room)}/messages`, {
      params: { before, after, limit },
    });
  }

  async presence(room) {
    return (await this.call("GET", `/api/rooms/${encodeURIComponent(room)}/presence`)).users;
  }

  /** Upload the raw bytes of one file; returns {id, content_type, size, name}. */
  upload(room, file) {
    return this.call("POST", "/api/uploads", {
      params: { room, name: file.name },
      body: file,
      type: file.type || "application/octet-stream",
    });
  }

  /** An attachment's URL: with a token, signed by the media key (GET-only, expiring), never the token itself. */
  uploadUrl(id) {
    const url = new URL(`/api/uploads/${encodeURIComponent(id)}`, location.origin);
    if (!this.session.token) {
      for (const [k, v] of Object.entries(this.credentialParams())) url.searchParams.set(k, v);
      return url.toString();
    }
    if ((!this.media || Date.now() > this.media.renewAt) && !this.renewing) {
      // Renew in the background; this URL uses the current key, and a failed image asks again (view.js).
      this.renewing = this.fetchTicket().catch(() => {}).finally(() => { this.renewing = null; });
    }
    if (this.media) url.searchParams.set("key", this.media.key);
    return url.toString();
  }
}
