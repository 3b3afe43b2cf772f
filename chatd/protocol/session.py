"""Inbound frame validation, without I/O.

:func:`decode_frame` turns the text of one inbound WebSocket message into a validated frame, or raises
:class:`FrameRejected`, the one narrow exception the gateway turns into an error frame (the connection stays open)
or, for a frame far past the limit, a close. The per-user send rate is not checked here: it applies to REST sends
as well, so ``Node.submit`` checks it for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from chatd.errors import Close, Err
from chatd.protocol.explain import explain
from chatd.protocol.frames import CLIENT_ID_MAX, CLIENT_TYPES, ClientFrame, Send
from chatd.protocol.limits import utf8_len_exceeds


class FrameRejected(Exception):
    """An inbound frame the server will not act on. ``close`` is set when the connection must end."""

    def __init__(self, err: Err, message: str, ref: str | None = None, close: Close | None = None) -> None:
        super().__init__(message)
        self.err = err
        self.message = message
        self.ref = ref
        self.close = close


@dataclass(frozen=True, slots=True)
class FrameLimits:
    max_frame_bytes: int
    close_frame_bytes: int


class _Ref(msgspec.Struct):
    """Just enough of a frame to name it in an error's ``ref``."""

    client_id: Any = None


_decoder = msgspec.json.Decoder(ClientFrame)
_ref_decoder = msgspec.json.Decoder(_Ref)


# What msgspec raises for input it cannot decode at all: invalid JSON or shape, invalid UTF-8 inside a string of
# a binary frame, and JSON nested deeper than its recursion limit. All are the client's fault: ``bad_frame``.
_UNDECODABLE = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)


def _ref_of(data: str | bytes) -> str | None:
    try:
        ref = _ref_decoder.decode(data).client_id
    except _UNDECODABLE:
        return None
    return ref if isinstance(ref, str) and len(ref) <= CLIENT_ID_MAX else None


def explain_invalid(data: str | bytes, detail: str) -> FrameRejected:
    """Classify a frame msgspec refused: not JSON / not an object / unknown type / wrong shape."""
    try:
        obj = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return FrameRejected(Err.BAD_FRAME, "frame is not valid JSON")
    except UnicodeDecodeError:
        return FrameRejected(Err.BAD_FRAME, "frame is not valid UTF-8")
    except RecursionError:
        return FrameRejected(Err.BAD_FRAME, "frame is nested too deeply")
    if not isinstance(obj, dict):
        return FrameRejected(Err.BAD_FRAME, "frame must be a JSON object")
    ref = obj.get("client_id")
    ref = ref if isinstance(ref, str) and len(ref) <= CLIENT_ID_MAX else None
    kind = obj.get("type")
    if not isinstance(kind, str):
        return FrameRejected(Err.BAD_FRAME, 'frame needs a string "type"', ref)
    if kind not in CLIENT_TYPES:
        shown = kind if len(kind) <= 32 else kind[:32] + "…"
        return FrameRejected(Err.UNKNOWN_TYPE, f"unknown frame type {shown!r}", ref)
    return FrameRejected(Err.BAD_FRAME, explain(detail)[1], ref)


def decode_frame(data: str | bytes, limits: FrameLimits) -> ClientFrame:
    """Size-check, then decode and validate one client frame."""
    if isinstance(data, str):
        too_big = utf8_len_exceeds(data, limits.max_frame_bytes)
    else:
        too_big = len(data) > limits.max_frame_bytes
    if too_big:
        if (
            utf8_len_exceeds(data, limits.close_frame_bytes)
            if isinstance(data, str)
            else (len(data) > limits.close_frame_bytes)
        ):
            raise FrameRejected(
                Err.TOO_LARGE, f"frame exceeds {limits.close_frame_bytes} bytes", close=Close.MESSAGE_TOO_BIG
            )
        raise FrameRejected(
            Err.TOO_LARGE,
            f"frame exceeds the {limits.max_frame_bytes}-byte limit; large files go through POST /api/uploads",
            _ref_of(data),
        )
    try:
        frame = _decoder.decode(data)
    except _UNDECODABLE as e:
        raise explain_invalid(data, str(e)) from None
    if isinstance(frame, Send) and not frame.body and not frame.attachments:
        raise FrameRejected(Err.BAD_FRAME, "body must not be empty", frame.client_id)
    return frame
