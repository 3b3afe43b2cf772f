"""Builds the litestar application around a Node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Litestar, MediaType, Request, Response
from litestar.datastructures import State
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.static_files import create_static_files_router

from chatd import __version__
from chatd.errors import ChatError, Err
from chatd.gateway.info import server_info
from chatd.gateway.ops import ops_handlers
from chatd.gateway.rest import api_router
from chatd.gateway.ws import ws_endpoint
from chatd.node import Node

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


def _chat_error(_: Request[Any, Any, Any], exc: ChatError) -> Response[dict[str, Any]]:
    return Response(
        {"code": exc.err.code, "message": exc.message, "ref": exc.ref},
        status_code=exc.err.http_status,
        media_type=MediaType.JSON,
    )


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    if isinstance(exc, ValidationException):
        extra = exc.extra if isinstance(exc.extra, list) else []
        detail = "; ".join(
            f"{e.get('key', '')}: {e.get('message', '')}".strip(": ") for e in extra if isinstance(e, dict)
        )
        return Response({"code": Err.BAD_FRAME.code, "message": detail or exc.detail, "ref": None}, status_code=400)
    code = {
        401: Err.UNAUTHORIZED,
        403: Err.FORBIDDEN,
        404: Err.NOT_FOUND,
        413: Err.TOO_LARGE,
        429: Err.RATE_LIMITED,
        503: Err.UNAVAILABLE,
    }.get(exc.status_code)
    if code is None:
        code = Err.BAD_FRAME if exc.status_code < 500 else Err.INTERNAL
    return Response({"code": code.code, "message": exc.detail, "ref": None}, status_code=exc.status_code)


def create_app(node: Node) -> Litestar:
    handlers: list[Any] = [ws_endpoint, api_router, server_info, *ops_handlers]
    if (WEB_DIR / "index.html").exists():
        handlers.append(
            create_static_files_router(
                path="/", directories=[WEB_DIR], html_mode=True, name="web", include_in_schema=False
            )
        )
    return Litestar(
        route_handlers=handlers,
        state=State({"node": node}),
        exception_handlers={ChatError: _chat_error, HTTPException: _http_error},
        openapi_config=OpenAPIConfig(
            title="chatd",
            version=__version__,
            description="REST API of chatd. The WebSocket protocol is in docs/protocol.md.",
        ),
        request_max_body_size=max(node.cfg.limits.max_frame_bytes * 2, 1024 * 1024),
        logging_config=None,
        debug=False,
    )
