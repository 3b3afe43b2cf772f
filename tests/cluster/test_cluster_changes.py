"""Room changes cross nodes like messages: reactions, edits, deletes and topics stored by one node reach clients on
the others in seq order, interleaved with what every other node stores at the same time."""

from __future__ import annotations

import httpx

from clients import MakeCluster, history
from harness import Client

ROOM = "changes"


async def test_changes_from_every_node_reach_every_node_in_one_order(cluster: MakeCluster) -> None:
    c = cluster(2)
    clients = [await Client.connect(c.ws, user=f"cc{i}") for i in range(4)]
    assert len({cl.hello["node"].split("/")[0] for cl in clients}) == 2
    for cl in clients:
        await cl.join(ROOM)
    await clients[0].say(ROOM, "first", "base")
    rounds = 10
    for n in range(rounds):  # everyone at once: a message, a reaction on seq 1, and an edit of their own message
        for i, cl in enumerate(clients):
            await cl.send({"type": "send", "room": ROOM, "body": f"{i}:{n}", "client_id": f"m{n}"})
            await cl.send({"type": "react", "room": ROOM, "seq": 1, "emoji": f"e{n}", "client_id": f"r{n}"})
    total = 1 + rounds * len(clients) * 2
    kinds = ("message", "reaction")
    seen = []
    for cl in clients:
        got: list[dict] = []
        while len(got) < total:
            frame = await cl.recv(60)
            if frame["type"] in kinds:
                got.append(frame)
        seen.append([(f["seq"], f["type"], f["from"], f["client_id"]) for f in got])
    assert [s[0] for s in seen[0]] == list(range(1, total + 1))
    for other in seen[1:]:
        assert other == seen[0]  # one order for every client on every node
    # The message's current state holds every reaction, whichever node stored it.
    (first, *_) = history(c.http, ROOM)
    assert sorted(first["reactions"]) == [f"e{n}" for n in range(rounds)]
    assert all(len(users) == len(clients) for users in first["reactions"].values())
    for cl in clients:
        await cl.close()


async def test_edits_deletes_and_topics_from_both_nodes_reach_both_in_one_order(cluster: MakeCluster) -> None:
    c = cluster(2)
    room = "changes-2"
    clients: list[Client] = []
    while len(clients) < 4 or len({cl.hello["node"].split("/")[0] for cl in clients}) < 2:
        clients.append(await Client.connect(c.ws, user=f"ed{len(clients)}"))
        assert len(clients) < 12, "nginx kept sending every client to one node"
    # Private, so that every member may set the topic (a public room's topic is its creator's).
    assert httpx.post(f"{c.http}/api/rooms?user=ed0", json={"name": room, "private": True}).status_code == 201
    for i in range(1, len(clients)):
        assert httpx.post(f"{c.http}/api/rooms/{room}/members?user=ed0", json={"user": f"ed{i}"}).status_code == 201
    for cl in clients:
        await cl.join(room)
    mine = [(await cl.say(room, f"draft {i}", f"d{i}"))["seq"] for i, cl in enumerate(clients)]
    # All at once from both nodes: everyone edits their message and sets the topic; every other one deletes theirs.
    for i, cl in enumerate(clients):
        await cl.send({"type": "edit", "room": room, "seq": mine[i], "body": f"final {i}", "client_id": f"e{i}"})
        if i % 2:
            await cl.send({"type": "delete", "room": room, "seq": mine[i], "client_id": f"x{i}"})
        await cl.send({"type": "topic", "room": room, "topic": f"topic of {i}", "client_id": f"t{i}"})
    total = len(clients) * 2 + len(clients) // 2
    seen = []
    for cl in clients:
        got: list[dict] = []
        while len(got) < total:
            frame = await cl.recv(60)
            if frame["type"] in ("edit", "delete", "topic"):
                got.append(frame)
        seen.append([(f["seq"], f["type"], f["from"], f["client_id"]) for f in got])
    first_change = len(clients) + 1
    assert [s[0] for s in seen[0]] == list(range(first_change, first_change + total))
    for other in seen[1:]:
        assert other == seen[0]  # one order on every node
    stored = {m["seq"]: m for m in history(c.http, room, user="ed0")}
    for i, seq in enumerate(mine):
        state = (stored[seq].get("deleted", False), stored[seq].get("body", ""))  # defaults are left out on the wire
        assert state == ((True, "") if i % 2 else (False, f"final {i}"))
    last_topic = next(f for f in reversed(seen[0]) if f[1] == "topic")
    info = httpx.get(f"{c.http}/api/rooms/{room}?user=ed0", timeout=10).json()
    assert info["topic"] == f"topic of {last_topic[3][1:]}"  # the topic stored last in seq order wins everywhere
    for cl in clients:
        await cl.close()


async def test_read_state_mentions_and_dm_notices_reach_the_user_on_every_node(cluster: MakeCluster) -> None:
    c = cluster(2)
    # ann on both nodes (two devices), bob on one: nginx spreads connections, so open until both nodes have one
    devices: list[Client] = []
    while len({d.hello["node"].split("/")[0] for d in devices}) < 2:
        devices.append(await Client.connect(c.ws, user="ann"))
        assert len(devices) < 12, "nginx kept sending ann to one node"
    bob = await Client.connect(c.ws, user="bob")
    await devices[0].join(ROOM)
    await bob.join(ROOM)
    sent = await bob.say(ROOM, "@ann the numbers are in", "m1")
    for device in devices:  # a mention reaches ann on both nodes, joined to the room or not
        frame = await device.expect("mention", skip=("room", "presence", "ping", "message", "ack"))
        assert (frame["room"], frame["seq"]) == (ROOM, sent["seq"])
    await devices[0].send({"type": "read", "room": ROOM, "seq": sent["seq"], "client_id": "r1"})
    for device in devices:
        frame = await device.expect("read", skip=("room", "presence", "ping", "message", "ack"))
        assert (frame["seq"], frame["unread"], frame["client_id"]) == (sent["seq"], 0, "r1")
    r = httpx.post(f"{c.http}/api/dms?user=bob", json={"user": "ann"}, timeout=10)
    assert r.status_code == 201, r.text
    for device in devices:
        assert (await device.expect("dm", skip=("room", "presence", "ping", "message", "ack")))["with"] == "bob"
    for client in (*devices, bob):
        await client.close()
