"""The single sign-on routes (``chatd.accounts.sso`` does the protocol); present only when ``auth.oidc.issuer`` is set.

- ``GET /api/auth/oidc/start``: sets the flow cookie and redirects to the provider.
- ``GET /api/auth/oidc/callback``: the provider's redirect back. Success or failure, it answers with a redirect to
  the page (``/#sso``) and a short-lived *handoff* cookie holding chatd's new API token, or the refusal in words.
- ``POST /api/auth/oidc/session``: the page trades the handoff cookie for ``{token, user}``, as a password login
  answers, and the cookie is cleared. The token never appears in a URL (where history, logs and Referer keep it).

Both cookies are HttpOnly, SameSite=Lax (the provider's redirect back is a top-level navigation, which Lax lets
through), Secure when ``redirect_base`` is https, scoped to ``/api/auth/oidc``, and signed with a key derived from
the deployment's, so any node reads what another node set.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.response import Redirect
from litestar.status_codes import HTTP_200_OK

from chatd.accounts.sso import Flow, OidcClient, Signer
from chatd.accounts.throttle import AuthThrottle
from chatd.config import Config
from chatd.errors import ChatError, Err
from chatd.gateway.auth import client_ip
from chatd.gateway.context import node_of
from chatd.gateway.openapi import PUBLIC, errors
from chatd.gateway.tickets import Tickets
from chatd.store.base import UserRecord

FLOW_COOKIE = "chatd_sso_flow"
HANDOFF_COOKIE = "chatd_sso"
COOKIE_PATH = "/api/auth/oidc"
HANDOFF_TTL = 60.0  # seconds the page has to pick up its token after the redirect
PAGE = "/#sso"
log = logging.getLogger("chatd.accounts.sso")


class Handoff(msgspec.Struct, frozen=True):
    """What the callback leaves for the page: a token and its user, or an error."""

    expires: float
    token: str = ""
    user: UserRecord | None = None
    code: str = ""
    message: str = ""


class SessionOut(msgspec.Struct):
    token: str
    user: UserRecord


async def _signer(request: Request[Any, Any, Any], purpose: str) -> Signer:
    tickets: Tickets = request.app.state.tickets
    return Signer(await tickets.signing_key(), purpose)


def _cookie(cfg: Config, name: str, value: str, max_age: float) -> Cookie:
    return Cookie(
        key=name,
        value=value,
        path=COOKIE_PATH,
        max_age=int(max_age),
        httponly=True,
        secure=cfg.auth.oidc.redirect_base.startswith("https://"),
        samesite="lax",
    )


def _gone(name: str) -> Cookie:
    return Cookie(key=name, value="", path=COOKIE_PATH, max_age=0, httponly=True, samesite="lax")


async def _to_page(request: Request[Any, Any, Any], handoff: Handoff) -> Redirect:
    signed = (await _signer(request, "handoff")).sign(msgspec.json.encode(handoff))
    cfg = node_of(request).cfg
    return Redirect(
        PAGE, cookies=[_cookie(cfg, HANDOFF_COOKIE, signed, HANDOFF_TTL), _gone(FLOW_COOKIE)], status_code=303
    )


def _refused(e: ChatError) -> Handoff:
    return Handoff(time.time() + HANDOFF_TTL, code=e.err.code, message=e.message)


@get("/auth/oidc/start", summary="Begin single sign-on (a browser redirect)", include_in_schema=False)
async def sso_start(request: Request[Any, Any, Any]) -> Redirect:
    sso: OidcClient = request.app.state.sso
    cfg = node_of(request).cfg
    # A sign-in attempt like a password one: the same per-address budget (auth.attempts_per_minute).
    throttle: AuthThrottle = request.app.state.auth_throttle
    peer = request.client.host if request.client else None
    try:
        await throttle.attempt(client_ip(peer, request.headers, cfg.server.trusted_proxies))
        url, flow = await sso.begin()
    except ChatError as e:
        return await _to_page(request, _refused(e))
    signed = (await _signer(request, "flow")).sign(msgspec.json.encode(flow))
    return Redirect(url, cookies=[_cookie(cfg, FLOW_COOKIE, signed, cfg.auth.oidc.flow_ttl)], status_code=302)


@get("/auth/oidc/callback", summary="The sign-in provider's redirect back", include_in_schema=False)
async def sso_callback(request: Request[Any, Any, Any]) -> Redirect:
    node = node_of(request)
    sso: OidcClient = request.app.state.sso
    flow: Flow | None = None
    opened = (await _signer(request, "flow")).open(request.cookies.get(FLOW_COOKIE, ""))
    if opened is not None:
        try:
            flow = msgspec.json.decode(opened, type=Flow)
        except (msgspec.DecodeError, msgspec.ValidationError):
            flow = None
    params = {k: v for k, v in request.query_params.items() if isinstance(v, str)}
    try:
        # Only the identity's user is ever signed in; the name and e-mail in the token are not looked up.
        user = await node.sso_user(sso, flow, params)
        token = await node.accounts.issue(user.id)
    except ChatError as e:
        log.info("single sign-on refused: %s", e.message)
        return await _to_page(request, _refused(e))
    log.info("single sign-on: user %d signed in", user.id)
    return await _to_page(request, Handoff(time.time() + HANDOFF_TTL, token=token, user=user))


@post(
    "/auth/oidc/session",
    status_code=HTTP_200_OK,
    summary="After single sign-on: the new token and user, from the cookie the sign-in left (once)",
    responses=errors(403, 503, auth=False),
    security=PUBLIC,
)
async def sso_session(request: Request[Any, Any, Any]) -> Response[Any]:
    opened = (await _signer(request, "handoff")).open(request.cookies.get(HANDOFF_COOKIE, ""))
    handoff: Handoff | None = None
    if opened is not None:
        try:
            handoff = msgspec.json.decode(opened, type=Handoff)
        except (msgspec.DecodeError, msgspec.ValidationError):
            handoff = None
    if handoff is None or handoff.expires < time.time():
        raise ChatError(Err.UNAUTHORIZED, "no single sign-on to pick up here; sign in again")
    if handoff.code or handoff.user is None:
        # The refusal, in chatd's error shape, once: the cookie goes with this answer.
        err = next((e for e in Err if e.code == handoff.code), Err.UNAUTHORIZED)
        body = {"code": err.code, "message": handoff.message, "ref": None}
        return Response(body, status_code=err.http_status, cookies=[_gone(HANDOFF_COOKIE)])
    return Response(SessionOut(handoff.token, handoff.user), cookies=[_gone(HANDOFF_COOKIE)])


sso_handlers = [sso_start, sso_callback, sso_session]
