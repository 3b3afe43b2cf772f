"""Two people in two browsers on two nodes behind nginx (over Redis, with PostgreSQL): they chat; one node is
killed; that person's page reconnects through nginx to the other node, and nothing anyone sent is lost or shown
twice."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from chatpage import ChatPage, eventually

from chatd.deploy.local import LocalCluster

pytestmark = pytest.mark.browser


@pytest.fixture
def broker(redis_url: str) -> tuple[str, str]:
    return "redis", redis_url  # one broker is enough here; tests/cluster/ runs both


def node_of(person: ChatPage) -> str:
    """The node the page's socket reached: the name part of the hello frame's node id."""
    return person.page.evaluate("window.chatd.connection.node").split("/")[0]


def test_two_browsers_on_two_nodes_chat_and_a_killed_node_loses_nothing(
    cluster: Callable[..., LocalCluster], people: Callable[..., ChatPage]
) -> None:
    c = cluster(2)
    room = "team"
    alice = people("alice").goto(c, room).sign_in()  # type: ignore[arg-type]
    alice.wait_live(room)
    bob = people("bob").goto(c, room).sign_in()  # type: ignore[arg-type]
    bob.wait_live(room)
    # nginx takes turns per request, and how many REST calls a page makes before its socket opens changes as the
    # page grows: reload until bob's socket reaches the other node (at most a few turns of two).
    for _ in range(6):
        if node_of(bob) != node_of(alice):
            break
        bob.page.reload()
        bob.wait_live(room)
    assert {node_of(alice), node_of(bob)} == {"node1", "node2"}  # two people on two nodes
    sent = ["hi bob, I am on " + node_of(alice), "hi alice, I am on " + node_of(bob)]
    alice.send(sent[0])
    bob.wait_bodies(sent[:1])  # sent from two nodes at once, the two could be stored in either order
    bob.send(sent[1])
    alice.wait_bodies(sent)
    bob.wait_bodies(sent)

    doomed = node_of(alice)
    next(n for n in c.nodes if n.settings["server"]["node_id"] == doomed).kill()
    alice.send("written while my node died")  # pending until the page is back, then sent once
    eventually(alice.page, lambda: node_of(alice) not in ("", doomed), "alice's page on the surviving node")
    alice.wait_connected()
    bob.send("still here")
    expected = [*sent, "written while my node died", "still here"]
    alice.wait_bodies(expected)
    bob.wait_bodies(expected)
    assert alice.seqs() == bob.seqs() == [1, 2, 3, 4]
    alice.screenshot("cluster-alice-after-failover.png")
    stored = httpx.get(f"{c.http}/api/rooms/{room}/messages?user=carol").json()["messages"]
    assert [m["body"] for m in stored] == expected
