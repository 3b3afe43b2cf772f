"""The join seam (subscribe → authorize → anchor and replay → release) under forced interleavings, in-process: a
real Node over a real SQLite store and the memory broker, with one store call held (or failed once) so a removal,
a deletion or a fault lands exactly where the test wants it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from inprocess import sent

from chatd.broker.base import Completion
from chatd.core.hub import Conn
from chatd.core.node import Node
from chatd.errors import ChatError, Err

pytestmark = pytest.mark.fast  # in-process: ./scripts/test --fast runs it


IDS: dict[str, int] = {}  # user name -> id, as each test's store gave them


async def user(node: Node, name: str) -> int:
    IDS[name] = (await node.store.create_user(name, None)).id
    return IDS[name]


def conn_of(node: Node, name: str) -> Conn:
    conn = Conn(node.hub.next_id(), IDS[name], name, None, 1 << 20, lambda code: None, 0.0)
    node.hub.register(conn)
    return conn


class Held:
    """Holds one store method's answer for one room until released (the answer itself is the store's)."""

    def __init__(self, node: Node, method: str, match: Callable[..., bool]) -> None:
        self.real = getattr(node.store, method)
        self.match = match
        self.asked = asyncio.Event()
        self.go = asyncio.Event()
        setattr(node.store, method, self)

    async def __call__(self, *args: Any, **kw: Any) -> Any:
        answer = await self.real(*args, **kw)
        if self.match(*args, **kw) and not self.go.is_set():
            self.asked.set()
            await self.go.wait()
        return answer

    async def reached(self) -> None:
        await asyncio.wait_for(self.asked.wait(), 5)


async def send(node: Node, name: str, room: str, body: str, client_id: str) -> Completion:
    done: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
    await node.submit(IDS[name], room, body, client_id, [], done.set_result)
    return await asyncio.wait_for(done, 5)


async def private_room(node: Node) -> None:
    for name in ("owner", "eve"):
        await user(node, name)
    await node.store.create_room("secret", True, IDS["owner"])
    await node.store.add_member("secret", IDS["eve"])


async def test_a_removal_landing_while_the_join_waits_for_its_membership_answer_ends_the_join(node: Node) -> None:
    await private_room(node)
    eve = conn_of(node, "eve")
    held = Held(node, "is_member", lambda room, uid: uid == IDS["eve"])
    joining = asyncio.create_task(node.join(eve, "secret", None))
    await held.reached()  # the store said "member": the answer is on its way back
    assert "secret" in eve.subs  # subscribed (holding) before it was authorized
    owner = await node.store.get_user("owner")
    assert owner is not None and (await node.remove_member("secret", owner, "eve"))[0]
    held.go.set()
    with pytest.raises(ChatError) as refused:
        await joining
    # Answered (with the room, by the gateway), never joined; by then she is an outsider of a private room, who is
    # told what a missing room's asker is told (issue 20, item 9).
    assert refused.value.err is Err.NOT_FOUND
    assert "secret" not in eve.subs and "secret" not in node.hub.rooms
    assert [(f["type"], f.get("change")) for f in sent(eve)] == [("room", "removed")]  # her room list; no joined
    owner_conn = conn_of(node, "owner")
    await node.join(owner_conn, "secret", None)
    assert (await send(node, "owner", "secret", "after the removal", "o1")).seq == 1
    assert [f["type"] for f in sent(owner_conn)] == ["joined", "message"]
    assert sent(eve) == []  # the removed member receives nothing


async def test_a_removal_landing_during_the_replay_stops_it_and_leaves_nothing_subscribed(node: Node) -> None:
    await private_room(node)
    for n in range(3):
        assert (await send(node, "owner", "secret", f"m{n}", f"m{n}")).seq == n + 1
    eve = conn_of(node, "eve")
    held = Held(node, "stream", lambda room, **kw: room == "secret")
    joining = asyncio.create_task(node.join(eve, "secret", 0))
    await held.reached()  # joined is out, the first page of the replay is being read
    owner = await node.store.get_user("owner")
    assert owner is not None and (await node.remove_member("secret", owner, "eve"))[0]
    held.go.set()
    await joining  # the join was answered (joined); the drop told the client
    told = [(f["type"], f.get("reason") or f.get("change")) for f in sent(eve)]
    assert told == [("joined", None), ("left", "removed"), ("room", "removed")]
    assert "secret" not in eve.subs
    await send(node, "owner", "secret", "after", "o9")
    assert sent(eve) == []


async def test_a_room_deleted_while_the_join_reads_its_position_is_answered_not_found(node: Node) -> None:
    await node.store.create_room("doomed", False, await user(node, "ann"))
    ann = conn_of(node, "ann")
    held = Held(node, "position", lambda room: room == "doomed")
    joining = asyncio.create_task(node.join(ann, "doomed", None))
    await held.reached()
    await node.delete_room("doomed", "an admin")
    held.go.set()
    with pytest.raises(ChatError) as refused:
        await joining
    assert refused.value.err is Err.NOT_FOUND
    assert ann.subs == {} and [f["type"] for f in sent(ann)] == ["room"]  # only the room list's "deleted"


async def test_a_history_read_failing_after_joined_is_answered_and_a_new_join_completes(node: Node) -> None:
    await node.store.create_room("long", False, await user(node, "ann"))
    for n in range(450):  # three replay pages
        await send(node, "ann", "long", f"m{n}", f"m{n}")
    await user(node, "bob")
    reader = conn_of(node, "bob")
    real = node.store.stream
    calls = 0

    async def fails_once(room: str, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:  # the second page: after joined and the first 200
            raise OSError("the store's connection dropped")
        return await real(room, **kw)

    node.store.stream = fails_once  # type: ignore[method-assign]
    with pytest.raises(ChatError) as failed:
        await node.join(reader, "long", 0)
    # The store answers again (the fault was a moment's): internal, with an incident id; "unavailable" is for a
    # store that cannot be reached (tests/reliability/test_join_faults.py).
    assert failed.value.err is Err.INTERNAL and "'long' again" in failed.value.message
    assert "long" not in reader.subs  # never half done: not subscribed, and told so (by the gateway, naming it)
    got = sent(reader)
    assert got[0]["type"] == "joined" and [f["seq"] for f in got[1:]] == list(range(1, 201))
    await node.join(reader, "long", 200, got[0]["epoch"])  # the client joins again from what it has
    got = sent(reader)
    assert got[0]["type"] == "joined" and "reset" not in got[0]
    assert [f["seq"] for f in got[1:]] == list(range(201, 451))
    await send(node, "ann", "long", "live", "live")
    assert [f["seq"] for f in sent(reader)] == [451]
