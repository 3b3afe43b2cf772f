"""Room changes (edit, delete, reaction, topic) as entries of a room's stream, shared by every store.

A change is stored like a message: ``append`` gives it the room's next seq in the same transaction, under the same
idempotency key (room, sender, client_id), and refuses it alone when it is not allowed. It also rewrites the target
message to its current state, so history shows messages as they are now while the stream keeps what happened.

The rules here are pure; each store reads the target row, asks :func:`refusal`, and writes what :func:`apply`
returns, inside its append transaction. Keeping the rules in one place keeps SQLite and PostgreSQL in step.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from chatd.errors import Err
from chatd.protocol.frames import Deleted, Edited, Entry, Message, Reaction, TopicChanged
from chatd.store.base import NewMessage

EDIT, DELETE, REACT, UNREACT, TOPIC = "edit", "delete", "react", "unreact", "topic"
TARGETED = frozenset((EDIT, DELETE, REACT, UNREACT))

_json = msgspec.json.Encoder()
_list = msgspec.json.Decoder(list[str])
_reactions = msgspec.json.Decoder(dict[str, list[str]])


@dataclass(frozen=True, slots=True)
class Target:
    """The message a change points at, as the store holds it at that moment."""

    sender: str
    kind: str | None
    deleted: bool
    reactions: dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class Effect:
    """What a store writes for an allowed change: the target's new columns (None: untouched) and the event row's
    extra data."""

    body: str | None = None  # new body of the target
    reactions: dict[str, list[str]] | None = None
    deleted: bool = False
    data: str | None = None  # the event row's ``data`` column (a reaction's users, JSON)
    users: tuple[str, ...] = ()


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


def apply(m: NewMessage, target: Target | None) -> Effect:
    """The writes an allowed change makes (call :func:`refusal` first)."""
    if m.kind == EDIT:
        return Effect(body=m.body)
    if m.kind == DELETE:
        return Effect(body="", deleted=True)
    if m.kind in (REACT, UNREACT):
        assert target is not None
        reactions = {emoji: list(users) for emoji, users in target.reactions.items()}
        users = reactions.setdefault(m.body, [])
        if m.kind == REACT and m.sender not in users:
            users.append(m.sender)
        elif m.kind == UNREACT and m.sender in users:
            users.remove(m.sender)
        if not users:
            del reactions[m.body]
        return Effect(reactions=reactions, data=_json.encode(users).decode(), users=tuple(users))
    return Effect()


def encode_reactions(reactions: dict[str, list[str]]) -> str | None:
    return _json.encode(reactions).decode() if reactions else None


def decode_reactions(text: str | None) -> dict[str, list[str]]:
    return _reactions.decode(text) if text else {}


# The columns every store selects for a stream entry, in this order (see ``entry``).
ENTRY_COLS = (
    "room, seq, sender, client_id, body, ts, attachments, kind, target, reply_to, edited, deleted, reactions, data"
)


# The same columns for an export, where a line's "kind" names its table, so the change's kind is "change".
EXPORT_COLS = ENTRY_COLS.replace(" kind,", " kind AS change,")


def entry(row: tuple | list) -> Entry:
    """A stored row (``ENTRY_COLS``) as the frame it is on the wire."""
    room, seq, sender, client_id, body, ts, attachments, kind, target, reply_to, edited, deleted, reactions, data = row
    if not kind:
        return Message(
            room=room,
            seq=seq,
            from_=sender,
            body=body,
            client_id=client_id,
            ts=ts,
            attachments=_list.decode(attachments) if attachments else [],
            reply_to=reply_to or 0,
            edited=edited or 0,
            deleted=bool(deleted),
            reactions=decode_reactions(reactions),
        )
    if kind == EDIT:
        return Edited(room, seq, sender, target, body, client_id, ts)
    if kind == DELETE:
        return Deleted(room, seq, sender, target, client_id, ts)
    if kind in (REACT, UNREACT):
        users = _list.decode(data) if data else []
        return Reaction(room, seq, sender, target, body, kind == REACT, users, client_id, ts)
    return TopicChanged(room, seq, sender, body, client_id, ts)


def message(row: tuple | list) -> Message:
    """A stored row (``ENTRY_COLS``) known to be a message (history and mentions select ``kind IS NULL``)."""
    e = entry(row)
    assert isinstance(e, Message), "a row without a kind is a message"
    return e


def written(row: tuple) -> Entry:
    """A message row as ``append`` writes it (room, seq, sender, client_id, body, ts, attachments JSON, reply_to),
    as ``entry`` reads one back: nothing has changed it yet. For a key repeated later in the same batch."""
    room, seq, sender, client_id, body, ts, attachments, reply_to = row
    return entry((room, seq, sender, client_id, body, ts, attachments, None, 0, reply_to, 0, 0, None, None))


def fresh(m: NewMessage, seq: int, ts: int, effect: Effect) -> Entry:
    """The frame of a change just stored."""
    if m.kind == EDIT:
        return Edited(m.room, seq, m.sender, m.target, m.body, m.client_id, ts)
    if m.kind == DELETE:
        return Deleted(m.room, seq, m.sender, m.target, m.client_id, ts)
    if m.kind in (REACT, UNREACT):
        return Reaction(m.room, seq, m.sender, m.target, m.body, m.kind == REACT, list(effect.users), m.client_id, ts)
    return TopicChanged(m.room, seq, m.sender, m.body, m.client_id, ts)
