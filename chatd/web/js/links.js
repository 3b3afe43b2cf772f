// Web addresses in message text become links, built as DOM nodes (never HTML), only for http and https, and
// opened in a new tab that gets no handle on this page (noopener) and no Referer naming the room (noreferrer).

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
// Punctuation that ends a sentence more often than it ends an address.
const TRAILING = ".,;:!?'\")]}";

/** ``fragment`` with each web address in its text nodes replaced by a link. */
export function linkify(fragment) {
  const walker = document.createTreeWalker(fragment, NodeFilter.SHOW_TEXT);
  const texts = [];
  while (walker.nextNode()) texts.push(walker.currentNode);
  for (const node of texts) {
    const parts = split(node.data);
    if (parts.length > 1 || typeof parts[0] !== "string") node.replaceWith(...parts);
  }
  return fragment;
}

/** A link to ``href`` around ``children``, or null unless ``href`` is an http(s) URL. The one place the page
 * makes a link out of user text (bare addresses here, [text](url) in markdown.js). */
export function safeLink(href, children) {
  let url;
  try {
    url = new URL(href);
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  const a = document.createElement("a");
  a.append(...children);
  a.href = url.href;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  return a;
}

function split(text) {
  const out = [];
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    const href = trimTrailing(match[0]);
    const a = safeLink(href, [href]);
    if (a === null) continue;
    if (match.index > last) out.push(text.slice(last, match.index));
    out.push(a);
    last = match.index + href.length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out.length ? out : [text];
}

function trimTrailing(href) {
  let end = href.length;
  while (end > 0 && TRAILING.includes(href[end - 1])) {
    // Keep a closing parenthesis that closes one opened inside the address (Wikipedia-style links).
    if (href[end - 1] === ")") {
      const inside = href.slice(0, end);
      const count = (ch) => inside.split(ch).length - 1;
      if (count("(") >= count(")")) break;
    }
    end -= 1;
  }
  return href.slice(0, end);
}
