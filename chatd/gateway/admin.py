"""``/api/admin``: deleting rooms and users, renaming users (admins only).

What ``chatd bench`` creates on a live server (bot users, rooms) has to go again when the run ends, and an admin
needs the same for spam rooms and throwaway accounts. Deletion is for good: a room goes with its history and
attachments; a user with their tokens, memberships, read state, mentions and uploads. A deleted user stays a
tombstone: what they wrote still shows their name, and a new account with that name is someone new who inherits
nothing. Every node forgets what it cached about them and closes their sockets.

Renaming changes a user's name only: they keep their id and everything that belongs to it. Every node updates
their sessions and tells every socket with a ``user`` frame.

``/api/admin/accounts/{uid}``, ``/api/admin/rooms`` and ``/api/admin/invites`` do over HTTP what ``chatd users``,
``chatd rooms`` and ``chatd invites`` do (the web page's admin view uses them): disable, enable, promote, reset a
password, archive, make invite codes. Accounts are addressed by their id, which a rename does not change.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
from litestar import Request, Router, delete, get, patch, post
from litestar.di import Provide
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from chatd.accounts.users import PASSWORD_MAX, PASSWORD_MIN
from chatd.config import registration_mode
from chatd.core.node import Node
from chatd.errors import ChatError, Err
from chatd.gateway.auth import Principal
from chatd.gateway.openapi import SECURED, errors
from chatd.gateway.rest import provide_principal
from chatd.gateway.rest_accounts import DIRECTORY_PAGE, After, Limit, Query
from chatd.protocol.frames import UserName
from chatd.store.base import AdminRoom, UserRecord


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
    target = await node.accounts.find(user)
    if target is None:
        raise ChatError(Err.NOT_FOUND, f"no user {user!r}")
    if target.id == principal.user.id:
        raise ChatError(Err.FORBIDDEN, "an admin cannot delete themselves; ask another admin")
    upload_ids = await node.delete_user(target.id)
    if upload_ids is None:
        raise ChatError(Err.NOT_FOUND, f"no user {user!r}")
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
    target = await node.accounts.find(user)
    if target is None:
        raise ChatError(Err.NOT_FOUND, f"no user {user!r}")
    was = await node.rename_user(target.id, data.name)
    return {"uid": target.id, "name": data.name, "was": was}


class AdminUser(msgspec.Struct):
    """A user as an admin sees them (``chatd users list``): role and state too."""

    uid: int
    name: str
    display_name: str
    admin: bool
    bot: bool
    disabled: bool
    created: int


class AdminUserPage(msgspec.Struct):
    users: list[AdminUser]
    next: str | None = None
    """Pass as ``after`` for the next page; null on the last page."""


class AccountIn(msgspec.Struct, forbid_unknown_fields=True):
    disabled: bool | None = None
    """true: their tokens stop working and their sockets close on every node (4401); false: enabled again."""
    admin: bool | None = None


class ResetIn(msgspec.Struct, forbid_unknown_fields=True):
    password: Annotated[str, msgspec.Meta(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)] | None
    """The new password; null leaves the account token-only."""
    keep_tokens: bool = False
    """By default every token of theirs is revoked and their sockets close, since a reset usually means a leak."""


class RoomArchiveIn(msgspec.Struct, forbid_unknown_fields=True):
    archived: bool


class InvitesIn(msgspec.Struct, forbid_unknown_fields=True):
    count: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1
    days: Annotated[float, msgspec.Meta(gt=0, le=365)] = 7.0


class InvitesOut(msgspec.Struct):
    codes: list[str]
    """Shown once: only their hashes are stored."""
    expires: int
    registration: str
    """auth.registration now: codes are needed only when it is "invite"."""


class InviteOut(msgspec.Struct):
    id: str
    created_by: str | None
    created: int
    expires: int
    used_by: str | None


def _admin_user(u: UserRecord) -> AdminUser:
    return AdminUser(u.id, u.name, u.display_name, u.admin, u.bot, u.disabled, u.created)


@get(
    "/accounts",
    summary="Every user with role and state, by name, in pages, searchable by prefix (admin)",
    responses=errors(403),
    security=SECURED,
)
async def list_accounts(
    request: Request[Any, Any, Any],
    principal: Principal,
    q: Query = "",
    after: After = None,
    limit: Limit = DIRECTORY_PAGE,
) -> AdminUserPage:
    rows, next_after = await _admin_node(request, principal).accounts.directory_page(q, after, limit, disabled=True)
    return AdminUserPage([_admin_user(u) for u in rows], next_after)


async def _account(node: Node, uid: int) -> UserRecord:
    target = await node.accounts.by_id(uid)
    if target is None:
        raise ChatError(Err.NOT_FOUND, f"no user with id {uid}")
    return target


async def _other_account(node: Node, principal: Principal, uid: int, refusal: str) -> UserRecord:
    """The account ``uid``, which must not be the asking admin's own (``refusal`` says why)."""
    target = await _account(node, uid)
    if target.id == principal.user.id:
        raise ChatError(Err.FORBIDDEN, refusal)
    return target


@patch(
    "/accounts/{uid:int}",
    status_code=HTTP_200_OK,
    summary="Disable, enable, promote or demote a user, by id (admin; not yourself)",
    responses=errors(403, 404, body=True),
    security=SECURED,
)
async def update_account(request: Request[Any, Any, Any], principal: Principal, uid: int, data: AccountIn) -> AdminUser:
    node = _admin_node(request, principal)
    # An admin who disables or demotes themselves may leave nobody able to undo it.
    await _other_account(node, principal, uid, "an admin cannot disable or demote themselves; ask another admin")
    await node.set_account(uid, disabled=data.disabled, admin=data.admin)
    return _admin_user(await _account(node, uid))


@post(
    "/accounts/{uid:int}/password",
    status_code=HTTP_200_OK,
    summary="Set a user's password, by id; their tokens are revoked and sockets closed unless keep_tokens (admin)",
    responses=errors(403, 404, body=True),
    security=SECURED,
)
async def reset_password(
    request: Request[Any, Any, Any], principal: Principal, uid: int, data: ResetIn
) -> dict[str, Any]:
    node = _admin_node(request, principal)
    target = await _other_account(node, principal, uid, "change your own password with POST /api/me/password")
    revoked = await node.reset_password(uid, data.password, data.keep_tokens)
    return {"uid": uid, "name": target.name, "password": data.password is not None, "revoked": revoked}


@get(
    "/rooms",
    summary="Every room, private ones included, with archived state and member count (admin)",
    responses=errors(403),
    security=SECURED,
)
async def list_rooms(request: Request[Any, Any, Any], principal: Principal) -> dict[str, list[AdminRoom]]:
    return {"rooms": await _admin_node(request, principal).rooms.all_rooms()}


@patch(
    "/rooms/{room:str}",
    status_code=HTTP_200_OK,
    summary="Archive a room (read-only for everyone, on every node) or unarchive it (admin)",
    responses=errors(403, 404, body=True),
    security=SECURED,
)
async def archive_room(
    request: Request[Any, Any, Any], principal: Principal, room: str, data: RoomArchiveIn
) -> dict[str, Any]:
    node = _admin_node(request, principal)
    if not await node.set_archived(room, data.archived):
        raise ChatError(Err.NOT_FOUND, f"no room {room!r}")
    return {"room": room, "archived": data.archived}


@post(
    "/invites",
    status_code=HTTP_201_CREATED,
    summary="Make invite codes (shown once), recorded as made by you (admin)",
    responses=errors(403, body=True),
    security=SECURED,
)
async def create_invites(request: Request[Any, Any, Any], principal: Principal, data: InvitesIn) -> InvitesOut:
    node = _admin_node(request, principal)
    expires = int((time.time() + data.days * 86400) * 1000)
    codes = await node.accounts.make_invites(data.count, principal.user.id, expires)
    return InvitesOut(codes, expires, registration_mode(node.cfg.auth))


@get(
    "/invites",
    summary="Every invite code: who made it, until when, who used it (admin)",
    responses=errors(403),
    security=SECURED,
)
async def list_invites(request: Request[Any, Any, Any], principal: Principal) -> dict[str, list[InviteOut]]:
    rows = await _admin_node(request, principal).accounts.invites()
    return {"invites": [InviteOut(r.id, r.created_by, r.created, r.expires, r.used_by) for r in rows]}


ADMIN_STRUCTS: tuple[type[msgspec.Struct], ...] = (RenameIn, AccountIn, ResetIn, RoomArchiveIn, InvitesIn)

admin_router = Router(
    path="/api/admin",
    route_handlers=[
        delete_room,
        delete_user,
        rename_user,
        list_accounts,
        update_account,
        reset_password,
        list_rooms,
        archive_room,
        create_invites,
        list_invites,
    ],
    dependencies={"principal": Provide(provide_principal)},
)
