"""Logs after a full session: one JSON object per line with --log-format json, the events that matter (sessions
opening and closing with their code, refusals, failed sign-ins, start-up settings), and never a message body, a
password, a token or a ticket."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

from harness import ChatdProcess, Client, run_cli

BODY = "the-secret-body-7f3a"
PASSWORD = "pw-never-logged-91c2"
WRONG = "wrong-pw-never-logged-5d8e"


async def test_a_full_session_logs_events_as_json_and_never_a_secret(make_server: Callable[..., ChatdProcess]) -> None:
    server = make_server({"auth": {"mode": "token"}, "server": {"log_format": "json"}}).start()
    reg = server.post("/api/auth/register", json={"username": "logan", "password": PASSWORD})
    assert reg.status_code == 201
    assert server.post("/api/auth/login", json={"username": "logan", "password": WRONG}).status_code == 401
    token = server.post("/api/auth/login", json={"username": "logan", "password": PASSWORD}).json()["token"]
    auth = {"authorization": f"Bearer {token}"}
    ticket = server.post("/api/auth/ticket", headers=auth).json()["ticket"]
    c = await Client.connect(server.ws + f"?ticket={ticket}")
    await c.join("logs")
    await c.say("logs", BODY, "l1")
    r = server.post("/api/rooms/logs/messages", json={"body": BODY + "-rest", "client_id": "l2"}, headers=auth)
    assert r.status_code == 201
    await c.close()
    refused = await Client.connect(server.ws, token="chatd_not-a-real-token-3b1d", hello=False)
    assert (await refused.closed())[0] == 4401
    second = await Client.connect(server.ws, token=token)
    assert run_cli("users", "disable", "logan", "--config", str(server.config_path)).returncode == 0
    assert (await second.closed())[0] == 4401
    httpx.post(server.http + "/api/auth/logout", headers=auth)
    server.stop()

    lines = server.log().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"ts", "level", "logger", "msg"} <= set(e) for e in entries)
    text = server.log()
    for secret in (BODY, PASSWORD, WRONG, token, ticket, "chatd_not-a-real-token-3b1d"):
        assert secret not in text, f"{secret[:12]}… is in the log"
    messages = [e["msg"] for e in entries]

    def logged(*words: str) -> bool:
        return any(all(w in m for w in words) for m in messages)

    assert logged("listening on") and logged("settings:", "registration")
    assert logged("login failed", "'logan'")
    assert logged("opened: user 'logan'") and logged("closed: user 'logan'", "code 1000", "closed by the client")
    assert logged("closed: user 'logan'", "code 4401", "closed by the server")
    assert logged("WebSocket refused", "4401")


def test_text_is_the_default_and_serve_takes_log_format() -> None:
    r = run_cli("serve", "--help")
    assert "--log-format" in r.stdout and "json" in r.stdout
