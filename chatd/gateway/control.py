"""``POST /api/admin/control``: the admin CLI's way to close sockets on every node (see ``chatd.signing``)."""

from __future__ import annotations

import logging
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
    USER_GONE,
    USER_RENAMED,
)
from chatd.core.node import Node
from chatd.errors import ChatError, Err
from chatd.signing import HEADER, MAX_AGE, PATH, ControlRequest, check_events, control_key, verify

log = logging.getLogger("chatd.admin")
BY = "an admin"  # who the CLI's changes are shown as done by


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
        if kind == KICK_USER:
            await node.kick_user(int(args[0]))
        elif kind == KICK_TOKEN:
            await node.kick_token(int(args[0]), args[1])
        elif kind == MEMBER_REMOVED:
            await node.member_removed(args[0], int(args[1]), BY)
        elif kind == MEMBER_ADDED:
            await node.member_added(args[0], int(args[1]), BY)
        elif kind == USER_GONE:
            await node.user_gone(int(args[0]))
        elif kind == USER_RENAMED:
            await node.user_renamed(int(args[0]), args[1], args[2])
        elif kind == ROOM_ARCHIVED:
            await node.room_archived(args[0])
        else:
            await node.room_deleted(args[0], args[1] == "private", [int(u) for u in args[2:]], BY)
        log.info("admin control: %s for %s", kind, args[0])
    return {"applied": len(req.events)}
