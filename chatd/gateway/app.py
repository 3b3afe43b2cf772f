"""Builds the litestar application around a Node."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, MediaType, Request, Response, Router
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.datastructures import State
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.routes import HTTPRoute
from litestar.static_files import create_static_files_router

from chatd import __version__
from chatd.accounts.throttle import AuthThrottle
from chatd.core.node import Node
from chatd.errors import ChatError, Err, internal_message, log_fault
from chatd.gateway.admin import ADMIN_STRUCTS, admin_router
from chatd.gateway.control import control as admin_control
from chatd.gateway.guard import request_guard
from chatd.gateway.hooks import hook_handlers
from chatd.gateway.info import server_info
from chatd.gateway.openapi import components, tighten
from chatd.gateway.ops import ops_handlers
from chatd.gateway.rest import REQUEST_STRUCTS, api_router
from chatd.gateway.schema_page import SchemaPage
from chatd.gateway.slots import ConnectionSlots
from chatd.gateway.tickets import Tickets
from chatd.gateway.ws import ws_endpoint
from chatd.protocol.explain import explain

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


log = logging.getLogger("chatd.http")


class ChatdRequest(Request[Any, Any, Any]):
    """litestar's Request, with request bodies it cannot decode answered as ``invalid`` instead of a crash.

    litestar maps msgspec's DecodeError to a 400 itself, but lets two more decode failures escape as 500s: invalid
    UTF-8 inside a JSON string, and JSON nested past msgspec's recursion limit. Both are the client's fault.
    """

    async def json(self) -> Any:
        try:
            value = await super().json()
        except SerializationException as e:
            raise ChatError(Err.INVALID, f"the request body is not valid JSON ({e})") from None
        except UnicodeDecodeError:
            raise ChatError(Err.INVALID, "request body is not valid UTF-8") from None
        except RecursionError:
            raise ChatError(Err.INVALID, "request body is nested too deeply") from None
        _check_strictly(self.route_handler.parsed_fn_signature.parameters.get("data"), value)
        return value


def _check_strictly(field: Any, value: Any) -> None:
    """Validate a JSON body against its struct with msgspec's strict rules, as the WebSocket path does.

    litestar converts bodies leniently (it would take ``"private": 0`` as false, or ``"1"`` for a number); a body
    must be of the documented types exactly."""
    target = getattr(field, "annotation", None)
    if isinstance(target, type) and issubclass(target, msgspec.Struct):
        if isinstance(value, dict):
            # JSON has one number type: 3.0 is the integer 3 (as JSON Schema says), and msgspec's strict mode
            # would call it a float. Request structs are flat, so their top-level values are all there is.
            value = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in value.items()}
        try:
            msgspec.convert(value, target, strict=True)
        except msgspec.ValidationError as e:
            field, message = explain(str(e))
            raise ChatError(Err.INVALID, message, field=field) from None


def _body(err: Err, message: str, ref: str | None = None, field: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": err.code, "message": message, "ref": ref}
    if field is not None:
        body["field"] = field
    return body


def _chat_error(request: Request[Any, Any, Any], exc: ChatError) -> Response[dict[str, Any]]:
    if exc.err is Err.RATE_LIMITED:
        request.app.state.node.metrics.http_rate_limited += 1
    # Rules shared with the WebSocket path raise bad_frame; over REST the same fault is "invalid".
    err = Err.INVALID if exc.err is Err.BAD_FRAME else exc.err
    return Response(
        _body(err, exc.message, exc.ref, exc.field),
        status_code=err.http_status,
        media_type=MediaType.JSON,
        headers=exc.headers,
    )


_BY_STATUS = {
    401: Err.UNAUTHORIZED,
    403: Err.FORBIDDEN,
    404: Err.NOT_FOUND,
    405: Err.METHOD_NOT_ALLOWED,
    408: Err.TIMEOUT,
    413: Err.TOO_LARGE,
    415: Err.UNSUPPORTED_TYPE,
    429: Err.RATE_LIMITED,
    503: Err.UNAVAILABLE,
}


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    if isinstance(exc, ValidationException):
        return _invalid(exc)
    if exc.status_code >= 500:
        return _internal(request, exc)
    code = _BY_STATUS.get(exc.status_code, Err.INVALID)
    # Keep litestar's headers: a 405 carries Allow, which a client needs to know what the path does take.
    return Response(_body(code, exc.detail), status_code=exc.status_code, headers=exc.headers)


def _invalid(exc: ValidationException) -> Response[dict[str, Any]]:
    """litestar's own validation failures (query and path parameters, undecodable bodies), said in words."""
    problems = [e for e in (exc.extra if isinstance(exc.extra, list) else []) if isinstance(e, dict)]
    said = [explain(str(e.get("message", "")), str(e.get("key") or "") or None) for e in problems]
    if not said:
        return Response(_body(Err.INVALID, exc.detail), status_code=400)
    return Response(_body(Err.INVALID, "; ".join(m for _, m in said), field=said[0][0]), status_code=400)


def _internal(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """Anything nobody expected: logged with its traceback, answered with the documented ``internal`` shape."""
    incident = log_fault(log, f"{request.method} {request.url.path}", exc)
    return Response(_body(Err.INTERNAL, internal_message(incident)), status_code=500)


# The page loads only its own files: no inline script or style, no other origin, and no framing (clickjacking).
# img-src allows blob: for upload previews; connect-src 'self' covers the page's own ws:// and wss:// origin.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # URLs may carry a ticket or a signed link: never send them to another site.
    "Referrer-Policy": "no-referrer",
}


async def _page_headers(response: Response[Any]) -> Response[Any]:
    response.headers.update(PAGE_HEADERS)
    return response


def create_app(node: Node) -> Litestar:
    lim = node.cfg.limits
    allow: dict[str, str] = {}  # filled once the routes exist
    handlers: list[Any] = [
        ws_endpoint,
        api_router,
        admin_router,
        server_info,
        *ops_handlers,
        admin_control,
        *hook_handlers,
    ]
    sso = None
    if node.cfg.auth.oidc.enabled:
        # Imported only when configured: the protocol libraries come with the oidc extra (start-up checked it).
        from chatd.accounts.sso import OidcClient
        from chatd.gateway.sso import sso_handlers

        sso = OidcClient(node.cfg.auth.oidc)
        handlers.append(Router(path="/api", route_handlers=sso_handlers))
    if (WEB_DIR / "index.html").exists():
        handlers.append(
            create_static_files_router(
                path="/",
                directories=[WEB_DIR],
                html_mode=True,
                name="web",
                include_in_schema=False,
                after_request=_page_headers,
            )
        )
    app = Litestar(
        route_handlers=handlers,
        state=State(
            {
                "node": node,
                "slots": ConnectionSlots(lim.max_connections),
                "auth_throttle": AuthThrottle(node.cfg.auth, node.limiter),
                "upload_rules": node.uploads,
                "tickets": Tickets(node.cfg.auth.secret, node),
                "sso": sso,
            }
        ),
        on_shutdown=[sso.close] if sso is not None else [],
        exception_handlers={ChatError: _chat_error, HTTPException: _http_error, Exception: _internal},
        request_class=ChatdRequest,
        middleware=[request_guard(node.cfg, allow)],
        openapi_config=OpenAPIConfig(
            title="chatd",
            version=__version__,
            description="REST API of chatd. The WebSocket protocol is in docs/protocol.md.",
            components=components(),
            render_plugins=[SchemaPage()],
        ),
        request_max_body_size=max(node.cfg.limits.max_frame_bytes * 2, 1024 * 1024),
        logging_config=None,
        debug=False,
    )
    allow.update(_allow_map(app))
    tighten(app.plugins.get(OpenAPIPlugin).provide_openapi_schema(), (*REQUEST_STRUCTS, *ADMIN_STRUCTS))
    return app


def _allow_map(app: Litestar) -> dict[str, str]:
    """Each path template's methods, for the Allow header of OPTIONS answers.

    litestar's own OPTIONS handler lists the methods of the first handler registered for a path only (OPTIONS
    /api/rooms said "GET, OPTIONS", hiding POST), so the request guard answers OPTIONS from this map instead."""
    methods: dict[str, set[str]] = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            methods.setdefault(route.path_format, set()).update(str(m) for m in route.methods)
    return {path: ", ".join(sorted(ms | {"OPTIONS"})) for path, ms in methods.items()}
