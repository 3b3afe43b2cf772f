"""REST routes for what a team expects on day one: read state (and, later, mentions, DMs and search).

Kept apart from ``rest.py`` so that module stays about accounts, rooms and messages; the routes share its
principal dependency through the ``/api`` router.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, delete, get, patch, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from chatd.accounts.throttle import refuse
from chatd.config import SEARCH_OFFSET_CEILING
from chatd.errors import ChatError, Err
from chatd.features.change_requests import Change, change_of
from chatd.gateway.auth import Principal
from chatd.gateway.context import client_id_or_new, node_of
from chatd.gateway.openapi import SECURED, errors
from chatd.protocol.frames import (
    CLIENT_ID_MAX,
    ROOM_MAX,
    SEQ_MAX,
    ClientId,
    DeleteMessage,
    EditBody,
    EditMessage,
    Emoji,
    Message,
    React,
    ReadState,
    SetTopic,
    Topic,
    UserName,
)
from chatd.protocol.limits import utf8_len_exceeds
from chatd.rules.search import Part, check_query, snippet_parts, terms
from chatd.store.base import ReadPosition


class DmIn(msgspec.Struct, forbid_unknown_fields=True):
    user: UserName


class DmOut(msgspec.Struct):
    room: str
    user: str  # the other person, with their stored spelling
    created: bool
    uid: int = 0  # the other person's id


class SearchResult(msgspec.Struct):
    room: str
    seq: int
    from_: str = msgspec.field(name="from")
    ts: int = 0
    snippet: list[Part] = []
    """The matching passage in parts; ``match`` parts are the words found. Render as text, never as HTML."""
    uid: int = 0  # the sender's id (``from`` is their current name)


class SearchPage(msgspec.Struct):
    results: list[SearchResult]
    next: int | None = None
    """Pass as ``offset`` for the next page; null on the last page."""


class EditIn(msgspec.Struct, forbid_unknown_fields=True):
    body: EditBody
    client_id: ClientId | None = None


class ReactIn(msgspec.Struct, forbid_unknown_fields=True):
    emoji: Emoji
    remove: bool = False
    client_id: ClientId | None = None


class TopicIn(msgspec.Struct, forbid_unknown_fields=True):
    topic: Topic
    client_id: ClientId | None = None


class ChangeOut(msgspec.Struct):
    """A stored room change, like its WebSocket ack: ``seq`` is the change's own place in the room's stream."""

    room: str
    seq: int
    ts: int
    client_id: str
    duplicate: bool = False


class ReadIn(msgspec.Struct, forbid_unknown_fields=True):
    seq: Annotated[int, msgspec.Meta(ge=0, le=SEQ_MAX)]


@get(
    "/read",
    summary="Your read position and unread count in every room you are a member of",
    responses=errors(),
    security=SECURED,
)
async def read_positions(request: Request[Any, Any, Any], principal: Principal) -> dict[str, list[ReadPosition]]:
    return {"rooms": await node_of(request).personal.positions(principal.user.id)}


@post(
    "/rooms/{room:str}/read",
    status_code=HTTP_200_OK,
    summary="Mark a room read up to a seq (only ever forward); your other connections are told at once",
    responses=errors(403, 404, body=True),
    security=SECURED,
)
async def mark_read(request: Request[Any, Any, Any], principal: Principal, room: str, data: ReadIn) -> ReadState:
    return await node_of(request).mark_read(principal.user.id, room, data.seq)


@get(
    "/mentions",
    summary="Recent messages that mention you (@name), newest first, from rooms you are still in",
    responses=errors(),
    security=SECURED,
)
async def mentions(
    request: Request[Any, Any, Any],
    principal: Principal,
    before: Annotated[
        int | None, Parameter(ge=1, le=SEQ_MAX, description="only mentions older than this ts (Unix ms)")
    ] = None,
    limit: Annotated[int, Parameter(ge=1, le=200, description="at most this many")] = 50,
) -> dict[str, list[Message]]:
    return {"mentions": await node_of(request).personal.mentions(principal.user.id, before, limit)}


@post(
    "/dms",
    status_code=HTTP_201_CREATED,
    summary="Open (or find) your direct conversation with a user: one private two-person room per pair",
    description="201 when the conversation was made now, 200 when it already existed (created is false).",
    responses={
        200: ResponseSpec(DmOut, description="the conversation already existed"),
        **errors(403, 404, 409, body=True),
    },
    security=SECURED,
)
async def dms(request: Request[Any, Any, Any], principal: Principal, data: DmIn) -> Response[DmOut]:
    node = node_of(request)
    # Each call pushes a dm frame to the other person (and makes their page re-read its rooms): a budget per user.
    per_minute = node.cfg.rooms.dms_per_minute
    wait = await node.limiter.take(f"dm:{principal.user.id}", per_minute / 60, per_minute)
    if wait:
        raise refuse("direct conversations opened (rooms.dms_per_minute)", wait)
    record, other, created = await node.open_dm(principal.user, data.user)
    return Response(
        DmOut(record.name, other.name, created, other.id), status_code=HTTP_201_CREATED if created else HTTP_200_OK
    )


@get(
    "/search",
    summary="Messages containing every word of q, best first, from rooms you may read; never a deleted one",
    description="Bounded per user (search.rate, search.burst: 429 rate_limited) and in cost: the last word of q is "
    "a prefix of at least search.prefix_min characters, offset is at most search.offset_max (400 invalid), and a "
    "search that runs past search.timeout seconds is stopped (422 search_timeout).",
    responses=errors(404, 422),
    security=SECURED,
)
async def search(
    request: Request[Any, Any, Any],
    principal: Principal,
    q: Annotated[str, Parameter(min_length=1, max_length=500, description="words to find")],
    room: Annotated[str | None, Parameter(max_length=ROOM_MAX, description="only this room")] = None,
    limit: Annotated[int, Parameter(ge=1, le=100, description="at most this many")] = 20,
    offset: Annotated[
        int, Parameter(ge=0, le=SEARCH_OFFSET_CEILING, description="skip this many (paging; search.offset_max)")
    ] = 0,
) -> SearchPage:
    node = node_of(request)
    cfg = node.cfg.search
    user = principal.user.id
    words = terms(q)
    check_query(words, cfg.prefix_min)
    if offset > cfg.offset_max:
        raise ChatError(Err.BAD_FRAME, f"offset may be at most {cfg.offset_max} (search.offset_max)", field="offset")
    # A search costs the store far more than any other read: a budget per user, on every node of the deployment.
    wait = await node.limiter.take(f"search:{user}", cfg.rate, cfg.burst)
    if wait:
        raise refuse("searches (search.rate)", wait)
    if room is not None:
        await node.rooms.get_visible(room, user)  # a private room you are not (or no longer) in: not_found
    hits = await node.search(user, words, room, limit + 1, offset)
    more = len(hits) > limit and offset + limit <= cfg.offset_max
    results = [SearchResult(h.room, h.seq, h.from_, h.ts, snippet_parts(h.snippet), h.uid) for h in hits[:limit]]
    return SearchPage(results, offset + limit if more else None)


async def _change(request: Request[Any, Any, Any], principal: Principal, frame: Change) -> ChangeOut:
    node = node_of(request)
    c = await node.change_and_wait(change_of(principal.user.id, frame))
    if c.error:
        raise ChatError(Err.by_code(c.error), c.message, frame.client_id)
    return ChangeOut(c.room, c.seq, c.ts, c.client_id, c.duplicate)


CHANGE_ERRORS = errors(403, 404, 410, 503, body=True)
Seq = Annotated[int, Parameter(ge=1, le=SEQ_MAX)]


@patch(
    "/rooms/{room:str}/messages/{seq:int}",
    status_code=HTTP_200_OK,
    summary="Edit your message; answers once the edit (a room event with its own seq) is stored",
    responses=CHANGE_ERRORS,
    security=SECURED,
)
async def edit_message(
    request: Request[Any, Any, Any], principal: Principal, room: str, seq: Seq, data: EditIn
) -> ChangeOut:
    if utf8_len_exceeds(data.body, node_of(request).cfg.limits.max_frame_bytes):
        raise ChatError(Err.TOO_LARGE, "body exceeds the frame limit", data.client_id)
    return await _change(request, principal, EditMessage(room, seq, data.body, client_id_or_new(data.client_id)))


@delete(
    "/rooms/{room:str}/messages/{seq:int}",
    status_code=HTTP_200_OK,
    summary="Delete your message (admins: any); its body is removed from the store and the search index",
    responses=CHANGE_ERRORS,
    security=SECURED,
)
async def delete_message(
    request: Request[Any, Any, Any],
    principal: Principal,
    room: str,
    seq: Seq,
    client_id: Annotated[
        str | None, Parameter(min_length=1, max_length=CLIENT_ID_MAX, description="for a safe retry")
    ] = None,
) -> ChangeOut:
    return await _change(request, principal, DeleteMessage(room, seq, client_id_or_new(client_id)))


@post(
    "/rooms/{room:str}/messages/{seq:int}/reactions",
    status_code=HTTP_200_OK,
    summary='Add (or with "remove": true take away) your reaction to a message',
    responses=CHANGE_ERRORS,
    security=SECURED,
)
async def react(request: Request[Any, Any, Any], principal: Principal, room: str, seq: Seq, data: ReactIn) -> ChangeOut:
    return await _change(
        request, principal, React(room, seq, data.emoji, client_id_or_new(data.client_id), data.remove)
    )


@put(
    "/rooms/{room:str}/topic",
    status_code=HTTP_200_OK,
    summary="Set the room's topic (a room event every member sees)",
    responses=CHANGE_ERRORS,
    security=SECURED,
)
async def set_topic(request: Request[Any, Any, Any], principal: Principal, room: str, data: TopicIn) -> ChangeOut:
    return await _change(request, principal, SetTopic(room, data.topic, client_id_or_new(data.client_id)))


feature_handlers = [read_positions, mark_read, mentions, dms, search, edit_message, delete_message, react, set_topic]
FEATURE_STRUCTS: tuple[type[msgspec.Struct], ...] = (ReadIn, DmIn, EditIn, ReactIn, TopicIn)
