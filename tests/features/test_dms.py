"""POST /api/dms opens the one private two-person room of a pair (the same room from either side), tells both
people's connections, and keeps everyone else out."""

from __future__ import annotations

from harness import ChatdProcess, Client


def auth(user: str) -> str:
    return f"?user={user}"


async def test_a_dm_is_one_room_per_pair_and_both_sides_hear_of_it(server: ChatdProcess) -> None:
    ids = {}
    for name in ("dm_ann", "DM_Bob", "dm_eve"):  # open mode makes a user on first sight
        first = await Client.connect(server.ws, user=name)
        ids[name] = first.hello["uid"]
        await first.close()
    bob_phone = await Client.connect(server.ws, user="DM_Bob")
    r = server.post("/api/dms" + auth("dm_ann"), json={"user": "dm_bob"})
    assert r.status_code == 201, r.text
    opened = r.json()
    pair = sorted((ids["dm_ann"], ids["DM_Bob"]))
    assert opened == {"room": f"dm:{pair[0]}:{pair[1]}", "user": "DM_Bob", "uid": ids["DM_Bob"], "created": True}
    told = await bob_phone.expect("dm")
    assert (told["room"], told["with"], told["uid"]) == (opened["room"], "dm_ann", ids["dm_ann"])
    again = server.post("/api/dms" + auth("DM_Bob"), json={"user": "DM_ANN"})
    back = again.json()
    assert again.status_code == 200  # found, not made: 201 only when created
    assert (back["room"], back["created"]) == (opened["room"], False)
    assert (await bob_phone.expect("dm"))["with"] == "dm_ann"  # the opener's own devices are told too
    room = opened["room"]
    ann = await Client.connect(server.ws, user="dm_ann")
    await ann.join(room)
    await bob_phone.join(room)
    await ann.say(room, "just between us", "d1")
    assert (await bob_phone.messages(1))[0]["body"] == "just between us"
    listed = server.get("/api/rooms" + auth("DM_Bob")).json()["rooms"]
    # A room list shows the other person, so no client needs to read the room's name.
    assert [(x["name"], x["dm"], x["with"], x["with_uid"]) for x in listed if x["name"] == room] == [
        (room, True, "dm_ann", ids["dm_ann"])
    ]
    assert server.get(f"/api/rooms/{room}" + auth("dm_ann")).json()["with"] == "DM_Bob"
    # Everyone else stays out: no join, no invite, no history, not even a room of that name.
    eve = await Client.connect(server.ws, user="dm_eve")
    await eve.send({"type": "join", "room": room})
    assert (await eve.expect("error"))["code"] == "forbidden"  # dm: names are never made by a join, as for any
    assert server.get(f"/api/rooms/{room}/messages" + auth("dm_eve")).json()["code"] == "not_found"
    invite = server.post(f"/api/rooms/{room}/members" + auth("dm_ann"), json={"user": "dm_eve"})
    assert invite.json()["code"] == "forbidden"
    await eve.send({"type": "join", "room": "dm:dm_eve:zed"})
    assert (await eve.expect("error"))["code"] == "forbidden"
    assert server.post("/api/rooms" + auth("dm_eve"), json={"name": "dm:x:y"}).json()["code"] == "forbidden"
    for client in (ann, bob_phone, eve):
        await client.close()


def test_a_dm_needs_another_existing_user(server: ChatdProcess) -> None:
    assert server.post("/api/dms" + auth("dm_solo"), json={"user": "dm_solo"}).json()["code"] == "invalid"
    assert server.post("/api/dms" + auth("dm_solo"), json={"user": "nobody_here"}).json()["code"] == "not_found"
