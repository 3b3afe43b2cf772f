"""Short-lived credentials for the places an ``Authorization`` header cannot go: a browser's WebSocket handshake
and an ``<img src>``.

An API token in a URL ends up in proxy logs, browser history and Referer headers, and it never expires. Instead
the web page trades its token (in a header) for:

- a **ticket** (``?ticket=`` on ``/ws``): opens one WebSocket session within ``auth.ticket_ttl`` seconds;
- a **media key** (``?key=`` on ``GET /api/uploads/{id}``): reads attachments for ``auth.media_ttl`` seconds and
  is refused everywhere else.

Both are signed (HMAC-SHA256 with ``auth.secret``), name their user and the hash of the token they came from, and
are checked against that token on use, so a logout or a revoked token ends them too. Nodes that share
``auth.secret`` accept each other's; an empty secret is a random one per process. A ticket is single-use per
node: each node remembers the tickets it has taken until they expire (at most ``MAX_USED``, oldest forgotten first;
a forgotten one is still bounded by its expiry). Across nodes a ticket could be replayed within its lifetime.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict

import msgspec

WS, MEDIA = "ws", "media"
MAX_USED = 100_000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Claims(msgspec.Struct, array_like=True, frozen=True):
    kind: str
    user: str
    token_hash: str
    expires: float


class Tickets:
    """Issues and checks signed tickets and media keys (see the module docstring)."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(secret.encode()).digest() if secret else secrets.token_bytes(32)
        self._used: OrderedDict[str, float] = OrderedDict()

    def issue(self, kind: str, user: str, token_hash: str, ttl: float) -> str:
        payload = _b64(msgspec.json.encode(Claims(kind, user, token_hash, round(time.time() + ttl, 3))))
        return f"{payload}.{self._sign(payload)}"

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest()[:24])

    def check(self, kind: str, text: str) -> Claims | None:
        """The claims of a valid, unexpired ``kind`` credential; a ticket is also spent. None for anything else."""
        payload, _, sig = text.partition(".")
        if not sig or len(text) > 1024 or not hmac.compare_digest(sig, self._sign(payload)):
            return None
        try:
            claims = msgspec.json.decode(_unb64(payload), type=Claims)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
            return None
        now = time.time()
        if claims.kind != kind or claims.expires < now:
            return None
        if kind == WS and not self._spend(sig, claims.expires, now):
            return None
        return claims

    def _spend(self, sig: str, expires: float, now: float) -> bool:
        used = self._used
        while used and next(iter(used.values())) < now:
            used.popitem(last=False)  # expired: it cannot be used again anyway
        if sig in used:
            return False
        used[sig] = expires
        if len(used) > MAX_USED:
            used.popitem(last=False)
        return True
