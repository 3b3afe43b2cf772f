"""Presence across nodes (``chatd/core/presence.py``), in process: two nodes' GossipPresence joined by a direct link
instead of a broker, and one clock the tests step, so a node's silence expires without waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from chatd.broker.base import Control
from chatd.core.presence import GossipPresence, LocalPresence
from chatd.store.base import UserRef

pytestmark = pytest.mark.fast  # in-process: ./scripts/test --fast runs it

TIMEOUT = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Side:
    """One node's presence, what it announced, and whether its reports get through."""

    def __init__(self, name: str, clock: Clock) -> None:
        self.changes: list[tuple[str, int, str, bool]] = []
        self.link_up = True
        self.peer: Side | None = None
        self.presence = GossipPresence(
            lambda *change: self.changes.append(change), self.send, name, interval=3600, timeout=TIMEOUT, clock=clock
        )

    async def send(self, event: Control) -> None:
        if self.link_up and self.peer is not None:
            self.peer.presence.apply(event)


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not check():
            await asyncio.sleep(0)


@pytest.fixture
async def nodes() -> AsyncIterator[tuple[Side, Side, Clock]]:
    clock = Clock()
    a, b = Side("a/1", clock), Side("b/1", clock)
    a.peer, b.peer = b, a
    tasks = [asyncio.create_task(s.presence.run()) for s in (a, b)]
    await until(lambda: set(a.presence.peers) == {"b/1"} and set(b.presence.peers) == {"a/1"})  # first snapshots
    yield a, b, clock
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_join_on_one_node_is_presence_on_the_other_until_the_leave(nodes: tuple[Side, Side, Clock]) -> None:
    a, b, _ = nodes
    a.presence.joined("r", 7, "ann")
    await until(lambda: b.presence.online("r", 7))
    assert b.presence.users("r") == [UserRef(7, "ann")]
    a.presence.left("r", 7)
    await until(lambda: not b.presence.online("r", 7))
    assert b.changes == [("r", 7, "ann", True), ("r", 7, "ann", False)]
    assert a.changes == b.changes  # each node announces the same changes to its own sockets


async def test_a_user_on_two_nodes_stays_present_until_their_last_node_leaves(nodes: tuple[Side, Side, Clock]) -> None:
    a, b, _ = nodes
    a.presence.joined("r", 7, "ann")
    b.presence.joined("r", 7, "ann")
    await until(lambda: 7 in a.presence.peers["b/1"].rooms.get("r", {}))
    a.presence.left("r", 7)
    await until(lambda: 7 not in b.presence.peers["a/1"].rooms.get("r", {}))
    assert a.presence.online("r", 7) and b.presence.online("r", 7)
    assert a.changes == b.changes == [("r", 7, "ann", True)]  # no flicker
    b.presence.left("r", 7)
    await until(lambda: not a.presence.online("r", 7))
    assert a.changes[-1] == ("r", 7, "ann", False)


async def test_a_silent_node_is_forgotten_after_the_timeout_with_its_users(nodes: tuple[Side, Side, Clock]) -> None:
    a, b, clock = nodes
    b.presence.joined("r", 8, "bob")
    await until(lambda: a.presence.online("r", 8))
    b.link_up = False  # b dies, or its link does: no more reports
    clock.now += TIMEOUT - 1
    a.presence.expire()
    assert a.presence.online("r", 8)  # not yet: a report could still come
    clock.now += 2
    assert not a.presence.online("r", 8)  # a stale report no longer counts, even before the sweep
    a.presence.expire()
    assert a.changes == [("r", 8, "bob", True), ("r", 8, "bob", False)] and "b/1" not in a.presence.peers


async def test_a_lost_report_is_repaired_by_the_next_snapshot(nodes: tuple[Side, Side, Clock]) -> None:
    a, b, _ = nodes
    a.link_up = False
    a.presence.joined("r", 9, "cy")  # the delta is lost (at most once)
    await until(lambda: a.presence._outgoing is not None and a.presence._outgoing.empty())
    assert not b.presence.online("r", 9)
    a.link_up = True
    a.presence.report_all_now()  # as after the link comes back
    await until(lambda: b.presence.online("r", 9))
    assert b.changes == [("r", 9, "cy", True)]


async def test_a_rename_changes_the_name_wherever_it_is_held(nodes: tuple[Side, Side, Clock]) -> None:
    a, b, _ = nodes
    a.presence.joined("r", 7, "ann")
    await until(lambda: b.presence.online("r", 7))
    for side in (a, b):
        side.presence.rename(7, "anna")  # the user~ control event reaches every node
    assert a.presence.users("r") == b.presence.users("r") == [UserRef(7, "anna")]


def test_one_node_is_the_whole_truth() -> None:
    changes: list[tuple[str, int, str, bool]] = []
    p = LocalPresence(lambda *change: changes.append(change))
    p.joined("r", 1, "ann")
    p.joined("r", 1, "ann")  # a second connection of the same user: no second announcement
    p.left("r", 1)
    assert changes == [("r", 1, "ann", True), ("r", 1, "ann", False)] and p.count() == 0
