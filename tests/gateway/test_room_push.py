"""Room-list changes are pushed to the sessions they concern as ``room`` frames, so no client has to poll:
an invitation, a removal, leaving from another session, and a new public room."""

from __future__ import annotations

from typing import Any

import httpx

from harness import ChatdProcess, Client


async def next_room_frame(c: Client, timeout: float = 5.0) -> dict[str, Any]:
    return await c.expect("room", timeout=timeout, skip=("presence", "ping", "typing"))


def as_user(server: ChatdProcess, user: str, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, f"{server.http}/api{path}", params={"user": user}, timeout=10, **kw)


async def test_an_invited_user_is_told_at_once_and_a_removed_one_too(server: ChatdProcess) -> None:
    owner = await Client.connect(server.ws, user="push_owner")
    guest = await Client.connect(server.ws, user="push_guest")
    guest_tab2 = await Client.connect(server.ws, user="push_guest")
    r = as_user(server, "push_owner", "POST", "/rooms", json={"name": "push-private", "private": True})
    assert r.status_code == 201, r.text
    assert await next_room_frame(owner) == {
        "type": "room",
        "room": "push-private",
        "change": "created",
        "private": True,
        "by": "push_owner",
    }

    r = as_user(server, "push_owner", "POST", "/rooms/push-private/members", json={"user": "PUSH_GUEST"})
    assert r.status_code == 201, r.text
    invited = {"type": "room", "room": "push-private", "change": "invited", "private": True, "by": "push_owner"}
    assert await next_room_frame(guest) == invited
    assert await next_room_frame(guest_tab2) == invited  # every open session of the user
    await guest.join("push-private")

    r = as_user(server, "push_owner", "DELETE", "/rooms/push-private/members/push_guest")
    assert r.status_code == 200 and r.json()["removed"] is True
    left = await guest.expect("left")
    assert left["reason"] == "removed"
    removed = await next_room_frame(guest)
    assert removed["change"] == "removed" and removed["by"] == "push_owner"
    assert (await next_room_frame(guest_tab2))["change"] == "removed"
    for c in (owner, guest, guest_tab2):
        await c.close()


async def test_leaving_from_one_session_tells_the_others(server: ChatdProcess) -> None:
    tab1 = await Client.connect(server.ws, user="push_leaver")
    tab2 = await Client.connect(server.ws, user="push_leaver")
    r = as_user(server, "push_leaver", "POST", "/rooms", json={"name": "push-leave", "private": True})
    assert r.status_code == 201
    for tab in (tab1, tab2):
        assert (await next_room_frame(tab))["change"] == "created"
    r = as_user(server, "push_leaver", "DELETE", "/rooms/push-leave/members/push_leaver")
    assert r.json()["removed"] is True
    for tab in (tab1, tab2):
        assert await next_room_frame(tab) == {
            "type": "room",
            "room": "push-leave",
            "change": "left",
            "private": True,
            "by": "push_leaver",
        }
    await tab1.close()
    await tab2.close()


async def test_a_new_public_room_is_announced_to_everyone_but_a_private_one_is_not(server: ChatdProcess) -> None:
    bystander = await Client.connect(server.ws, user="push_bystander")
    creator = await Client.connect(server.ws, user="push_creator")
    as_user(server, "push_creator", "POST", "/rooms", json={"name": "push-quiet", "private": True})
    r = as_user(server, "push_creator", "POST", "/rooms", json={"name": "push-public"})
    assert r.status_code == 201
    # The private room's frame would come first: the bystander's first room frame is the public one.
    frame = await next_room_frame(bystander)
    assert frame == {"type": "room", "room": "push-public", "change": "created", "by": "push_creator"}
    # Joining a name that does not exist creates a public room too, and is announced the same way.
    await creator.join("push-auto")
    frame = await next_room_frame(bystander)
    assert frame["room"] == "push-auto" and frame["change"] == "created"
    await bystander.close()
    await creator.close()
