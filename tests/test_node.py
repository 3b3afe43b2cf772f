"""A Node in this process (memory broker, SQLite store): the send path through the worker, and the control events
other nodes send it (``chatd/core/cluster.py``) applied to its own connections. No server process and no socket: a
connection is the hub's ``Conn``, and what it was sent is read from its outbox."""

from __future__ import annotations

import asyncio

import pytest
from inprocess import sent

from chatd.broker.base import Completion, Control
from chatd.core.cluster import KICK_TOKEN, KICK_USER, TELL_USER, USER_GONE, USER_RENAMED
from chatd.core.hub import Conn
from chatd.core.node import Node
from chatd.errors import ChatError, Close, Err
from chatd.protocol.frames import Message, encode

pytestmark = pytest.mark.fast  # in-process: ./scripts/test --fast runs it

OTHER = "other-node/1"  # where the control events below come from


class Sock:
    """A local connection of one user and how it was closed, if it was."""

    def __init__(self, node: Node, uid: int, name: str, token_hash: str | None = None) -> None:
        self.closed: list[Close] = []
        self.conn = Conn(node.hub.next_id(), uid, name, token_hash, 1 << 20, self.closed.append, 0.0)
        node.hub.register(self.conn)


async def send(node: Node, uid: int, room: str, body: str, client_id: str) -> Completion:
    done: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
    await node.submit(uid, room, body, client_id, [], done.set_result)
    return await asyncio.wait_for(done, 5)


async def test_a_send_is_answered_after_it_is_stored_and_reaches_the_rooms_followers(node: Node) -> None:
    ann = (await node.store.create_user("ann", None)).id
    bob = (await node.store.create_user("bob", None)).id
    await node.store.create_room("r", False, ann)
    await node.store.add_member("r", bob)
    reader = Sock(node, bob, "bob")
    await node.join(reader.conn, "r", None)
    sent(reader.conn)  # what joining said
    done = await send(node, ann, "r", "hello", "c1")
    assert (done.seq, done.duplicate, done.error) == (1, False, "")
    assert [m.body for m in await node.store.history("r", after=0)] == ["hello"]  # acked means stored
    async with asyncio.timeout(5):
        while not (frames := sent(reader.conn)):
            await asyncio.sleep(0.01)
    assert [(f["type"], f["seq"], f["body"], f["from"]) for f in frames] == [("message", 1, "hello", "ann")]


async def test_a_resend_with_the_same_client_id_is_stored_once(node: Node) -> None:
    ann = (await node.store.create_user("ann", None)).id
    await node.store.create_room("r", False, ann)
    first = await send(node, ann, "r", "once", "same")
    again = await send(node, ann, "r", "once", "same")
    assert (again.seq, again.duplicate) == (first.seq, True)
    assert len(await node.store.history("r", after=0)) == 1


async def test_a_non_member_of_a_private_room_is_refused_before_anything_is_queued(node: Node) -> None:
    owner = (await node.store.create_user("owner", None)).id
    eve = (await node.store.create_user("eve", None)).id
    await node.store.create_room("secret", True, owner)
    with pytest.raises(ChatError) as refused:
        await node.submit(eve, "secret", "let me in", "c1", [], lambda c: None)
    assert refused.value.err == Err.NOT_FOUND  # a private room's outsider is told what a missing room's is (20.9)
    assert node.broker.depth() == 0 and await node.store.history("secret", after=0) == []


async def test_kicks_from_another_node_close_exactly_the_sockets_they_name(node: Node) -> None:
    ann, ann_phone, bob = Sock(node, 1, "ann", "token-a"), Sock(node, 1, "ann", "token-b"), Sock(node, 2, "bob")
    node.cluster.apply(Control(KICK_TOKEN, ["1", "token-b", str(int(Close.UNAUTHORIZED))], origin=OTHER))
    assert (ann.closed, ann_phone.closed, bob.closed) == ([], [Close.UNAUTHORIZED], [])
    node.cluster.apply(Control(KICK_USER, ["1", str(int(Close.UNAUTHORIZED))], origin=OTHER))
    assert ann.closed == [Close.UNAUTHORIZED] and bob.closed == []
    node.cluster.apply(Control(USER_GONE, ["2"], origin=OTHER))
    assert bob.closed == [Close.UNAUTHORIZED]


async def test_a_frame_for_a_user_reaches_each_of_their_sockets_and_no_one_else(node: Node) -> None:
    ann, ann_phone, bob = Sock(node, 1, "ann"), Sock(node, 1, "ann"), Sock(node, 2, "bob")
    frame = encode(Message(room="dm", seq=1, from_="bob", body="psst", client_id="x", ts=1, uid=2))
    node.cluster.apply(Control(TELL_USER, ["1"], payload=frame, origin=OTHER))
    assert [f["body"] for f in sent(ann.conn)] == [f["body"] for f in sent(ann_phone.conn)] == ["psst"]
    assert sent(bob.conn) == []


async def test_a_rename_on_another_node_renames_the_sessions_here_and_tells_every_socket(node: Node) -> None:
    ann, bob = Sock(node, 1, "ann"), Sock(node, 2, "bob")
    node.cluster.apply(Control(USER_RENAMED, ["1", "anna", "ann"], origin=OTHER))
    assert ann.conn.user == "anna" and bob.conn.user == "bob"
    for sock in (ann, bob):
        assert [(f["type"], f["uid"], f["name"], f["was"]) for f in sent(sock.conn)] == [("user", 1, "anna", "ann")]


async def test_unknown_or_malformed_control_events_are_ignored_and_the_node_goes_on(node: Node) -> None:
    ann = Sock(node, 1, "ann")
    node.cluster.apply(Control("from-a-newer-node", ["1"], origin=OTHER))
    node.cluster.apply(Control(KICK_USER, ["not-a-number", "4401"], origin=OTHER))
    node.cluster.apply(Control(KICK_USER, [], origin=OTHER))
    assert ann.closed == []
    node.cluster.apply(Control(KICK_USER, ["1", str(int(Close.UNAUTHORIZED))], origin=OTHER))
    assert ann.closed == [Close.UNAUTHORIZED]
