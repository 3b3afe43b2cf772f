"""Room-list pushes reach the user's sessions on every node, not only the node that handled the REST call."""

from __future__ import annotations

import httpx

from clients import MakeCluster
from harness import Client


async def test_an_invite_made_on_one_node_is_pushed_to_the_invitee_on_another(cluster: MakeCluster) -> None:
    c = cluster(2)
    n1, n2 = c.nodes
    guest = await Client.connect(n2.ws, user="far_guest")
    assert httpx.post(f"{n1.http}/api/rooms?user=near_owner", json={"name": "far-room", "private": True}).is_success
    r = httpx.post(f"{n1.http}/api/rooms/far-room/members?user=near_owner", json={"user": "far_guest"})
    assert r.status_code == 201, r.text
    frame = await guest.expect("room", skip=("presence", "ping", "typing"))
    assert frame == {"type": "room", "room": "far-room", "change": "invited", "private": True, "by": "near_owner"}
    assert httpx.delete(f"{n1.http}/api/rooms/far-room/members/far_guest?user=near_owner").json()["removed"]
    assert (await guest.expect("room", skip=("presence", "ping", "typing")))["change"] == "removed"
    await guest.close()


async def test_a_room_deleted_on_one_node_leaves_and_leaves_the_lists_of_sessions_on_another(
    cluster: MakeCluster,
) -> None:
    c = cluster(2, settings={"auth": {"mode": "token", "first_user_admin": True}})
    n1, n2 = c.nodes

    def register(name: str) -> str:
        r = httpx.post(f"{n1.http}/api/auth/register", json={"username": name, "password": "long enough pw"})
        assert r.status_code == 201, r.text
        return r.json()["token"]

    root, owner, bystander = register("root"), register("owner"), register("bystander")
    member = await Client.connect(n2.ws, token=owner)
    other = await Client.connect(n2.ws, token=bystander)
    for name, private in (("secret-plans", True), ("town-square", False)):
        r = httpx.post(f"{n2.http}/api/rooms", json={"name": name, "private": private}, headers=bearer(owner))
        assert r.status_code == 201, r.text
        await member.join(name)
    for name, private in (("secret-plans", True), ("town-square", False)):
        r = httpx.delete(f"{n1.http}/api/admin/rooms/{name}", headers=bearer(root))
        assert r.status_code == 200, r.text
        left = await member.expect("left", skip=("presence", "ping", "typing", "room"))
        assert left == {"type": "left", "room": name, "reason": "removed"}
        gone = {
            "type": "room",
            "room": name,
            "change": "deleted",
            "by": "root",
            **({"private": True} if private else {}),
        }
        assert await deleted(member) == gone
    # A public room leaves everyone's list; a private one only its members': the bystander hears of one deletion.
    assert (await deleted(other))["room"] == "town-square"
    await member.close()
    await other.close()


async def deleted(client: Client) -> dict:
    """The next "room" frame saying a room was deleted (skipping the "created" ones the setup caused)."""
    while True:
        frame = await client.expect("room", skip=("presence", "ping", "typing"))
        if frame["change"] == "deleted":
            return frame


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
