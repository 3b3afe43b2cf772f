"""Incoming webhooks: a URL that posts into one room, for CI systems and other tools that speak Slack's format.

A hook is a row in the store (``Store.add_hook``) and a bot user of its own (``chatd.rules.bots``) that is a member
of the room. ``POST /hooks/{id}/{secret}`` (or ``/hooks/{id}`` with the secret in a header) turns the request into an
ordinary send by that bot: the same rate limit, membership check, ingest queue and ``client_id`` idempotency as
anyone's (``Idempotency-Key`` becomes the ``client_id``). The message records the name the request asked to be shown
under (Slack's ``username``) as ``via``; the page shows that name and "via hook".

Each request reads the hook from the store (one indexed read), so a revoked hook is refused at once on every node:
there is no cache to invalidate. Only the SHA-256 of the secret is stored; the secret has 256 bits, so a fast hash
is enough (as for tokens, ``chatd.accounts.users``).

The payload rules live here, without I/O: Slack-compatible JSON, or a form with the JSON in ``payload=``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qs

import msgspec

from chatd.accounts.users import Accounts, token_hash
from chatd.errors import ChatError, Err
from chatd.protocol.frames import CLIENT_ID_MAX, USER_MAX
from chatd.store.base import HookRecord, Store

SECRET_HEADER = "x-chatd-hook-secret"
IDEMPOTENCY_HEADER = "idempotency-key"
VIA_MAX = USER_MAX * 2  # a display name, not an account name: some room for spaces and emoji
_json = msgspec.json.Decoder()
# Slack's markup in text: <url|label>, <url>, <@U123>, <!here>; and its three escapes.
_link = re.compile(r"<([^<>|]+)\|([^<>]+)>|<([^<>]+)>")
_escapes = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))


class Posted(msgspec.Struct, frozen=True):
    """What a hook request asks to post."""

    text: str
    via: str  # the name to show (Slack's ``username``), or "" for the hook's own


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def secret_matches(secret: str, hook: HookRecord) -> bool:
    return hmac.compare_digest(token_hash(secret), hook.secret_hash)


def client_id_for(key: str | None) -> str:
    """The ``client_id`` of a hook's send: from ``Idempotency-Key``, so a retry is stored once (any key, hashed to a
    bounded id), or a fresh one."""
    if key:
        return f"hook-{hashlib.sha256(key.encode()).hexdigest()[: CLIENT_ID_MAX - 5]}"
    return f"hook-{secrets.token_hex(12)}"


def _plain(text: str) -> str:
    """Slack markup as chatd's plain text: ``<url|label>`` becomes ``label (url)``, ``<url>`` the url, and the
    escapes Slack requires (&amp; &lt; &gt;) their characters."""

    def link(m: re.Match[str]) -> str:
        if m.group(3) is not None:
            return m.group(3).lstrip("!@#")  # <https://x>, <!here>, <@U123>, <#C123>: what is inside
        return f"{m.group(2)} ({m.group(1)})"

    out = _link.sub(link, text)
    for escaped, char in _escapes:
        out = out.replace(escaped, char)
    return out


def _field_text(value: Any) -> str:
    """The text of a Block Kit text object (``{"type": "mrkdwn", "text": ...}``) or a plain string."""
    if isinstance(value, str):
        return value
    text = value.get("text") if isinstance(value, dict) else None
    return text if isinstance(text, str) else ""


def _fallback_text(payload: dict[str, Any]) -> str:
    """Text for a payload without ``text``: its blocks' texts, else its legacy attachments' pretext and
    fallback (or text), as Slack's own clients show in a notification."""
    lines: list[str] = []
    for block in payload.get("blocks") or []:
        if not isinstance(block, dict):
            continue
        lines.append(_field_text(block.get("text")))
        lines += [_field_text(f) for f in block.get("fields") or []]
        lines += [_field_text(e) for e in block.get("elements") or [] if block.get("type") == "context"]
    if not any(lines):
        for att in payload.get("attachments") or []:
            if isinstance(att, dict):
                lines += [_field_text(att.get("pretext")), _field_text(att.get("fallback") or att.get("text"))]
    return "\n".join(line for line in lines if line)


def parse_payload(body: bytes, content_type: str) -> Posted:
    """A hook request's body as what to post. JSON (``application/json``, or no type) or a form whose ``payload``
    field holds the JSON (``application/x-www-form-urlencoded``, as Slack accepts). ``text`` is the message; without
    it, the texts of ``blocks`` or ``attachments``. ``username`` is shown as the sender's name. Other fields
    (``channel``, ``icon_emoji``, ...) are ignored: a hook posts into its one room. ChatError(INVALID) otherwise."""
    kind = content_type.split(";", 1)[0].strip().lower()
    raw: bytes | str = body
    if kind == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(body.decode(), strict_parsing=False)
        except UnicodeDecodeError:
            raise ChatError(Err.INVALID, "the form is not UTF-8") from None
        if not form.get("payload"):
            raise ChatError(Err.INVALID, "a form post carries its JSON in the payload field", field="payload")
        raw = form["payload"][0]
    elif kind not in ("", "application/json", "text/plain"):
        raise ChatError(Err.UNSUPPORTED_TYPE, f"send application/json or application/x-www-form-urlencoded, not {kind}")
    try:
        payload = _json.decode(raw)
    except msgspec.DecodeError:
        raise ChatError(Err.INVALID, "the payload is not valid JSON") from None
    if not isinstance(payload, dict):
        raise ChatError(Err.INVALID, "the payload must be a JSON object with a text field")
    text = payload.get("text")
    if text is not None and not isinstance(text, str):
        raise ChatError(Err.INVALID, "text must be a string", field="text")
    text = _plain(text or _fallback_text(payload)).strip()
    if not text:
        raise ChatError(Err.INVALID, "text must not be empty", field="text")
    via = payload.get("username")
    if via is not None and not isinstance(via, str):
        raise ChatError(Err.INVALID, "username must be a string", field="username")
    via = " ".join((via or "").split())[:VIA_MAX]  # one line: a name, never a layout
    return Posted(text, via)


# --- making and revoking hooks (the CLI and the REST API share these) ------------------------------------------


async def require_room_admin(store: Store, room: str, user: int) -> None:
    """Hooks of a room are its creator's or a server admin's to make, list and revoke."""
    record = await store.get_room(room)
    if record is None:
        raise ChatError(Err.NOT_FOUND, f"no room {room!r}")
    if record.created_by == user:
        return
    found = await store.user_by_id(user)
    if found is None or not found.admin:
        raise ChatError(Err.FORBIDDEN, f"only the creator of {room!r} or an admin manages its hooks")


async def create_hook(store: Store, room: str, name: str | None, created_by: int | None) -> tuple[HookRecord, str]:
    """A new hook of ``room`` posting as a new bot called ``name`` (default ``hook-`` and 6 hex digits), made a
    member of the room; returns it and its secret (shown once: only its hash is kept)."""
    if await store.get_room(room) is None:
        raise ChatError(Err.NOT_FOUND, f"no room {room!r}")
    bot = await Accounts(store).create_bot(name or f"hook-{secrets.token_hex(3)}")
    await store.add_member(room, bot.id)
    secret = new_secret()
    hook = HookRecord(secrets.token_hex(8), room, bot.id, token_hash(secret), created_by, int(time.time() * 1000))
    await store.add_hook(hook)
    return msgspec.structs.replace(hook, name=bot.name), secret


async def revoke_hook(store: Store, hook: HookRecord) -> None:
    """Revoke ``hook``: its row goes first (every node's next request for it is refused), then its bot becomes a
    tombstone, so the messages it posted keep their name."""
    await store.delete_hook(hook.id)
    await store.delete_user(hook.bot)


class RoomHooks:
    """A room's incoming webhooks as the REST API manages them: each action first checks that the asker is the
    room's creator or an admin (``require_room_admin``)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, hook_id: str) -> HookRecord | None:
        """The hook a post names (its secret is checked by the caller), or None."""
        return await self.store.get_hook(hook_id)

    async def of_room(self, room: str, user: int) -> list[HookRecord]:
        await require_room_admin(self.store, room, user)
        return await self.store.hooks(room)

    async def create(self, room: str, name: str | None, user: int) -> tuple[HookRecord, str]:
        await require_room_admin(self.store, room, user)
        return await create_hook(self.store, room, name, user)

    async def revoke(self, room: str, hook_id: str, user: int) -> None:
        await require_room_admin(self.store, room, user)
        hook = await self.store.get_hook(hook_id)
        if hook is None or hook.room != room:
            raise ChatError(Err.NOT_FOUND, f"no hook {hook_id!r} in {room!r}")
        await revoke_hook(self.store, hook)


def hook_path(hook: HookRecord, secret: str) -> str:
    return f"/hooks/{hook.id}/{secret}"
