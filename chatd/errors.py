"""The one table of error codes and close codes.

Wire error frames (``{"type":"error","code":...}``), REST error bodies and WebSocket close codes all come from
here, and ``docs/protocol.md`` renders the same table (a test keeps them in step). Each entry says what it means
and what a client should do about it.

Close codes follow one rule a client can rely on without knowing the code: ``1001`` and ``40xx`` mean "reconnect
(with backoff) and resume with ``join`` + ``since``"; ``44xx`` mean "do not reconnect with the same credentials or
settings, fix something first".
"""

from __future__ import annotations

import enum
import logging
import math
import secrets
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    code: str
    http_status: int
    meaning: str
    advice: str


class Err(enum.Enum):
    """Error codes carried by error frames and REST error bodies. The connection stays open after any of them."""

    BAD_FRAME = ErrorInfo(
        "bad_frame",
        400,
        "The WebSocket frame is not JSON, or not an object of the documented shape "
        "(missing or unknown field, wrong type, value out of range); the message names the field and its rule.",
        "Fix the frame; do not resend it unchanged.",
    )
    INVALID = ErrorInfo(
        "invalid",
        400,
        "The REST request's body or parameters are not of the documented shape (missing or unknown field, wrong "
        "type, value out of range, a name breaking the naming rule); the message names the field and its rule, and "
        '`"field"` names the field when there is one.',
        "Fix the named field; do not resend the request unchanged.",
    )
    UNKNOWN_TYPE = ErrorInfo(
        "unknown_type",
        400,
        'The frame\'s "type" is not one this server knows.',
        "Check the protocol version in the hello frame.",
    )
    UNAUTHORIZED = ErrorInfo("unauthorized", 401, "Missing, unknown or revoked credentials (REST).", "Log in again.")
    NOT_MEMBER = ErrorInfo(
        "not_member",
        403,
        "The user is not a member of the room.",
        "Join the room first (public rooms) or ask for an invite (private rooms).",
    )
    FORBIDDEN = ErrorInfo(
        "forbidden",
        403,
        "The action needs a role the user lacks (a private room's outsider gets not_found instead, as for a "
        "missing room).",
        "Ask a member or an admin.",
    )
    ARCHIVED = ErrorInfo(
        "archived",
        403,
        "The room is archived by an admin: its history can be read, nothing new can be sent to it. Nothing of the "
        "refused send was stored.",
        "Do not resend; read the history, or ask an admin to unarchive the room (chatd rooms unarchive).",
    )
    NOT_FOUND = ErrorInfo("not_found", 404, "No such room, user, message or upload.", "Check the name.")
    GONE = ErrorInfo(
        "gone",
        410,
        "The message was deleted: it can no longer be edited, deleted again or reacted to.",
        "Show it as deleted; do not resend the change.",
    )
    METHOD_NOT_ALLOWED = ErrorInfo(
        "method_not_allowed",
        405,
        "The path exists but does not take this HTTP method (REST); the Allow header lists the ones it takes.",
        "Use a method from the Allow header.",
    )
    TIMEOUT = ErrorInfo(
        "timeout",
        408,
        "The request body stopped arriving: it was not complete within limits.body_timeout seconds plus its size "
        "over limits.body_min_rate (REST). Nothing of it was used.",
        "Send the whole body promptly; retry on a better connection.",
    )
    CONFLICT = ErrorInfo("conflict", 409, "The name is taken.", "Pick another name.")
    TOO_MANY_REACTIONS = ErrorInfo(
        "too_many_reactions",
        409,
        "The reaction would take the message past limits.reactions_per_message different emoji, or the user past "
        "limits.reactions_per_user reactions on it. Nothing was stored.",
        "Do not resend it; react with an emoji the message already has, or remove one of yours first.",
    )
    TOO_LARGE = ErrorInfo(
        "too_large",
        413,
        "The frame or upload is bigger than the configured limit; nothing of it was stored.",
        "Send less; large files go through POST /api/uploads.",
    )
    QUOTA_EXCEEDED = ErrorInfo(
        "quota_exceeded",
        413,
        "The upload would take the user's stored uploads past uploads.quota_bytes; nothing of it was stored.",
        "Delete uploads you no longer need (DELETE /api/uploads/{id}) or ask an admin for more room.",
    )
    UNSUPPORTED_TYPE = ErrorInfo(
        "unsupported_type",
        415,
        "The upload's content, sniffed from its first bytes, is not an accepted type (uploads.allowed_types).",
        "Upload an accepted file type.",
    )
    RATE_LIMITED = ErrorInfo(
        "rate_limited",
        429,
        "Too many of one action: sends over the token bucket (the message was not stored), or too many sign-in "
        "attempts, registrations, uploads, new rooms, typing notices or requests in flight.",
        "Wait (REST answers carry Retry-After) and resend; a send with the same client_id.",
    )
    SEARCH_TIMEOUT = ErrorInfo(
        "search_timeout",
        422,
        "The search ran past search.timeout seconds and was stopped: its words match too much (or the page asked "
        "for is too deep) to rank in time. Nothing was found or returned.",
        "Do not repeat it unchanged: add words, use longer ones, search one room (room=), or ask for an earlier page.",
    )
    INSUFFICIENT_STORAGE = ErrorInfo(
        "insufficient_storage",
        507,
        "The server's disk is too full to take the upload (uploads.min_free_bytes); nothing of it was stored.",
        "Try again later; tell the server's operator.",
    )
    UNAVAILABLE = ErrorInfo(
        "unavailable",
        503,
        "The server is draining, its store or message queue is not ready, or an earlier send on this connection "
        "was refused so and not resent yet; the message was not stored. With a room and no ref: a join could not "
        "complete, or the room's history was replaced; the connection does not follow the room now.",
        "Resend with the same client_id, in the order sent (the earliest refused first), a moment later or after "
        "reconnecting to another node. For a room: join it again (with since and epoch) after a backoff.",
    )
    INTERNAL = ErrorInfo(
        "internal",
        500,
        "An unexpected server fault; the message may not be stored. With a room and no ref: a join could not "
        "complete and the connection does not follow the room.",
        "Resend with the same client_id; idempotency prevents a double post. For a room: join it again after a "
        "backoff.",
    )

    @property
    def code(self) -> str:
        return self.value.code

    @property
    def http_status(self) -> int:
        return self.value.http_status

    @classmethod
    def by_code(cls, code: str) -> Err:
        for err in cls:
            if err.value.code == code:
                return err
        return cls.INTERNAL


class Close(enum.IntEnum):
    """WebSocket close codes the server uses."""

    NORMAL = 1000
    GOING_AWAY = 1001
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    HEARTBEAT_TIMEOUT = 4002
    SLOW_CONSUMER = 4008
    TOO_MANY_CONNECTIONS = 4029
    UNAUTHORIZED = 4401
    FORBIDDEN_ORIGIN = 4403


CLOSE_INFO: dict[Close, tuple[str, str]] = {
    Close.NORMAL: ("The client or server ended the session normally.", "Nothing to do."),
    Close.GOING_AWAY: (
        "The server is draining for a restart or shutdown. Every message it acked is stored.",
        "Reconnect with backoff, then join with since=<last seq seen>.",
    ),
    Close.MESSAGE_TOO_BIG: (
        "A frame was far beyond the frame limit (see limits.close_frame_bytes).",
        "Reconnect; do not resend that frame.",
    ),
    Close.INTERNAL_ERROR: ("An unexpected server fault.", "Reconnect with backoff and resume with since."),
    Close.HEARTBEAT_TIMEOUT: (
        "Nothing was received from the client for limits.heartbeat_timeout seconds.",
        'Answer the server\'s {"type":"ping"} with {"type":"pong"}; reconnect.',
    ),
    Close.SLOW_CONSUMER: (
        "The client read too slowly and its outbound queue passed "
        "limits.outbound_queue_bytes. Nothing stored was lost.",
        "Reconnect and join with since=<last seq seen> to get the rest.",
    ),
    Close.TOO_MANY_CONNECTIONS: (
        "The user, or the server, is at its connection cap (limits.max_connections_per_user, limits.max_connections).",
        "Close other sessions or retry later with backoff.",
    ),
    Close.UNAUTHORIZED: (
        "No valid credentials at the handshake, or the token was revoked (logout, chatd users revoke), expired "
        "(auth.token_ttl: the session ends when its token does) or its user disabled (chatd users disable).",
        "Do not reconnect with the same token; log in again.",
    ),
    Close.FORBIDDEN_ORIGIN: (
        "The handshake's Origin is not in web.allowed_origins (or, in open mode, its Host is not a loopback name); "
        "refused with HTTP 403 before the upgrade, so browsers see only a failed connection.",
        "Serve the page from an allowed origin, or add it to the allowlist.",
    ),
}


class ChatError(Exception):
    """A domain error with a code from the table. The gateway turns it into an error frame or a REST body.

    Code shared by both paths raises ``bad_frame`` for bad input; REST answers it as ``invalid``, the REST word.
    ``retry_after`` (seconds) is sent as a REST ``Retry-After`` header, rounded up to whole seconds. ``field`` names
    the request field a validation error is about (REST bodies carry it)."""

    def __init__(
        self,
        err: Err,
        message: str | None = None,
        ref: str | None = None,
        retry_after: float | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message or err.value.meaning)
        self.err = err
        self.message = message or err.value.meaning
        self.ref = ref
        self.retry_after = retry_after
        self.field = field

    @property
    def headers(self) -> dict[str, str] | None:
        if self.retry_after is None:
            return None
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


def log_fault(logger: logging.Logger, context: str, exc: BaseException | None = None) -> str:
    """Log the exception being handled, with its traceback, under a fresh incident id; returns the id.

    Call it from an ``except`` block (or pass ``exc``) for faults nobody expected. The id goes into the
    ``internal`` answer, so a report from a user can be matched with the log line. ``context`` must not hold a
    body, password or token.
    """
    incident = secrets.token_hex(4)
    logger.error("internal error %s while %s", incident, context, exc_info=exc if exc is not None else True)
    return incident


def internal_message(incident: str) -> str:
    """The message of an ``internal`` answer: no detail of the fault, only where to find it."""
    return f"internal server error (incident {incident}, logged on the server)"


def markdown_tables() -> str:
    """The error and close code tables as Markdown, exactly as docs/protocol.md carries them."""
    lines = ["| error code | HTTP | meaning | what to do |", "|---|---|---|---|"]
    for err in Err:
        info = err.value
        lines.append(f"| `{info.code}` | {info.http_status} | {info.meaning} | {info.advice} |")
    lines += ["", "| close code | name | meaning | what to do |", "|---|---|---|---|"]
    for close in Close:
        meaning, advice = CLOSE_INFO[close]
        lines.append(f"| {int(close)} | `{close.name.lower()}` | {meaning} | {advice} |")
    return "\n".join(lines)
