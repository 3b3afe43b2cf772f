"""@name tells that user on every connection they have, whatever room they are looking at, and only them;
GET /api/mentions lists recent mentions."""

from __future__ import annotations

from harness import ChatdProcess, Client


async def test_a_mention_reaches_every_connection_of_the_named_member_once(server: ChatdProcess) -> None:
    room = "mn-room"
    ann = await Client.connect(server.ws, user="mn_ann")
    bob_here = await Client.connect(server.ws, user="mn_bob")
    bob_elsewhere = await Client.connect(server.ws, user="mn_bob")
    eve = await Client.connect(server.ws, user="mn_eve")
    await ann.join(room)
    await bob_here.join(room)
    await bob_elsewhere.join("mn-other")  # looking at another room
    await eve.join("mn-other")
    ack = await ann.say(room, "@MN_bob can you look? (not @mn_eve, she is not here)", "m1")
    for conn in (bob_here, bob_elsewhere):
        frame = await conn.expect("mention", skip=("room", "presence", "ping", "message"))
        assert (frame["room"], frame["seq"], frame["from"]) == (room, ack["seq"], "mn_ann")
        assert frame["body"].startswith("@MN_bob")
    again = await ann.say(room, "@MN_bob can you look? (not @mn_eve, she is not here)", "m1")
    assert again.get("duplicate")
    await ann.say(room, "no names", "m2")
    # A resend named nobody twice and eve, who is not in the room, heard nothing: the next frame each gets is pong.
    for conn in (bob_elsewhere, eve):
        await conn.send({"type": "ping"})
        assert (await conn.expect("pong", skip=("room", "presence", "ping", "message")))["type"] == "pong"
    listed = server.get("/api/mentions?user=mn_bob").json()["mentions"]
    assert [(m["room"], m["seq"]) for m in listed] == [(room, ack["seq"])]
    assert server.get("/api/mentions?user=mn_eve").json()["mentions"] == []
    for client in (ann, bob_here, bob_elsewhere, eve):
        await client.close()
