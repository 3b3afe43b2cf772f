"""Round 2, finding 13: the smaller ones. A public room's topic is its creator's (or an admin's), a reply quotes a
message and never a room event, and a direct conversation cannot be opened with a disabled account."""

from __future__ import annotations

import httpx
from security.conftest import bearer, new_user

from harness import ChatdProcess, Client, run_cli


def put_topic(server: ChatdProcess, room: str, topic: str, token: str) -> httpx.Response:
    return httpx.put(f"{server.http}/api/rooms/{room}/topic", json={"topic": topic}, headers=bearer(token), timeout=10)


async def test_only_the_creator_or_an_admin_sets_a_public_rooms_topic(hostile: ChatdProcess) -> None:
    owner, passer = new_user(hostile, "topic-owner"), new_user(hostile, "topic-passer")
    assert hostile.post("/api/rooms", json={"name": "town-square"}, headers=bearer(owner)).status_code == 201
    c = await Client.connect(hostile.ws, token=passer)
    await c.join("town-square")  # anyone may join a public room ...
    await c.send({"type": "topic", "room": "town-square", "topic": "free crypto at evil.example", "client_id": "t1"})
    err = await c.expect("error", skip=("ping", "presence"))
    assert (err["code"], err["ref"]) == ("forbidden", "t1")  # ... but not rewrite its topic
    r = put_topic(hostile, "town-square", "free crypto", passer)
    assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
    assert put_topic(hostile, "town-square", "welcome", owner).status_code == 200
    assert hostile.get("/api/rooms/town-square", headers=bearer(passer)).json()["topic"] == "welcome"
    await c.close()
    # In a private room every member was let in by a member: any of them may set it.
    assert hostile.post("/api/rooms", json={"name": "back-room", "private": True}, headers=bearer(owner)).status_code
    invited = hostile.post("/api/rooms/back-room/members", json={"user": "topic-passer"}, headers=bearer(owner))
    assert invited.status_code == 201
    assert put_topic(hostile, "back-room", "plans", passer).status_code == 200


async def test_a_reply_cannot_point_at_a_room_event(hostile: ChatdProcess) -> None:
    token = new_user(hostile, "replier")
    c = await Client.connect(hostile.ws, token=token)
    await c.join("replies")
    assert (await c.say("replies", "the question", "q"))["seq"] == 1
    await c.send({"type": "topic", "room": "replies", "topic": "answers here", "client_id": "t"})
    assert (await c.expect("ack", skip=("message", "topic", "ping", "presence")))["seq"] == 2
    await c.send({"type": "send", "room": "replies", "body": "quoting a topic", "client_id": "r1", "reply_to": 2})
    err = await c.expect("error", skip=("message", "topic", "ping", "presence"))
    assert (err["code"], err["ref"]) == ("not_found", "r1")
    r = hostile.post("/api/rooms/replies/messages", json={"body": "again", "reply_to": 2}, headers=bearer(token))
    assert r.status_code == 404 and r.json()["code"] == "not_found", r.text
    await c.send({"type": "send", "room": "replies", "body": "the answer", "client_id": "r2", "reply_to": 1})
    assert (await c.expect("ack", skip=("message", "topic", "ping", "presence")))["client_id"] == "r2"
    await c.close()


def test_a_direct_conversation_cannot_be_opened_with_a_disabled_account(hostile: ChatdProcess) -> None:
    alice = new_user(hostile, "dm-alice")
    new_user(hostile, "dm-gone")
    r = run_cli("users", "disable", "dm-gone", "--config", str(hostile.config_path))
    assert r.returncode == 0, r.stderr
    r = hostile.post("/api/dms", json={"user": "dm-gone"}, headers=bearer(alice))
    assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
    rooms = hostile.get("/api/rooms", headers=bearer(alice)).json()["rooms"]
    assert not [room for room in rooms if room["dm"]]


def test_opening_direct_conversations_is_rate_limited(hostile: ChatdProcess) -> None:
    """300 calls in 0.6 s sent bob 300 dm frames (each made his page read its room list again)."""
    spammer = new_user(hostile, "dm-spammer")
    new_user(hostile, "dm-bob")
    codes = [hostile.post("/api/dms", json={"user": "dm-bob"}, headers=bearer(spammer)).status_code for _ in range(30)]
    assert codes[0] == 201 and 429 in codes
    assert codes.count(201) + codes.count(200) <= 11  # rooms.dms_per_minute: a burst of 10 (plus a refill)
    r = hostile.post("/api/dms", json={"user": "dm-bob"}, headers=bearer(spammer))
    assert r.status_code == 429 and r.json()["code"] == "rate_limited" and int(r.headers["retry-after"]) >= 1
