"""What a webhook receiver gets, and how it checks it came from us. No I/O.

Each event is one POST whose body is JSON::

    {"id": {"room": "general", "seq": 42}, "type": "message", "hook": 3, "epoch": "9f0c…", "event": {…}}

``id`` names the event for good: (room, seq) is unique within the room's epoch, and a receiver that sees an id
again (at-least-once) has seen the event already. ``event`` is the entry as the WebSocket protocol carries it
(docs/protocol.md), in its current state when it was POSTed.

The ``X-Chatd-Signature`` header is ``t=<unix seconds>,v1=<hex>``, where ``<hex>`` is HMAC-SHA256 keyed with the
webhook's secret over ``<t>.`` followed by the raw body. Signing the time with the body lets a receiver refuse a
recorded request replayed later (``TOLERANCE``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

import msgspec

from chatd.errors import ChatError, Err
from chatd.protocol.frames import Deleted, Edited, Entry, Message, Reaction, TopicChanged
from chatd.store.base import Webhook

SIGNATURE_HEADER = "X-Chatd-Signature"
EVENT_HEADER = "X-Chatd-Event"  # "<room>/<seq>": the id, for logs and proxies that do not read bodies
HOOK_HEADER = "X-Chatd-Webhook"
TOLERANCE = 300  # seconds a receiver should accept between ``t`` and its own clock
URL_MAX = 2000
SECRET_BYTES = 32

# Entry type → the kind a webhook subscribes to (the same word as the frame's "type").
KIND_OF: dict[type, str] = {
    Message: "message",
    Edited: "edit",
    Deleted: "delete",
    Reaction: "reaction",
    TopicChanged: "topic",
}
KINDS = tuple(KIND_OF.values())


class Payload(msgspec.Struct):
    id: dict[str, str | int]
    type: str
    hook: int
    epoch: str
    event: Entry


_encode = msgspec.json.Encoder().encode


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def kind_of(entry: Entry) -> str:
    return KIND_OF[type(entry)]


def body_of(hook: Webhook, entry: Entry) -> bytes:
    return _encode(Payload({"room": entry.room, "seq": entry.seq}, kind_of(entry), hook.id, hook.epoch, entry))


def signature(secret: str, body: bytes, t: int) -> str:
    """The ``X-Chatd-Signature`` value for ``body`` sent at ``t`` (Unix seconds)."""
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, header: str, now: float, tolerance: float = TOLERANCE) -> bool:
    """What a receiver does (docs/integrations.md has the same in a few lines of Python to copy)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs(now - t) > tolerance:
        return False
    expected = signature(secret, body, t).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def backoff(attempts: int, low: float, high: float) -> float:
    """Seconds to wait after the ``attempts``-th failure in a row: ``low`` doubling, at most ``high``."""
    return min(high, low * float(2 ** min(max(attempts - 1, 0), 40)))


def check_url(url: str) -> str:
    """A URL a webhook may POST to: http or https, with a host, no credentials in it; raises ChatError(INVALID).
    Where it points (a private address) is checked when it is used (``deliverer.refuse_address``)."""
    if len(url) > URL_MAX:
        raise ChatError(Err.INVALID, f"the URL is longer than {URL_MAX} characters", field="url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number or out of range
    except ValueError as e:
        raise ChatError(Err.INVALID, f"not a URL: {e}", field="url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ChatError(Err.INVALID, "the URL must be http:// or https:// with a host", field="url")
    if parts.username or parts.password:
        raise ChatError(Err.INVALID, "the URL must not carry a user or password; the signature authenticates")
    return url


def check_events(events: Iterable[str]) -> list[str]:
    """The kinds asked for, each once, in ``KINDS`` order; all of them for none."""
    asked = {e.strip() for e in events if e.strip()}
    unknown = sorted(asked - set(KINDS))
    if unknown:
        raise ChatError(
            Err.INVALID, f"unknown event kind {', '.join(unknown)}; known: {', '.join(KINDS)}", field="events"
        )
    return [k for k in KINDS if k in asked] if asked else list(KINDS)
