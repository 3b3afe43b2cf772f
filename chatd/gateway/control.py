"""``POST /api/admin/control``: the admin CLI's way to close sockets on every node (see ``chatd.signing``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Request, post
from litestar.status_codes import HTTP_200_OK

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
from chatd.core.node import Node
from chatd.errors import ChatError, Err
from chatd.signing import HEADER, MAX_AGE, PATH, ControlRequest, check_events, control_key, verify

log = logging.getLogger("chatd.admin")
BY = "an admin"  # who the CLI's changes are shown as done by

# What each kind of event does on this node; ``check_events`` admits only these kinds, each with its arguments.
APPLY: dict[str, Callable[[Node, list[str]], Awaitable[object]]] = {
    KICK_USER: lambda node, a: node.kick_user(int(a[0])),
    KICK_TOKEN: lambda node, a: node.kick_token(int(a[0]), a[1]),
    MEMBER_REMOVED: lambda node, a: node.member_removed(a[0], int(a[1]), BY),
    MEMBER_ADDED: lambda node, a: node.member_added(a[0], int(a[1]), BY),
    USER_GONE: lambda node, a: node.user_gone(int(a[0])),
    USER_RENAMED: lambda node, a: node.user_renamed(int(a[0]), a[1], a[2]),
    ROOM_ARCHIVED: lambda node, a: node.room_archived(a[0]),
    ROOM_DELETED: lambda node, a: node.room_deleted(a[0], a[1] == "private", [int(u) for u in a[2:]], BY),
}


@post(PATH, status_code=HTTP_200_OK, include_in_schema=False)
async def control(request: Request[Any, Any, Any]) -> dict[str, int]:
    node: Node = request.app.state.node
    body = await request.body()
    key = control_key(await request.app.state.tickets.signing_key())
    if not verify(key, body, request.headers.get(HEADER, "")):
        raise ChatError(Err.UNAUTHORIZED, "missing or invalid control signature")
    try:
        req = msgspec.json.decode(body, type=ControlRequest)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise ChatError(Err.INVALID, str(e)) from None
    problem = check_events(req.events)
    if problem:
        raise ChatError(Err.INVALID, problem)
    # The timestamp is accepted MAX_AGE either side of now: the id is remembered, on every node, as long.
    if not await node.claim_once(f"control:{req.id}", 2 * MAX_AGE):
        log.warning("admin control: a replayed request (id %s) refused", req.id)
        raise ChatError(Err.UNAUTHORIZED, "this control request was already applied; sign a new one")
    for kind, *args in req.events:
        await APPLY[kind](node, args)
        log.info("admin control: %s for %s", kind, args[0])
    return {"applied": len(req.events)}
