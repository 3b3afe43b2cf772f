"""Incoming webhooks over HTTP (``chatd.features.hooks``): ``POST /hooks/{id}/{secret}`` (or ``/hooks/{id}`` with the
secret in ``X-Chatd-Hook-Secret`` or ``Authorization: Bearer``), and the room admin's ``/api/rooms/{room}/hooks``.

An unknown id and a wrong secret get the same ``not_found``, so nobody learns which ids exist. Order of checks: the
declared size (before anything is read or spent), the hook and its secret (one store read), the hook's rate, the body
(read up to ``limits.hook_body_bytes``), the payload, then the same send path as everyone's.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, delete, get, post
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from chatd.accounts.throttle import refuse
from chatd.errors import ChatError, Err
from chatd.features.hooks import (
    IDEMPOTENCY_HEADER,
    SECRET_HEADER,
    client_id_for,
    hook_path,
    parse_payload,
    secret_matches,
)
from chatd.gateway.auth import Principal
from chatd.gateway.context import node_of
from chatd.gateway.openapi import PUBLIC, SECURED, errors
from chatd.protocol.frames import UserName
from chatd.protocol.limits import utf8_len_exceeds

NO_HOOK = "no such hook (revoked, or a wrong secret)"


class HookPosted(msgspec.Struct):
    ok: bool
    room: str
    seq: int
    duplicate: bool = False
    """A retry with the same Idempotency-Key: the message was stored once, by the first request."""


class HookOut(msgspec.Struct):
    id: str
    room: str
    bot: str
    """The bot user it posts as."""
    created: int
    url: str | None = None
    """Where to POST (with the secret in it): shown once, when the hook is made."""


class NewHookIn(msgspec.Struct, forbid_unknown_fields=True):
    name: UserName | None = None
    """The name of the hook's bot user (default: ``hook-`` and 6 hex digits)."""


def _too_large(limit: int) -> ChatError:
    return ChatError(Err.TOO_LARGE, f"a webhook request's body may be at most {limit} bytes")


async def _body(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The request body, refused with ``too_large`` as soon as it passes ``limit`` bytes."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


async def _post(request: Request[Any, Any, Any], hook_id: str, secret: str | None) -> HookPosted:
    node = node_of(request)
    lim = node.cfg.limits
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > lim.hook_body_bytes:
        raise _too_large(lim.hook_body_bytes)  # before anything is read or spent
    if secret is None:
        given: str = request.headers.get(SECRET_HEADER) or request.headers.get("authorization") or ""
        secret = given[7:].strip() if given[:7].lower() == "bearer " else given
    hook = await node.room_hooks.get(hook_id)
    if hook is None or not secret or not secret_matches(secret, hook):
        raise ChatError(Err.NOT_FOUND, NO_HOOK)
    wait = await node.limiter.take(f"hook:{hook.id}", lim.hook_rate, lim.hook_burst)
    if wait:
        node.metrics.rate_limited += 1
        raise refuse("webhook posts (limits.hook_rate)", wait)
    posted = parse_payload(await _body(request, lim.hook_body_bytes), request.headers.get("content-type", ""))
    client_id = client_id_for(request.headers.get(IDEMPOTENCY_HEADER))
    if utf8_len_exceeds(posted.text, lim.max_frame_bytes):
        raise ChatError(Err.TOO_LARGE, f"text exceeds {lim.max_frame_bytes} bytes", client_id)
    done = await node.submit_and_wait(hook.bot, hook.room, posted.text, client_id, [], 0, posted.via or hook.name)
    if done.error:
        raise ChatError(Err.by_code(done.error), done.message, client_id)
    return HookPosted(True, hook.room, done.seq, done.duplicate)


@post(
    ["/hooks/{hook_id:str}/{secret:str}", "/hooks/{hook_id:str}"],
    status_code=HTTP_200_OK,
    request_max_body_size=None,  # bounded by limits.hook_body_bytes in _body
    summary="Post into the hook's room: Slack-compatible JSON (text, username), or a form with payload=; the "
    "secret in the path, or in X-Chatd-Hook-Secret or Authorization: Bearer",
    responses=errors(404, 415, 503, auth=False, body=True),
    security=PUBLIC,
)
async def post_hook(request: Request[Any, Any, Any], hook_id: str, secret: str | None = None) -> HookPosted:
    return await _post(request, hook_id, secret)


# --- the room admin's API, for the page -------------------------------------------------------------------------


def _out(request: Request[Any, Any, Any], hook: Any, secret: str | None = None) -> HookOut:
    url = str(request.base_url).rstrip("/") + hook_path(hook, secret) if secret else None
    return HookOut(hook.id, hook.room, hook.name, hook.created, url)


@get(
    "/rooms/{room:str}/hooks",
    summary="The room's incoming webhooks (its creator or an admin)",
    responses=errors(403, 404),
    security=SECURED,
)
async def list_hooks(request: Request[Any, Any, Any], principal: Principal, room: str) -> dict[str, list[HookOut]]:
    hooks = await node_of(request).room_hooks.of_room(room, principal.user.id)
    return {"hooks": [_out(request, h) for h in hooks]}


@post(
    "/rooms/{room:str}/hooks",
    status_code=HTTP_201_CREATED,
    summary="Make an incoming webhook for the room; its URL (with the secret) is shown once (creator or admin)",
    responses=errors(403, 404, 409, body=True),
    security=SECURED,
)
async def add_hook(request: Request[Any, Any, Any], principal: Principal, room: str, data: NewHookIn) -> HookOut:
    hook, secret = await node_of(request).room_hooks.create(room, data.name, principal.user.id)
    return _out(request, hook, secret)


@delete(
    "/rooms/{room:str}/hooks/{hook_id:str}",
    status_code=HTTP_200_OK,
    summary="Revoke an incoming webhook: refused at once on every node (creator or admin)",
    responses=errors(403, 404),
    security=SECURED,
)
async def delete_hook(request: Request[Any, Any, Any], principal: Principal, room: str, hook_id: str) -> dict[str, Any]:
    await node_of(request).room_hooks.revoke(room, hook_id, principal.user.id)
    return {"id": hook_id, "revoked": True}


hook_handlers = [post_hook]
hook_api_handlers = [list_hooks, add_hook, delete_hook]
HOOK_STRUCTS: tuple[type[msgspec.Struct], ...] = (NewHookIn,)
