"""Finding 5: names cannot impersonate: whole-string patterns, case-insensitive user names."""

from __future__ import annotations

import httpx
import pytest
from security.conftest import bearer, new_user, post

from harness import ChatdProcess, Client


@pytest.mark.parametrize("name", ["alice\n", "alice\n\n", "ali\nce", "\nalice", "alice\r\n", "alice "])
def test_user_names_with_line_breaks_are_refused(hostile: ChatdProcess, name: str) -> None:
    r = post(hostile, "/api/auth/register", "127.0.0.5", json={"username": name, "password": "correct horse"})
    assert r.status_code == 400 and r.json()["code"] == "invalid", (name, r.text)


async def test_room_names_with_a_trailing_newline_are_refused(hostile: ChatdProcess) -> None:
    token = new_user(hostile, "roomer", ip="127.0.0.5")
    r = hostile.post("/api/rooms", json={"name": "secret\n", "private": False}, headers=bearer(token))
    assert r.status_code == 400 and r.json()["code"] == "invalid"
    c = await Client.connect(hostile.ws, token=token)
    await c.send({"type": "join", "room": "secret\n"})
    assert (await c.expect("error"))["code"] == "bad_frame"
    await c.close()
    names = [room["name"] for room in hostile.get("/api/rooms", headers=bearer(token)).json()["rooms"]]
    assert not [n for n in names if n.startswith("secret")]


def test_user_names_are_one_user_whatever_the_case(hostile: ChatdProcess) -> None:
    new_user(hostile, "Carol", "carol's password", ip="127.0.0.6")
    for spelling in ("carol", "CAROL", "cArOl"):
        r = post(hostile, "/api/auth/register", "127.0.0.6", json={"username": spelling, "password": "x" * 12})
        assert r.status_code == 409 and r.json()["code"] == "conflict", spelling
    # login by any spelling, and the stored spelling comes back
    r = post(hostile, "/api/auth/login", "127.0.0.6", json={"username": "CAROL", "password": "carol's password"})
    assert r.status_code == 200 and r.json()["user"]["name"] == "Carol"
    assert hostile.get("/api/me", headers=bearer(r.json()["token"])).json()["name"] == "Carol"


async def test_invites_and_removals_resolve_any_spelling_to_the_stored_name(hostile: ChatdProcess) -> None:
    owner = new_user(hostile, "Owner", ip="127.0.0.7")
    dave = new_user(hostile, "Dave", ip="127.0.0.7")
    assert hostile.post("/api/rooms", json={"name": "den", "private": True}, headers=bearer(owner)).status_code == 201
    r = hostile.post("/api/rooms/den/members", json={"user": "DAVE"}, headers=bearer(owner))
    assert r.status_code == 201 and r.json()["user"] == "Dave"
    assert sorted(hostile.get("/api/rooms/den/members", headers=bearer(owner)).json()["members"]) == ["Dave", "Owner"]
    c = await Client.connect(hostile.ws, token=dave)
    await c.join("den")
    r = httpx.delete(hostile.http + "/api/rooms/den/members/dave", headers=bearer(owner), timeout=10)
    assert r.status_code == 200 and r.json()["removed"] is True
    left = await c.expect("left")
    assert left == {"type": "left", "room": "den", "reason": "removed"}
    await c.close()


async def test_open_mode_names_are_case_insensitive_too(server: ChatdProcess) -> None:
    a = await Client.connect(server.ws, user="Erin")
    b = await Client.connect(server.ws, user="ERIN")
    assert a.hello["user"] == b.hello["user"] == "Erin"
    await a.close()
    await b.close()
