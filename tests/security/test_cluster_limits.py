"""Round 2, finding 6: limits hold across nodes. A user spread over N nodes got N times every limit (sends, sockets,
login guesses), and one WebSocket ticket opened a session on each node. With the Redis broker the limits live in
Redis (``plugins/redis_limits.py``); one-use credentials (tickets, admin control requests) are claimed in the
store, so they hold over RabbitMQ too. Two real nodes over Redis (or RabbitMQ) and PostgreSQL, each test in its
own namespace and database; clients talk to each node directly to pick where they land."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from security.conftest import hardened
from security.test_control_replay import SECRET, control, signed

from chatd.deploy.local import LocalCluster
from chatd.deploy.procs import free_port
from harness import Client

MakeCluster = Callable[..., LocalCluster]


@pytest.fixture
def limits_broker(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(backend, url): Redis unless a test parametrizes it (indirectly) with "rabbitmq"."""
    backend = getattr(request, "param", "redis")
    return backend, request.getfixturevalue("redis_url" if backend == "redis" else "rabbit_url")


@pytest.fixture
def two_nodes(
    tmp_path: Path, namespace: str, pg_dsn: str, need_nginx: None, limits_broker: tuple[str, str]
) -> Iterator[MakeCluster]:
    """``two_nodes(settings)``: two nodes in token mode on chatd's own limits plus ``settings``."""
    started: list[LocalCluster] = []

    def make(settings: dict[str, dict[str, Any]] | None = None) -> LocalCluster:
        backend, url = limits_broker
        base = hardened({"auth": {"mode": "token", "secret": SECRET}, **(settings or {})})
        run = LocalCluster(tmp_path / f"c{len(started)}", 2, backend, url, pg_dsn, namespace, free_port(), base)
        started.append(run)
        return run.start()

    yield make
    for run in started:
        run.stop()


def register(http: str, name: str) -> str:
    r = httpx.post(f"{http}/api/auth/register", json={"username": name, "password": "correct horse"}, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()["token"]


async def acked_of(client: Client, room: str, count: int, prefix: str) -> int:
    """Send ``count`` messages without waiting, then count acks (the rest are refused as rate_limited)."""
    for i in range(count):
        await client.send({"type": "send", "room": room, "body": f"{prefix}{i}", "client_id": f"{prefix}{i}"})
    acks = errors = 0
    while acks + errors < count:
        frame = await client.recv(10)
        if frame["type"] == "ack":
            acks += 1
        elif frame["type"] == "error":
            assert frame["code"] == "rate_limited", frame
            errors += 1
    return acks


async def test_a_users_send_rate_is_one_budget_across_nodes(two_nodes: MakeCluster) -> None:
    c = two_nodes({"limits": {"send_rate": 0.2, "send_burst": 10}})
    n1, n2 = c.nodes
    token = register(n1.http, "spread")
    on1, on2 = await Client.connect(n1.ws, token=token), await Client.connect(n2.ws, token=token)
    await on1.join("flood")
    await on2.join("flood")
    acked = await acked_of(on1, "flood", 10, "a") + await acked_of(on2, "flood", 10, "b")
    assert acked <= 11  # one burst of 10 (plus at most a token refilled meanwhile), not one per node
    await on1.close()
    await on2.close()


async def test_a_users_sockets_are_capped_across_nodes_and_freed_on_close(two_nodes: MakeCluster) -> None:
    c = two_nodes({"limits": {"max_connections_per_user": 3}})
    n1, n2 = c.nodes
    token = register(n1.http, "many-tabs")
    held = [await Client.connect(n1.ws, token=token), await Client.connect(n2.ws, token=token)]
    held.append(await Client.connect(n1.ws, token=token))
    over = await Client.connect(n2.ws, token=token, hello=False)
    assert (await over.closed())[0] == 4029  # the fourth, on the other node
    await held.pop(0).close()  # a slot freed on node 1 is free on node 2 (once node 1 has seen the close)
    for _ in range(50):
        try:
            held.append(await Client.connect(n2.ws, token=token))
            break
        except websockets.ConnectionClosed:
            await asyncio.sleep(0.1)
    else:
        pytest.fail("a closed socket's slot was never freed on the other node")
    for client in held:
        await client.close()


def test_login_guesses_count_on_every_node(two_nodes: MakeCluster) -> None:
    c = two_nodes({"auth": {"login_failures": 3, "lockout_seconds": 600, "attempts_per_minute": 100}})
    n1, n2 = c.nodes
    register(n1.http, "guessed")

    def login(http: str, password: str) -> int:
        body = {"username": "guessed", "password": password}
        return httpx.post(f"{http}/api/auth/login", json=body, timeout=10).status_code

    assert [login(n1.http, f"guess {i}") for i in range(3)] == [401, 401, 401]
    assert login(n2.http, "guess on the other node") == 429  # not three more guesses per node


@pytest.mark.parametrize("limits_broker", ["redis", "rabbitmq"], indirect=True)
async def test_a_ticket_opens_one_session_on_one_node(two_nodes: MakeCluster) -> None:
    c = two_nodes()
    n1, n2 = c.nodes
    token = register(n1.http, "ticketed")
    ticket = httpx.post(f"{n1.http}/api/auth/ticket", headers={"Authorization": f"Bearer {token}"}).json()["ticket"]
    first = await Client.connect(f"{n1.ws}?ticket={ticket}")
    assert first.hello["user"] == "ticketed"
    replay = await Client.connect(f"{n2.ws}?ticket={ticket}", hello=False)
    assert (await replay.closed())[0] == 4401
    await first.close()


@pytest.mark.parametrize("limits_broker", ["redis", "rabbitmq"], indirect=True)
def test_a_control_request_applied_by_one_node_is_refused_by_the_other(two_nodes: MakeCluster) -> None:
    c = two_nodes()
    n1, n2 = c.nodes
    body, headers = signed([["kick-user", "999999"]])  # users are named by id
    assert control(n1.http, body, headers).status_code == 200
    r = control(n2.http, body, headers)
    assert r.status_code == 401 and r.json()["code"] == "unauthorized", r.text
