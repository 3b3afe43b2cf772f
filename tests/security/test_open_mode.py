"""Round 2, finding 10: a web page cannot drive a server it reaches through the visitor's browser.

Open mode (``serve --dev``) trusts whoever names a user, and listens on loopback only; a page elsewhere could
still send it a cross-site ``text/plain`` POST, or use DNS rebinding (its own name re-pointed at 127.0.0.1) to
make its requests same-origin. Writes with a foreign ``Origin`` are refused in every mode, and open mode answers
only a ``Host`` that is a loopback name."""

from __future__ import annotations

import socket

import pytest
from security.conftest import bearer, defaults, new_user

from harness import ChatdProcess, Client

EVIL = "http://evil.example"


def handshake_status(server: ChatdProcess, host: str, path: str = "/ws?user=victim") -> int:
    """The HTTP status of a WebSocket handshake sent with this Host header."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        return int(s.recv(1024).split(b" ", 2)[1])


def test_a_cross_site_text_plain_post_is_refused_in_open_mode(server: ChatdProcess) -> None:
    r = server.post(
        "/api/rooms/csrf/messages?user=victim",
        content=b'{"body":"posted by another site"}',
        headers={"content-type": "text/plain", "origin": EVIL},
    )
    assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
    r = server.post("/api/rooms?user=victim", json={"name": "csrf2"}, headers={"origin": "null"})
    assert r.status_code == 403  # a sandboxed frame's opaque origin is foreign too
    history = server.get("/api/rooms/csrf/messages?user=victim")
    assert history.status_code == 404 or history.json()["messages"] == []
    # the page's own origin, and a client sending no Origin at all, still write
    own = f"http://127.0.0.1:{server.port}"
    assert server.post("/api/rooms?user=victim", json={"name": "csrf"}, headers={"origin": own}).status_code == 201
    r = server.post("/api/rooms/csrf/messages?user=victim", json={"body": "mine"}, headers={"origin": own})
    assert r.status_code == 201
    assert server.post("/api/rooms/csrf/messages?user=victim", json={"body": "curl"}).status_code == 201


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example:{port}"])
async def test_a_foreign_host_gets_nothing_from_open_mode(server: ChatdProcess, host: str) -> None:
    host = host.format(port=server.port)
    assert server.get("/api/me?user=victim", headers={"host": host}).status_code == 403
    assert server.get("/", headers={"host": host}).status_code == 403
    assert handshake_status(server, host) == 403
    assert server.get("/healthz", headers={"host": host}).status_code == 200  # probes keep answering


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "app.localhost:{port}"])
async def test_loopback_names_still_reach_open_mode(server: ChatdProcess, host: str) -> None:
    host = host.format(port=server.port)
    assert server.get("/api/me?user=local", headers={"host": host}).status_code == 200
    assert handshake_status(server, host, "/ws?user=local") == 101
    c = await Client.connect(server.ws, user="local2")
    await c.close()


def test_token_mode_refuses_cross_site_writes_too(make_server) -> None:
    server: ChatdProcess = make_server(defaults()).start()
    r = server.post(
        "/api/auth/register",
        content=b'{"username":"planted","password":"chosen by a page"}',
        headers={"content-type": "text/plain", "origin": EVIL},
    )
    assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
    token = new_user(server, "planted")  # the name was not taken by the refused request
    assert server.get("/api/me", headers={**bearer(token), "host": "chat.example.org"}).status_code == 200
