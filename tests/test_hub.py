"""Local fan-out: bounded outboxes, shedding, packing and the replay seam (no sockets needed)."""

from __future__ import annotations

import asyncio

import pytest

from chatd.broker.base import Delivery
from chatd.core.hub import Conn, Hub, Outbox
from chatd.errors import Close
from chatd.metrics import Metrics

pytestmark = pytest.mark.fast  # in-process: ./scripts/test --fast runs it

IDS: dict[str, int] = {}  # user name -> id, for the tests' readability


def make_conn(hub: Hub, user: str, limit: int = 10_000, uid: int | None = None) -> tuple[Conn, list[Close]]:
    kicks: list[Close] = []
    conn = Conn(hub.next_id(), uid or IDS.setdefault(user, len(IDS) + 1), user, None, limit, kicks.append, 0.0)
    hub.register(conn)
    return conn, kicks


def drain(conn: Conn) -> list[str]:
    out: list[str] = []
    while conn.outbox.frames:
        out += conn.outbox.pack(1 << 20).split("\n")
    return out


def test_outbox_packs_frames_up_to_a_byte_budget() -> None:
    box = Outbox(10_000)
    for i in range(10):
        box.push(f"frame{i}")
    assert box.pack(20) == "frame0\nframe1\nframe2"
    assert box.pack(1000).count("\n") == 6
    assert box.size == 0 and not box.frames


def test_outbox_sheds_ephemeral_frames_before_refusing_stored_ones() -> None:
    box = Outbox(100)
    assert box.push("t" * 40, ephemeral=True)
    assert box.push("m" * 40)
    assert box.push("m" * 40)  # over the bound only if the typing frame stayed
    assert [f for f, _ in box.frames] == ["m" * 40, "m" * 40]
    assert box.push("t", ephemeral=True)  # an ephemeral newcomer at the bound is dropped, not fatal
    assert not box.push("m" * 40)  # nothing left to shed: the connection must go
    assert box.overflowed


def follow(hub: Hub, conn: Conn, room: str = "r") -> None:
    """Subscribe and go live at once (what a join without replay does)."""
    hub.release(conn, hub.subscribe(conn, room), 0)


def test_slow_consumer_is_kicked_and_others_keep_receiving() -> None:
    hub = Hub("n1", Metrics())
    slow, slow_kicks = make_conn(hub, "slow", limit=500)
    fast, fast_kicks = make_conn(hub, "fast")
    for c in (slow, fast):
        follow(hub, c)
    for seq in range(1, 21):
        hub.fan("r", seq, "x" * 50)
        drain(fast)
    assert slow_kicks == [Close.SLOW_CONSUMER]
    assert fast_kicks == []


def test_replay_seam_has_no_gap_and_no_duplicate() -> None:
    hub = Hub("n1", Metrics())
    conn, _ = make_conn(hub, "u")
    sub = hub.subscribe(conn, "r")  # a join with since=3
    for seq in (4, 5, 6):  # live frames the room's feed passes on while history is read
        hub.fan("r", seq, f"m{seq}")
    assert drain(conn) == []  # held during the replay
    for text in ["m4", "m5"]:  # the history read saw up to 5
        conn.send(text)
    hub.release(conn, sub, 5)
    hub.fan("r", 6, "m6")  # already released from the held frames: not twice
    hub.fan("r", 7, "m7")
    assert drain(conn) == ["m4", "m5", "m6", "m7"]


def test_typing_skips_the_typist_connection_only() -> None:
    hub = Hub("n1", Metrics())
    a, _ = make_conn(hub, "alice")
    a2, _ = make_conn(hub, "alice")
    b, _ = make_conn(hub, "bob")
    for c in (a, a2, b):
        follow(hub, c)
    hub.fan_ephemeral(Delivery("r", 0, "typing", "n1", skip=a.id))
    assert (drain(a), drain(a2), drain(b)) == ([], ["typing"], ["typing"])


def test_who_follows_a_room_live_is_known_per_user() -> None:
    hub = Hub("n1", Metrics())
    a, _ = make_conn(hub, "alice")
    a2, _ = make_conn(hub, "alice")
    held = hub.subscribe(a, "r")
    assert hub.present("r") == [] and not hub.live_elsewhere("r", a2)  # holding is not live yet
    hub.release(a, held, 0)
    hub.subscribe(a2, "r")
    assert hub.present("r") == [a.uid] and hub.live_elsewhere("r", a2) and not hub.live_elsewhere("r", a)
    assert hub.unsubscribe(a, "r") is held
    assert hub.users("r") == [a.uid] and hub.present("r") == []
    hub.unregister(a2)
    assert hub.users("r") == [] and "r" not in hub.rooms


def test_a_user_is_their_id_and_a_rename_reaches_every_session_of_theirs() -> None:
    hub = Hub("n1", Metrics())
    bob, _ = make_conn(hub, "bob", uid=7)
    bob2, _ = make_conn(hub, "bob", uid=7)
    new_bob, _ = make_conn(hub, "bob", uid=8)  # someone else who took the name: another user
    follow(hub, bob)
    assert not hub.live_elsewhere("r", new_bob)  # a presence change of its own
    follow(hub, new_bob)
    assert hub.user_connections(7) == 2 and hub.user_connections(8) == 1
    hub.rename(7, "robert")
    assert (bob.user, bob2.user, new_bob.user) == ("robert", "robert", "bob")
    assert hub.followers("r", 7) == [bob] and sorted(hub.users("r")) == [7, 8]


def test_subscribing_again_on_the_same_connection_holds_for_the_new_replay() -> None:
    hub = Hub("n1", Metrics())
    conn, _ = make_conn(hub, "u")
    follow(hub, conn)
    hub.fan("r", 1, "m1")
    again = hub.subscribe(conn, "r")
    assert again is conn.subs["r"] and again.live  # the same subscription, still live for presence
    hub.fan("r", 2, "m2")
    assert drain(conn) == ["m1"]  # m2 is held until the replay ends
    hub.release(conn, again, 1)
    assert drain(conn) == ["m2"]


class CountingId(int):
    """A user id that counts how often it is compared: what a join or leave costs in the room's size."""

    compared = 0

    def __eq__(self, other: object) -> bool:
        CountingId.compared += 1
        return int.__eq__(self, other)

    __hash__ = int.__hash__


def test_joining_and_leaving_cost_nothing_per_member_already_in_the_room() -> None:
    hub = Hub("n1", Metrics())
    n = 2_000
    conns = [make_conn(hub, f"user{i}", uid=CountingId(i + 1))[0] for i in range(n)]
    CountingId.compared = 0
    for conn in conns:
        follow(hub, conn, "big")
        assert not hub.live_elsewhere("big", conn)
    for conn in conns:
        hub.unsubscribe(conn, "big")
    # Each subscribe, presence question and unsubscribe looks at its own user's entries only; a scan of the room's
    # members per join (what this replaced) compared ids n * n / 2 = 2,000,000 times.
    assert CountingId.compared <= 10 * n
    assert "big" not in hub.rooms


def test_a_frame_larger_than_the_bound_reaches_a_reader_that_keeps_up() -> None:
    box = Outbox(1000)
    big = "b" * 4000  # four times the bound: a message with a body full of escaped characters, say
    assert box.push("small")
    assert box.push(big)  # counts as half the bound: queued behind what fits in the other half
    assert box.pack(64 * 1024).split("\n") == ["small", big]
    assert box.size == 0
    assert box.push(big) and box.push(big)  # two in a row still fit a reader that keeps up
    assert not box.push(big)  # a third without reading: this reader is behind
    assert box.overflowed


def test_a_replay_waits_for_an_empty_outbox_before_an_oversized_frame() -> None:
    async def run() -> None:
        box = Outbox(1000)
        box.push("x" * 300)
        waiting = asyncio.create_task(box.space_for(4000))
        await asyncio.sleep(0)
        assert not waiting.done()
        box.pack(1 << 20)
        await asyncio.wait_for(waiting, 1)
        assert box.push("y" * 4000)

    asyncio.run(run())


def test_oversized_frames_held_during_a_replay_do_not_close_the_connection() -> None:
    hub = Hub("n1", Metrics())
    conn, kicks = make_conn(hub, "u", limit=1000)
    sub = hub.subscribe(conn, "r")
    hub.fan("r", 1, "z" * 4000)
    hub.release(conn, sub, 0)
    assert kicks == [] and drain(conn) == ["z" * 4000]
