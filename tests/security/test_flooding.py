"""Also weak: typing and presence floods, room-creation floods, an unpaginated room list, and adding strangers to
public rooms."""

from __future__ import annotations

import httpx
from security.conftest import bearer, hardened, new_user

from harness import ChatdProcess, Client


async def _until_message(c: Client, body: str) -> list[dict]:
    """Frames received until the message with ``body`` (which the sender sent after its flood)."""
    seen = []
    while True:
        frame = await c.recv()
        if frame["type"] == "message" and frame["body"] == body:
            return seen
        seen.append(frame)


async def test_a_typing_flood_reaches_members_only_up_to_the_rate(make_server) -> None:
    server: ChatdProcess = make_server(
        hardened({"auth": {"mode": "token"}, "limits": {"typing_rate": 0.001, "typing_burst": 5}})
    ).start()
    flooder = await Client.connect(server.ws, token=new_user(server, "typist"))
    watcher = await Client.connect(server.ws, token=new_user(server, "reader"))
    await flooder.join("typing-room")
    await watcher.join("typing-room")
    for _ in range(300):
        await flooder.send({"type": "typing", "room": "typing-room"})
    await flooder.send({"type": "send", "room": "typing-room", "body": "done", "client_id": "d"})
    errors = 0
    while (frame := await flooder.recv())["type"] != "ack":
        if frame["type"] == "error":
            assert frame["code"] == "rate_limited" and frame["room"] == "typing-room"
            errors += 1
    seen = await _until_message(watcher, "done")
    assert sum(f["type"] == "typing" for f in seen) == 5 and errors == 295
    await flooder.close()
    await watcher.close()


async def test_join_leave_flapping_is_not_announced_past_the_presence_rate(make_server) -> None:
    server: ChatdProcess = make_server(
        hardened({"auth": {"mode": "token"}, "limits": {"presence_rate": 0.001, "presence_burst": 4}})
    ).start()
    watcher = await Client.connect(server.ws, token=new_user(server, "watcher"))
    await watcher.join("flap")
    flapper = await Client.connect(server.ws, token=new_user(server, "flapper"))
    for _ in range(50):
        await flapper.join("flap")
        await flapper.send({"type": "leave", "room": "flap"})
        await flapper.expect("left")
    await flapper.join("flap")
    await flapper.say("flap", "after the flapping", "f1")
    seen = await _until_message(watcher, "after the flapping")
    assert sum(f["type"] == "presence" and f["user"] == "flapper" for f in seen) == 4
    await flapper.close()
    await watcher.close()


async def test_room_creation_is_rate_limited_per_user(make_server) -> None:
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token"}, "rooms": {"create_per_hour": 3}})).start()
    token = new_user(server, "builder")
    codes = [server.post("/api/rooms", json={"name": f"b{i}"}, headers=bearer(token)).status_code for i in range(4)]
    assert codes == [201, 201, 201, 429]
    c = await Client.connect(server.ws, token=token)
    await c.send({"type": "join", "room": "auto-made"})  # creating by joining spends from the same budget
    err = await c.expect("error")
    assert err["code"] == "rate_limited" and err["room"] == "auto-made"
    await c.join("b0")  # joining an existing room costs nothing
    await c.close()
    other = new_user(server, "someone_else")
    assert server.post("/api/rooms", json={"name": "theirs"}, headers=bearer(other)).status_code == 201


def test_the_room_list_comes_in_pages(make_server) -> None:
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token"}})).start()
    token = new_user(server, "lister")
    for i in range(25):
        assert server.post("/api/rooms", json={"name": f"room{i:02d}"}, headers=bearer(token)).status_code == 201
    names: list[str] = []
    after = None
    while True:
        params = {"limit": 10, **({"after": after} if after else {})}
        page = server.get("/api/rooms", params=params, headers=bearer(token)).json()
        assert len(page["rooms"]) <= 10
        names += [r["name"] for r in page["rooms"]]
        after = page["next"]
        if after is None:
            break
    assert names == [f"room{i:02d}" for i in range(25)]
    assert server.get("/api/rooms", params={"limit": 100_000}, headers=bearer(token)).status_code == 400


def test_only_a_rooms_creator_or_an_admin_adds_others_to_a_public_room(make_server) -> None:
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token"}})).start()
    creator, member, victim = (new_user(server, n) for n in ("creator", "member", "victim"))
    server.post("/api/rooms", json={"name": "open-room"}, headers=bearer(creator))
    r = server.post("/api/rooms/open-room/members", json={"user": "member"}, headers=bearer(member))
    assert r.status_code == 201
    r = server.post("/api/rooms/open-room/members", json={"user": "victim"}, headers=bearer(member))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    r = server.post("/api/rooms/open-room/members", json={"user": "victim"}, headers=bearer(creator))
    assert r.status_code == 201
    members = httpx.get(server.http + "/api/rooms/open-room/members", headers=bearer(victim), timeout=10).json()
    assert members["members"] == ["creator", "member", "victim"]
