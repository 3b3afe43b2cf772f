"""The decisions of an append, written once for every store: pure code over the rows a store has read.

A store's ``append`` reads the facts inside its transaction (:class:`Facts`: the rooms' last seqs and archived
flags, the batch's keys already stored, the senders' memberships, which quoted entries are room events), then asks an
:class:`AppendPlan` what each entry of the batch comes to, in order:

- a duplicate: a resend of a stored key, or a key repeated inside the batch (the first one's outcome again);
- refused: no such room, not a member, an archived room, a reply to nothing or to a room event;
- a new message (:class:`Insert`: its seq and row), or a room change to apply (:class:`Change`).

For a change the store reads its target and the changer's facts and asks :func:`plan_change`, which refuses it or
says what it writes (:class:`ChangeWrite`). The store writes what the plan says and commits; it keeps only its SQL
and its transaction. Nothing here does I/O, so the rules are tested alone (tests/store/test_planner.py) and SQLite
and PostgreSQL cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgspec

from chatd.errors import Err
from chatd.store import room_events
from chatd.store.base import NewMessage, Outcome, missing_room, outsider

Key = tuple[str, int, str]  # an entry's idempotency key: (room, sender id, client_id)
# A new message's row, in this order: what ``Insert.row`` holds and both stores insert.
MESSAGE_COLS = "room, seq, sender, client_id, body, ts, attachments, reply_to, via"
# A change's own row (``ChangeWrite.row``).
EVENT_COLS = "room, seq, sender, client_id, body, ts, kind, target"

_json = msgspec.json.Encoder()


@dataclass(slots=True)
class Facts:
    """What a store has read for one batch, inside its append transaction. The plan takes them over: ``last``
    follows the seqs it hands out."""

    ts: int  # the batch's timestamp (Unix ms)
    last: dict[str, int]  # every room of the batch that exists: its last seq
    archived: set[str]
    private: set[str]  # an outsider is told such a room does not exist
    stored: dict[Key, Outcome]  # the batch's keys already stored: a resend is answered with these
    members: dict[tuple[str, int], str]  # (room, sender id) of the senders who are members: their current names
    bots: set[int] = field(default_factory=set)  # of those senders, the bots (a new message's frame says so)
    events: set[tuple[str, int]] = field(default_factory=set)  # of ``reply_targets``, those that are room events


def reply_targets(batch: Sequence[NewMessage], last: dict[str, int]) -> list[tuple[str, int]]:
    """The stored entries the batch's replies quote, as (room, seq): a store reads which of them are room events
    (``Facts.events``). Entries this batch adds are known to the plan, so only seqs up to ``last`` are asked."""
    return list({(m.room, m.reply_to) for m in batch if 0 < m.reply_to <= last.get(m.room, 0)})


class Insert(NamedTuple):  # a tuple: one is made per new message, and a tuple is the cheapest to make
    """A new message: ``row`` (``MESSAGE_COLS``) goes into ``messages``; ``outcome`` answers it (a store adds the
    ids it mentions)."""

    row: tuple[Any, ...]
    outcome: Outcome


class Change(NamedTuple):
    """A room change that has passed the ladder: it takes ``seq`` if :func:`plan_change` allows it."""

    seq: int
    ts: int
    name: str  # the changer's current name


def _refused(err: Err, message: str) -> Outcome:
    return Outcome(error=err.code, message=message)


class AppendPlan:
    """The outcome ladder of one batch, entry by entry (``step``), over :class:`Facts`."""

    def __init__(self, facts: Facts) -> None:
        self.facts = facts
        # Rows this batch wrote, by key, for a repeat later in the same batch. Turned into an entry only when one
        # repeats (rarely): building one per row cost ~10 % of the loop's time at 4,000 DMs/s.
        self._written: dict[Key, tuple[Any, ...]] = {}
        self._first = dict(facts.last)  # the rooms' last seqs before the batch: those that moved are written back

    def step(self, m: NewMessage) -> Outcome | Insert | Change:
        """What ``m`` comes to, given everything before it in the batch: an outcome already decided (duplicate or
        refused), a message to insert, or a change to plan (:func:`plan_change`, then ``changed``)."""
        f = self.facts
        key = (m.room, m.sender, m.client_id)
        seen = f.stored.get(key)
        if seen is not None:
            return seen
        name = f.members.get((m.room, m.sender))
        row = self._written.get(key)
        if row is not None:
            bot = m.sender in f.bots
            return Outcome(
                row[1], f.ts, True, stored=room_events.written(row, name or "", bot), name=name or "", bot=bot
            )
        last = f.last.get(m.room)
        if last is None:
            return missing_room(m.room)
        if name is None:
            return outsider(m.room, m.room in f.private)
        if m.room in f.archived:
            return _refused(Err.ARCHIVED, f"room {m.room!r} is archived (read-only)")
        # A reply quotes a message, never a room event; a message of this batch is a message.
        if m.reply_to and (not 0 < m.reply_to <= last or (m.room, m.reply_to) in f.events):
            return _refused(Err.NOT_FOUND, f"no message {m.reply_to} in {m.room!r}")
        if m.kind:
            return Change(last + 1, f.ts, name)
        seq = f.last[m.room] = last + 1
        attachments = _json.encode(m.attachments).decode() if m.attachments else None
        row = (m.room, seq, m.sender, m.client_id, m.body, f.ts, attachments, m.reply_to or None, m.via or None)
        self._written[key] = row
        return Insert(row, Outcome(seq, f.ts, name=name, bot=m.sender in f.bots))

    def changed(
        self, m: NewMessage, change: Change, reactors: Sequence[tuple[int, str]] = (), released: Sequence[str] = ()
    ) -> Outcome:
        """``m`` was written as planned: it takes its seq, and a repeat of its key later in the batch is a duplicate
        of it. ``reactors``: for a reaction, (id, name) of everyone with its emoji on the target after it;
        ``released``: for a delete, the uploads it removed (``Outcome.released``)."""
        f = self.facts
        stored = room_events.fresh(m, change.seq, change.ts, change.name, reactors)
        f.last[m.room] = change.seq
        f.events.add((m.room, change.seq))
        out = Outcome(change.seq, change.ts, stored=stored, name=change.name, released=list(released))
        f.stored[(m.room, m.sender, m.client_id)] = Outcome(
            change.seq, change.ts, True, stored=stored, name=change.name
        )
        return out

    def last_seqs(self) -> list[tuple[str, int]]:
        """The rooms the batch added to, with their new last seqs, by name (the order rooms are locked in)."""
        return [(room, last) for room, last in sorted(self.facts.last.items()) if last != self._first[room]]


# --- room changes ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChangeWrite:
    """What an allowed change writes: its own ``row`` (``EVENT_COLS``), and to its target or room what the flags
    say. Each change frame carries the resulting state, so the store reads a reaction's reactors after writing."""

    row: tuple[Any, ...]
    edit: bool = False  # the target's body becomes the change's, ``edited`` its ts
    delete: bool = False  # the target is emptied and marked deleted, its edits' rows emptied, its reactions removed
    react: bool | None = None  # add (True) or remove (False) the changer's reaction row; None: no reaction
    topic: str | None = None  # the room's new topic


def asks_admin(m: NewMessage, target: room_events.Target | None) -> bool:
    """Whether deciding ``m`` needs to know if its sender is an admin: only deleting another's message does."""
    return m.kind == room_events.DELETE and target is not None and target.sender != m.sender


def asks_tally(m: NewMessage, target: room_events.Target | None, admin: bool) -> bool:
    """Whether deciding ``m`` needs its target's reaction ``Tally``: only adding a reaction that may be added."""
    return m.kind == room_events.REACT and room_events.refusal(m, target, admin) is None


def plan_change(
    m: NewMessage,
    change: Change,
    target: room_events.Target | None,
    limits: tuple[int, int],
    admin: bool = False,
    tally: room_events.Tally | None = None,
) -> Outcome | ChangeWrite:
    """Refuse ``m`` (an Outcome with its error) or say what it writes at ``change.seq``. ``target``: the message it
    points at, as stored now (None: none, or not a targeted kind); ``admin`` when ``asks_admin``; ``tally`` when
    ``asks_tally``; ``limits``: ``Store.reaction_limits``."""
    refused = room_events.refusal(m, target, admin)
    if refused is None and m.kind == room_events.REACT:
        if tally is None:
            raise ValueError("a reaction is planned with its target's tally (asks_tally)")
        refused = room_events.reaction_refusal(tally, limits)
    if refused is not None:
        return Outcome(error=refused[0], message=refused[1])
    # A delete's own row keeps no text; an edit's keeps the new body until the target is deleted.
    body = "" if m.kind == room_events.DELETE else m.body
    row = (m.room, change.seq, m.sender, m.client_id, body, change.ts, m.kind, m.target or None)
    if m.kind == room_events.EDIT:
        return ChangeWrite(row, edit=True)
    if m.kind == room_events.DELETE:
        return ChangeWrite(row, delete=True)
    if m.kind in (room_events.REACT, room_events.UNREACT):
        return ChangeWrite(row, react=m.kind == room_events.REACT)
    return ChangeWrite(row, topic=m.body)
