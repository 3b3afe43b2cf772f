"""Who is calling: credentials from a handshake or request, and the browser Origin check."""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Mapping, Sequence

import msgspec

from chatd.accounts.users import token_hash
from chatd.core.node import Node
from chatd.gateway.tickets import WS, Tickets
from chatd.rules.bots import Scope, require_route
from chatd.store.base import UserRecord


class Principal(msgspec.Struct, frozen=True):
    user: UserRecord
    token: str | None = None
    hashed: str | None = None  # the token's hash, when a ticket or media key stood in for the token
    scope: Scope | None = None  # a bot token's scope (``chatd.rules.bots``); None: the user's own rights

    @property
    def token_hash(self) -> str | None:
        return token_hash(self.token) if self.token else self.hashed


def check_route(principal: Principal, handler: str, path_params: Mapping[str, object]) -> Principal:
    """``principal``, unless a bot token's scope refuses the route (``forbidden``)."""
    if principal.scope is not None:
        room = path_params.get("room")
        require_route(principal.scope, handler, room if isinstance(room, str) else None)
    return principal


def bearer(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return query.get("token") or None


async def authenticate(
    node: Node,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    tickets: Tickets | None = None,
    kind: str = "",
) -> Principal | None:
    """A token (header or ``?token=``) in any mode; in open mode, ``?user=NAME`` as well. With ``tickets``, a
    credential of ``kind`` (``?ticket=`` for the WebSocket, ``?key=`` for attachments) stands in for the token it
    was issued for, while that token is valid."""
    token = bearer(headers, query)
    if token:
        user = await node.accounts.authenticate(token)
        if user is None:
            return None
        # Only bots hold scoped tokens: a person's request costs no extra read.
        return Principal(user, token, scope=await node.accounts.scope_of(token_hash(token)) if user.bot else None)
    signed = query.get("ticket" if kind == WS else "key") if tickets is not None and kind else None
    if signed and tickets is not None:
        claims = await tickets.check(kind, signed)
        user = await node.accounts.user_for_hash(claims.token_hash) if claims else None
        if not (user and claims and user.id == claims.uid):
            return None
        # A ticket carries its token's scope along: it is looked up by the token's hash.
        scope = await node.accounts.scope_of(claims.token_hash) if user.bot else None
        return Principal(user, hashed=claims.token_hash, scope=scope)
    if node.cfg.auth.mode == "open":
        name = query.get("user")
        if name:
            user = await node.accounts.open_user(name)
            return Principal(user) if user else None
    return None


def origin_allowed(origin: str | None, host: str | None, patterns: list[str], allow_missing: bool) -> bool:
    """Cross-site WebSocket hijacking guard.

    Browsers always send Origin on a WebSocket handshake, so a page on another site is refused unless its origin
    matches the allowlist (shell-style patterns such as ``http://localhost:*``) or is this server's own origin.
    Non-browser clients usually send no Origin; they cannot ride a user's cookies, so ``allow_missing`` lets
    them in by default.
    """
    if not origin:
        return allow_missing
    if host and origin.split("://", 1)[-1] == host:
        return True
    return any(fnmatch.fnmatchcase(origin, p) for p in patterns)


WRITE_METHODS = frozenset(("POST", "PUT", "PATCH", "DELETE"))


def loopback_host(host: str | None) -> bool:
    """Whether a ``Host`` header names this machine by a loopback name (any port): ``localhost`` or a name under
    ``.localhost`` (browsers resolve those to loopback themselves), an address in 127.0.0.0/8, or ``[::1]``.

    Open mode listens on loopback only, yet a web page can still reach it through DNS rebinding: its own name,
    re-pointed at 127.0.0.1, makes the browser treat the server as that page's origin. Such a request carries the
    page's name in ``Host``, so open mode answers only requests whose ``Host`` is a loopback name."""
    if not host:
        return False
    name = host.lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else ""
    elif name.count(":") == 1:
        name = name.rsplit(":", 1)[0]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def client_ip(peer: str | None, headers: Mapping[str, str], trusted: Sequence[str]) -> str:
    """The client's address for per-IP limits: the connection's peer, or, when the peer is a trusted proxy
    (``server.trusted_proxies``), the nearest address in X-Forwarded-For that is not itself a trusted proxy."""
    addr = peer or "unknown"
    if not trusted or not _trusted(addr, trusted):
        return addr
    forwarded = [a.strip() for a in headers.get("x-forwarded-for", "").split(",") if a.strip()]
    for hop in reversed(forwarded):
        if not _trusted(hop, trusted):
            return hop
        addr = hop
    return addr


def _trusted(addr: str, trusted: Sequence[str]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in trusted)
