// DOM building blocks. Everything user-supplied goes in through textContent or attributes, never innerHTML.

import { bidiSafe } from "./bidi.js";
import { h } from "./dom.js";
import { editedMark, messageActions, messageBody, reactionBar, replyQuote } from "./features.js";

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

const ICONS = {
  // 24x24 outline paths; no icon font and no emoji, since the machine may have neither.
  lock: "M7 11V8a5 5 0 0 1 10 0v3M5 11h14v10H5z",
};

/** An inline SVG icon. With a label it is announced; without one it is decoration. */
export function icon(name, label) {
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", `icon icon-${name}`);
  if (label) {
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
  } else {
    svg.setAttribute("aria-hidden", "true");
  }
  const path = document.createElementNS(NS, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

/** "14:03" for today, "12 Mar 2025, 14:03" otherwise. */
export function formatTime(ts) {
  const d = new Date(ts);
  return d.toDateString() === new Date().toDateString() ? timeFormat.format(d) : dateTimeFormat.format(d);
}

/** A stable hue per name, so each sender keeps one colour everywhere. */
function hue(name) {
  // FNV-1a: short names that differ by one letter still land far apart on the colour wheel.
  let n = 0x811c9dc5;
  for (const ch of name) n = Math.imul(n ^ ch.codePointAt(0), 0x01000193) >>> 0;
  return n % 360;
}

export function avatar(name) {
  return h("span", { class: "avatar", "aria-hidden": "true", style: `--hue:${hue(name)}` },
    name.slice(0, 1).toUpperCase());
}

function attachmentList(ids, urlFor) {
  if (!ids?.length) return null;
  return h("div", { class: "attachments" }, ids.map((id) => {
    let url = urlFor(id);
    const img = h("img", { src: url, alt: "Attached image", loading: "lazy" });
    const link = h("a", { href: url, target: "_blank", rel: "noopener noreferrer", class: "attachment" }, img);
    img.addEventListener("error", () => {
      // The URL's signed key may have expired: ask once for a fresh one.
      const fresh = urlFor(id);
      if (fresh !== url && !img.dataset.retried) {
        img.dataset.retried = "true";
        url = fresh;
        img.src = link.href = fresh;
        return;
      }
      // The frame carries ids only, not types: if it is not an image, fall back to a plain link.
      link.replaceChildren("Attachment (open)");
    });
    return link;
  }));
}

/** A bot's messages carry a badge; a message an incoming webhook posted shows the name it gave (``via``) and says
 * so, naming the hook's bot in the tooltip. */
function senderBadge(m) {
  if (m.via) return h("span", { class: "badge hook-badge", title: `Posted through an incoming webhook (${m.from})` }, "via hook");
  if (m.bot) return h("span", { class: "badge bot-badge", title: "A bot account" }, "bot");
  return null;
}

/** A display name, beside (never instead of) the name it belongs to. */
export function displayName(text) {
  return text ? h("bdi", { class: "display-name", title: "Display name" }, text) : null;
}

/** One stored message. Own messages carry a delivered mark: the server has it. ``ctx`` (features.js) adds the
 * reply quote, mention marks, reactions and actions. A message that continues its sender's run (``regroup``)
 * hides its avatar and name on screen, but keeps them for screen readers, and shows its time on hover. */
export function messageItem(m, me, urlFor, ctx = null) {
  const mine = m.from === me;
  const when = new Date(m.ts);
  const body = messageBody(m, ctx);
  const forMe = !mine && !!body?.querySelector(".mention.me");
  return h("li", {
    class: ["msg", mine ? "mine" : "", m.deleted ? "deleted" : "", forMe ? "mentions-me" : ""].filter(Boolean).join(" "),
    dataset: { seq: String(m.seq), clientId: m.client_id, from: m.from, ts: String(m.ts), state: "delivered" },
  },
    h("div", { class: "gutter" },
      avatar(m.from),
      h("span", { class: "gutter-time", "aria-hidden": "true" }, timeFormat.format(when))),
    h("div", { class: "bubble" },
      h("div", { class: "meta" },
        h("bdi", { class: "from" }, m.via || m.from),
        m.via ? null : displayName(ctx?.displayOf?.(m.uid)),
        senderBadge(m),
        h("time", { datetime: when.toISOString(), title: dateTimeFormat.format(when) }, formatTime(m.ts)),
        editedMark(m)),
      replyQuote(m, ctx),
      body,
      m.deleted ? null : attachmentList(m.attachments, urlFor),
      reactionBar(m, ctx)),
    mine ? h("span", { class: "status", title: "Delivered" }, "✓", h("span", { class: "visually-hidden" }, " delivered"))
      : null,
    messageActions(m, ctx));
}

const GROUP_MS = 5 * 60_000; // a sender's messages this close together read as one run

function continues(prev, item) {
  return prev.dataset.from === item.dataset.from && !item.querySelector(".new-divider") &&
    Number(item.dataset.ts) - Number(prev.dataset.ts) < GROUP_MS;
}

/** Mark ``item`` and the one after it as continuing their sender's run, or not, after ``item`` arrived or
 * changed. */
export function regroup(item) {
  for (const el of [item, item?.nextElementSibling]) {
    if (!el) continue;
    const prev = el.previousElementSibling;
    el.classList.toggle("cont", !!prev && continues(prev, el));
  }
}

/** Regroup a whole list (after it was rebuilt or had a page prepended). */
export function regroupAll(list) {
  let prev = null;
  for (const el of list.children) {
    el.classList.toggle("cont", !!prev && continues(prev, el));
    prev = el;
  }
}

const PENDING_TEXT = { queued: "Waiting for connection…", sent: "Sending…" };

/** One message the server has not acknowledged yet. */
export function pendingItem(entry, me, urlFor, { onRetry, onDiscard }) {
  const failed = entry.state === "failed";
  const status = failed
    ? h("span", { class: "status failed" }, `Not sent: ${entry.error}`,
      h("button", { type: "button", class: "link", onclick: () => onRetry(entry.client_id) }, "Retry"),
      h("button", { type: "button", class: "link", onclick: () => onDiscard(entry.client_id) }, "Discard"))
    : h("span", { class: "status" }, PENDING_TEXT[entry.state] ?? "Sending…");
  return h("li", { class: "msg mine pending", dataset: { clientId: entry.client_id, state: entry.state } },
    h("div", { class: "gutter" }, avatar(me)),
    h("div", { class: "bubble" },
      h("div", { class: "meta" }, h("span", { class: "from" }, me), status),
      entry.body ? h("p", { class: "body", dir: "auto" }, bidiSafe(entry.body)) : null,
      attachmentList(entry.attachments, urlFor)));
}

/** Put a message element into a list kept in seq order. New messages almost always go last, so walk back. */
export function insertBySeq(list, item) {
  const seq = Number(item.dataset.seq);
  let after = list.lastElementChild;
  while (after && Number(after.dataset.seq) > seq) after = after.previousElementSibling;
  if (after) after.after(item);
  else list.prepend(item);
  regroup(item);
}

export function roomLink(room, { active, unread, label }) {
  const badge = unread > 0
    ? h("span", { class: "badge" }, unread > 99 ? "99+" : String(unread),
      h("span", { class: "visually-hidden" }, " unread"))
    : null;
  return h("li", {},
    h("a", {
      href: `#${encodeURIComponent(room.name)}`,
      class: "room-link",
      "aria-current": active ? "page" : null,
      dataset: { room: room.name, unread: String(unread) },
    },
    room.dm ? h("span", { class: "hash", "aria-hidden": "true" }, "@")
      : room.isPrivate ? icon("lock", "private room") : h("span", { class: "hash", "aria-hidden": "true" }, "#"),
    h("span", { class: "room-name" }, label ?? room.name),
    badge));
}
