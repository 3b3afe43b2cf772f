"""``@name`` in a message body: who it names. Pure; the store resolves the names to members of the room."""

from __future__ import annotations

import re

from chatd.protocol.frames import USER_MAX

# Not after a word character, so mail addresses (ann@example.com) name nobody.
_MENTION = re.compile(rf"(?<![\w@])@([A-Za-z0-9][A-Za-z0-9_.-]{{0,{USER_MAX - 1}}})")
MENTIONS_MAX = 20  # names looked up per message: a body listing hundreds of names must not cost hundreds


def mentioned(body: str) -> list[str]:
    """Lower-cased candidate names written as ``@name``; a name ending a sentence (``@bob.``) counts as ``bob``
    as well, since user names may contain dots but rarely end with one."""
    if "@" not in body:
        return []
    found: dict[str, None] = {}
    for match in _MENTION.finditer(body):
        name = match.group(1).lower()
        found[name] = None
        found[name.rstrip(".-_")] = None
        if len(found) >= MENTIONS_MAX:
            break
    found.pop("", None)
    return list(found)
