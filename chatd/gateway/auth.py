"""Who is calling: credentials from a handshake or request, and the browser Origin check."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping

import msgspec

from chatd.accounts import token_hash
from chatd.node import Node
from chatd.store.base import UserRecord


class Principal(msgspec.Struct, frozen=True):
    user: UserRecord
    token: str | None = None

    @property
    def token_hash(self) -> str | None:
        return token_hash(self.token) if self.token else None


def bearer(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return query.get("token") or None


async def authenticate(node: Node, headers: Mapping[str, str], query: Mapping[str, str]) -> Principal | None:
    """A token (header or ``?token=``) in any mode; in open mode, ``?user=NAME`` as well."""
    token = bearer(headers, query)
    if token:
        user = await node.accounts.authenticate(token)
        return Principal(user, token) if user else None
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
