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
