"""REST routes for a room's outgoing webhooks (``chatd.features.outhooks``), for its creator and the server admins."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, delete, get, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from chatd.features.outhooks import manage
from chatd.features.outhooks.signing import KINDS, URL_MAX
from chatd.gateway.auth import Principal
from chatd.gateway.context import node_of
from chatd.gateway.openapi import SECURED, errors
from chatd.protocol.frames import SEQ_MAX, WEBHOOK_URL_PATTERN
from chatd.store.base import Store

HookId = Annotated[int, Parameter(ge=1, le=SEQ_MAX)]
Kind = Literal["message", "edit", "delete", "reaction", "topic"]  # signing.KINDS


class WebhookIn(msgspec.Struct, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=URL_MAX, pattern=WEBHOOK_URL_PATTERN)]
    events: Annotated[list[Kind], msgspec.Meta(max_length=len(KINDS))] = []
    """Kinds of event to POST: message, edit, delete, reaction, topic. None given: all of them."""


@get(
    "/rooms/{room:str}/webhooks",
    summary="The room's outgoing webhooks with their delivery state: how far behind, failures, the last error",
    responses=errors(403, 404),
    security=SECURED,
)
async def list_webhooks(
    request: Request[Any, Any, Any], principal: Principal, room: str
) -> dict[str, list[manage.WebhookView]]:
    store = node_of(request).store
    await manage.require_room_admin(store, room, principal.user)
    return {"webhooks": await manage.views(store, await store.webhooks(room))}


@post(
    "/rooms/{room:str}/webhooks",
    status_code=HTTP_201_CREATED,
    summary="Subscribe a URL to the room's events from now on; the answer carries its signing secret, once",
    responses=errors(403, 404, 409, body=True),
    description="403 also for a URL whose host resolves to a non-public address, unless webhooks.allow_private.",
    security=SECURED,
)
async def add_webhook(
    request: Request[Any, Any, Any], principal: Principal, room: str, data: WebhookIn
) -> manage.NewWebhook:
    node = node_of(request)
    await manage.require_room_admin(node.store, room, principal.user)
    return await manage.add(node.store, node.cfg.webhooks, room, data.url, data.events, principal.user.id)


async def _managed(request: Request[Any, Any, Any], principal: Principal, room: str, hook: int) -> Store:
    """The store, once the asker may manage the room's webhooks and ``hook`` is one of them (else 403 / 404)."""
    store = node_of(request).store
    await manage.require_room_admin(store, room, principal.user)
    await manage.find(store, room, hook)
    return store


@delete(
    "/rooms/{room:str}/webhooks/{hook:int}",
    status_code=HTTP_200_OK,
    summary="Remove a webhook: no further POSTs (one in flight may still arrive)",
    responses=errors(403, 404),
    security=SECURED,
)
async def remove_webhook(
    request: Request[Any, Any, Any], principal: Principal, room: str, hook: HookId
) -> dict[str, bool]:
    store = await _managed(request, principal, room, hook)
    return {"removed": await store.delete_webhook(hook)}


@post(
    "/rooms/{room:str}/webhooks/{hook:int}/enable",
    status_code=HTTP_200_OK,
    summary="Start a failing webhook again (or retry a waiting one now), from the event it stopped at",
    responses=errors(403, 404),
    security=SECURED,
)
async def enable_webhook(
    request: Request[Any, Any, Any], principal: Principal, room: str, hook: HookId
) -> manage.WebhookView:
    store = await _managed(request, principal, room, hook)
    await store.enable_webhook(hook)
    return (await manage.views(store, [await manage.find(store, room, hook)]))[0]


webhook_handlers = [list_webhooks, add_webhook, remove_webhook, enable_webhook]
WEBHOOK_STRUCTS: tuple[type[msgspec.Struct], ...] = (WebhookIn,)
