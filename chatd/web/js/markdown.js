// A small, safe Markdown subset for message bodies: **bold**, *italic* or _italic_, `code`, ``` blocks ```,
// links ([text](https://…), and bare http(s) addresses through links.js), - and 1. lists, and > quotes.
//
// Safety comes from how it is built, not from filtering: the text is never parsed as HTML. Every piece becomes
// a DOM node made with createElement and filled through text nodes (with bidi controls made visible), so a
// body like <img src=x onerror=alert(1)> is shown as exactly those characters. Links are made only for http and
// https URLs and open in a new tab with rel="noopener noreferrer".

import { bidiSafe } from "./bidi.js";
import { linkify, safeLink } from "./links.js";

const INLINE = new RegExp(
  [
    "(`[^`\\n]+`)", // 1: code
    "(\\*\\*[^*\\n]+\\*\\*)", // 2: bold
    "(\\*[^*\\s][^*\\n]*\\*|(?<![\\w])_[^_\\s][^_\\n]*_(?![\\w]))", // 3: italic
    "(\\[[^\\]\\n]+\\]\\((https?:\\/\\/[^\\s)]+)\\))", // 4: [text](url), 5: its url
  ].join("|"),
  "g",
);

function el(tag, ...children) {
  const node = document.createElement(tag);
  node.append(...children);
  return node;
}

/** Plain text, with bare web addresses made links (links.js). */
function plain(text) {
  return linkify(bidiSafe(text));
}

/** Inline Markdown of one line as a DocumentFragment. */
export function inline(text) {
  const out = document.createDocumentFragment();
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) out.append(plain(text.slice(last, m.index)));
    const [whole, code, bold, italic, labelled, labelledUrl] = m;
    let node = null;
    if (code) node = el("code", bidiSafe(code.slice(1, -1)));
    else if (bold) node = el("strong", inline(bold.slice(2, -2)));
    else if (italic) node = el("em", inline(italic.slice(1, -1)));
    else if (labelled) node = safeLink(labelledUrl, [bidiSafe(labelled.slice(1, labelled.indexOf("](")))]);
    out.append(node ?? plain(whole));
    last = m.index + whole.length;
  }
  if (last < text.length) out.append(plain(text.slice(last)));
  return out;
}

const BULLET = /^\s*[-*] +(.*)$/;
const NUMBERED = /^\s*\d{1,9}[.)] +(.*)$/;
const QUOTE = /^> ?(.*)$/;
const FENCE = /^```/;

/** A whole body as block elements (paragraphs, lists, quotes, code blocks) in a DocumentFragment. */
export function renderMarkdown(body) {
  const out = document.createDocumentFragment();
  const lines = body.split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (FENCE.test(line)) {
      const code = [];
      i += 1;
      while (i < lines.length && !FENCE.test(lines[i])) code.push(lines[i++]);
      i += 1; // the closing fence (or the end of an unclosed block)
      out.append(el("pre", el("code", bidiSafe(code.join("\n")))));
      continue;
    }
    const block = [[QUOTE, "blockquote"], [BULLET, "ul"], [NUMBERED, "ol"]].find(([re]) => re.test(line));
    if (block) {
      const [re, tag] = block;
      const items = [];
      while (i < lines.length && re.test(lines[i])) items.push(lines[i++].match(re)[1]);
      if (tag === "blockquote") out.append(el("blockquote", ...joinLines(items)));
      else out.append(el(tag, ...items.map((item) => el("li", inline(item)))));
      continue;
    }
    const para = [];
    while (i < lines.length && !FENCE.test(lines[i]) && ![QUOTE, BULLET, NUMBERED].some((re) => re.test(lines[i]))) {
      para.push(lines[i++]);
    }
    out.append(el("p", ...joinLines(para)));
  }
  return out;
}

// Line breaks stay newline characters (the body keeps white-space: pre-wrap), so the text a reader copies, and
// the element's textContent, are the text that was sent.
function joinLines(lines) {
  const parts = [];
  lines.forEach((line, n) => {
    if (n) parts.push("\n");
    parts.push(inline(line));
  });
  return parts;
}
