"""Local fan-out: bounded outboxes, shedding, packing and the replay seam (no sockets needed)."""

from __future__ import annotations

from chatd.broker.base import Delivery
from chatd.errors import Close
from chatd.hub import Conn, Hub, Outbox
from chatd.metrics import Metrics

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


def follow(hub: Hub, conn: Conn, room: str = "r", last: int = 0) -> None:
    """Join live, with the room's feed anchored at ``last`` as a join anchors it at the store's last seq."""
    hub.join(conn, room, last, hold=False)
    hub.anchor(room, last)


def test_slow_consumer_is_kicked_and_others_keep_receiving() -> None:
    hub = Hub("n1", Metrics())
    slow, slow_kicks = make_conn(hub, "slow", limit=500)
    fast, fast_kicks = make_conn(hub, "fast")
    for c in (slow, fast):
        follow(hub, c)
    for seq in range(1, 21):
        hub.deliver(Delivery("r", seq, "x" * 50, "n1"))
        drain(fast)
    assert slow_kicks == [Close.SLOW_CONSUMER]
    assert fast_kicks == []


def test_replay_seam_has_no_gap_and_no_duplicate() -> None:
    hub = Hub("n1", Metrics())
    conn, _ = make_conn(hub, "u")
    hub.join(conn, "r", 3, hold=True)  # join since=3
    for seq in (4, 5, 6):  # live messages arrive while history is being read
        hub.deliver(Delivery("r", seq, f"m{seq}", "n1"))
    hub.anchor("r", 5)  # the join read the store's last seq: 5
    assert drain(conn) == []  # held during the replay
    replay = ["m4", "m5"]  # the history read saw up to 5
    for text in replay:
        conn.send(text)
    hub.release(conn, "r", 5)
    hub.deliver(Delivery("r", 6, "m6", "n1"))  # a redelivery is ignored
    hub.deliver(Delivery("r", 7, "m7", "n1"))
    assert drain(conn) == ["m4", "m5", "m6", "m7"]


def test_typing_skips_the_typist_connection_only() -> None:
    hub = Hub("n1", Metrics())
    a, _ = make_conn(hub, "alice")
    a2, _ = make_conn(hub, "alice")
    b, _ = make_conn(hub, "bob")
    for c in (a, a2, b):
        follow(hub, c)
    hub.deliver(Delivery("r", 0, "typing", "n1", skip=a.id))
    assert (drain(a), drain(a2), drain(b)) == ([], ["typing"], ["typing"])


def test_presence_changes_only_on_first_and_last_connection_of_a_user() -> None:
    hub = Hub("n1", Metrics())
    a, _ = make_conn(hub, "alice")
    a2, _ = make_conn(hub, "alice")
    assert hub.join(a, "r", 0, hold=False) is True
    assert hub.join(a2, "r", 0, hold=False) is False
    assert {c.uid for c in hub.rooms["r"].members.values()} == {a.uid}
    assert hub.leave(a, "r") is False
    assert hub.unregister(a2) == ["r"]
    assert "r" not in hub.rooms


def test_a_user_is_their_id_and_a_rename_reaches_every_session_of_theirs() -> None:
    hub = Hub("n1", Metrics())
    bob, _ = make_conn(hub, "bob", uid=7)
    bob2, _ = make_conn(hub, "bob", uid=7)
    new_bob, _ = make_conn(hub, "bob", uid=8)  # someone else who took the name: another user
    assert hub.join(bob, "r", 0, hold=False) is True
    assert hub.join(new_bob, "r", 0, hold=False) is True  # a presence change of its own
    assert hub.user_connections(7) == 2 and hub.user_connections(8) == 1
    hub.rename(7, "robert")
    assert (bob.user, bob2.user, new_bob.user) == ("robert", "robert", "bob")
    assert [c.id for c in hub.drop("r", 7)] == [bob.id] and list(hub.rooms["r"].members) == [new_bob.id]


def test_joining_again_on_the_same_connection_holds_for_the_new_replay() -> None:
    hub = Hub("n1", Metrics())
    conn, _ = make_conn(hub, "u")
    assert hub.join(conn, "r", 0, hold=False) is True
    hub.anchor("r", 0)
    hub.deliver(Delivery("r", 1, "m1", "n1"))
    assert hub.join(conn, "r", 0, hold=True) is False  # not a presence change
    hub.deliver(Delivery("r", 2, "m2", "n1"))
    assert drain(conn) == ["m1"]  # m2 is held until the replay ends
    hub.release(conn, "r", 1)
    assert drain(conn) == ["m2"]


def test_a_room_passes_messages_on_in_seq_order_whatever_order_they_arrive_in() -> None:
    hub = Hub("n1", Metrics())
    gaps: list[str] = []
    hub.on_gap = gaps.append
    conn, _ = make_conn(hub, "u")
    follow(hub, conn)
    for seq in (1, 3, 4, 2, 2, 1, 5):  # another node's 2 arrives after our own 3 and 4; repeats too
        hub.deliver(Delivery("r", seq, f"m{seq}", "n2"))
    assert drain(conn) == ["m1", "m2", "m3", "m4", "m5"]
    assert gaps and set(gaps) == {"r"}  # the node was asked to fill the gap while 3 and 4 waited
    assert hub.gaps() == []


def test_a_new_feed_waits_for_its_anchor_then_drops_what_the_store_already_had() -> None:
    hub = Hub("n1", Metrics())
    conn, _ = make_conn(hub, "u")
    hub.join(conn, "r", 0, hold=False)
    for seq in (7, 9, 8):  # published while the join was reading the store's last seq
        hub.deliver(Delivery("r", seq, f"m{seq}", "n2"))
    assert drain(conn) == []
    hub.anchor("r", 7)
    assert drain(conn) == ["m8", "m9"]


def test_frames_waiting_past_the_bound_are_dropped_and_the_gap_is_left_to_the_store() -> None:
    hub = Hub("n1", Metrics(), early_max_bytes=100)
    conn, _ = make_conn(hub, "u")
    follow(hub, conn)
    for seq in range(2, 10):  # seq 1 is missing; 8 frames of 30 bytes do not fit in 100
        hub.deliver(Delivery("r", seq, "x" * 30, "n2"))
    assert hub.gaps() == ["r"]
    assert drain(conn) == []
    for seq in range(1, 10):  # what the node reads from the store to fill it
        hub.deliver(Delivery("r", seq, f"m{seq}", ""))
    hub.filled("r", 9)
    assert drain(conn) == [f"m{seq}" for seq in range(1, 10)]
    assert hub.gaps() == []
