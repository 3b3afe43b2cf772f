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
    return {"webhooks": await node_of(request).room_webhooks.of_room(room, principal.user)}


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
    return await node_of(request).room_webhooks.add(room, principal.user, data.url, data.events)


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
    return {"removed": await node_of(request).room_webhooks.remove(room, hook, principal.user)}


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
    return await node_of(request).room_webhooks.enable(room, hook, principal.user)


webhook_handlers = [list_webhooks, add_webhook, remove_webhook, enable_webhook]
WEBHOOK_STRUCTS: tuple[type[msgspec.Struct], ...] = (WebhookIn,)
