"""The REST API under ``/api``: accounts, rooms, members, history, sending, presence, bots.

Every route answers JSON. Errors carry ``{"code", "message"}`` with a code from :mod:`chatd.errors` and its HTTP
status. The OpenAPI schema is served at ``/schema`` (``/schema/openapi.json``).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import msgspec
from litestar import Request, Router, delete, get, post
from litestar.di import Provide
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from chatd.accounts.throttle import AuthThrottle, shown
from chatd.accounts.users import PASSWORD_MAX, PASSWORD_MIN
from chatd.config import registration_mode
from chatd.core.node import Node
from chatd.errors import ChatError, Err
from chatd.gateway.auth import Principal, authenticate, check_route
from chatd.gateway.context import client_id_or_new, node_of, request_ip
from chatd.gateway.hooks import HOOK_STRUCTS, hook_api_handlers
from chatd.gateway.openapi import PUBLIC, SECURED, SendOperation, errors
from chatd.gateway.outhooks import WEBHOOK_STRUCTS, webhook_handlers
from chatd.gateway.rest_accounts import ACCOUNT_STRUCTS, account_handlers
from chatd.gateway.rest_features import FEATURE_STRUCTS, feature_handlers
from chatd.gateway.tickets import MEDIA, WS, Tickets
from chatd.gateway.uploads import upload_handlers
from chatd.protocol.frames import ROOM_MAX, SEQ_MAX, ClientId, Message, Room, UploadId, UserName
from chatd.protocol.limits import utf8_len_exceeds
from chatd.rules.bots import SCOPE_ROOMS_MAX, Action, Scope, ScopeRoom, decode_scope, make_scope
from chatd.rules.dms import dm_other
from chatd.store.base import RoomRecord, UserRecord


class Credentials(msgspec.Struct, forbid_unknown_fields=True):
    """A registration: the password rule is the one ``chatd.accounts.users.check_password`` applies everywhere."""

    username: UserName
    password: Annotated[str, msgspec.Meta(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)]
    invite: Annotated[str, msgspec.Meta(max_length=128)] | None = None  # needed when auth.registration = "invite"


class Login(msgspec.Struct, forbid_unknown_fields=True):
    """A login: any password is checked (one set before the rule, or by an older CLI, may be shorter)."""

    username: UserName
    password: Annotated[str, msgspec.Meta(max_length=PASSWORD_MAX)]


class TokenOut(msgspec.Struct):
    token: str
    user: UserRecord


class NewRoom(msgspec.Struct, forbid_unknown_fields=True):
    name: Room
    private: bool = False


class RoomOut(msgspec.Struct):
    name: str
    private: bool
    created_by: str  # the creator's current name
    created: int
    last_seq: int
    member: bool
    topic: str = ""
    dm: bool = False
    created_by_uid: int = 0  # the creator's id
    with_: str | None = msgspec.field(default=None, name="with")
    """A direct room: the other person's current name (show this, never the room's name); null for other rooms."""
    with_uid: int | None = None
    """A direct room: the other person's id."""


class Invite(msgspec.Struct, forbid_unknown_fields=True):
    user: UserName


class NewMessageIn(msgspec.Struct, forbid_unknown_fields=True):
    body: str
    client_id: ClientId | None = None
    attachments: Annotated[list[UploadId], msgspec.Meta(max_length=10)] = []
    reply_to: Annotated[int, msgspec.Meta(ge=1, le=SEQ_MAX)] | None = None


class SentOut(msgspec.Struct):
    """The stored message, shaped like the message frame, plus whether it was a resend."""

    type: str
    room: str
    seq: int
    from_: str = msgspec.field(name="from")
    body: str = ""
    client_id: str = ""
    ts: int = 0
    attachments: list[str] = []
    duplicate: bool = False
    reply_to: int = 0
    uid: int = 0  # the sender's id
    bot: bool = False  # the sender is a bot account


class BotsIn(msgspec.Struct, forbid_unknown_fields=True):
    names: list[UserName] = []
    prefix: UserName | None = None
    count: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 0


class Bot(msgspec.Struct):
    name: str
    token: str


ROOMS_PAGE, ROOMS_PAGE_MAX = 200, 1000
log = logging.getLogger("chatd.auth")


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    principal = await authenticate(node_of(request), request.headers, request.query_params)
    if principal is None:
        raise ChatError(Err.UNAUTHORIZED, "missing or invalid credentials")
    return check_route(principal, request.route_handler.handler_name, request.path_params)


async def rooms_out(node: Node, rows: list[tuple[RoomRecord, bool]], me: int) -> list[RoomOut]:
    """Rooms as ``me`` sees them in a list: a direct room with the other person's current name (one query for
    all of them)."""
    others = {record.name: dm_other(record, me) for record, _ in rows if record.dm}
    wanted = [uid for uid in others.values() if uid is not None]
    names = await node.accounts.names_of(wanted)
    out = []
    for record, member in rows:
        other = others.get(record.name)
        out.append(
            RoomOut(
                record.name,
                record.private,
                record.creator,
                record.created,
                record.last_seq,
                member,
                record.topic,
                record.dm,
                record.created_by,
                names.get(other) if other is not None else None,
                other,
            )
        )
    return out


# --- accounts -------------------------------------------------------------------------------------------------


def _password_sign_in(node: Node) -> None:
    if not node.cfg.auth.oidc.password_sign_in:
        raise ChatError(Err.FORBIDDEN, "password sign-in is off on this server; sign in with single sign-on")


@post(
    "/auth/register",
    status_code=HTTP_201_CREATED,
    summary="Register (throttled per client address); admin only if auth.first_user_admin and no admin exists",
    responses=errors(403, 409, auth=False, body=True),
    security=PUBLIC,
)
async def register(request: Request[Any, Any, Any], data: Credentials) -> TokenOut:
    node = node_of(request)
    _password_sign_in(node)
    mode = registration_mode(node.cfg.auth)
    if mode == "closed":
        raise ChatError(Err.FORBIDDEN, "registration is closed on this server")
    ip = request_ip(request)
    await request.app.state.auth_throttle.attempt(ip, registering=True)
    if mode == "invite" and not data.invite:
        raise ChatError(Err.FORBIDDEN, "registration needs an invite code on this server")
    invite = data.invite if mode == "invite" else None
    issued = await node.accounts.register(data.username, data.password, node.cfg.auth.first_user_admin, invite)
    log.info("registered user %s from %s%s", shown(issued.user.name), ip, " as admin" if issued.user.admin else "")
    return TokenOut(issued.token, issued.user)


@post(
    "/auth/login",
    status_code=HTTP_200_OK,
    summary="Log in with a password; returns a new token (failed logins slow further ones per account and address)",
    responses=errors(401, auth=False, body=True),
    security=PUBLIC,
)
async def login(request: Request[Any, Any, Any], data: Login) -> TokenOut:
    _password_sign_in(node_of(request))
    throttle: AuthThrottle = request.app.state.auth_throttle
    ip = request_ip(request)
    await throttle.attempt(ip)
    await throttle.login_allowed(data.username, ip)
    try:
        issued = await node_of(request).accounts.login(data.username, data.password)
    except ChatError as e:
        if e.err is Err.UNAUTHORIZED:
            await throttle.login_failed(data.username, ip)
        raise
    await throttle.login_succeeded(data.username, ip)
    return TokenOut(issued.token, issued.user)


@post(
    "/auth/logout",
    status_code=HTTP_200_OK,
    summary="Revoke this token and close its WebSockets",
    responses=errors(),
    security=SECURED,
)
async def logout(request: Request[Any, Any, Any], principal: Principal) -> dict[str, bool]:
    node = node_of(request)
    if principal.token is None:
        return {"revoked": False}
    return {"revoked": await node.logout(principal.user.id, principal.token)}


class TicketOut(msgspec.Struct):
    ticket: str
    """Opens one WebSocket session (``/ws?ticket=``) within ``ticket_expires_in`` seconds."""
    ticket_expires_in: float
    media_key: str
    """Reads attachments (``GET /api/uploads/{id}?key=``) for ``media_expires_in`` seconds; nothing else."""
    media_expires_in: float


@post(
    "/auth/ticket",
    status_code=HTTP_200_OK,
    summary="Trade your token for a WebSocket ticket and an attachment key, for URLs (no token in a URL)",
    responses=errors(403),
    security=SECURED,
)
async def ticket(request: Request[Any, Any, Any], principal: Principal) -> TicketOut:
    hashed = principal.token_hash
    if hashed is None:
        raise ChatError(Err.FORBIDDEN, "tickets are for token sign-ins; open mode connects with ?user=")
    tickets: Tickets = request.app.state.tickets
    auth = node_of(request).cfg.auth
    uid = principal.user.id
    return TicketOut(
        await tickets.issue(WS, uid, hashed, auth.ticket_ttl),
        auth.ticket_ttl,
        await tickets.issue(MEDIA, uid, hashed, auth.media_ttl),
        auth.media_ttl,
    )


@get("/me", summary="Who am I", responses=errors(), security=SECURED)
async def me(principal: Principal) -> UserRecord:
    return principal.user


# --- rooms and members ----------------------------------------------------------------------------------------


class RoomPage(msgspec.Struct):
    rooms: list[RoomOut]
    next: str | None = None
    """Pass as ``after`` for the next page; null on the last page."""


@get(
    "/rooms",
    summary="Public rooms and the private rooms you belong to, by name, in pages",
    responses=errors(),
    security=SECURED,
)
async def list_rooms(
    request: Request[Any, Any, Any],
    principal: Principal,
    after: Annotated[str | None, Parameter(max_length=ROOM_MAX, description="only rooms named after this")] = None,
    limit: Annotated[int, Parameter(ge=1, le=ROOMS_PAGE_MAX, description="at most this many rooms")] = ROOMS_PAGE,
) -> RoomPage:
    node = node_of(request)
    rows = await node.rooms.page_for(principal.user.id, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return RoomPage(await rooms_out(node, rows, principal.user.id), rows[-1][0].name if more else None)


@post(
    "/rooms",
    status_code=HTTP_201_CREATED,
    summary="Create a room; you become its first member (names starting with dm: are reserved: forbidden)",
    responses=errors(403, 409, body=True),
    security=SECURED,
)
async def create_room(request: Request[Any, Any, Any], principal: Principal, data: NewRoom) -> RoomOut:
    node = node_of(request)
    record = await node.rooms.create(data.name, data.private, principal.user)
    return (await rooms_out(node, [(record, True)], principal.user.id))[0]


@get("/rooms/{room:str}", summary="One room", responses=errors(404), security=SECURED)
async def get_room(request: Request[Any, Any, Any], principal: Principal, room: str) -> RoomOut:
    node = node_of(request)
    me = principal.user.id
    record = await node.rooms.get_visible(room, me)
    return (await rooms_out(node, [(record, await node.rooms.is_member(room, me))], me))[0]


@get(
    "/rooms/{room:str}/members",
    summary="Members of a room: names, their ids in the same order, and the ids of those that are bots",
    responses=errors(404),
    security=SECURED,
)
async def list_members(request: Request[Any, Any, Any], principal: Principal, room: str) -> dict[str, list[Any]]:
    node = node_of(request)
    await node.rooms.get_visible(room, principal.user.id)
    members = await node.rooms.members(room)
    return {
        "members": [m.name for m in members],
        "uids": [m.id for m in members],
        "bots": [m.id for m in members if m.bot],
    }


@post(
    "/rooms/{room:str}/members",
    status_code=HTTP_201_CREATED,
    summary="Invite a user into a room",
    responses=errors(403, 404, body=True),
    security=SECURED,
)
async def invite(request: Request[Any, Any, Any], principal: Principal, room: str, data: Invite) -> dict[str, Any]:
    added, target = await node_of(request).rooms.invite(room, principal.user, data.user)
    return {"room": room, "user": target.name, "uid": target.id, "added": added}


@delete(
    "/rooms/{room:str}/members/{user:str}",
    status_code=HTTP_200_OK,
    summary="Remove a member (yourself, or anyone if you created the room or are admin)",
    responses=errors(403, 404),
    security=SECURED,
)
async def remove_member(request: Request[Any, Any, Any], principal: Principal, room: str, user: str) -> dict[str, Any]:
    node = node_of(request)
    removed, found = await node.remove_member(room, principal.user, user)
    return {"room": room, "user": found.name if found else user, "uid": found.id if found else None, "removed": removed}


@get(
    "/rooms/{room:str}/presence",
    summary="Users connected to a room (on any node)",
    responses=errors(404),
    security=SECURED,
)
async def presence(request: Request[Any, Any, Any], principal: Principal, room: str) -> dict[str, Any]:
    node = node_of(request)
    await node.rooms.get_visible(room, principal.user.id)
    present = await node.presence_of(room)
    return {"room": room, "users": [u.name for u in present], "uids": [u.id for u in present]}


# --- messages -------------------------------------------------------------------------------------------------


@get(
    "/rooms/{room:str}/messages",
    summary="History, oldest first, paged by seq",
    responses=errors(404),
    security=SECURED,
)
async def history(
    request: Request[Any, Any, Any],
    principal: Principal,
    room: str,
    # schema_extra: litestar leaves a minimum of 0 out of the document (it tests the value for truth).
    after: Annotated[
        int | None,
        Parameter(ge=0, le=SEQ_MAX, schema_extra={"minimum": 0}, description="only messages with seq > after"),
    ] = None,
    before: Annotated[int | None, Parameter(ge=1, le=SEQ_MAX, description="only messages with seq < before")] = None,
    limit: Annotated[int, Parameter(ge=1, description="at most this many (capped by rooms.history_max_limit)")] = 50,
) -> dict[str, Any]:
    node = node_of(request)
    await node.rooms.get_visible(room, principal.user.id)
    limit = min(limit, node.cfg.rooms.history_max_limit)
    messages: list[Message] = await node.rooms.history(room, after, before, limit + 1)
    more = len(messages) > limit
    if more:
        # ``after`` pages forward (keep the oldest), otherwise we page backward (keep the newest).
        messages = messages[:limit] if after is not None else messages[1:]
    answer: dict[str, Any] = {"messages": messages, "has_more": more}
    if deleted := await node.rooms.deleted_through(room):
        answer["deleted_through"] = deleted  # older seqs were deleted by retention, not lost
    return answer


@post(
    "/rooms/{room:str}/messages",
    status_code=HTTP_201_CREATED,
    summary="Send; answers after the message is stored, like a WebSocket ack",
    responses=errors(403, 404, 503, body=True),
    security=SECURED,
    operation_class=SendOperation,
)
async def send_message(request: Request[Any, Any, Any], principal: Principal, room: str, data: NewMessageIn) -> SentOut:
    node = node_of(request)
    user = principal.user
    client_id = client_id_or_new(data.client_id)
    if not data.body and not data.attachments:
        raise ChatError(Err.INVALID, "body must not be empty", client_id, field="body")
    if utf8_len_exceeds(data.body, node.cfg.limits.max_frame_bytes):
        raise ChatError(Err.TOO_LARGE, f"body exceeds {node.cfg.limits.max_frame_bytes} bytes", client_id)
    reply_to = data.reply_to or 0
    c = await node.submit_and_wait(user.id, room, data.body, client_id, list(data.attachments), reply_to)
    if c.error:
        raise ChatError(Err.by_code(c.error), c.message, client_id)
    return SentOut(
        "message",
        room,
        c.seq,
        user.name,
        data.body,
        client_id,
        c.ts,
        list(data.attachments),
        c.duplicate,
        reply_to,
        user.id,
        user.bot,
    )


# --- admin ----------------------------------------------------------------------------------------------------


@post(
    "/admin/bots",
    status_code=HTTP_201_CREATED,
    summary="Create token-only bot users in bulk (admin)",
    responses=errors(403, 409, body=True),
    security=SECURED,
)
async def create_bots(request: Request[Any, Any, Any], principal: Principal, data: BotsIn) -> dict[str, list[Bot]]:
    if not principal.user.admin:
        raise ChatError(Err.FORBIDDEN, "admin only")
    names = list(data.names)
    if data.prefix and data.count:
        width = len(str(data.count))
        names += [f"{data.prefix}{i:0{width}d}" for i in range(1, data.count + 1)]
    if not names:
        raise ChatError(Err.INVALID, 'give "names", or "prefix" and "count"')
    issued = await node_of(request).accounts.create_bots(names)
    return {"bots": [Bot(i.user.name, i.token) for i in issued]}


class BotTokenIn(msgspec.Struct, forbid_unknown_fields=True):
    """A bot token's scope: rooms (``*``: any room the bot is a member of) and actions."""

    rooms: Annotated[list[ScopeRoom], msgspec.Meta(max_length=SCOPE_ROOMS_MAX)]
    actions: Annotated[list[Action], msgspec.Meta(max_length=3)] = []


class BotTokenOut(msgspec.Struct):
    token: str
    """Shown once: only its hash is stored."""
    bot: str
    uid: int
    scope: Scope


class BotTokenInfo(msgspec.Struct):
    id: str
    """What ``chatd users revoke`` takes."""
    created: int
    last_used: int | None
    scope: Scope | None
    """null: an unscoped token (the bot's own rights, as ``POST /api/admin/bots`` issues for the bench)."""


class BotOut(msgspec.Struct):
    uid: int
    name: str
    created: int
    disabled: bool
    tokens: list[BotTokenInfo]
    bot: bool = True


def _admin(principal: Principal) -> None:
    if not principal.user.admin:
        raise ChatError(Err.FORBIDDEN, "admin only")


@get("/admin/bots", summary="Bots and their tokens' scopes (admin)", responses=errors(403), security=SECURED)
async def list_bots(request: Request[Any, Any, Any], principal: Principal) -> dict[str, list[BotOut]]:
    _admin(principal)
    out = []
    for u, tokens in await node_of(request).accounts.bots():
        scoped = [
            BotTokenInfo(t.id, t.created, t.last_used, decode_scope(t.scopes) if t.scopes else None) for t in tokens
        ]
        out.append(BotOut(u.id, u.name, u.created, u.disabled, scoped))
    return {"bots": out}


@post(
    "/admin/bots/{name:str}/tokens",
    status_code=HTTP_201_CREATED,
    summary="Issue a bot a token scoped to rooms and actions; the bot becomes a member of those rooms (admin)",
    responses=errors(403, 404, 409, body=True),
    security=SECURED,
)
async def bot_token(request: Request[Any, Any, Any], principal: Principal, name: str, data: BotTokenIn) -> BotTokenOut:
    _admin(principal)
    node = node_of(request)
    bot = await node.accounts.find(name)
    if bot is None:
        raise ChatError(Err.NOT_FOUND, f"no bot {name!r}")
    scope = make_scope(list(data.rooms), list(data.actions))
    return BotTokenOut(await node.accounts.issue_scoped(bot, scope), bot.name, bot.id, scope)


class NewBotIn(msgspec.Struct, forbid_unknown_fields=True):
    name: UserName


@post(
    "/admin/bots/new",
    status_code=HTTP_201_CREATED,
    summary="Create one bot (no password, no token yet; issue one with POST /api/admin/bots/{name}/tokens) (admin)",
    responses=errors(403, 409, body=True),
    security=SECURED,
)
async def create_bot(request: Request[Any, Any, Any], principal: Principal, data: NewBotIn) -> UserRecord:
    _admin(principal)
    return await node_of(request).accounts.create_bot(data.name)


REQUEST_STRUCTS: tuple[type[msgspec.Struct], ...] = (
    Credentials,
    Login,
    NewRoom,
    Invite,
    NewMessageIn,
    BotsIn,
    BotTokenIn,
    NewBotIn,
    *HOOK_STRUCTS,
    *FEATURE_STRUCTS,
    *WEBHOOK_STRUCTS,
    *ACCOUNT_STRUCTS,
)

api_router = Router(
    path="/api",
    route_handlers=[
        register,
        login,
        logout,
        ticket,
        me,
        list_rooms,
        create_room,
        get_room,
        list_members,
        invite,
        remove_member,
        presence,
        history,
        send_message,
        create_bots,
        list_bots,
        bot_token,
        create_bot,
        *hook_api_handlers,
        *upload_handlers,
        *feature_handlers,
        *webhook_handlers,
        *account_handlers,
    ],
    dependencies={"principal": Provide(provide_principal)},
)
