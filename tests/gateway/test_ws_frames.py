"""Every protocol-v1 frame against a live server, over a real WebSocket."""

from __future__ import annotations

import json

import pytest
import websockets

from harness import ChatdProcess, Client


async def test_hello_names_the_user(server: ChatdProcess) -> None:
    c = await Client.connect(server.ws, user="hello_user")
    assert c.hello["user"] == "hello_user" and c.hello["protocol"] == 1
    await c.close()


async def test_join_creates_a_public_room_and_reports_its_last_seq(server: ChatdProcess) -> None:
    a = await Client.connect(server.ws, user="j_alice")
    first = await a.join("join-room")
    assert first == {"type": "joined", "room": "join-room", "seq": 0, "epoch": first["epoch"]} and first["epoch"]
    await a.say("join-room", "one", "c1")
    b = await Client.connect(server.ws, user="j_bob")
    joined = await b.join("join-room")
    assert joined["seq"] == 1 and joined["epoch"] == first["epoch"]
    members = server.get("/api/rooms/join-room/members?user=j_bob").json()["members"]
    assert members == ["j_alice", "j_bob"]  # joining a public room made bob a member
    await a.close()
    await b.close()


async def test_send_acks_after_storage_and_fans_out_to_every_joined_connection(server: ChatdProcess) -> None:
    a = await Client.connect(server.ws, user="s_alice")
    b = await Client.connect(server.ws, user="s_bob")
    await a.join("send-room")
    await b.join("send-room")
    out_before = server.metrics()["chatd_messages_out_total"]
    await a.send({"type": "send", "room": "send-room", "body": "hello", "client_id": "k1"})
    ack = await a.expect("ack", skip=("presence", "message", "room"))
    assert ack["client_id"] == "k1" and ack["room"] == "send-room" and ack["seq"] == 1 and "ts" in ack
    assert "duplicate" not in ack
    for client in (a, b):  # the sender's own connection gets the message too
        (msg,) = await client.messages(1)
        assert msg == {
            "type": "message",
            "room": "send-room",
            "seq": 1,
            "from": "s_alice",
            "body": "hello",
            "client_id": "k1",
            "ts": ack["ts"],
            "uid": a.hello["uid"],  # who sent it; "from" is their name now
        }
    stored = server.get("/api/rooms/send-room/messages?user=s_bob").json()["messages"]
    assert [m["body"] for m in stored] == ["hello"]
    assert server.metrics()["chatd_messages_out_total"] - out_before == 2  # encoded once, queued twice
    await a.close()
    await b.close()


async def test_resend_with_same_client_id_is_acked_with_the_original_seq_and_not_stored(server: ChatdProcess) -> None:
    a = await Client.connect(server.ws, user="d_alice")
    await a.join("dup-room")
    first = await a.say("dup-room", "once", "same-id")
    second = await a.say("dup-room", "once", "same-id")
    assert second["seq"] == first["seq"] and second["duplicate"] is True
    assert second["ts"] == first["ts"]
    other_user = await Client.connect(server.ws, user="d_bob")  # the key is per user
    await other_user.join("dup-room")
    third = await other_user.say("dup-room", "mine", "same-id")
    assert third["seq"] == first["seq"] + 1
    stored = server.get("/api/rooms/dup-room/messages?user=d_alice").json()["messages"]
    assert [m["body"] for m in stored] == ["once", "mine"]
    await a.close()
    await other_user.close()


async def test_leave_stops_live_delivery(server: ChatdProcess) -> None:
    a = await Client.connect(server.ws, user="l_alice")
    b = await Client.connect(server.ws, user="l_bob")
    await a.join("leave-room")
    await b.join("leave-room")
    await b.send({"type": "leave", "room": "leave-room"})
    assert await b.expect("left") == {"type": "left", "room": "leave-room"}
    await a.say("leave-room", "after leave", "x1")
    await b.send({"type": "ping"})
    assert (await b.expect("pong")) == {"type": "pong"}  # nothing from the room arrived before the pong
    await a.close()
    await b.close()


async def test_send_needs_membership(server: ChatdProcess) -> None:
    a = await Client.connect(server.ws, user="nm_alice")
    await a.join("members-only")
    b = await Client.connect(server.ws, user="nm_bob")
    await b.send({"type": "send", "room": "members-only", "body": "hi", "client_id": "z"})
    err = await b.expect("error")
    assert err["code"] == "not_member" and err["ref"] == "z"
    await a.close()
    await b.close()


async def test_typing_reaches_others_and_is_never_stored(server: ChatdProcess) -> None:
    a = await Client.connect(server.ws, user="t_alice")
    b = await Client.connect(server.ws, user="t_bob")
    await a.join("typing-room")
    await b.join("typing-room")
    await a.send({"type": "typing", "room": "typing-room"})
    assert await b.expect("typing", skip=("presence", "room")) == {
        "type": "typing",
        "room": "typing-room",
        "user": "t_alice",
        "uid": a.hello["uid"],
    }
    await a.send({"type": "ping"})
    assert await a.expect("pong", skip=("presence", "room")) == {"type": "pong"}  # the typist got no echo
    assert server.get("/api/rooms/typing-room/messages?user=t_bob").json()["messages"] == []
    await a.close()
    await b.close()


async def test_presence_frames_announce_arrivals_and_departures(server: ChatdProcess) -> None:
    a = await Client.connect(server.ws, user="p_alice")
    await a.join("presence-room")
    own = await a.expect("presence", skip=("ping", "room"))
    me = a.hello["uid"]
    assert own == {"type": "presence", "room": "presence-room", "user": "p_alice", "online": True, "uid": me}
    b = await Client.connect(server.ws, user="p_bob")
    await b.join("presence-room")
    online = await a.expect("presence", skip=("ping", "room"))
    bob = b.hello["uid"]
    assert online == {"type": "presence", "room": "presence-room", "user": "p_bob", "online": True, "uid": bob}
    listed = server.get("/api/rooms/presence-room/presence?user=p_alice").json()
    assert (listed["users"], listed["uids"]) == (["p_alice", "p_bob"], [me, bob])
    await b.close()
    offline = await a.expect("presence", skip=("ping", "room"))
    assert offline["online"] is False and offline["user"] == "p_bob"
    await a.close()


@pytest.mark.parametrize(
    "raw, code",
    [
        ("this is not json", "bad_frame"),
        ("[1, 2, 3]", "bad_frame"),
        ('{"room": "x"}', "bad_frame"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "join", "room": 42}', "bad_frame"),
        ('{"type": "join", "room": "ok", "colour": "red"}', "bad_frame"),
        ('{"type": "send", "room": "ok", "body": "hi"}', "bad_frame"),
        ('{"type": "join", "room": "' + "r" * 5000 + '"}', "bad_frame"),
        ('{"type": "join", "room": "no such room!"}', "bad_frame"),
        ('{"type": "join", "room": "ok", "since": 1e400}', "bad_frame"),
    ],
)
async def test_bad_frames_get_an_error_and_the_connection_stays_open(server: ChatdProcess, raw: str, code: str) -> None:
    c = await Client.connect(server.ws, user="bad_frames")
    await c.send(raw)
    err = await c.expect("error")
    assert err["code"] == code and err["message"] and "ref" in err
    await c.send({"type": "ping"})
    assert (await c.expect("pong"))["type"] == "pong"
    await c.close()


async def test_a_refused_frame_is_explained_in_words(server: ChatdProcess) -> None:
    """bad_frame stays the WebSocket code, and its message names the field and its rule, not msgspec's terms."""
    c = await Client.connect(server.ws, user="worded")
    await c.send({"type": "join", "room": "no such room!"})
    err = await c.expect("error")
    assert err["code"] == "bad_frame" and err["message"].startswith("room must use only letters"), err
    await c.send({"type": "join", "room": "ok", "since": -1})
    assert (await c.expect("error"))["message"] == "since must be at least 0"
    await c.close()


async def test_too_large_send_is_refused_with_its_ref_and_nothing_is_stored(server: ChatdProcess) -> None:
    c = await Client.connect(server.ws, user="big_sender")
    await c.join("big-room")
    limit = c.hello["max_frame_bytes"]
    await c.send({"type": "send", "room": "big-room", "body": "x" * limit, "client_id": "huge"})
    err = await c.expect("error")
    assert err == {"type": "error", "code": "too_large", "message": err["message"], "ref": "huge"}
    ack = await c.say("big-room", "x" * (limit - 200), "fits")
    assert ack["seq"] == 1
    await c.close()


async def test_binary_frames_are_read_as_json_too(server: ChatdProcess) -> None:
    c = await Client.connect(server.ws, user="binary_user")
    await c.ws.send(json.dumps({"type": "ping"}).encode())
    assert (await c.expect("pong"))["type"] == "pong"
    await c.close()


async def test_private_room_join_without_membership_is_answered_as_a_missing_room(server: ChatdProcess) -> None:
    r = server.post("/api/rooms?user=priv_owner", json={"name": "secret", "private": True})
    assert r.status_code == 201
    outsider = await Client.connect(server.ws, user="priv_outsider")
    await outsider.send({"type": "join", "room": "secret"})
    err = await outsider.expect("error")
    assert err["code"] == "not_found" and err["room"] == "secret" and err["ref"] is None
    await outsider.send({"type": "join", "room": "secret", "since": 0})
    assert (await outsider.expect("error"))["code"] == "not_found"  # no history leaks either
    owner = await Client.connect(server.ws, user="priv_owner")
    assert (await owner.join("secret"))["room"] == "secret"
    await owner.close()
    await outsider.close()


async def test_unauthenticated_handshake_is_refused_with_4401(token_server: ChatdProcess) -> None:
    ws = await websockets.connect(token_server.ws)
    with pytest.raises(websockets.ConnectionClosed) as info:
        await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 4401
