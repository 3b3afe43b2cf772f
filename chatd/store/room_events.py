"""Room changes (edit, delete, reaction, topic) as entries of a room's stream, shared by every store.

A change is stored like a message: ``append`` gives it the room's next seq in the same transaction, under the same
idempotency key (room, sender, client_id), and refuses it alone when it is not allowed. It also rewrites the target
message to its current state, so history shows messages as they are now while the stream keeps what happened.

Reactions are rows of their own (room, message seq, emoji, user id): a reaction event inserts or deletes one row, and
a message's ``reactions`` (and a reaction event's ``users``) are built from the rows when a frame is built, with the
reactors' current names. A reaction event therefore carries the state at the time it is read, which is what applying
it means anyway: each change frame carries the resulting state, never a delta.

The rules here are pure; each store reads the target row, asks :func:`refusal` (and, for a reaction,
:func:`reaction_refusal`), and writes what the rules allow, inside its append transaction. Keeping the rules in one
place keeps SQLite and PostgreSQL in step. Rows become frames here too, with the sender's name joined from ``users``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from chatd.errors import Err
from chatd.protocol.frames import Deleted, Edited, Entry, Message, Reaction, TopicChanged
from chatd.store.base import NewMessage

EDIT, DELETE, REACT, UNREACT, TOPIC = "edit", "delete", "react", "unreact", "topic"
TARGETED = frozenset((EDIT, DELETE, REACT, UNREACT))

_list = msgspec.json.Decoder(list[str])


@dataclass(frozen=True, slots=True)
class Target:
    """The message a change points at, as the store holds it at that moment."""

    sender: int
    kind: str | None
    deleted: bool


@dataclass(frozen=True, slots=True)
class Tally:
    """What a reaction's caps look at, counted over the target's reaction rows before the change."""

    emoji: int  # distinct emoji on the message
    present: bool  # the emoji of the change is among them
    mine: int  # reactions of the changer on the message
    again: bool  # the changer already has this emoji on it (adding it again changes nothing)


def refusal(m: NewMessage, target: Target | None, sender_is_admin: bool) -> tuple[str, str] | None:
    """Why ``m`` may not be applied to ``target`` (error code and message), or None when it may."""
    if m.kind not in TARGETED:
        return None
    if target is None or target.kind:
        return Err.NOT_FOUND.code, f"no message {m.target} in {m.room!r}"
    if target.deleted:
        return Err.GONE.code, f"message {m.target} in {m.room!r} was deleted"
    if m.kind == EDIT and target.sender != m.sender:
        return Err.FORBIDDEN.code, "you can only edit your own messages"
    if m.kind == DELETE and target.sender != m.sender and not sender_is_admin:
        return Err.FORBIDDEN.code, "you can only delete your own messages (admins: any)"
    return None


def reaction_refusal(tally: Tally, limits: tuple[int, int]) -> tuple[str, str] | None:
    """Why adding a reaction would pass a cap (``Store.reaction_limits``), or None. Adding one already there passes:
    it changes nothing."""
    per_message, per_user = limits
    if tally.again:
        return None
    if not tally.present and tally.emoji >= per_message:
        return Err.TOO_MANY_REACTIONS.code, f"this message has {tally.emoji} different reactions, the most it may"
    if tally.mine >= per_user:
        return Err.TOO_MANY_REACTIONS.code, f"you have {tally.mine} reactions on this message, the most you may"
    return None


# The columns every store selects for a stream entry, in this order (see ``entry``), from ``ENTRY_FROM``: the
# sender's name comes from their user row, so it is the current one.
ENTRY_COLS = (
    "m.room, m.seq, m.sender, u.name, m.client_id, m.body, m.ts, m.attachments, m.kind, m.target, m.reply_to, "
    "m.edited, m.deleted, m.via, u.bot"
)
ENTRY_FROM = "messages m JOIN users u ON u.id = m.sender"
# The columns of a reactor row (``fill``): a message's (room, seq), the emoji, the user's id and current name.
REACTION_COLS = "r.room, r.seq, r.emoji, r.user, u.name"

# The columns of an export's message row, where a line's "kind" names its table, so the change's kind is "change".
EXPORT_COLS = (
    "room, seq, sender, client_id, body, ts, attachments, kind AS change, target, reply_to, edited, deleted, via"
)


def entry(row: Sequence[Any]) -> Entry:
    """A stored row (``ENTRY_COLS``) as the frame it is on the wire, reactions not yet filled in (``fill``)."""
    room, seq, sender, name, client_id, body, ts, attachments, kind, target, reply_to, edited, deleted, via, bot = row
    if not kind:
        return Message(
            room=room,
            seq=seq,
            from_=name,
            body=body,
            client_id=client_id,
            ts=ts,
            attachments=_list.decode(attachments) if attachments else [],
            reply_to=reply_to or 0,
            edited=edited or 0,
            deleted=bool(deleted),
            uid=sender,
            bot=bool(bot),
            via=via or "",
        )
    if kind == EDIT:
        return Edited(room, seq, name, target, body, client_id, ts, sender)
    if kind == DELETE:
        return Deleted(room, seq, name, target, client_id, ts, sender)
    if kind in (REACT, UNREACT):
        return Reaction(room, seq, name, target, body, kind == REACT, [], client_id, ts, sender)
    return TopicChanged(room, seq, name, body, client_id, ts, sender)


def message(row: Sequence[Any]) -> Message:
    """A stored row (``ENTRY_COLS``) known to be a message (history and mentions select ``kind IS NULL``)."""
    e = entry(row)
    assert isinstance(e, Message), "a row without a kind is a message"
    return e


def reaction_keys(entries: Iterable[Entry]) -> list[tuple[str, int]]:
    """The (room, seq) of every message whose reactor rows ``fill`` needs: the messages themselves (not deleted
    ones: a delete takes their reactions) and the targets of reaction events."""
    keys: dict[tuple[str, int], None] = {}
    for e in entries:
        if type(e) is Message:
            if not e.deleted:
                keys[(e.room, e.seq)] = None
        elif type(e) is Reaction:
            keys[(e.room, e.target)] = None
    return list(keys)


def fill(entries: Iterable[Entry], rows: Iterable[Sequence[Any]]) -> None:
    """Put reactor rows (``REACTION_COLS``, oldest first) into the entries ``reaction_keys`` named: a message's
    ``reactions`` and ``reaction_uids``, a reaction event's ``users`` and ``uids`` (of its emoji, now)."""
    found: dict[tuple[str, int], dict[str, list[tuple[int, str]]]] = {}
    for room, seq, emoji, uid, name in rows:
        found.setdefault((room, seq), {}).setdefault(emoji, []).append((uid, name))
    if not found:
        return
    for e in entries:
        if type(e) is Message:
            got = found.get((e.room, e.seq))
            if got:
                e.reactions = {emoji: [n for _, n in who] for emoji, who in got.items()}
                e.reaction_uids = {emoji: [u for u, _ in who] for emoji, who in got.items()}
        elif type(e) is Reaction:
            who = found.get((e.room, e.target), {}).get(e.emoji, [])
            e.users = [n for _, n in who]
            e.uids = [u for u, _ in who]


def written(row: tuple[Any, ...], name: str, bot: bool = False) -> Entry:
    """A message row as ``append`` writes it (room, seq, sender, client_id, body, ts, attachments JSON, reply_to), as
    ``entry`` reads one back: nothing has changed it yet. For a key repeated later in the same batch."""
    room, seq, sender, client_id, body, ts, attachments, reply_to, via = row
    return entry((room, seq, sender, name, client_id, body, ts, attachments, None, 0, reply_to, 0, 0, via, bot))


def fresh(m: NewMessage, seq: int, ts: int, name: str, reactors: Sequence[tuple[int, str]] = ()) -> Entry:
    """The frame of a change just stored, by ``name`` (the sender's name at the commit); ``reactors``: for a
    reaction, everyone who has its emoji on the target after it."""
    if m.kind == EDIT:
        return Edited(m.room, seq, name, m.target, m.body, m.client_id, ts, m.sender)
    if m.kind == DELETE:
        return Deleted(m.room, seq, name, m.target, m.client_id, ts, m.sender)
    if m.kind in (REACT, UNREACT):
        users, uids = [n for _, n in reactors], [u for u, _ in reactors]
        return Reaction(m.room, seq, name, m.target, m.body, m.kind == REACT, users, m.client_id, ts, m.sender, uids)
    return TopicChanged(m.room, seq, name, m.body, m.client_id, ts, m.sender)


def attachment_ids(stored: str | None) -> list[str]:
    """The upload ids of a message's ``attachments`` column (a JSON list, or NULL)."""
    return list(msgspec.json.decode(stored, type=list[str])) if stored else []


def attachment_needle(upload_id: str) -> str:
    """What an ``attachments`` column that lists ``upload_id`` contains: the id quoted (ids are URL-safe, so JSON
    writes them as they are), never a longer id that starts with it."""
    return f'"{upload_id}"'
