"""Round 2, finding 12: a signed admin control request works once. Within its 60 s window a captured request could
be replayed, and not only kicks: a replayed ``room-deleted`` dropped the members of a room that still existed.
Each request now carries a one-use id, claimed in the store (shared by every node) for the whole window."""

from __future__ import annotations

import hashlib
import secrets

import httpx
import msgspec
from security.conftest import bearer, hardened, new_user

from chatd.signing import HEADER, PATH, ControlRequest, control_key, sign
from harness import ChatdProcess, Client

SECRET = "a deployment secret that signs everything"


def signed(events: list[list[str]]) -> tuple[bytes, dict[str, str]]:
    """A control request as ``chatd users disable`` and friends send it: body and signature header."""
    body = msgspec.json.encode(ControlRequest(events, secrets.token_urlsafe(16)))
    key = control_key(hashlib.sha256(SECRET.encode()).digest())
    return body, {"content-type": "application/json", HEADER: sign(key, body)}


def control(http: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(http + PATH, content=body, headers=headers, timeout=10)


async def test_a_replayed_room_deleted_is_refused_and_the_members_stay(make_server) -> None:
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token", "secret": SECRET}})).start()
    owner, bob = new_user(server, "ops-owner"), new_user(server, "ops-bob")
    owner_id, bob_id = (str(server.get("/api/me", headers=bearer(t)).json()["id"]) for t in (owner, bob))
    assert server.post("/api/rooms", json={"name": "ops", "private": True}, headers=bearer(owner)).status_code == 201
    server.post("/api/rooms/ops/members", json={"user": "ops-bob"}, headers=bearer(owner))
    # the CLI's request for a room that is being deleted (its members by id); captured on its way
    body, headers = signed([["room-deleted", "ops", "private", owner_id, bob_id]])
    r = control(server.http, body, headers)
    assert r.status_code == 200 and r.json() == {"applied": 1}
    # the room still exists (here it was never deleted; as well it could have been made again): bob joins it
    c = await Client.connect(server.ws, token=bob)
    await c.join("ops")
    r = control(server.http, body, headers)  # the replay, well within the signature's 60 s
    assert r.status_code == 401 and r.json()["code"] == "unauthorized", r.text
    await c.send({"type": "send", "room": "ops", "body": "still in", "client_id": "s1"})
    frame = await c.expect("ack", skip=("message", "ping", "presence", "room"))
    assert frame["client_id"] == "s1"  # not told the room was deleted, still a member
    assert "a replayed request" in server.log()
    await c.close()
    # a fresh request (a new id) still works
    body2, headers2 = signed([["kick-user", bob_id]])
    assert control(server.http, body2, headers2).status_code == 200


def test_a_request_without_a_one_use_id_is_refused(make_server) -> None:
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token", "secret": SECRET}})).start()
    body = b'{"events":[["kick-user","nobody"]]}'
    key = control_key(hashlib.sha256(SECRET.encode()).digest())
    r = control(server.http, body, {"content-type": "application/json", HEADER: sign(key, body)})
    assert r.status_code == 400 and r.json()["code"] == "invalid", r.text
