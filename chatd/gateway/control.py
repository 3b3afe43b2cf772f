"""``POST /api/admin/control``: the admin CLI's way to close sockets on every node (see ``chatd.admin.control``)."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, post
from litestar.status_codes import HTTP_200_OK

from chatd.admin.control import HEADER, PATH, ControlRequest, check_events, control_key, verify
from chatd.cluster import KICK_TOKEN, KICK_USER, MEMBER_REMOVED
from chatd.errors import ChatError, Close, Err
from chatd.node import Node

log = logging.getLogger("chatd.admin")


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
        raise ChatError(Err.BAD_FRAME, str(e)) from None
    problem = check_events(req.events)
    if problem:
        raise ChatError(Err.BAD_FRAME, problem)
    unauthorized = str(int(Close.UNAUTHORIZED))
    for kind, *args in req.events:
        if kind == KICK_USER:
            await node.cluster.emit(KICK_USER, [args[0], unauthorized])
        elif kind == KICK_TOKEN:
            await node.cluster.emit(KICK_TOKEN, [args[0], args[1], unauthorized])
        else:
            room, user = args
            # Private or not, the user's sockets must stop following a room they were removed from by an admin.
            await node.cluster.emit(MEMBER_REMOVED, [room, user, "private"])
        log.info("admin control: %s for %s", kind, args[0])
    return {"applied": len(req.events)}
