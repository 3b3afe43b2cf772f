"""The OpenAPI document, made to say what the server really does.

litestar documents a route's success answer and, for routes with parameters, a 400 in its own
``{status_code, detail}`` shape. chatd answers every error as ``{code, message, ref}`` with the statuses of
:mod:`chatd.errors`, so each route declares its errors here (:func:`errors`), and the few request bodies a struct
cannot describe (a raw upload, a message that needs a body or an attachment) are spelled out by an operation class.
``tests/security/test_schemathesis.py`` runs schemathesis against a live server to keep the document honest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Components,
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
    SecurityScheme,
)

from chatd.errors import Err

ErrorCode = Literal[tuple(e.code for e in Err)]  # type: ignore[valid-type]


class ErrorBody(msgspec.Struct):
    """Every REST error: a code from the error table, a human message, and the ``client_id`` it refers to."""

    code: ErrorCode  # type: ignore[valid-type]
    message: str
    ref: str | None
    field: str | None = None
    """The request field an ``invalid`` answer is about, when there is one."""


# Codes only a WebSocket frame is answered with; REST says ``invalid`` for bad input.
WEBSOCKET_ONLY = frozenset((Err.BAD_FRAME, Err.UNKNOWN_TYPE))


def errors(*statuses: int, auth: bool = True, body: bool = False) -> dict[int, ResponseSpec]:
    """The error answers of a route: ``statuses`` plus what every route may answer (400 bad input, 429 too many
    requests in flight from one address, 500 internal), 401 where credentials are needed, and 408/413 where a
    request body is read."""
    wanted = {400, 429, 500, *statuses}
    if auth:
        wanted.add(401)
    if body:
        wanted |= {408, 413}
    out = {}
    for status in sorted(wanted):
        codes = ", ".join(f"`{e.code}`" for e in Err if e.http_status == status and e not in WEBSOCKET_ONLY)
        out[status] = ResponseSpec(ErrorBody, description=f"error {codes}", generate_examples=False)
    return out


BEARER = "bearer"


def components() -> Components:
    return Components(
        security_schemes={
            BEARER: SecurityScheme(
                type="http",
                scheme="bearer",
                description="An API token (chatd_...) from register, login or chatd users add.",
            )
        }
    )


SECURED: list[dict[str, list[str]]] = [{BEARER: []}]
PUBLIC: list[dict[str, list[str]]] = []


@dataclass
class RawUploadOperation(Operation):
    """``POST /api/uploads``: the body is the file itself, typed by its first bytes, not by a struct."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="The file's raw bytes (PNG, JPEG, GIF, WebP, PDF or UTF-8 text; see uploads.allowed_types).",
            content={
                "application/octet-stream": OpenAPIMediaType(
                    schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY, min_length=1)
                )
            },
        )


@dataclass
class SendOperation(Operation):
    """``POST /api/rooms/{room}/messages``: a message needs a non-empty body or at least one attachment."""

    def __post_init__(self) -> None:
        if not isinstance(self.request_body, RequestBody):
            return
        either = Schema(
            any_of=[
                Schema(properties={"body": Schema(type=OpenAPIType.STRING, min_length=1)}, required=["body"]),
                Schema(
                    properties={"attachments": Schema(type=OpenAPIType.ARRAY, min_items=1)}, required=["attachments"]
                ),
            ]
        )
        for media in self.request_body.content.values():
            if media.schema is not None:
                media.schema = Schema(all_of=[media.schema, either])


SNIFFED_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain")


@dataclass
class DownloadOperation(Operation):
    """``GET /api/uploads/{id}``: the file, with the type it was sniffed as at upload."""

    def __post_init__(self) -> None:
        if self.responses and "200" in self.responses:
            ok = self.responses["200"]
            binary = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
            ok.content = {t: OpenAPIMediaType(schema=binary) for t in SNIFFED_TYPES}  # type: ignore[union-attr]


def tighten(document: dict[str, Any], inputs: Sequence[type[msgspec.Struct]]) -> None:
    """Replace litestar's schemas of the request structs ``inputs`` with msgspec's own.

    The structs validate the requests, so their msgspec schema is exactly what is accepted; litestar's rendering
    drops constraints inside list items (a bot's name pattern) and does not say that unknown fields are refused.
    """
    _, defs = msgspec.json.schema_components(inputs, ref_template="#/components/schemas/{name}")
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in defs.items():
        schemas[name] = schema
