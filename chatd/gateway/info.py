"""``GET /api/server``: what a client needs to know before it signs in.

The browser client reads this first to choose its sign-in form (token or open mode) and to decide whether to show
the attach button. It is read-only, needs no credentials and reveals nothing beyond what the sign-in page itself
would show.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get

from chatd import __version__
from chatd.accounts.users import PASSWORD_MIN
from chatd.config import registration_mode
from chatd.core.node import Node
from chatd.gateway.openapi import PUBLIC, errors

UPLOADS_PATH = "/api/uploads"


class ServerInfo(msgspec.Struct):
    auth_mode: str
    version: str
    max_frame_bytes: int
    registration: bool
    uploads: bool
    """True when this build serves ``POST /api/uploads``; clients hide attachments otherwise."""
    upload_max_bytes: int
    upload_types: list[str]
    registration_mode: str = "open"
    """"open", "invite" (registering needs an invite code) or "closed"."""
    password_min: int = PASSWORD_MIN
    """The shortest password a registration takes, so a form can say so before it is sent."""
    password_sign_in: bool = True
    """False when ``auth.oidc.password_sign_in`` is off: no password login or registration; single sign-on only."""
    sso: str | None = None
    """The single sign-on button's text (``GET /api/auth/oidc/start`` begins it); null without single sign-on."""


def _serves_uploads(request: Request[Any, Any, Any]) -> bool:
    # Ask the router instead of a config flag: the upload route may not exist in this build at all, and a flag
    # could claim otherwise.
    return any(
        getattr(r, "path", None) == UPLOADS_PATH and "POST" in getattr(r, "methods", ()) for r in request.app.routes
    )


@get(
    "/api/server",
    summary="Server facts for clients: auth mode, version, limits, features",
    responses=errors(auth=False),
    security=PUBLIC,
)
async def server_info(request: Request[Any, Any, Any]) -> ServerInfo:
    node: Node = request.app.state.node
    cfg = node.cfg
    return ServerInfo(
        auth_mode=cfg.auth.mode,
        version=__version__,
        max_frame_bytes=cfg.limits.max_frame_bytes,
        registration=cfg.auth.mode == "token"
        and registration_mode(cfg.auth) != "closed"
        and cfg.auth.oidc.password_sign_in,
        uploads=_serves_uploads(request),
        upload_max_bytes=cfg.uploads.max_bytes,
        upload_types=list(cfg.uploads.allowed_types),
        registration_mode=registration_mode(cfg.auth),
        password_sign_in=cfg.auth.oidc.password_sign_in,
        sso=cfg.auth.oidc.label if cfg.auth.oidc.enabled else None,
    )
