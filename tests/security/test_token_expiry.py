"""Round 2, finding 7: a WebSocket session ends with its credential. Under ``auth.token_ttl`` a socket opened with
a token (or with a ticket traded for one) is closed with 4401 when the token expires, however busy it keeps
itself; before, REST answered 401 while the socket's sends were still acked and its heartbeats kept it alive."""

from __future__ import annotations

import asyncio
import time

import websockets
from security.conftest import bearer, hardened, new_user

from harness import ChatdProcess, Client

TTL = 3.0


async def busy_until_closed(c: Client, room: str, limit: float) -> tuple[int | None, int]:
    """Send, read and answer pings as a live client does until the server closes; (close code, sends acked)."""
    deadline = time.monotonic() + limit
    acked = 0
    n = 0
    while time.monotonic() < deadline:
        try:
            n += 1
            await c.send({"type": "send", "room": room, "body": f"still here {n}", "client_id": f"busy{n}"})
            while True:
                frame = await c.recv(0.3)
                if frame["type"] == "ping":
                    await c.send({"type": "pong"})
                elif frame["type"] == "ack":
                    acked += 1
                    break
            await asyncio.sleep(0.05)
        except TimeoutError:
            continue
        except websockets.ConnectionClosed as e:
            return (e.rcvd.code if e.rcvd else None), acked
    return None, acked


async def test_a_socket_is_closed_with_4401_when_its_token_expires(make_server) -> None:
    server: ChatdProcess = make_server(
        hardened({"auth": {"mode": "token", "token_ttl": TTL}, "limits": {"heartbeat_interval": 0.5}})
    ).start()
    token = new_user(server, "mayfly")
    c = await Client.connect(server.ws, token=token)
    await c.join("brief")
    code, acked = await busy_until_closed(c, "brief", TTL + 10)
    assert code == 4401 and acked > 0
    assert server.get("/api/me", headers=bearer(token)).status_code == 401
    assert "its token expired" in server.log()


async def test_a_socket_opened_with_a_ticket_ends_with_the_token_behind_it(make_server) -> None:
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token", "token_ttl": TTL}})).start()
    token = new_user(server, "mayfly2")
    ticket = server.post("/api/auth/ticket", headers=bearer(token)).json()["ticket"]
    c = await Client.connect(f"{server.ws}?ticket={ticket}")
    await c.join("brief2")
    code, acked = await busy_until_closed(c, "brief2", TTL + 10)
    assert code == 4401 and acked > 0
