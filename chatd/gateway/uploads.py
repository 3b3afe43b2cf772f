"""``/api/uploads``: attachments, streamed to disk, capped in size and sniffed for their real type.

Big payloads (the phone-photo case) do not belong in a WebSocket frame: the frame limit keeps every message small,
and a picture is uploaded here first, then referenced from a message by id (``"attachments": [id]``).

- The body is streamed to a temporary file chunk by chunk and never held in memory; past ``uploads.max_bytes`` the
  upload stops with 413 ``too_large`` and the partial file is deleted.
- The type is sniffed from the first bytes, not taken from the client's Content-Type; types outside
  ``uploads.allowed_types`` get 415.
- An upload belongs to its owner until it is posted in a room (at upload time with ``?room=``, or by the first
  message that references it); from then on it is served only to members of that room.
- Quota, rate, free-space watermark and expiry of unposted uploads: see :mod:`chatd.features.uploads`. ``DELETE``
  removes an upload (its owner or an admin).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.di import Provide
from litestar.response import File
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from chatd.errors import ChatError, Err
from chatd.features.uploads import UploadRules, upload_path
from chatd.gateway.auth import Principal, authenticate, check_route
from chatd.gateway.openapi import SECURED, DownloadOperation, RawUploadOperation, errors
from chatd.gateway.tickets import MEDIA
from chatd.store.base import UploadRecord

SNIFF_BYTES = 512
log = logging.getLogger("chatd.features.uploads")
_NAME_RE = re.compile(r"[^A-Za-z0-9._ -]+")


class UploadOut(msgspec.Struct):
    id: str
    content_type: str
    size: int
    name: str
    room: str | None = None


async def provide_media_principal(request: Request[Any, Any, Any], key: str | None = None) -> Principal:
    """Who downloads: a token as everywhere, or a media key (``?key=``, from POST /api/auth/ticket), so an
    ``<img src>`` never carries the token itself."""
    del key  # declared so the OpenAPI document lists ?key=; read from the query by authenticate
    principal = await authenticate(
        request.app.state.node, request.headers, request.query_params, request.app.state.tickets, MEDIA
    )
    if principal is None:
        raise ChatError(Err.UNAUTHORIZED, "missing or invalid credentials")
    return check_route(principal, request.route_handler.handler_name, request.path_params)


def sniff(head: bytes) -> str | None:
    """The content type the first bytes prove, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as e:
            # A multi-byte character cut at the end of the sniffed window is still text.
            if e.start < len(head) - 3:
                return None
        return "text/plain"
    return None


def safe_name(name: str) -> str:
    cleaned = _NAME_RE.sub("_", name).strip(" .")[:100]
    return cleaned or "upload"


def _path(root: str, upload_id: str) -> Path:
    return upload_path(root, upload_id)


@post(
    "/uploads",
    status_code=HTTP_201_CREATED,
    request_max_body_size=None,
    summary="Upload an attachment (raw body); reference it from a message by id",
    responses=errors(403, 404, 413, 415, 507, body=True),
    security=SECURED,
    operation_class=RawUploadOperation,
)
async def upload(
    request: Request[Any, Any, Any], principal: Principal, room: str | None = None, name: str = "upload"
) -> UploadOut:
    node = request.app.state.node
    rules: UploadRules = request.app.state.upload_rules
    cfg = node.cfg.uploads
    user = principal.user.id
    header = request.headers.get("content-length")
    declared = int(header) if header and header.isdigit() else None
    if room is not None:
        await node.rooms.require_member(room, user)
    limit = await rules.admit(user, declared)
    upload_id = secrets.token_urlsafe(12).replace("-", "_")
    final = _path(cfg.dir, upload_id)
    # Private: 0700 directories (made by us), 0600 files; attachments are readable only through the API.
    await asyncio.to_thread(_private_dirs, Path(cfg.dir), final.parent)
    partial = final.with_suffix(".part")
    size = 0
    head = b""
    f = await asyncio.to_thread(_open_private, partial)
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise rules.over_limit(limit)
            if len(head) < SNIFF_BYTES:
                head += chunk[: SNIFF_BYTES - len(head)]
            await asyncio.to_thread(f.write, chunk)
        await asyncio.to_thread(f.close)
        if size == 0:
            raise ChatError(Err.INVALID, "the upload is empty")
        kind = sniff(head)
        if kind is None or kind not in cfg.allowed_types:
            raise ChatError(
                Err.UNSUPPORTED_TYPE,
                f"file type {kind or 'unknown'} is not accepted; allowed: {', '.join(cfg.allowed_types)}",
            )
        await asyncio.to_thread(os.replace, partial, final)
        record = UploadRecord(upload_id, user, kind, size, safe_name(name), int(time.time() * 1000), room)
        if not await rules.record(record):
            raise rules.over_quota()  # concurrent uploads of this user got there first
    except BaseException:
        # Nothing was stored: no file may stay behind, neither the partial one nor one already moved in place.
        f.close()
        partial.unlink(missing_ok=True)
        final.unlink(missing_ok=True)
        raise
    return UploadOut(upload_id, kind, size, record.name, room)


def _private_dirs(root: Path, sub: Path) -> None:
    for d in (root, sub):  # not mkdir(parents=True), which gives the parents the umask's mode
        d.mkdir(mode=0o700, parents=d is root, exist_ok=True)


def _open_private(path: Path) -> BinaryIO:
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")


@get(
    "/uploads/{upload_id:str}",
    summary="Download an attachment (members of its room, or its owner)",
    responses=errors(404),
    security=SECURED,
    operation_class=DownloadOperation,
    dependencies={"principal": Provide(provide_media_principal)},
)
async def download(request: Request[Any, Any, Any], principal: Principal, upload_id: str) -> Response[Any]:
    node = request.app.state.node
    record = await node.uploads.find(upload_id)
    user = principal.user.id
    if record is None:
        raise ChatError(Err.NOT_FOUND, "no such upload")
    if record.room is None:
        allowed = record.owner == user
    else:
        allowed = await node.rooms.is_member(record.room, user)
    if not allowed:
        # Same answer as a missing id, so ids of other rooms' files cannot be confirmed by probing.
        raise ChatError(Err.NOT_FOUND, "no such upload")
    path = _path(node.cfg.uploads.dir, record.id)
    if not await asyncio.to_thread(path.is_file):
        # A record without its file: swept or deleted meanwhile, or (several nodes) an uploads.dir not shared.
        log.warning("upload %s has a record but no file under %s", record.id, node.cfg.uploads.dir)
        raise ChatError(Err.NOT_FOUND, "no such upload")
    inline = record.content_type.startswith("image/")
    return File(
        path=path,
        filename=record.name,
        media_type=record.content_type,
        content_disposition_type="inline" if inline else "attachment",
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'",
            "Cache-Control": "private, max-age=86400",
        },
    )


@delete(
    "/uploads/{upload_id:str}",
    status_code=HTTP_200_OK,
    summary="Delete an upload (its owner or an admin)",
    responses=errors(404),
    security=SECURED,
)
async def delete_upload(request: Request[Any, Any, Any], principal: Principal, upload_id: str) -> dict[str, bool]:
    node = request.app.state.node
    record = await node.uploads.find(upload_id)
    if record is None or not (record.owner == principal.user.id or principal.user.admin):
        raise ChatError(Err.NOT_FOUND, "no such upload")  # as for a download: ids of others cannot be confirmed
    deleted = await node.uploads.delete(upload_id)
    return {"deleted": deleted}


upload_handlers = [upload, download, delete_upload]
