"""Short-lived credentials for the places an ``Authorization`` header cannot go: a browser's WebSocket handshake
and an ``<img src>``.

An API token in a URL ends up in proxy logs, browser history and Referer headers, and it never expires. Instead
the web page trades its token (in a header) for:

- a **ticket** (``?ticket=`` on ``/ws``): opens one WebSocket session within ``auth.ticket_ttl`` seconds;
- a **media key** (``?key=`` on ``GET /api/uploads/{id}``): reads attachments for ``auth.media_ttl`` seconds and
  is refused everywhere else.

Both are signed (HMAC-SHA256), name their user by id (never by name: a name can change hands) and the hash of the
token they came from, and are checked against that token on use, so a logout or a revoked token ends them too. The
key is ``auth.secret`` when set; otherwise the deployment's key kept in the store (``Store.deployment_key``), so
every node of a deployment accepts what any of them issued without configuration (whoever can read the database
could then mint tickets for users with live tokens: set ``auth.secret`` to keep the key out of it); a store that
keeps none gives each process its own key.
A ticket is single-use across the deployment: its use is claimed in the store (``Store.claim_once``, which every
node shares whatever the broker) for as long as it is valid, so it opens one session on one node, never one per
node.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Protocol

import msgspec

from chatd.signing import deployment_key

WS, MEDIA = "ws", "media"
CLOCK_SLACK = 60.0  # a ticket is remembered this much past its expiry, in case the nodes' clocks disagree


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Claims(msgspec.Struct, array_like=True, frozen=True):
    kind: str
    uid: int  # the user's id
    token_hash: str
    expires: float


class Keeper(Protocol):
    """What tickets need kept where every node sees it: the deployment's key and spent tickets (the node offers
    both, over its store: ``DeploymentStore``)."""

    async def deployment_key(self) -> bytes | None: ...

    async def claim_once(self, key: str, ttl: float) -> bool: ...


class Tickets:
    """Issues and checks signed tickets and media keys (see the module docstring)."""

    def __init__(self, secret: str, store: Keeper, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self._key: bytes | None = None
        self._store = store
        self._clock = clock  # wall-clock seconds; a test passes its own to step past an expiry without waiting

    async def signing_key(self) -> bytes:
        """``deployment_key``, read once, after the store is open (the app is built before the node starts)."""
        if self._key is None:
            self._key = await deployment_key(self._secret, self._store) or secrets.token_bytes(32)
        return self._key

    async def issue(self, kind: str, uid: int, token_hash: str, ttl: float) -> str:
        payload = _b64(msgspec.json.encode(Claims(kind, uid, token_hash, round(self._clock() + ttl, 3))))
        return f"{payload}.{self._sign(await self.signing_key(), payload)}"

    @staticmethod
    def _sign(key: bytes, payload: str) -> str:
        return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest()[:24])

    async def check(self, kind: str, text: str) -> Claims | None:
        """The claims of a valid, unexpired ``kind`` credential; a ticket is also spent. None for anything else."""
        payload, _, sig = text.partition(".")
        key = await self.signing_key()
        if not sig or len(text) > 1024 or not hmac.compare_digest(sig, self._sign(key, payload)):
            return None
        try:
            claims = msgspec.json.decode(_unb64(payload), type=Claims)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
            return None
        now = self._clock()
        if claims.kind != kind or claims.expires < now:
            return None
        if kind == WS and not await self._store.claim_once(f"ticket:{sig}", claims.expires - now + CLOCK_SLACK):
            return None
        return claims
