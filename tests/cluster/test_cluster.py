"""Three nodes behind a real nginx keep every promise one node makes: order, idempotency, replay, presence,
membership and logout, whichever node each client lands on. Each test runs once over Redis and once over RabbitMQ,
with PostgreSQL holding history."""

from __future__ import annotations

import asyncio
import time

import httpx

from clients import MakeCluster, history
from harness import Client

ROOM = "hall"


async def test_clients_on_every_node_see_one_room_in_the_same_order(cluster: MakeCluster) -> None:
    c = cluster(3)
    clients = [await Client.connect(c.ws, user=f"user{i}") for i in range(6)]
    assert len({cl.hello["node"].split("/")[0] for cl in clients}) == 3  # nginx spread them over every node
    for cl in clients:
        await cl.join(ROOM)
    per_sender = 30
    for n in range(per_sender):  # everyone sends at once, without waiting for acks
        for i, cl in enumerate(clients):
            await cl.send({"type": "send", "room": ROOM, "body": f"{i}:{n}", "client_id": f"c{n}"})
    total = per_sender * len(clients)
    seen = [await cl.messages(total, timeout=60) for cl in clients]
    order = [(m["seq"], m["from"], m["client_id"]) for m in seen[0]]
    assert [seq for seq, _, _ in order] == list(range(1, total + 1))
    for other in seen[1:]:
        assert [(m["seq"], m["from"], m["client_id"]) for m in other] == order  # one order for everyone
    for i in range(len(clients)):
        mine = [int(cid[1:]) for _, sender, cid in order if sender == f"user{i}"]
        assert mine == list(range(per_sender))  # each sender's messages in the order it sent them
    assert [(m["seq"], m["from"], m["client_id"]) for m in history(c.http, ROOM)] == order


async def test_a_resend_is_recognised_and_replay_works_whichever_node_gets_it(cluster: MakeCluster) -> None:
    c = cluster(3)
    n1, n2, n3 = c.nodes
    alice = await Client.connect(n1.ws, user="alice")
    await alice.join(ROOM)
    first = await alice.say(ROOM, "hello", "once")
    for i in range(5):
        await alice.say(ROOM, f"more {i}", f"more{i}")
    await alice.close()
    alice2 = await Client.connect(n2.ws, user="alice")  # reconnected elsewhere, resending with the same id
    await alice2.join(ROOM)
    again = await alice2.say(ROOM, "hello", "once")
    assert again["duplicate"] is True and again["seq"] == first["seq"]
    r = httpx.post(f"{n3.http}/api/rooms/{ROOM}/messages?user=alice", json={"body": "hello", "client_id": "once"})
    assert r.status_code == 201 and r.json()["duplicate"] is True and r.json()["seq"] == first["seq"]
    carol = await Client.connect(n3.ws, user="carol")
    joined = await carol.join(ROOM, since=0)
    assert joined["seq"] == 6 and joined["replay"] == 6
    assert [m["seq"] for m in await carol.messages(6)] == list(range(1, 7))


async def wait_for(check, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def presence_frame(client: Client, user: str, timeout: float = 10.0) -> bool:
    """Read until a presence frame about ``user``; returns its ``online``."""
    deadline = time.monotonic() + timeout
    while True:
        frame = await client.expect(
            "presence", timeout=max(0.1, deadline - time.monotonic()), skip=("ping", "typing", "room")
        )
        if frame["user"] == user:
            return bool(frame["online"])


def presence(http: str, room: str) -> list[str]:
    return httpx.get(f"{http}/api/rooms/{room}/presence?user=observer", timeout=5).json()["users"]


async def test_presence_crosses_nodes_and_a_dead_node_takes_its_users_with_it(cluster: MakeCluster) -> None:
    c = cluster(3, {"broker": {"node_timeout": 3.0, "presence_interval": 1.0}})
    n1, n2, n3 = c.nodes
    bob = await Client.connect(n2.ws, user="bob")
    await bob.join(ROOM)
    alice = await Client.connect(n1.ws, user="alice")
    await alice.join(ROOM)
    assert await presence_frame(bob, "alice") is True  # a frame on bob's node for alice's join on another
    await wait_for(lambda: presence(n3.http, ROOM) == ["alice", "bob"], timeout=3)  # asked on a third node
    n1.kill()  # alice's node dies without a word
    assert await presence_frame(bob, "alice", timeout=15) is False
    assert presence(n3.http, ROOM) == ["bob"]


async def test_membership_changes_reach_every_node_before_the_rest_call_returns(cluster: MakeCluster) -> None:
    c = cluster(2)
    n1, n2 = c.nodes
    room = "secret"
    r = httpx.post(f"{n1.http}/api/rooms?user=owner", json={"name": room, "private": True})
    assert r.status_code == 201, r.text
    httpx.get(f"{n1.http}/api/me?user=bob")  # bob exists
    assert httpx.post(f"{n1.http}/api/rooms/{room}/members?user=owner", json={"user": "bob"}).status_code == 201
    bob = await Client.connect(n2.ws, user="bob")  # the invite, made on node 1, holds on node 2
    await bob.join(room)
    assert (await bob.say(room, "thanks for the invite", "b1"))["seq"] == 1
    owner = await Client.connect(n1.ws, user="owner")
    await owner.join(room)
    r = httpx.delete(f"{n1.http}/api/rooms/{room}/members/bob?user=owner")
    assert r.status_code == 200 and r.json()["removed"] is True
    # Right after the call returns: bob's send on the other node is refused, and his socket left the room.
    await bob.send({"type": "send", "room": room, "body": "still here?", "client_id": "b2"})
    kinds: dict[str, dict] = {}
    while not {"left", "error"} <= kinds.keys():
        frame = await bob.recv(5)
        if frame["type"] == "message":
            assert frame["seq"] == 1, frame  # his own earlier message; nothing after it
        elif frame["type"] not in ("presence", "ping", "typing", "room"):
            kinds[frame["type"]] = frame
    assert kinds["left"]["reason"] == "removed", kinds
    # A private room's outsider is answered as for a missing room.
    assert kinds["error"]["code"] == "not_found" and kinds["error"]["ref"] == "b2", kinds
    await owner.say(room, "bob cannot read this", "o1")
    try:
        while True:
            frame = await bob.recv(1.0)
            assert frame["type"] != "message", f"a removed member got {frame}"
    except TimeoutError:
        pass
    r = await Client.connect(n2.ws, user="bob")
    await r.send({"type": "join", "room": room})
    assert (await r.expect("error"))["code"] == "not_found"


async def test_logout_closes_the_tokens_sockets_on_every_node(cluster: MakeCluster) -> None:
    c = cluster(3, {"auth": {"mode": "token"}})
    n1, n2, n3 = c.nodes
    creds = {"username": "dana", "password": "correct horse"}
    token = httpx.post(f"{n1.http}/api/auth/register", json=creds).json()["token"]
    other = httpx.post(f"{n2.http}/api/auth/login", json=creds).json()
    on1 = await Client.connect(n1.ws, token=token)
    on2 = await Client.connect(n2.ws, token=token)
    keep = await Client.connect(n3.ws, token=other["token"])
    r = httpx.post(f"{n3.http}/api/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["revoked"] is True
    assert (await on1.closed())[0] == 4401
    assert (await on2.closed())[0] == 4401
    await keep.send({"type": "ping"})
    assert (await keep.expect("pong"))["type"] == "pong"  # the same user's other token is untouched


async def test_a_message_stored_by_a_node_that_died_before_publishing_reaches_everyone_on_resend(
    cluster: MakeCluster, pg_dsn: str
) -> None:
    """A node commits a message and dies before publishing it: nobody else ever got it live. When its sender
    resends (same client_id) through another node, that node finds the duplicate and publishes the stored message
    again, so followers everywhere get it now, not at the next message or sweep (here set far away)."""
    import asyncpg

    c = cluster(2, {"broker": {"sweep_interval": 3600.0}})
    n1, n2 = c.nodes
    reader = await Client.connect(n2.ws, user="reader")
    await reader.join(ROOM)
    httpx.get(f"{n1.http}/api/me?user=alice")
    conn = await asyncpg.connect(pg_dsn)
    try:  # what the dead node's commit left: the row, the room's last seq, and alice a member
        alice_id = await conn.fetchval("SELECT id FROM users WHERE name = 'alice'")
        await conn.execute("INSERT INTO members (room, user_id, joined) VALUES ($1, $2, 0)", ROOM, alice_id)
        await conn.execute(
            "INSERT INTO messages (room, seq, sender, client_id, body, ts) VALUES ($1, 1, $2, 'x', 'orphan', 1)",
            ROOM,
            alice_id,
        )
        await conn.execute("UPDATE rooms SET last_seq = 1 WHERE name = $1", ROOM)
    finally:
        await conn.close()
    alice = await Client.connect(n1.ws, user="alice")
    await alice.join(ROOM)
    ack = await alice.say(ROOM, "orphan", "x")
    assert ack["duplicate"] is True and ack["seq"] == 1
    got = await reader.messages(1, timeout=5)
    assert (got[0]["seq"], got[0]["body"]) == (1, "orphan")


async def test_a_user_on_two_nodes_stays_present_when_one_of_their_sockets_leaves(cluster: MakeCluster) -> None:
    c = cluster(3)
    n1, n2, n3 = c.nodes
    bob = await Client.connect(n3.ws, user="bob")
    await bob.join(ROOM)
    a1 = await Client.connect(n1.ws, user="alice")
    await a1.join(ROOM)
    a2 = await Client.connect(n2.ws, user="alice")
    await a2.join(ROOM)
    assert await presence_frame(bob, "alice") is True
    # Let node 2's report arrive first: nodes report independently, so closing the first socket in the same
    # instant as the second one joins can show a brief offline/online flicker (docs/scale-out.md says so).
    await asyncio.sleep(0.5)
    await a1.close()  # alice's socket on node 1 goes; she is still on node 2
    await asyncio.sleep(1.0)
    assert presence(n3.http, ROOM) == ["alice", "bob"]
    try:
        while True:
            frame = await bob.recv(0.5)
            assert not (frame["type"] == "presence" and frame["user"] == "alice"), frame
    except TimeoutError:
        pass
    await a2.close()
    assert await presence_frame(bob, "alice") is False
    assert presence(n3.http, ROOM) == ["bob"]
