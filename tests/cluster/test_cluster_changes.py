"""Room changes cross nodes like messages: a reaction and an edit stored by one node reach clients on the others
in seq order, interleaved with messages sent at the same time from every node."""

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
