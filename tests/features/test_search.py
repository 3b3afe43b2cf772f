"""GET /api/search finds messages in rooms the caller may read, best first with marked snippets, and never a
deleted message or one from a private room the caller is not (or no longer) in."""

from __future__ import annotations

import httpx

from harness import ChatdProcess, Client


async def test_search_over_readable_rooms_with_snippets_and_paging(server: ChatdProcess) -> None:
    ann = await Client.connect(server.ws, user="se_ann")
    await ann.join("se-public")
    await ann.say("se-public", "we decided: the release ships on Thursday", "p1")
    await ann.say("se-public", "Thursday Thursday, release release release", "p2")
    deleted = await ann.say("se-public", "the release password is swordfish", "p3")
    await ann.send({"type": "delete", "room": "se-public", "seq": deleted["seq"], "client_id": "p4"})
    await ann.expect("delete", skip=("room", "ack", "message", "presence"))
    assert server.post("/api/rooms?user=se_ann", json={"name": "se-private", "private": True}).status_code == 201
    await ann.join("se-private")
    await ann.say("se-private", "private release notes", "s1")

    page = server.get("/api/search", params={"q": "release", "user": "se_ann"}).json()
    found = [(r["room"], r["seq"]) for r in page["results"]]
    assert found[0] == ("se-public", 2)  # the message saying it three times ranks first
    assert sorted(found) == [("se-private", 1), ("se-public", 1), ("se-public", 2)]  # not the deleted seq 3
    assert all(r["seq"] != deleted["seq"] or r["room"] != "se-public" for r in page["results"])
    assert {"text": "release", "match": True} in page["results"][0]["snippet"]
    assert "".join(p["text"] for p in page["results"][0]["snippet"]) == "Thursday Thursday, release release release"
    first = server.get("/api/search", params={"q": "release", "limit": 1, "user": "se_ann"}).json()
    assert len(first["results"]) == 1 and first["next"] == 1
    second = server.get("/api/search", params={"q": "release", "limit": 1, "offset": 1, "user": "se_ann"}).json()
    assert second["results"][0]["seq"] != first["results"][0]["seq"]
    # Query syntax is never interpreted: quotes, operators and stars are just not words.
    odd = server.get("/api/search", params={"q": '"release" * ^ (:', "user": "se_ann"})
    assert odd.status_code == 200 and odd.json()["results"]
    assert server.get("/api/search", params={"q": "swordfish", "user": "se_ann"}).json()["results"] == []

    # Someone outside the private room finds only public messages and is refused a search inside it.
    outsider = server.get("/api/search", params={"q": "release", "user": "se_eve"}).json()
    assert {r["room"] for r in outsider["results"]} == {"se-public"}
    refused = server.get("/api/search", params={"q": "release", "room": "se-private", "user": "se_eve"})
    assert (refused.status_code, refused.json()["code"]) == (404, "not_found")  # as for a missing room
    await ann.close()


async def test_searching_a_private_room_you_left_is_refused_and_finds_nothing(server: ChatdProcess) -> None:
    owner = await Client.connect(server.ws, user="sl_owner")
    assert server.post("/api/rooms?user=sl_owner", json={"name": "sl-room", "private": True}).status_code == 201
    guest = await Client.connect(server.ws, user="sl_guest")
    assert server.post("/api/rooms/sl-room/members?user=sl_owner", json={"user": "sl_guest"}).status_code == 201
    await owner.join("sl-room")
    await owner.say("sl-room", "the merger closes in May", "m1")
    assert server.get("/api/search", params={"q": "merger", "user": "sl_guest"}).json()["results"]
    left = httpx.delete(server.http + "/api/rooms/sl-room/members/sl_guest?user=sl_guest", timeout=10)
    assert left.status_code == 200
    assert server.get("/api/search", params={"q": "merger", "user": "sl_guest"}).json()["results"] == []
    refused = server.get("/api/search", params={"q": "merger", "room": "sl-room", "user": "sl_guest"})
    assert refused.json()["code"] == "not_found"
    await owner.close()
    await guest.close()
