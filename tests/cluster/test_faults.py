"""Faults on several nodes: a node killed mid-burst, the broker lost mid-burst, the store's connections cut
mid-burst. In every case each acked message ends up stored once at its acked seq with no gap, and clients that
stayed connected saw every message in order with no gap.

The shared services are never stopped: the Redis outage uses a redis-server the test starts (and kills) itself,
the RabbitMQ outage closes only this deployment's connections, and the PostgreSQL outage terminates only the
backends of this test's own database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

import services
from chatd.deploy.procs import free_port
from clients import MakeCluster, Reader, Sender, check_stored, history

ROOM = "storm"


async def burst(url: str, users: int, count: int) -> list[Sender]:
    return [Sender(url, f"s{i}", ROOM, count) for i in range(users)]


async def acked_total(senders: list[Sender], at_least: int) -> None:
    async with asyncio.timeout(60):
        while sum(len(s.acked) for s in senders) < at_least:
            await asyncio.sleep(0.02)


def ready(http: str) -> dict:
    try:
        return httpx.get(f"{http}/readyz", timeout=2).json()
    except httpx.HTTPError:
        return {}


def reconnects(http: str) -> float:
    lines = httpx.get(f"{http}/metrics", timeout=5).text.splitlines()
    return next(float(x.split()[1]) for x in lines if x.startswith("chatd_broker_reconnects_total "))


def link_dropped(http: str) -> bool:
    """The node's link is down now, or went down and came back."""
    return ready(http).get("broker") is False or reconnects(http) >= 1


async def until(check, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.1)


async def test_kill_9_a_node_mid_burst_loses_no_acked_message(cluster: MakeCluster) -> None:
    c = cluster(3)
    n1, n2, n3 = c.nodes
    readers = [await Reader.follow(n.ws, f"reader{i}", ROOM) for i, n in enumerate((n2, n3))]
    senders = await burst(c.ws, 6, 250)
    running = [asyncio.create_task(s.run(timeout=180)) for s in senders]
    await acked_total(senders, 300)
    n1.kill()  # no drain, no goodbye: its sockets drop and its unacked sends were never acked
    await asyncio.gather(*running)
    assert any(s.reconnects for s in senders)  # some senders were on the dead node and moved through nginx
    stored = history(n2.http, ROOM)
    assert len(stored) == 6 * 250
    check_stored(stored, senders)
    for r in readers:  # clients on the surviving nodes saw everything, in order, with no gap
        assert await r.until(len(stored)) == list(range(1, len(stored) + 1))
        await r.close()


async def test_redis_lost_mid_burst_loses_nothing_and_fan_out_resumes_everywhere(
    cluster: MakeCluster, broker: tuple[str, str], tmp_path: Path
) -> None:
    if broker[0] != "redis":
        pytest.skip("this outage is Redis's; RabbitMQ's is the next test")
    own = services.OwnRedis(tmp_path / "redis", free_port()).start()
    try:
        c = cluster(2, broker_url=own.url)
        await outage_mid_burst(c, cut=own.kill, restore=own.start)
    finally:
        own.kill()


async def test_rabbitmq_connections_cut_mid_burst_lose_nothing_and_fan_out_resumes_everywhere(
    cluster: MakeCluster, broker: tuple[str, str], namespace: str
) -> None:
    if broker[0] != "rabbitmq":
        pytest.skip("this outage is RabbitMQ's; Redis's is the previous test")
    c = cluster(2)
    await outage_mid_burst(c, cut=lambda: services.close_rabbit_connections(namespace), restore=lambda: None)


async def outage_mid_burst(c, cut, restore) -> None:  # type: ignore[no-untyped-def]
    n1, n2 = c.nodes
    readers = [await Reader.follow(n.ws, f"reader{i}", ROOM) for i, n in enumerate((n1, n2))]
    senders = await burst(c.ws, 4, 250)
    running = [asyncio.create_task(s.run(timeout=180)) for s in senders]
    await acked_total(senders, 200)
    cutting = asyncio.create_task(asyncio.to_thread(cut))
    # Each node reports its link down (rabbitmqctl cuts one connection at a time, and aio-pika is back within a
    # second, so the two nodes need not be down at the same moment).
    await until(lambda: all(link_dropped(n.http) for n in (n1, n2)), 30)
    await cutting
    await asyncio.sleep(1.0)  # sends are refused meanwhile; the senders resend with the same client_id
    await asyncio.to_thread(restore)
    await until(lambda: ready(n1.http).get("ready") and ready(n2.http).get("ready"), 30)
    await asyncio.gather(*running)
    stored = history(n1.http, ROOM)
    assert len(stored) == 4 * 250
    check_stored(stored, senders)
    for r in readers:  # both nodes caught up from the store: every message, in order, no gap
        assert await r.until(len(stored)) == list(range(1, len(stored) + 1))
    # Fan-out between the nodes works again: a new message on node 1 reaches the reader on node 2 live.
    late = Sender(n1.ws, "late", ROOM, 1)
    await late.run()
    assert (await readers[1].until(len(stored) + 1))[-1] == len(stored) + 1
    for r in readers:
        await r.close()
    assert all(reconnects(n.http) >= 1 for n in (n1, n2))  # the link's comeback is counted


async def test_store_connections_cut_mid_burst_lose_no_acked_message(cluster: MakeCluster, pg_dsn: str) -> None:
    c = cluster(2)
    n1, n2 = c.nodes
    readers = [await Reader.follow(n.ws, f"reader{i}", ROOM) for i, n in enumerate((n1, n2))]
    senders = await burst(c.ws, 4, 250)
    running = [asyncio.create_task(s.run(timeout=180)) for s in senders]
    await acked_total(senders, 200)
    cut = 0
    for _ in range(3):  # pg_terminate_backend on every connection of this deployment, three times over
        cut += await asyncio.to_thread(services.terminate_pg_connections, pg_dsn)
        await asyncio.sleep(0.3)
    assert cut > 0
    await asyncio.gather(*running)
    stored = history(n1.http, ROOM)
    assert len(stored) == 4 * 250
    check_stored(stored, senders)
    for r in readers:
        assert await r.until(len(stored)) == list(range(1, len(stored) + 1))
        await r.close()
