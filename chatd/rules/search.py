"""Full-text search helpers shared by the stores and the REST route (no I/O).

A query is reduced to its words before it reaches a database, so no query syntax of FTS5 or PostgreSQL can be
injected or make a search fail: every word must occur, and the last one also matches as a prefix (search as you
type). Stores mark matches in snippets with ``MARK_START``/``MARK_END``; :func:`snippet_parts` turns that into
parts a client renders as text, never as HTML.
"""

from __future__ import annotations

import re

import msgspec

from chatd.errors import ChatError, Err

TERMS_MAX = 10
MARK_START, MARK_END = "\x02", "\x03"
_WORD = re.compile(r"\w+")
_MARKS = re.compile(f"({MARK_START}|{MARK_END})")


class Hit(msgspec.Struct, frozen=True):
    """One search result as a store finds it; ``snippet`` carries the match marks."""

    room: str
    seq: int
    from_: str = msgspec.field(name="from")  # the sender's current name
    ts: int = 0
    snippet: str = ""
    uid: int = 0  # the sender's id


class Part(msgspec.Struct, frozen=True):
    text: str
    match: bool = False


def terms(query: str) -> list[str]:
    """The words of a query, lower-cased, at most ``TERMS_MAX``."""
    return [w.lower() for w in _WORD.findall(query)][:TERMS_MAX]


def check_query(words: list[str], prefix_min: int) -> None:
    """Refuse a query whose last word, matched as a prefix, is shorter than ``prefix_min`` characters: a one-letter
    prefix matches most of the index, which is costly to rank and useless to read."""
    if words and len(words[-1]) < prefix_min:
        raise ChatError(
            Err.BAD_FRAME,
            f"the last word of q is matched as a prefix and must have at least {prefix_min} characters "
            "(search.prefix_min)",
            field="q",
        )


def search_too_slow(timeout: float) -> ChatError:
    """What a store raises for a search it stopped at its time limit (``Store.search_limits``)."""
    return ChatError(Err.SEARCH_TIMEOUT, f"the search ran past {timeout:g} s (search.timeout) and was stopped")


def searches_busy() -> ChatError:
    """What a store raises when every search slot of the node stayed busy for the whole time limit."""
    return ChatError(
        Err.RATE_LIMITED, "too many searches are running on this server now (search.concurrency)", retry_after=1.0
    )


def fts5_query(words: list[str]) -> str:
    """An FTS5 MATCH expression: every word as a quoted string (never syntax), the last also as a prefix."""
    quoted = [f'"{w}"' for w in words]
    quoted[-1] += "*"
    return " AND ".join(quoted)


def tsquery(words: list[str]) -> str:
    """A PostgreSQL ``to_tsquery`` text: words are ``\\w+`` only, so the operators are all ours."""
    parts = [f"'{w}'" for w in words]
    parts[-1] += ":*"
    return " & ".join(parts)


def snippet_parts(snippet: str) -> list[Part]:
    """Split a marked snippet into plain and matching parts (marks a body itself contains are dropped)."""
    out: list[Part] = []
    inside = False
    for piece in _MARKS.split(snippet):
        if piece == MARK_START:
            inside = True
        elif piece == MARK_END:
            inside = False
        elif piece:
            out.append(Part(piece, inside))
    return out
