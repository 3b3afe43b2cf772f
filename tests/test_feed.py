"""The room feed (chatd/core/feed.py) in-process, over a real SQLite store: order, gaps, the sweep, epochs, and the
replay seam's answers. Deliveries are injected as the broker or the worker would hand them over."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chatd.broker.base import Delivery
from chatd.core.feed import Feeds
from chatd.core.hub import Conn, Hub
from chatd.errors import ChatError, Close, Err
from chatd.metrics import Metrics
from chatd.protocol.frames import Message, encode
from chatd.store.base import NewMessage
from chatd.store.sqlite import SQLiteStore

pytestmark = pytest.mark.fast  # in-process: ./scripts/test --fast runs it

U = 1  # the id of user "u", the first user of each test's store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "chatd.db")
    await s.open()
    assert (await s.create_user("u", None)).id == U
    yield s
    await s.close()


class Node:
    """A hub and its feeds over the store, with presence changes recorded."""

    def __init__(self, store: SQLiteStore, **kw: Any) -> None:
        self.store = store
        self.hub = Hub("n1", Metrics())
        self.presence: list[tuple[str, str, bool]] = []
        settings = {"replay_max": 1000, "gap_wait": 60.0, "sweep_interval": 60.0, **kw}
        self.feeds = Feeds(
            self.hub,
            store,
            self.hub.metrics,
            lambda room, uid, name, online: self.presence.append((room, name, online)),
            **settings,
        )
        self.kicks: list[Close] = []

    def conn(self, user: str = "u", limit: int = 1 << 20, uid: int = U) -> Conn:
        conn = Conn(self.hub.next_id(), uid, user, None, limit, self.kicks.append, 0.0)
        self.hub.register(conn)
        return conn

    async def join(self, conn: Conn, room: str = "r", since: int | None = None, epoch: str | None = None) -> None:
        async def allowed() -> None:
            return None

        await self.feeds.join(conn, room, since, epoch, allowed)


def frames(conn: Conn) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while conn.outbox.frames:
        out += [json.loads(line) for line in conn.outbox.pack(1 << 20).split("\n")]
    return out


def seqs(conn: Conn) -> list[int]:
    return [f["seq"] for f in frames(conn) if f["type"] == "message"]


def delivery(seq: int, room: str = "r") -> Delivery:
    return Delivery(room, seq, encode(Message(room, seq, "u", f"m{seq}", f"c{seq}", 0, uid=U)), "n2")


async def append(store: SQLiteStore, n: int, room: str = "r") -> None:
    """Store ``n`` messages in ``room`` without delivering them (their publish is lost)."""
    base = await store.last_seq(room)
    await store.append([NewMessage(room, U, f"s{base + i}", f"m{base + i}") for i in range(1, n + 1)])


async def test_a_room_passes_frames_on_in_seq_order_whatever_order_they_arrive_in(store: SQLiteStore) -> None:
    await store.create_room("r", False, U)
    node = Node(store)
    conn = node.conn()
    await node.join(conn)
    assert [f["type"] for f in frames(conn)] == ["joined"]
    for seq in (1, 3, 4):  # another node's 2 arrives after our own 3 and 4
        node.feeds.deliver(delivery(seq))
    assert node.feeds.fills_pending() == 1 and node.feeds.gaps() == ["r"]  # the store is asked if 2 stays missing
    for seq in (2, 2, 1, 5):  # and repeats
        node.feeds.deliver(delivery(seq))
    assert seqs(conn) == [1, 2, 3, 4, 5]
    assert node.feeds.gaps() == []
    assert node.presence == [("r", "u", True)]
    await node.feeds.close()
    assert node.feeds.fills_pending() == 0  # the cancelled fill was awaited


async def test_a_new_feed_holds_what_arrives_before_its_anchor_and_drops_what_the_store_had(
    store: SQLiteStore,
) -> None:
    await store.create_room("r", False, U)
    await append(store, 7)
    node = Node(store)
    conn = node.conn()
    go = asyncio.Event()

    async def authorize() -> None:
        for seq in (7, 9, 8):  # published while the join was being authorized
            node.feeds.deliver(delivery(seq))
        await go.wait()

    joining = asyncio.create_task(node.feeds.join(conn, "r", None, None, authorize))
    await asyncio.sleep(0.05)
    assert frames(conn) == []  # nothing before the answer
    go.set()
    await joining
    got = frames(conn)
    assert got[0]["type"] == "joined" and got[0]["seq"] == 7
    assert [f["seq"] for f in got[1:]] == [8, 9]


async def test_frames_past_the_early_bound_are_dropped_and_the_store_fills_the_whole_gap(store: SQLiteStore) -> None:
    await store.create_room("r", False, U)
    node = Node(store, gap_wait=0.0, early_max_bytes=300)
    conn = node.conn()
    await node.join(conn)
    frames(conn)
    await append(store, 9)
    for seq in range(2, 10):  # seq 1's publish was lost; 8 frames of ~90 bytes do not fit in 300
        node.feeds.deliver(delivery(seq))
    for _ in range(100):
        if not node.feeds.fills_pending():
            break
        await asyncio.sleep(0.01)
    assert [(f["seq"], f["body"]) for f in frames(conn)] == [(s, f"m{s}") for s in range(1, 10)]  # the store's
    assert node.feeds.gaps() == [] and node.hub.metrics.gap_fills >= 9


async def test_the_sweep_fills_a_room_behind_the_store(store: SQLiteStore) -> None:
    await store.create_room("r", False, U)
    node = Node(store)
    conn = node.conn()
    await node.join(conn)
    frames(conn)
    await append(store, 3)  # stored elsewhere; every publish lost, so no later message shows a gap
    await node.feeds.sweep()
    for _ in range(100):
        if not node.feeds.fills_pending():
            break
        await asyncio.sleep(0.01)
    assert seqs(conn) == [1, 2, 3]


async def test_a_room_made_again_behind_a_feeds_back_resets_its_subscribers(store: SQLiteStore) -> None:
    await store.create_room("r", False, U)
    node = Node(store)
    old = node.conn()
    await node.join(old)
    epoch = frames(old)[0]["epoch"]
    # Deleted and made again by another node; this node missed the event.
    await store.delete_room("r")
    await store.create_room("r", False, U)
    newcomer = node.conn()
    await node.join(newcomer)
    joined = frames(newcomer)[0]
    assert joined["epoch"] != epoch and "reset" not in joined
    (told,) = frames(old)
    assert (told["type"], told["code"], told["room"]) == ("error", "unavailable", "r")
    assert "r" not in old.subs  # it joins again, and is answered with a reset
    await append(store, 1)
    node.feeds.deliver(delivery(1))
    assert seqs(newcomer) == [1] and frames(old) == []


async def test_the_sweep_resets_a_feed_whose_room_was_made_again_and_drops_a_deleted_one(store: SQLiteStore) -> None:
    await store.create_room("r", False, U)
    await store.create_room("gone", False, U)
    node = Node(store)
    a, b = node.conn(), node.conn()
    await node.join(a, "r")
    await node.join(b, "gone")
    frames(a), frames(b)
    await store.delete_room("r")
    await store.create_room("r", False, U)
    await store.delete_room("gone")
    await node.feeds.sweep()
    assert [(f["type"], f.get("code"), f["room"]) for f in frames(a)] == [("error", "unavailable", "r")]
    assert [(f["type"], f.get("reason"), f["room"]) for f in frames(b)] == [("left", "removed", "gone")]
    assert a.subs == {} and b.subs == {} and node.hub.rooms == {}
    assert ("r", "u", False) in node.presence and ("gone", "u", False) in node.presence


async def test_a_capped_replay_leaves_the_connection_unsubscribed_until_it_continues(store: SQLiteStore) -> None:
    await store.create_room("r", False, U)
    await append(store, 5)
    node = Node(store, replay_max=3)
    conn = node.conn()
    await node.join(conn, since=0)
    got = frames(conn)
    assert got[0]["capped"] is True and [f["seq"] for f in got[1:]] == [1, 2, 3]
    assert "r" not in conn.subs and node.presence == []
    await node.join(conn, since=3, epoch=got[0]["epoch"])
    got = frames(conn)
    assert "capped" not in got[0] and [f["seq"] for f in got[1:]] == [4, 5]
    assert conn.subs["r"].live and node.presence == [("r", "u", True)]


async def test_a_refused_join_leaves_nothing_subscribed(store: SQLiteStore) -> None:
    node = Node(store)
    conn = node.conn()

    async def refuse() -> None:
        raise ChatError(Err.FORBIDDEN, "private")

    with pytest.raises(ChatError):
        await node.feeds.join(conn, "r", None, None, refuse)
    assert conn.subs == {} and node.hub.rooms == {} and frames(conn) == []
    with pytest.raises(ChatError) as e:  # a room that does not exist (and is not made by the rules)
        await node.join(conn, "nowhere")
    assert e.value.err is Err.NOT_FOUND and conn.subs == {}
