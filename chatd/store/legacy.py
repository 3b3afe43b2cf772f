"""From name-keyed data to id-keyed data: what migration ``012_user_ids`` of both stores and the import of a format-1
export share (no I/O).

Before user ids, everything a user owned was keyed by their name, and deleting a user removed their row while their
messages kept the name. So the move needs three rules, applied the same way everywhere:

- each stored spelling of a name is its own user (a database from before names were case-insensitive may hold
  ``Alice`` and ``alice``: they become two ids, each keeping what was keyed by its exact spelling);
- a name that owns messages, reactions, rooms or invites but has no user row belonged to a deleted user: it becomes
  a tombstone (a deleted user with that name), so the messages still show who wrote them;
- direct rooms were named from the two lower-cased names (``dm:ann:bob``, or a digest); they are renamed from the
  pair of ids (``dm:3:8``), which identifies the pair however either is renamed later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from chatd.protocol.frames import ROOM_MAX
from chatd.rules.dms import dm_pair, dm_room

_reactions = msgspec.json.Decoder(dict[str, list[str]])


def reaction_names(text: str | None) -> set[str]:
    """Every name in a message's old ``reactions`` JSON (emoji → names)."""
    return {name for names in _reactions.decode(text).values() for name in names} if text else set()


def reaction_rows(room: str, seq: int, ts: int, text: str | None, ids: Mapping[str, int]) -> list[tuple[Any, ...]]:
    """A message's old ``reactions`` JSON as reaction rows (room, seq, emoji, user id, ts, event).

    The event seq that added each is not known any more; negative ones keep the old order (emoji in the order they
    first appeared, users in the order they reacted) and sort before every reaction added later (seqs are >= 1)."""
    if not text:
        return []
    listed = [(emoji, ids[name]) for emoji, names in _reactions.decode(text).items() for name in names if name in ids]
    return [(room, seq, emoji, uid, ts, i - len(listed)) for i, (emoji, uid) in enumerate(listed)]


@dataclass
class LegacyDm:
    """A direct room as stored before user ids: its name, and the ids of its members and of who wrote in it."""

    name: str
    users: set[int] = field(default_factory=set)


def dm_renames(dms: Iterable[LegacyDm], by_lower: Mapping[str, list[int]]) -> dict[str, str]:
    """New names for direct rooms named the old way: old name → ``dm_room`` of its pair of ids.

    The pair is the two users who belong to it or wrote in it; when one has left and never wrote, the old name's two
    lower-cased names are looked up (``by_lower``: lower-cased name → ids), a known member deciding between two
    spellings. A room whose pair cannot be told keeps its name (its members keep it; opening a conversation makes a
    new one), unless its name looks like an id pair, which it then gives up for ``dm:legacy:…`` so no pair can land
    in a stranger's old room."""
    wanted: dict[str, str | None] = {}
    for dm in dms:
        pair = sorted(dm.users) if len(dm.users) == 2 else None
        parts = dm.name.split(":")
        if pair is None and len(dm.users) < 2 and len(parts) == 3:
            chosen = []
            for part in parts[1:]:
                found = by_lower.get(part, [])
                known = [uid for uid in found if uid in dm.users] or found
                chosen.append(known[0] if len(known) == 1 else None)
            if chosen[0] is not None and chosen[1] is not None and chosen[0] != chosen[1]:
                pair = sorted((chosen[0], chosen[1]))
        wanted[dm.name] = dm_room(pair[0], pair[1]) if pair else None
    taken = {name for name, new in wanted.items() if new is None or new == name}
    plan: dict[str, str] = {}
    for name, new in wanted.items():
        if new is not None and new != name and new not in taken:
            taken.add(new)
            plan[name] = new
    for name in wanted:
        if name not in plan and dm_pair(name) is not None and wanted[name] != name:
            legacy = f"dm:legacy:{name[3:]}"[:ROOM_MAX]
            if legacy not in taken:
                taken.add(legacy)
                plan[name] = legacy
    return plan
