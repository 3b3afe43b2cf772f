"""Edits, deletes, reactions, replies and topics are events in the room's ordered stream: live in seq order with
messages, replayed by join + since, acked after storage, idempotent by client_id, and refused with documented
codes when not allowed."""

from __future__ import annotations

from typing import Any

import httpx

from harness import ChatdProcess, Client

STREAM = ("message", "edit", "delete", "reaction", "topic")


async def entries(client: Client, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The next ``n`` room-stream frames (messages and changes), skipping acks and ephemeral frames."""
    out: list[dict[str, Any]] = []
    while len(out) < n:
        frame = await client.recv(timeout)
        if frame["type"] in STREAM:
            out.append(frame)
        elif frame["type"] not in ("ack", "presence", "ping", "typing", "room"):
            raise AssertionError(f"unexpected frame {frame}")
    return out


async def acked(client: Client, frame: dict[str, Any]) -> dict[str, Any]:
    """Send a change (or message) and wait for its ack or error, skipping stream frames."""
    await client.send(frame)
    while True:
        got = await client.recv()
        if got["type"] in ("ack", "error") and got.get("ref", got.get("client_id")) == frame["client_id"]:
            return got


async def test_changes_reach_every_member_live_in_seq_order_with_messages(server: ChatdProcess) -> None:
    room = "chg-live"
    ann = await Client.connect(server.ws, user="chg_ann")
    bob = await Client.connect(server.ws, user="chg_bob")
    watcher = await Client.connect(server.ws, user="chg_watch")
    assert {"edit", "delete", "react", "reply", "topic"} <= set(ann.hello["features"])
    for client in (ann, bob, watcher):
        await client.join(room)
    # Each step waits for its ack, so the order across the two senders is the order written here.
    steps = [
        (ann, {"type": "send", "room": room, "body": "helo", "client_id": "m1"}),
        (ann, {"type": "edit", "room": room, "seq": 1, "body": "hello", "client_id": "e1"}),
        (bob, {"type": "react", "room": room, "seq": 1, "emoji": "👍", "client_id": "r1"}),
        (bob, {"type": "send", "room": room, "body": "hi!", "client_id": "m2", "reply_to": 1}),
        (ann, {"type": "react", "room": room, "seq": 1, "emoji": "👍", "client_id": "r2"}),
        (bob, {"type": "react", "room": room, "seq": 1, "emoji": "👍", "client_id": "r3", "remove": True}),
        (ann, {"type": "topic", "room": room, "topic": "greetings", "client_id": "t1"}),
        (ann, {"type": "delete", "room": room, "seq": 1, "client_id": "d1"}),
    ]
    for n, (client, frame) in enumerate(steps, 1):
        answer = await acked(client, frame)
        assert (answer["type"], answer["seq"]) == ("ack", n)
    got = await entries(watcher, 8)
    assert [f["seq"] for f in got] == list(range(1, 9))
    assert [f["type"] for f in got] == [
        "message",
        "edit",
        "reaction",
        "message",
        "reaction",
        "reaction",
        "topic",
        "delete",
    ]
    assert (got[1]["target"], got[1]["body"], got[1]["from"]) == (1, "hello", "chg_ann")
    assert [(f["on"], f["users"]) for f in got if f["type"] == "reaction"] == [
        (True, ["chg_bob"]),
        (True, ["chg_bob", "chg_ann"]),
        (False, ["chg_ann"]),
    ]
    assert got[3]["reply_to"] == 1 and got[6]["topic"] == "greetings" and got[7]["target"] == 1
    history = server.get(f"/api/rooms/{room}/messages?user=chg_watch").json()["messages"]
    assert [(m["seq"], m.get("deleted", False), m["body"]) for m in history] == [(1, True, ""), (4, False, "hi!")]
    assert history[1]["reply_to"] == 1
    assert server.get(f"/api/rooms/{room}?user=chg_watch").json()["topic"] == "greetings"
    for client in (ann, bob, watcher):
        await client.close()


async def test_join_since_catches_up_on_changes_as_well_as_messages(server: ChatdProcess) -> None:
    room = "chg-resume"
    ann = await Client.connect(server.ws, user="res_ann")
    await ann.join(room)
    await ann.say(room, "one", "m1")
    await ann.say(room, "two", "m2")
    bob = await Client.connect(server.ws, user="res_bob")
    await bob.join(room)
    await bob.close()  # bob saw up to seq 2 and went away
    assert (await acked(ann, {"type": "edit", "room": room, "seq": 2, "body": "TWO", "client_id": "e"}))["seq"] == 3
    assert (await acked(ann, {"type": "react", "room": room, "seq": 1, "emoji": "🎉", "client_id": "r"}))["seq"] == 4
    assert (await acked(ann, {"type": "delete", "room": room, "seq": 1, "client_id": "d"}))["seq"] == 5
    bob = await Client.connect(server.ws, user="res_bob")
    joined = await bob.join(room, since=2)
    assert (joined["seq"], joined["replay"]) == (5, 3)
    replay = await entries(bob, 3)
    assert [(f["type"], f["seq"], f["target"]) for f in replay] == [
        ("edit", 3, 2),
        ("reaction", 4, 1),
        ("delete", 5, 1),
    ]
    # A client joining from the start gets messages in their current state (the tombstone keeps no body), then
    # the events, which apply to that state without harm.
    carol = await Client.connect(server.ws, user="res_carol")
    await carol.join(room, since=0)
    full = await entries(carol, 5)
    assert full[0]["deleted"] and full[0]["body"] == "" and "reactions" not in full[0]
    assert full[1]["body"] == "TWO" and full[1]["edited"] > 0
    assert full[2]["body"] == "TWO"  # the edit event of a message that still exists keeps its text
    for client in (ann, bob, carol):
        await client.close()


async def test_a_repeated_change_is_acked_again_as_a_duplicate_and_stored_once(server: ChatdProcess) -> None:
    room = "chg-idem"
    ann = await Client.connect(server.ws, user="idem_ann")
    await ann.join(room)
    await ann.say(room, "hi", "m1")
    react = {"type": "react", "room": room, "seq": 1, "emoji": "👍", "client_id": "r-1"}
    first = await acked(ann, react)
    await ann.close()
    ann = await Client.connect(server.ws, user="idem_ann")  # a reconnect that never saw the ack resends
    again = await acked(ann, react)
    assert (again["seq"], again["ts"], again.get("duplicate")) == (first["seq"], first["ts"], True)
    await ann.join(room)
    history = server.get(f"/api/rooms/{room}/messages?user=chg_watch").json()["messages"]
    assert history[0]["reactions"] == {"👍": ["idem_ann"]}
    assert server.get(f"/api/rooms/{room}?user=chg_watch").json()["last_seq"] == 2
    await ann.close()


async def test_changes_that_are_not_allowed_are_refused_with_documented_codes(server: ChatdProcess) -> None:
    room = "chg-auth"
    ann = await Client.connect(server.ws, user="auth_ann")
    bob = await Client.connect(server.ws, user="auth_bob")
    eve = await Client.connect(server.ws, user="auth_eve")
    await ann.join(room)
    await bob.join(room)
    await ann.say(room, "ann's words", "m1")
    cases = [
        (bob, {"type": "edit", "room": room, "seq": 1, "body": "bob's now", "client_id": "1"}, "forbidden"),
        (bob, {"type": "delete", "room": room, "seq": 1, "client_id": "2"}, "forbidden"),
        (eve, {"type": "react", "room": room, "seq": 1, "emoji": "👎", "client_id": "3"}, "not_member"),
        (ann, {"type": "edit", "room": room, "seq": 7, "body": "x", "client_id": "4"}, "not_found"),
        (ann, {"type": "send", "room": room, "body": "re", "client_id": "5", "reply_to": 9}, "not_found"),
        (ann, {"type": "edit", "room": room, "seq": 1, "body": "  ", "client_id": "6"}, "bad_frame"),
        (ann, {"type": "react", "room": room, "seq": 1, "emoji": "a b", "client_id": "7"}, "bad_frame"),
    ]
    for client, frame, code in cases:
        answer = await acked(client, frame)
        assert (answer["type"], answer["code"]) == ("error", code), frame
    assert (await acked(ann, {"type": "delete", "room": room, "seq": 1, "client_id": "8"}))["type"] == "ack"
    gone = await acked(bob, {"type": "react", "room": room, "seq": 1, "emoji": "👍", "client_id": "9"})
    assert gone["code"] == "gone"
    # Nothing refused reached the room or the store: the only change is ann's delete.
    assert server.get(f"/api/rooms/{room}?user=chg_watch").json()["last_seq"] == 2
    assert server.get(f"/api/rooms/{room}/messages?user=chg_watch").json()["messages"][0]["body"] == ""
    for client in (ann, bob, eve):
        await client.close()


async def test_rest_edits_deletes_reactions_and_topics_are_the_same_room_events(server: ChatdProcess) -> None:
    room = "chg-rest"
    as_ann = {"user": "rest_ann"}
    assert server.post("/api/rooms", params=as_ann, json={"name": room}).status_code == 201  # hers: she sets the topic
    watcher = await Client.connect(server.ws, user="rest_watch")
    await watcher.join(room)
    sent = server.post(f"/api/rooms/{room}/messages", params=as_ann, json={"body": "draft"}).json()
    edit = httpx.patch(
        f"{server.http}/api/rooms/{room}/messages/{sent['seq']}",
        params=as_ann,
        json={"body": "final", "client_id": "e-1"},
        timeout=10,
    )
    assert edit.status_code == 200 and edit.json()["seq"] == sent["seq"] + 1
    again = httpx.patch(
        f"{server.http}/api/rooms/{room}/messages/{sent['seq']}",
        params=as_ann,
        json={"body": "final", "client_id": "e-1"},
        timeout=10,
    ).json()
    assert again["duplicate"] and again["seq"] == edit.json()["seq"]
    reaction = server.post(f"/api/rooms/{room}/messages/{sent['seq']}/reactions", params=as_ann, json={"emoji": "✅"})
    assert reaction.status_code == 200
    topic = httpx.put(f"{server.http}/api/rooms/{room}/topic", params=as_ann, json={"topic": "ship it"}, timeout=10)
    assert topic.status_code == 200
    bob_edit = httpx.patch(
        f"{server.http}/api/rooms/{room}/messages/{sent['seq']}", params={"user": "rest_watch"}, json={"body": "x"}
    )
    assert (bob_edit.status_code, bob_edit.json()["code"]) == (403, "forbidden")
    gone = httpx.delete(f"{server.http}/api/rooms/{room}/messages/{sent['seq']}", params=as_ann, timeout=10)
    assert gone.status_code == 200
    again = httpx.delete(f"{server.http}/api/rooms/{room}/messages/{sent['seq']}", params=as_ann, timeout=10)
    assert (again.status_code, again.json()["code"]) == (410, "gone")
    got = await entries(watcher, 5)
    assert [f["type"] for f in got] == ["message", "edit", "reaction", "topic", "delete"]
    await watcher.close()
