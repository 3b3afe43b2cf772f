// Bidirectional-text controls in what someone else wrote are shown, never obeyed.
//
// U+202A-202E (embeddings and overrides) and U+2066-2069 (isolates) reorder the characters that follow them, so a
// message could show "exe.png" for a file really named "gnp.exe", or run backwards into the text beside it. Each
// one is replaced by a visible marker, so the text displays in its real order and the reader sees that the
// sender tried to reorder it. Normal right-to-left text needs none of these characters and is left alone.

const CONTROLS = /[\u202A-\u202E\u2066-\u2069]/g;
const NAMES = {
  "\u202A": "LRE", "\u202B": "RLE", "\u202C": "PDF", "\u202D": "LRO", "\u202E": "RLO",
  "\u2066": "LRI", "\u2067": "RLI", "\u2068": "FSI", "\u2069": "PDI",
};

/** ``text`` as DOM nodes, with each bidi control replaced by a visible marker (a DocumentFragment). */
export function bidiSafe(text) {
  const out = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(CONTROLS)) {
    if (match.index > last) out.append(text.slice(last, match.index));
    const ch = match[0];
    const code = `U+${ch.codePointAt(0).toString(16).toUpperCase()}`;
    const mark = document.createElement("span");
    mark.className = "bidi-control";
    mark.title = `${code}: a text-direction control, shown instead of applied`;
    mark.textContent = NAMES[ch];
    out.append(mark);
    last = match.index + ch.length;
  }
  if (last < text.length) out.append(text.slice(last));
  return out;
}
