"""The deployment's signing key, and the signed control request by which the admin CLI reaches running nodes.

Both sides import this module: the CLI (``chatd.admin.control``) signs and posts a request; a node
(``chatd.gateway.control``) checks and applies it. It sits below both, so neither imports the other.

The request is signed with HMAC-SHA256 under a key derived from the deployment's signing key (``auth.secret`` when
set, else the key kept in the store): whoever can run the CLI against the store can compute it, nobody else. The
signature covers a timestamp, so a captured request stops working after ``MAX_AGE`` seconds, and the signed body
carries a random one-use ``id`` that the node claims in the store (``Store.claim_once``) for the whole window in
which the timestamp is accepted: a replay, to that node or any other, is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Annotated

import msgspec

from chatd.core.cluster import (
    KICK_TOKEN,
    KICK_USER,
    MEMBER_ADDED,
    MEMBER_REMOVED,
    ROOM_ARCHIVED,
    ROOM_DELETED,
    USER_GONE,
    USER_RENAMED,
)
from chatd.store.roles import DeploymentStore


async def deployment_key(secret: str, store: DeploymentStore) -> bytes | None:
    """The deployment's signing key: from ``auth.secret`` when set, else the key the store keeps (None if it keeps
    none). Tickets, media keys and the admin CLI's control requests all start from it."""
    return hashlib.sha256(secret.encode()).digest() if secret else await store.deployment_key()


HEADER = "x-chatd-control"
PATH = "/api/admin/control"
MAX_AGE = 60.0
# What the CLI may ask of a node, with its number of arguments (negative: at least that many); the node applies
# each through the Node method of the same meaning, which reaches every node.
KINDS = {
    KICK_USER: 1,
    KICK_TOKEN: 2,
    MEMBER_REMOVED: 2,
    MEMBER_ADDED: 2,
    ROOM_DELETED: -2,
    ROOM_ARCHIVED: 1,
    USER_GONE: 1,
    USER_RENAMED: -3,  # a fourth: the display name
}
# Where each kind names a user, by id (the index of that argument).
USER_ARGS = {KICK_USER: 0, KICK_TOKEN: 0, MEMBER_REMOVED: 1, MEMBER_ADDED: 1, USER_GONE: 0, USER_RENAMED: 0}


class ControlRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Events as ``[kind, *args]``, users by id (decimal): ``["kick-user", user]``, ``["kick-token", user,
    token_hash]``, ``["member-", room, user]``, ``["member+", room, user]``, ``["room-deleted", room,
    "private"|"public", *members]``, ``["room-archived", room]``, ``["user-", user]`` (deleted or disabled),
    ``["user~", user, name, was]`` (renamed); ``id`` makes the request one-use."""

    events: list[list[str]]
    id: Annotated[str, msgspec.Meta(min_length=16, max_length=64)]


def control_key(base: bytes) -> bytes:
    # A key of its own, so nothing signed for tickets can pass as a control request, and back.
    return hmac.new(base, b"chatd admin control v1", hashlib.sha256).digest()


def sign(key: bytes, body: bytes, now: float | None = None) -> str:
    ts = f"{time.time() if now is None else now:.3f}"
    return f"{ts}.{hmac.new(key, ts.encode() + b'.' + body, hashlib.sha256).hexdigest()}"


def verify(key: bytes, body: bytes, header: str, now: float | None = None) -> bool:
    ts, _, sig = header.rpartition(".")
    try:
        age = (time.time() if now is None else now) - float(ts)
    except ValueError:
        return False
    expected = hmac.new(key, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return abs(age) <= MAX_AGE and hmac.compare_digest(sig, expected)


def check_events(events: list[list[str]]) -> str | None:
    """What is wrong with a request's events, or None."""
    for event in events:
        wanted = KINDS.get(event[0]) if event else None
        if wanted is None or not (len(event) - 1 == wanted or 0 > wanted >= -(len(event) - 1)):
            return f"unknown or malformed event {event[:1]!r}; known: {', '.join(sorted(KINDS))}"
        users = [event[1 + USER_ARGS[event[0]]]] if event[0] in USER_ARGS else []
        if event[0] == ROOM_DELETED:
            users = event[3:]
        if not all(u.isdigit() for u in users):
            return f"event {event[0]!r} names users by id (digits); got {users!r}"
    return None
