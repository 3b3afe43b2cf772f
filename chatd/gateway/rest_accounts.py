"""REST routes for accounts people manage themselves: their password, their display name, and the user directory.

Kept apart from ``rest.py`` (sign-up, sign-in, rooms and messages); the routes share its principal dependency
through the ``/api`` router. Everything here is keyed by the user's id: the one asking is the principal, and the
directory answers ids beside names.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get, patch, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK

from chatd.accounts.throttle import AuthThrottle
from chatd.accounts.users import PASSWORD_MAX, PASSWORD_MIN
from chatd.errors import ChatError, Err
from chatd.gateway.auth import Principal
from chatd.gateway.context import node_of, request_ip
from chatd.gateway.openapi import SECURED, errors
from chatd.protocol.frames import DISPLAY_MAX, DISPLAY_PATTERN, USER_MAX, USER_PATTERN, DisplayName
from chatd.store.base import UserRecord

DIRECTORY_PAGE, DIRECTORY_PAGE_MAX = 50, 200
IDS_MAX = 200  # users looked up by id in one request
IDS_PATTERN = rf"^[0-9]{{1,15}}(,[0-9]{{1,15}}){{0,{IDS_MAX - 1}}}$"
# A search and a page's start, for the directory and the admin's list alike. No control characters: PostgreSQL
# refuses a NUL in text, and nothing typed into a search box holds one.
Query = Annotated[
    str,
    Parameter(
        max_length=DISPLAY_MAX,
        pattern=DISPLAY_PATTERN,
        description="only users whose name or display name starts with this, ignoring case",
    ),
]
After = Annotated[
    str | None,
    Parameter(max_length=USER_MAX, pattern=USER_PATTERN, description="only users after this name (a page's next)"),
]
Limit = Annotated[int, Parameter(ge=1, le=DIRECTORY_PAGE_MAX, description="at most this many")]


class PasswordIn(msgspec.Struct, forbid_unknown_fields=True):
    old_password: Annotated[str, msgspec.Meta(max_length=PASSWORD_MAX)]
    new_password: Annotated[str, msgspec.Meta(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)]


class ProfileIn(msgspec.Struct, forbid_unknown_fields=True):
    display_name: DisplayName
    """Shown beside your name; "" removes it. Spaces around it are dropped."""


class PasswordOut(msgspec.Struct):
    changed: bool
    revoked: int
    """How many of your other tokens were revoked (their sockets are closed)."""


class DirectoryUser(msgspec.Struct):
    """What anyone signed in may know of a user: no e-mail, no role, no state, no tokens."""

    uid: int
    name: str
    display_name: str = ""
    bot: bool = False  # a token-only account made for scripts (POST /api/admin/bots)


class DirectoryPage(msgspec.Struct):
    users: list[DirectoryUser]
    next: str | None = None
    """Pass as ``after`` for the next page; null on the last page."""


def listed(user: UserRecord) -> DirectoryUser:
    return DirectoryUser(user.id, user.name, user.display_name, user.bot)


@post(
    "/me/password",
    status_code=HTTP_200_OK,
    summary="Change your password (the current one is required); your other tokens are revoked, this one stays",
    responses=errors(403, body=True),
    security=SECURED,
)
async def change_password(request: Request[Any, Any, Any], principal: Principal, data: PasswordIn) -> PasswordOut:
    node = node_of(request)
    if principal.token_hash is None:
        raise ChatError(Err.FORBIDDEN, "open mode has no passwords")
    if not node.cfg.auth.oidc.password_sign_in:
        raise ChatError(Err.FORBIDDEN, "password sign-in is off on this server; you sign in with single sign-on")
    # Wrong current passwords count as failed logins of this name from this address, so a stolen token cannot be
    # used to guess the password any faster than the sign-in form allows.
    throttle: AuthThrottle = request.app.state.auth_throttle
    me, ip = principal.user, request_ip(request)
    await throttle.login_allowed(me.name, ip)
    try:
        revoked = await node.accounts.change_password(me.id, data.old_password, data.new_password, principal.token_hash)
    except ChatError as e:
        if e.field == "old_password":
            await throttle.login_failed(me.name, ip)
        raise
    await throttle.login_succeeded(me.name, ip)
    for hashed in revoked:
        await node.kick_token(me.id, hashed)
    return PasswordOut(True, len(revoked))


@patch(
    "/me",
    status_code=HTTP_200_OK,
    summary="Set your display name; every page is told (a user frame)",
    responses=errors(body=True),
    security=SECURED,
)
async def update_me(request: Request[Any, Any, Any], principal: Principal, data: ProfileIn) -> UserRecord:
    node = node_of(request)
    display = data.display_name.strip()
    await node.set_display_name(principal.user, display)
    return msgspec.structs.replace(principal.user, display_name=display)


@get(
    "/users",
    summary="The user directory: names, display names and ids, by name, in pages, searchable by prefix",
    responses=errors(),
    security=SECURED,
)
async def directory(
    request: Request[Any, Any, Any],
    principal: Principal,
    q: Query = "",
    after: After = None,
    limit: Limit = DIRECTORY_PAGE,
    ids: Annotated[
        str | None,
        Parameter(
            pattern=IDS_PATTERN,
            description=f"instead of a search: these users, by id, comma-separated (at most {IDS_MAX})",
        ),
    ] = None,
) -> DirectoryPage:
    node = node_of(request)
    if ids:
        return DirectoryPage([listed(u) for u in await node.accounts.by_ids([int(i) for i in ids.split(",")])])
    rows, next_after = await node.accounts.directory_page(q, after, limit)
    return DirectoryPage([listed(u) for u in rows], next_after)


ACCOUNT_STRUCTS: tuple[type[msgspec.Struct], ...] = (PasswordIn, ProfileIn)
account_handlers = [change_password, update_me, directory]
