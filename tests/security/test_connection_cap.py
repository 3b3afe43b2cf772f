"""Finding 2: the per-user and total connection caps hold under concurrent handshakes."""

from __future__ import annotations

import asyncio

import websockets
from security.conftest import bearer, hardened, new_user

from harness import ChatdProcess


async def _storm(server: ChatdProcess, headers: dict[str, str], n: int) -> tuple[list, int]:
    """Open ``n`` sessions at once; returns the ones that got a hello (still open) and how many were refused."""

    async def one() -> object | None:
        try:
            ws = await websockets.connect(server.ws, additional_headers=headers, open_timeout=30)
        except (OSError, websockets.InvalidHandshake, TimeoutError):
            return None
        try:
            first = await asyncio.wait_for(ws.recv(), 30)
        except websockets.ConnectionClosed as e:
            assert e.rcvd is not None and e.rcvd.code == 4029, e
            return None
        assert '"hello"' in first
        return ws

    results = await asyncio.gather(*(one() for _ in range(n)))
    opened = [ws for ws in results if ws is not None]
    return opened, n - len(opened)


async def test_one_user_cannot_exceed_the_per_user_cap_with_simultaneous_handshakes(make_server) -> None:
    server: ChatdProcess = make_server(
        hardened({"auth": {"mode": "token"}, "limits": {"max_connections_per_user": 5}})
    ).start()
    token = new_user(server, "stormer")
    opened, refused = await _storm(server, bearer(token), 200)
    try:
        assert len(opened) == 5 and refused == 195
        assert server.metrics()["chatd_connections"] == 5
    finally:
        await asyncio.gather(*(ws.close() for ws in opened))
    # the slots come back when sessions end (the server notices the closes a moment later)
    for _ in range(100):
        again, _ = await _storm(server, bearer(token), 5)
        await asyncio.gather(*(ws.close() for ws in again))
        if len(again) == 5:
            break
        await asyncio.sleep(0.1)
    assert len(again) == 5


async def test_the_total_cap_holds_under_simultaneous_handshakes(make_server) -> None:
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token"}, "limits": {"max_connections": 7}})).start()
    tokens = [new_user(server, f"many{i}") for i in range(4)]
    storms = await asyncio.gather(*(_storm(server, bearer(t), 40) for t in tokens))
    opened = [ws for got, _ in storms for ws in got]
    try:
        assert len(opened) == 7
        assert server.metrics()["chatd_connections"] == 7
    finally:
        await asyncio.gather(*(ws.close() for ws in opened))
