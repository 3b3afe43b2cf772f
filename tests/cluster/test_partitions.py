"""One node's link to a service fails while the service and the other nodes are fine: a fault proxy of the test's own
(``chatd.bench.faultproxy``) sits between that node and its broker or PostgreSQL.

- A node cut off from PostgreSQL in the middle of a transaction does not stall the other nodes' writes (its session
  is ended by the server, which releases the room's lock).
- A node whose broker link was down (a blackhole long enough to fail a hand-over) takes sends again once the link
  works, with no reconnect needed to notice.
- A sender whose send was refused while the link was down keeps its order: the node refuses what follows on that
  connection until the refused send is resent.

The proxies run in the test's event loop, so everything that blocks (starting and stopping nodes, REST reads) runs
in a thread meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from chatd.bench.faultproxy import FaultProxy
from chatd.deploy.local import LocalCluster
from clients import MakeCluster, history
from harness import Client

ROOM = "cutoff"


async def proxy_for(url: str) -> FaultProxy:
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    return await FaultProxy(parts.hostname, parts.port).start()


@pytest.fixture
async def proxies() -> AsyncIterator[list[FaultProxy]]:
    made: list[FaultProxy] = []
    yield made
    for p in made:
        await p.close()


async def start(make: MakeCluster, nodes: int, **kw: Any) -> LocalCluster:
    return await asyncio.to_thread(make, nodes, **kw)


async def ready(http: str) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{http}/readyz", timeout=2)).json()
    except httpx.HTTPError:
        return {}


async def until(check: Callable[[], Any], timeout: float, what: str) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.1)


async def ack_or_error(client: Client, client_id: str, timeout: float) -> dict[str, Any]:
    """The ack or the error naming ``client_id``, skipping everything else."""
    async with asyncio.timeout(timeout):
        while True:
            frame = await client.recv(timeout)
            if frame.get("client_id") == client_id or frame.get("ref") == client_id:
                if frame["type"] in ("ack", "error"):
                    return frame


async def stop(c: LocalCluster) -> None:
    await asyncio.to_thread(c.stop)  # while the proxies still run, so each node drains and closes cleanly


# --- PostgreSQL: a node cut off mid-transaction --------------------------------------------------------------------


async def idle_in_transaction(dsn: str, ports: set[int]) -> bool:
    """A session of the proxied node waits for its node in the middle of an append (it holds the room's lock)."""
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT client_port, query FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'idle in transaction' AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return any(r["client_port"] in ports and "FOR UPDATE" in r["query"] for r in rows)


async def test_a_node_cut_off_from_postgres_mid_transaction_does_not_stall_the_others(
    cluster: MakeCluster, broker: tuple[str, str], pg_dsn: str, proxies: list[FaultProxy]
) -> None:
    if broker[0] != "redis":
        pytest.skip("a store fault: the broker plays no part, so it runs once")
    pg = await proxy_for(pg_dsn)
    proxies.append(pg)
    c = await start(cluster, 2, node_env={0: {"CHATD_STORE_DSN": pg.via(pg_dsn)}})
    n1, n2 = c.nodes
    a = await Client.connect(n1.ws, user="alice")
    b = await Client.connect(n2.ws, user="bob")
    await a.join(ROOM)
    await b.join(ROOM)
    # A slow link first, so node 1's append sits between statements long enough to be caught there.
    pg.set("delay", 0.4)
    await a.send({"type": "send", "room": ROOM, "body": "held", "client_id": "a1"})
    async with asyncio.timeout(30):
        while not await idle_in_transaction(pg_dsn, pg.upstream_ports):
            await asyncio.sleep(0.02)
    pg.set("blackhole")  # node 1's transaction is open, holding the room's row lock, and its node is gone
    await b.send({"type": "send", "room": ROOM, "body": "not stalled", "client_id": "b1"})
    # Node 2 stores its send while node 1 is still cut off: the server ended node 1's idle transaction.
    got = await ack_or_error(b, "b1", 30)
    assert got["type"] == "ack", got
    pg.set("pass")
    # Node 1 retries its batch on a new connection once it can reach the database again.
    held = await ack_or_error(a, "a1", 60)
    assert held["type"] == "ack", held
    stored = await asyncio.to_thread(history, n2.http, ROOM)
    assert sorted((m["from"], m["client_id"]) for m in stored) == [("alice", "a1"), ("bob", "b1")]
    assert {m["seq"] for m in stored} == {got["seq"], held["seq"]} == {1, 2}
    for client in (a, b):
        await client.close()
    await stop(c)


# --- the broker: a link that was down comes back by itself ---------------------------------------------------------


async def refused_then_acked(client: Client, room: str, client_id: str, timeout: float) -> int:
    """Resend ``client_id`` every half second, as a client does after ``unavailable``, until it is acked; returns
    how many times it was refused."""
    refused = 0
    async with asyncio.timeout(timeout):
        while True:
            await client.send({"type": "send", "room": room, "body": client_id, "client_id": client_id})
            got = await ack_or_error(client, client_id, timeout)
            if got["type"] == "ack":
                return refused
            assert got["code"] == "unavailable", got
            refused += 1
            await asyncio.sleep(0.5)


async def test_a_node_takes_sends_again_after_its_broker_link_was_blackholed(
    cluster: MakeCluster, broker: tuple[str, str], proxies: list[FaultProxy]
) -> None:
    """12 s of silence on the link (longer than a RabbitMQ publisher confirm may take, and than a Redis command may
    wait), with the connection never closed: sends are refused meanwhile, and accepted again once the link passes
    traffic, without waiting for a reconnect that never comes."""
    c, link, a = await one_node_behind_a_broker_proxy(cluster, broker[1], proxies)
    (n1,) = c.nodes
    assert (await a.say(ROOM, "before", "a0"))["seq"] == 1
    link.set("blackhole")
    cut_at = asyncio.get_running_loop().time()
    await a.send({"type": "send", "room": ROOM, "body": "during", "client_id": "a1"})
    got = await ack_or_error(a, "a1", 30)  # the hand-over times out: refused, so the client resends it later
    assert got["type"] == "error" and got["code"] == "unavailable", got
    await asyncio.sleep(max(0.0, cut_at + 12 - asyncio.get_running_loop().time()))
    link.set("pass")
    await refused_then_acked(a, ROOM, "a1", 45)
    await until(lambda: ready_now(n1.http), 30, "the node says ready again")
    await a.close()
    await stop(c)


async def one_node_behind_a_broker_proxy(
    cluster: MakeCluster, url: str, proxies: list[FaultProxy]
) -> tuple[LocalCluster, FaultProxy, Client]:
    """One node whose broker link goes through a proxy, and a client in ``ROOM`` on it."""
    link = await proxy_for(url)
    proxies.append(link)
    c = await start(cluster, 1, node_env={0: {"CHATD_BROKER_URL": link.via(url)}})
    a = await Client.connect(c.nodes[0].ws, user="alice")
    await a.join(ROOM)
    return c, link, a


async def ready_now(http: str) -> bool:
    return bool((await ready(http)).get("ready"))


# --- a sender's order across a link that comes back ---------------------------------------------------------------


async def test_a_send_refused_while_the_link_was_down_is_not_overtaken_by_the_next_one(
    cluster: MakeCluster, broker: tuple[str, str], proxies: list[FaultProxy]
) -> None:
    """a1 is refused while the broker link is cut; the link comes back; a2 follows on the same socket before the
    client resent a1. a2 must not be stored ahead of a1: it is refused too, until a1 is resent; and so on for
    every send refused meanwhile, in the order they were refused."""
    c, link, a = await one_node_behind_a_broker_proxy(cluster, broker[1], proxies)
    (n1,) = c.nodes
    await a.say(ROOM, "first", "a0")
    link.set("cut")
    await until(lambda: broker_down(n1.http), 30, "the node reports its link down")
    await a.send({"type": "send", "room": ROOM, "body": "refused", "client_id": "a1"})
    got = await ack_or_error(a, "a1", 30)
    assert got["type"] == "error" and got["code"] == "unavailable", got
    link.set("pass")
    await until(lambda: ready_now(n1.http), 30, "the link is back")
    await a.send({"type": "send", "room": ROOM, "body": "next", "client_id": "a2"})
    second = await ack_or_error(a, "a2", 30)
    # The client resends a1, the oldest refused; before it resends a2, it sends something new (a3), as a client
    # does when its user types on: a3 must not overtake a2 either.
    await refused_then_acked(a, ROOM, "a1", 30)
    await a.send({"type": "send", "room": ROOM, "body": "new", "client_id": "a3"})
    third = await ack_or_error(a, "a3", 30)
    for cid, got in (("a2", second), ("a3", third)):
        if got["type"] == "error":
            assert got["code"] == "unavailable", got
            await refused_then_acked(a, ROOM, cid, 30)
    stored = await asyncio.to_thread(history, n1.http, ROOM)
    assert [m["client_id"] for m in stored] == ["a0", "a1", "a2", "a3"], "a resend was stored behind a later send"
    await a.close()
    await stop(c)


async def broker_down(http: str) -> bool:
    return (await ready(http)).get("broker") is False
