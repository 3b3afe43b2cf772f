"""``/api/admin``: deleting rooms and users, renaming users (admins only).

What ``chatd bench`` creates on a live server (bot users, rooms) has to go again when the run ends, and an admin
needs the same for spam rooms and throwaway accounts. Deletion is for good: a room goes with its history and
attachments; a user with their tokens, memberships, read state, mentions and uploads. A deleted user stays a
tombstone: what they wrote still shows their name, and a new account with that name is someone new who inherits
nothing. Every node forgets what it cached about them and closes their sockets.

Renaming changes a user's name only: they keep their id and everything that belongs to it. Every node updates
their sessions and tells every socket with a ``user`` frame.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Router, delete, patch
from litestar.di import Provide
from litestar.status_codes import HTTP_200_OK

from chatd.errors import ChatError, Err
from chatd.gateway.auth import Principal
from chatd.gateway.openapi import SECURED, errors
from chatd.gateway.rest import provide_principal
from chatd.node import Node
from chatd.protocol.frames import UserName
from chatd.uploads import delete_files


def _admin_node(request: Request[Any, Any, Any], principal: Principal) -> Node:
    if not principal.user.admin:
        raise ChatError(Err.FORBIDDEN, "admin only")
    node: Node = request.app.state.node
    return node


@delete(
    "/rooms/{room:str}",
    status_code=HTTP_200_OK,
    summary="Delete a room with its history and attachments; its members are told (admin)",
    responses=errors(403, 404),
    security=SECURED,
)
async def delete_room(request: Request[Any, Any, Any], principal: Principal, room: str) -> dict[str, Any]:
    purged = await _admin_node(request, principal).delete_room(room, principal.user.name)
    if purged is None:
        raise ChatError(Err.NOT_FOUND, f"no room {room!r}")
    return {"room": room, "deleted": True, "members": len(purged.members), "uploads": purged.uploads}


@delete(
    "/users/{user:str}",
    status_code=HTTP_200_OK,
    summary="Delete a user with their tokens, memberships and uploads; their sockets are closed (admin)",
    responses=errors(403, 404),
    security=SECURED,
)
async def delete_user(request: Request[Any, Any, Any], principal: Principal, user: str) -> dict[str, Any]:
    node = _admin_node(request, principal)
    target = await node.store.get_user(user)
    if target is None:
        raise ChatError(Err.NOT_FOUND, f"no user {user!r}")
    if target.id == principal.user.id:
        raise ChatError(Err.FORBIDDEN, "an admin cannot delete themselves; ask another admin")
    upload_ids = await node.store.delete_user(target.id)
    if upload_ids is None:
        raise ChatError(Err.NOT_FOUND, f"no user {user!r}")
    await node.user_gone(target.id)
    await delete_files(node.cfg.uploads.dir, upload_ids)
    return {"user": target.name, "uid": target.id, "deleted": True, "uploads": len(upload_ids)}


class RenameIn(msgspec.Struct, forbid_unknown_fields=True):
    name: UserName


@patch(
    "/users/{user:str}",
    status_code=HTTP_200_OK,
    summary="Rename a user: same id, same rooms, messages and tokens, a new name; every socket is told (admin)",
    responses=errors(403, 404, 409, body=True),
    security=SECURED,
)
async def rename_user(
    request: Request[Any, Any, Any], principal: Principal, user: str, data: RenameIn
) -> dict[str, Any]:
    node = _admin_node(request, principal)
    target = await node.store.get_user(user)
    if target is None:
        raise ChatError(Err.NOT_FOUND, f"no user {user!r}")
    was = await node.rename_user(target.id, data.name)
    return {"uid": target.id, "name": data.name, "was": was}


admin_router = Router(
    path="/api/admin",
    route_handlers=[delete_room, delete_user, rename_user],
    dependencies={"principal": Provide(provide_principal)},
)
