"""Read state is the server's: a read on one device reaches the user's other connections at once (and nobody
else's), REST reads and moves it, and it survives a restart."""

from __future__ import annotations

from harness import ChatdProcess, Client


async def test_a_read_on_one_connection_reaches_the_users_other_connections(server: ChatdProcess) -> None:
    room = "rs-devices"
    bob = await Client.connect(server.ws, user="rs_bob")
    await bob.join(room)
    for n in range(1, 6):
        await bob.say(room, f"news {n}", f"n{n}")
    phone = await Client.connect(server.ws, user="rs_ann")
    laptop = await Client.connect(server.ws, user="rs_ann")
    await phone.join(room)
    positions = server.get("/api/read?user=rs_ann").json()["rooms"]
    assert positions == [{"room": room, "seq": 0, "last_seq": 5, "unread": 5}]
    await phone.send({"type": "read", "room": room, "seq": 3, "client_id": "rd-1"})
    for device in (phone, laptop):  # the laptop never joined the room and still hears of it
        frame = await device.expect("read", skip=("room", "presence", "ping", "typing", "message"))
        assert frame == {"type": "read", "room": room, "seq": 3, "unread": 2, "client_id": "rd-1"}
    # bob is told nothing about ann's reading
    await bob.send({"type": "ping"})
    assert (await bob.expect("pong", skip=("room", "presence", "ping", "typing", "message", "ack")))["type"] == "pong"
    r = server.post(f"/api/rooms/{room}/read?user=rs_ann", json={"seq": 5})
    assert r.status_code == 200 and r.json()["unread"] == 0
    assert (
        await laptop.expect(
            "read",
            skip=(
                "room",
                "presence",
            ),
        )
    )["seq"] == 5
    # Moving back is ignored: everyone is told the stored position.
    await laptop.send({"type": "read", "room": room, "seq": 1})
    assert (await phone.expect("read", skip=("room", "presence", "message")))["seq"] == 5
    for client in (bob, phone, laptop):
        await client.close()


async def test_reading_a_room_you_are_not_in_is_refused(server: ChatdProcess) -> None:
    owner = await Client.connect(server.ws, user="rs_owner")
    await owner.join("rs-other")
    outsider = await Client.connect(server.ws, user="rs_out")
    await outsider.send({"type": "read", "room": "rs-other", "seq": 1, "client_id": "x"})
    err = await outsider.expect("error")
    assert (err["code"], err["ref"]) == ("not_member", "x")
    assert server.post("/api/rooms/rs-nowhere/read?user=rs_out", json={"seq": 1}).json()["code"] == "not_found"
    await owner.close()
    await outsider.close()


async def test_a_read_past_the_last_seq_is_clamped_to_it(server: ChatdProcess) -> None:
    """Not refused: the position is stored as the room's last seq, and that is what every connection is told."""
    owner = await Client.connect(server.ws, user="rs_clamp")
    await owner.join("rs-clamp")
    await owner.say("rs-clamp", "one", "c1")
    await owner.say("rs-clamp", "two", "c2")
    await owner.send({"type": "read", "room": "rs-clamp", "seq": 10_000, "client_id": "far"})
    frame = await owner.expect("read", skip=("room", "presence", "ping", "message", "ack"))
    assert (frame["seq"], frame["unread"]) == (2, 0)
    r = server.post("/api/rooms/rs-clamp/read?user=rs_clamp", json={"seq": 9_999})
    assert (r.status_code, r.json()["seq"]) == (200, 2)
    await owner.close()


async def test_read_positions_survive_a_restart(make_server) -> None:
    server = make_server().start()
    bob = await Client.connect(server.ws, user="bob")
    await bob.join("kept")
    for n in range(4):
        await bob.say("kept", f"m{n}", f"c{n}")
    ann = await Client.connect(server.ws, user="ann")
    await ann.join("kept")
    await ann.send({"type": "read", "room": "kept", "seq": 3})
    await ann.expect("read")
    await ann.close()
    await bob.close()
    server.stop()
    server.start()
    assert server.get("/api/read?user=ann").json()["rooms"] == [{"room": "kept", "seq": 3, "last_seq": 4, "unread": 1}]


async def test_a_flood_of_read_frames_is_held_to_the_send_rate(make_server) -> None:
    # Each read writes the store and tells every node, so it spends the user's send budget like a send.
    server = make_server({"limits": {"send_rate": 1, "send_burst": 5}}).start()
    ann = await Client.connect(server.ws, user="ann")
    await ann.join("flooded")
    for n in range(20):
        await ann.send({"type": "read", "room": "flooded", "seq": 0, "client_id": f"r{n}"})
    answers: list[dict] = []
    while len(answers) < 20:
        frame = await ann.recv()
        if frame["type"] in ("read", "error"):
            answers.append(frame)
    limited = [f for f in answers if f["type"] == "error"]
    assert all(f["code"] == "rate_limited" for f in limited)
    assert sum(f["type"] == "read" for f in answers) <= 6 and len(limited) >= 14
    await ann.close()
