"""Finding 3: an unfinished request body is cut, and one address cannot hold more than its share of requests."""

from __future__ import annotations

import json
import socket
import time

import httpx
from security.conftest import hardened, new_user

from harness import ChatdProcess, Client

HEAD = b"POST /api/auth/login HTTP/1.1\r\nHost: chatd\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"


def unfinished_post(server: ChatdProcess, ip: str, first: bytes = b'{"username":') -> socket.socket:
    """A POST that promises 1000 bytes of body and sends a few."""
    s = socket.create_connection(("127.0.0.1", server.port), source_address=(ip, 0))
    s.sendall(HEAD + first)
    return s


def answer(s: socket.socket, timeout: float = 30) -> tuple[int, dict, bytes]:
    """Read until the server closes: (status, headers, body)."""
    s.settimeout(timeout)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def test_a_body_that_never_completes_is_cut_with_408(make_server) -> None:
    """On the defaults (limits.body_timeout = 10 s); the old server kept such a request open for minutes."""
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token"}})).start()
    status, headers, body = answer(unfinished_post(server, "127.0.0.50"), timeout=40)
    assert status == 408 and json.loads(body)["code"] == "timeout"  # and answer() returned: the server closed it


def test_a_drip_fed_body_is_cut_too(make_server) -> None:
    """One byte at a time keeps an idle timer alive forever; the deadline grows only with the bytes received."""
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token"}, "limits": {"body_timeout": 1.0}})).start()
    s = unfinished_post(server, "127.0.0.50", b"{")
    sent = 1
    try:
        for _ in range(100):  # would take 20 s to finish
            time.sleep(0.2)
            s.sendall(b" ")
            sent += 1
    except (BrokenPipeError, ConnectionResetError):
        pass
    status, _, body = answer(s)
    assert status == 408 and json.loads(body)["code"] == "timeout" and sent < 100


def test_requests_in_flight_are_capped_per_address_and_others_are_unaffected(make_server) -> None:
    server: ChatdProcess = make_server(
        hardened({"auth": {"mode": "token"}, "limits": {"body_timeout": 3.0, "max_requests_per_ip": 3}})
    ).start()
    held = [unfinished_post(server, "127.0.0.51") for _ in range(3)]
    time.sleep(0.5)  # let the server take all three in
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.51"), timeout=10) as same:
        r = same.get(server.http + "/api/server")
        assert r.status_code == 429 and r.json()["code"] == "rate_limited" and r.headers["retry-after"] == "1"
        assert same.get(server.http + "/healthz").status_code == 200  # probes are exempt
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.52"), timeout=10) as other:
        assert other.get(server.http + "/api/server").status_code == 200
    assert all(answer(s)[0] == 408 for s in held)
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.51"), timeout=10) as same:
        assert same.get(server.http + "/api/server").status_code == 200  # the slots came back


async def test_a_flood_of_unfinished_bodies_leaves_the_server_usable(make_server) -> None:
    """Hundreds of half-sent POSTs from one address: the server answers the extra ones at once and keeps serving
    everyone else, WebSockets included."""
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token"}, "limits": {"body_timeout": 2.0}})).start()
    token = new_user(server, "bystander")
    flood = [unfinished_post(server, "127.0.0.53") for _ in range(300)]
    refused = 0
    for s in flood[64:]:
        refused += answer(s, timeout=10)[0] == 429
    assert refused == 300 - 64
    assert server.get("/healthz").status_code == 200
    c = await Client.connect(server.ws, token=token)
    await c.send({"type": "ping"})
    await c.expect("pong")
    await c.close()
    assert all(answer(s)[0] == 408 for s in flood[:64])
