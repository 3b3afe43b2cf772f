"""Round 2, finding 9: who DMs whom. A stranger asking about a private room (a direct conversation included) gets
the answer a missing room gets, word for word, over REST, search and WebSocket joins; it used to be 403 for an
existing one and 404 for a missing one, so anyone could tell which pairs of users talk."""

from __future__ import annotations

from typing import Any

import httpx
from security.conftest import bearer, new_user

from chatd.rules.dms import dm_room
from harness import ChatdProcess, Client


def answer(server: ChatdProcess, token: str, method: str, path: str, **kw: Any) -> tuple[int, str, str]:
    r = httpx.request(method, server.http + path, headers=bearer(token), timeout=10, **kw)
    body = r.json()
    return r.status_code, body["code"], body["message"]


def rest_answers(server: ChatdProcess, token: str, room: str) -> list[tuple[int, str, str]]:
    """What a stranger hears about ``room`` from every REST route that names one, with the name masked."""
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/api/rooms/{room}", {}),
        ("GET", f"/api/rooms/{room}/messages", {}),
        ("GET", f"/api/rooms/{room}/members", {}),
        ("GET", f"/api/rooms/{room}/presence", {}),
        ("GET", "/api/search", {"params": {"q": "hello", "room": room}}),
        ("POST", f"/api/rooms/{room}/messages", {"json": {"body": "hi"}}),
        ("POST", f"/api/rooms/{room}/read", {"json": {"seq": 1}}),
        ("POST", f"/api/rooms/{room}/members", {"json": {"user": "pr-stranger"}}),
    ]
    return [
        (status, code, message.replace(room, "ROOM"))
        for status, code, message in (answer(server, token, m, p, **kw) for m, p, kw in calls)
    ]


async def join_answer(server: ChatdProcess, token: str, room: str) -> tuple[str, str]:
    c = await Client.connect(server.ws, token=token)
    try:
        await c.send({"type": "join", "room": room, "since": 0})
        err = await c.expect("error", skip=("ping", "presence", "room"))
        assert err["room"] == room
        return err["code"], err["message"].replace(room, "ROOM")
    finally:
        await c.close()


def uid(server: ChatdProcess, token: str) -> int:
    return int(server.get("/api/me", headers=bearer(token)).json()["id"])


async def test_a_stranger_cannot_tell_a_direct_conversation_from_a_missing_one(hostile: ChatdProcess) -> None:
    alice, bob, carol = (new_user(hostile, n) for n in ("pr-alice", "pr-bob", "pr-carol"))
    stranger = new_user(hostile, "pr-stranger")
    opened = hostile.post("/api/dms", json={"user": "pr-bob"}, headers=bearer(alice))
    assert opened.status_code == 201
    talking = opened.json()["room"]
    assert hostile.post(f"/api/rooms/{talking}/messages", json={"body": "hello bob"}, headers=bearer(alice)).is_success
    silent = dm_room(uid(hostile, alice), uid(hostile, carol))  # alice and carol never talked
    assert talking != silent and talking == dm_room(uid(hostile, alice), uid(hostile, bob))

    existing = rest_answers(hostile, stranger, talking)
    assert existing == rest_answers(hostile, stranger, silent)
    assert {status for status, _, _ in existing} == {404}
    assert await join_answer(hostile, stranger, talking) == await join_answer(hostile, stranger, silent)
    found = hostile.get("/api/search", params={"q": "hello"}, headers=bearer(stranger)).json()["results"]
    assert found == []


def test_a_stranger_cannot_tell_a_private_room_from_a_missing_one(hostile: ChatdProcess) -> None:
    owner, stranger = new_user(hostile, "pr-owner"), new_user(hostile, "pr-outsider")
    made = hostile.post("/api/rooms", json={"name": "pr-merger", "private": True}, headers=bearer(owner))
    assert made.status_code == 201
    existing = rest_answers(hostile, stranger, "pr-merger")
    assert existing == rest_answers(hostile, stranger, "pr-nothing-here")
    assert {status for status, _, _ in existing} == {404}
    # A member still gets everything.
    assert hostile.get("/api/rooms/pr-merger", headers=bearer(owner)).status_code == 200
