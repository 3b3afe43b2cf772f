// A room's outgoing webhooks, for its creator and admins: where the room's events go, whether each is keeping
// up, the last error of one that fails, and adding (the secret is shown once), enabling and removing them. The
// REST calls are /api/rooms/{room}/webhooks (docs/integrations.md).

import { h } from "./dom.js";

const $ = (id) => document.getElementById(id);

const STATE_WORDS = {
  active: "delivering",
  retrying: "retrying",
  failing: "stopped after repeated failures",
};

export class RoomHooks {
  constructor(app) {
    this.app = app;
    this.room = null;
    this.el = {
      panel: $("webhooks"),
      summary: $("webhooks-summary"),
      list: $("webhook-list"),
      form: $("webhook-form"),
      url: $("webhook-url"),
      secret: $("webhook-secret"),
      error: $("webhooks-error"),
      refresh: $("webhooks-refresh"),
    };
    this.el.panel.addEventListener("toggle", () => {
      if (this.el.panel.open) this.load();
    });
    this.el.refresh.addEventListener("click", () => this.load());
    this.el.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.add(this.el.url.value.trim());
    });
  }

  path(...parts) {
    return [`/api/rooms/${encodeURIComponent(this.room.name)}/webhooks`, ...parts].join("/");
  }

  /** The open room changed: the panel shows only to whoever may manage the room's webhooks. */
  async show(room) {
    this.room = room;
    this.el.panel.hidden = true;
    this.el.error.textContent = "";
    this.el.secret.hidden = true;
    this.el.list.replaceChildren();
    if (!room || room.dm) return;
    try {
      if (this.app.admin.admin === null) this.app.admin.admin = !!(await this.app.api.me()).admin;
      if (room.createdBy === undefined) {
        room.createdBy = (await this.app.api.call("GET", `/api/rooms/${encodeURIComponent(room.name)}`)).created_by;
      }
    } catch {
      return; // the member panel says what went wrong
    }
    if (room !== this.room) return;
    this.el.panel.hidden = !(this.app.admin.admin || room.createdBy === this.app.me);
    if (!this.el.panel.hidden && this.el.panel.open) this.load();
  }

  async load() {
    const room = this.room;
    if (!room) return;
    let hooks;
    try {
      hooks = (await this.app.api.call("GET", this.path())).webhooks;
    } catch (err) {
      if (room === this.room) this.el.error.textContent = err.message;
      return;
    }
    if (room !== this.room) return;
    const failing = hooks.filter((w) => w.state === "failing").length;
    this.el.summary.textContent = `${hooks.length} webhook${hooks.length === 1 ? "" : "s"}`
      + (failing ? `, ${failing} failing` : "");
    this.el.list.replaceChildren(...hooks.map((w) => h("li", { dataset: { hook: w.id, state: w.state } },
      h("span", { class: "webhook-url" }, w.url),
      h("span", { class: `webhook-state ${w.state}` }, STATE_WORDS[w.state] ?? w.state),
      h("span", { class: "hint" }, `${w.delivered} sent, ${w.behind} waiting`),
      w.last_error ? h("span", { class: "error webhook-error" }, `${w.last_error} (${w.attempts}×)`) : null,
      w.state !== "active"
        ? h("button", { type: "button", class: "link", onclick: () => this.act("POST", w.id, "enable") }, "Retry now")
        : null,
      h("button", {
        type: "button", class: "link", "aria-label": `Remove webhook ${w.id}`,
        onclick: () => this.act("DELETE", w.id),
      }, "Remove"))));
  }

  async add(url) {
    if (!this.room || !url) return;
    this.el.error.textContent = "";
    let made;
    try {
      made = await this.app.api.call("POST", this.path(), { json: { url } });
    } catch (err) {
      this.el.error.textContent = err.message;
      return;
    }
    this.el.form.reset();
    // Shown once: the receiver checks every request's X-Chatd-Signature with it.
    this.el.secret.textContent = `Signing secret for ${made.url} (shown only now): ${made.secret}`;
    this.el.secret.hidden = false;
    this.load();
  }

  async act(method, id, what = "") {
    this.el.error.textContent = "";
    try {
      await this.app.api.call(method, this.path(id, ...(what ? [what] : [])));
    } catch (err) {
      this.el.error.textContent = err.message;
      return;
    }
    this.load();
  }
}
