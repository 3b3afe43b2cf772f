"""Finding 1: input chatd cannot decode gets a documented answer, never a crash; real faults are logged."""

from __future__ import annotations

import sqlite3

import httpx
import pytest
import websockets
from security.conftest import bearer, hardened, new_user

from harness import ChatdProcess, Client

INVALID_UTF8 = b'{"\xff":1}'
DEEP = b"[" * 1000 + b"]" * 1000  # a 2 KB frame nested past msgspec's recursion limit
DEEP_IN_FIELD = b'{"type":"join","room":' + b"[" * 1000 + b"]" * 1000 + b"}"


@pytest.mark.parametrize("frame", [INVALID_UTF8, DEEP, DEEP_IN_FIELD, b'{"type":"send","room":"r\xc3","body":"x"}'])
async def test_undecodable_websocket_frames_get_bad_frame_and_the_session_stays(hostile: ChatdProcess, frame) -> None:
    c = await Client.connect(hostile.ws, token=new_user(hostile, f"u{abs(hash(frame)) % 10**8}"))
    await c.ws.send(frame)  # bytes: a binary WebSocket message
    err = await c.expect("error")
    assert err["code"] == "bad_frame" and err["ref"] is None
    await c.send({"type": "ping"})
    assert (await c.expect("pong"))["type"] == "pong"
    await c.close()
    assert "Traceback" not in hostile.log()


@pytest.mark.parametrize("path", ["/api/auth/register", "/api/auth/login", "/api/rooms"])
@pytest.mark.parametrize("body", [INVALID_UTF8, DEEP, b'{"username":"a\xff","password":"xxxxxxxxx"}'])
def test_undecodable_rest_bodies_get_400_in_chatds_shape(hostile: ChatdProcess, path: str, body: bytes) -> None:
    token = new_user(hostile, f"r{abs(hash((path, body))) % 10**8}")
    r = hostile.post(path, content=body, headers={"content-type": "application/json", **bearer(token)})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid" and set(r.json()) == {"code", "message", "ref"}
    assert "internal error" not in hostile.log()  # expected bad input never takes the fault path


@pytest.mark.parametrize("param", ["after", "before"])
@pytest.mark.parametrize("value", [2**53, 2**63, 2**64, -(2**63) - 1])
def test_history_seq_bounds_out_of_range_are_bad_requests(hostile: ChatdProcess, param: str, value: int) -> None:
    token = new_user(hostile, f"h{abs(hash((param, value))) % 10**8}")
    hostile.post("/api/rooms", json={"name": "bounds"}, headers=bearer(token))
    r = hostile.get("/api/rooms/bounds/messages", params={param: value}, headers=bearer(token))
    assert r.status_code == 400 and r.json()["code"] == "invalid", r.text


def test_a_405_names_the_allowed_methods(hostile: ChatdProcess) -> None:
    r = httpx.put(hostile.http + "/api/rooms", timeout=10)
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"
    assert {m.strip() for m in r.headers["allow"].split(",")} >= {"GET", "POST"}


async def test_a_real_server_fault_is_logged_with_its_traceback_and_answered_internal(make_server) -> None:
    """A fault no input explains (here: a table dropped under the running server) is answered with the
    documented ``internal`` shape on REST and WebSocket, logged with a traceback, and the session goes on."""
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token"}})).start()
    token = new_user(server, "victim")
    with sqlite3.connect(server.settings["store"]["path"]) as db:
        db.execute("DROP TABLE members")
    r = server.get("/api/rooms", headers=bearer(token))
    assert r.status_code == 500 and r.json()["code"] == "internal" and set(r.json()) == {"code", "message", "ref"}
    c = await Client.connect(server.ws, token=token)
    await c.send({"type": "join", "room": "anywhere"})
    err = await c.expect("error")
    assert err["code"] == "internal"
    await c.send({"type": "ping"})
    await c.expect("pong")
    await c.close()
    log = server.log()
    assert log.count("Traceback (most recent call last)") >= 2 and "no such table: members" in log
    assert "internal error" in log and token not in log


async def test_no_close_code_outside_the_documented_table(hostile: ChatdProcess) -> None:
    """The old server closed with litestar's 4500 on undecodable frames; every close must be one of ours."""
    from chatd.errors import Close

    async with websockets.connect(hostile.ws, additional_headers=bearer(new_user(hostile, "closer"))) as ws:
        await ws.recv()
        for frame in (INVALID_UTF8, DEEP):
            await ws.send(frame)
            assert b"bad_frame" in (await ws.recv()).encode()
        await ws.close()
        assert ws.close_code in {int(c) for c in Close} | {1000}
