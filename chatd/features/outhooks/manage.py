"""Making, listing and removing webhooks: the rules the REST routes and the CLI share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from chatd.config import WebhooksConfig
from chatd.errors import ChatError, Err
from chatd.features.outhooks.deliverer import refuse_address
from chatd.features.outhooks.signing import check_events, check_url, new_secret
from chatd.store.base import UserRecord, Webhook
from chatd.store.roles import MessageStore, RoomStore, WebhookStore


class WebhookView(msgspec.Struct):
    """A webhook as an admin sees it: where it POSTs, how far it is, and what went wrong last. Never the secret."""

    id: int
    room: str
    url: str
    events: list[str]
    created: int
    """When it was made (Unix ms)."""
    cursor: int
    """The last seq of the room it has handled (delivered, or not one of its events)."""
    behind: int
    """Entries of the room past ``cursor``: waiting to be POSTed (or skipped, when not one of its events)."""
    state: str
    """``active``, ``retrying`` (the last attempt failed; ``next_attempt`` says when again) or ``failing`` (stopped
    after webhooks.max_attempts failures; enable it to start again)."""
    attempts: int
    """Failed attempts in a row at the event after ``cursor``."""
    next_attempt: int
    last_error: str
    last_attempt: int
    delivered: int
    created_by: int | None = None
    """The id of the user who made it; null for an operator's command."""


class NewWebhook(WebhookView):
    secret: str = ""
    """The HMAC-SHA256 key of the X-Chatd-Signature header: shown this once, never again."""


def state_of(hook: Webhook) -> str:
    return "failing" if hook.failing else "retrying" if hook.attempts else "active"


def view(hook: Webhook, last_seq: int) -> WebhookView:
    return WebhookView(
        hook.id,
        hook.room,
        hook.url,
        hook.events,
        hook.created,
        hook.cursor,
        max(0, last_seq - hook.cursor),
        state_of(hook),
        hook.attempts,
        hook.next_attempt,
        hook.last_error,
        hook.last_attempt,
        hook.delivered,
        hook.created_by,
    )


async def views(store: MessageStore, hooks: Sequence[Webhook]) -> list[WebhookView]:
    last = await store.last_seqs(sorted({h.room for h in hooks}))
    return [view(h, last.get(h.room, 0)) for h in hooks]


async def add(
    store: WebhookStore, cfg: WebhooksConfig, room: str, url: str, events: Sequence[str], by: int | None
) -> NewWebhook:
    """Check the URL (and, unless ``webhooks.allow_private``, where it points) and the kinds, then subscribe."""
    check_url(url)
    kinds = check_events(events)
    if not cfg.allow_private:
        refused = await refuse_address(url, cfg.timeout, unresolved_ok=True)
        if refused:
            raise ChatError(Err.FORBIDDEN, refused, field="url")
    secret = new_secret()
    hook = await store.add_webhook(room, url, secret, kinds, by, cfg.per_room_max)
    return NewWebhook(**msgspec.structs.asdict(view(hook, hook.cursor)), secret=secret)


async def require_room_admin(store: RoomStore, room: str, user: UserRecord) -> None:
    """A room's webhooks are its creator's and the server admins' to see and change (they carry everything said
    in the room to another server)."""
    record = await store.get_room(room)
    if record is None:
        raise ChatError(Err.NOT_FOUND, f"no room {room!r}")
    if not (user.admin or record.created_by == user.id):
        raise ChatError(Err.FORBIDDEN, f"only the creator of {room!r} or an admin manages its webhooks")


async def find(store: WebhookStore, room: str, hook_id: int) -> Webhook:
    hook = await store.get_webhook(hook_id)
    if hook is None or hook.room != room:
        raise ChatError(Err.NOT_FOUND, f"no webhook {hook_id} in {room!r}")
    return hook


class RoomWebhooksStore(RoomStore, WebhookStore, MessageStore, Protocol):
    """The roles managing a room's webhooks uses: the room (who made it), its webhooks, its last seq."""


class RoomWebhooks:
    """A room's outgoing webhooks as the REST API manages them: each action first checks that the asker is the
    room's creator or an admin (``require_room_admin``), and that a named webhook is one of the room's."""

    def __init__(self, store: RoomWebhooksStore, cfg: WebhooksConfig) -> None:
        self.store = store
        self.cfg = cfg

    async def of_room(self, room: str, user: UserRecord) -> list[WebhookView]:
        await require_room_admin(self.store, room, user)
        return await views(self.store, await self.store.webhooks(room))

    async def add(self, room: str, user: UserRecord, url: str, events: Sequence[str]) -> NewWebhook:
        await require_room_admin(self.store, room, user)
        return await add(self.store, self.cfg, room, url, events, user.id)

    async def remove(self, room: str, hook_id: int, user: UserRecord) -> bool:
        await self._managed(room, hook_id, user)
        return await self.store.delete_webhook(hook_id)

    async def enable(self, room: str, hook_id: int, user: UserRecord) -> WebhookView:
        """Start a failing webhook again (or retry a waiting one now); its view afterwards."""
        await self._managed(room, hook_id, user)
        await self.store.enable_webhook(hook_id)
        return (await views(self.store, [await find(self.store, room, hook_id)]))[0]

    async def _managed(self, room: str, hook_id: int, user: UserRecord) -> None:
        await require_room_admin(self.store, room, user)
        await find(self.store, room, hook_id)
