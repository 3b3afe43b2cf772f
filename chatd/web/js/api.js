// The REST half of the protocol. Every failure becomes an ApiError carrying the server's error code, so callers
// branch on codes (unauthorized, not_found, too_large...) and never on message text.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
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
    throw new ApiError(res.status, data?.code ?? `http_${res.status}`, data?.message ?? res.statusText);
  }
  return data;
}

/** What the server is: auth mode, limits, whether it takes uploads. Needs no credentials. */
export function serverInfo() {
  return request("/api/server");
}

/** Register or log in (token mode). Returns {token, user}. */
export function authenticate(kind, username, password) {
  return request(`/api/auth/${kind === "register" ? "register" : "login"}`, {
    method: "POST",
    json: { username, password },
  });
}

/** An API client bound to one session: {mode, user, token?}. */
export class Api {
  constructor(session) {
    this.session = session;
  }

  /** Credentials as query parameters, for the WebSocket URL and <img src>, which cannot carry headers. */
  credentialParams() {
    const { token, user } = this.session;
    return token ? { token } : { user };
  }

  url(path, params = {}) {
    const url = new URL(path, location.origin);
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) url.searchParams.set(k, v);
    if (!this.session.token) url.searchParams.set("user", this.session.user);
    return url.toString();
  }

  wsUrl() {
    const url = new URL("/ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    for (const [k, v] of Object.entries(this.credentialParams())) url.searchParams.set(k, v);
    return url.toString();
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

  uploadUrl(id) {
    const url = new URL(`/api/uploads/${encodeURIComponent(id)}`, location.origin);
    for (const [k, v] of Object.entries(this.credentialParams())) url.searchParams.set(k, v);
    return url.toString();
  }
}
