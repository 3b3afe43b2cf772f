"""auth.registration = "open" | "invite" | "closed", invite codes from chatd invites, and the per-address limit on
sign-in attempts (429 with Retry-After), through a real server."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from harness import ChatdProcess, run_cli


def ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, r.stderr
    return r


def register(server: ChatdProcess, name: str, invite: str | None = None) -> tuple[int, dict]:
    body = {"username": name, "password": f"{name} password"}
    if invite is not None:
        body["invite"] = invite
    r = server.post("/api/auth/register", json=body)
    return r.status_code, r.json()


def test_invite_mode_needs_a_code_that_makes_one_account(make_server: Callable[..., ChatdProcess]) -> None:
    server = make_server({"auth": {"mode": "token", "registration": "invite"}}).start()
    assert server.get("/api/server").json()["registration_mode"] == "invite"
    status, body = register(server, "nocode")
    assert status == 403 and "invite code" in body["message"]
    codes = ok(run_cli("invites", "create", "--count", "2", "--config", str(server.config_path))).stdout.split()
    assert len(codes) == 2 and len(set(codes)) == 2
    assert register(server, "wrong", "inv_not-a-code")[0] == 403
    assert register(server, "first", codes[0])[0] == 201
    status, body = register(server, "again", codes[0])
    assert status == 403 and "used or expired" in body["message"]
    assert register(server, "first", codes[1])[0] == 409  # the name is taken: the code is given back …
    assert register(server, "second", codes[1])[0] == 201  # … and still works
    listing = ok(run_cli("invites", "list", "--config", str(server.config_path))).stdout
    assert "used by first" in listing and "used by second" in listing


def test_closed_registration_refuses_and_old_booleans_still_work(make_server: Callable[..., ChatdProcess]) -> None:
    closed = make_server({"auth": {"mode": "token", "registration": "closed"}}).start()
    assert register(closed, "anyone")[0] == 403
    assert closed.get("/api/server").json()["registration"] is False
    legacy = make_server({"auth": {"mode": "token", "registration": False}}).start()
    assert register(legacy, "anyone")[0] == 403 and legacy.get("/api/server").json()["registration_mode"] == "closed"
    opened = make_server({"auth": {"mode": "token", "registration": "open"}}).start()
    assert register(opened, "anyone")[0] == 201


def test_sign_in_attempts_past_the_per_address_limit_get_429_with_retry_after(
    make_server: Callable[..., ChatdProcess],
) -> None:
    server = make_server({"auth": {"mode": "token", "attempts_per_minute": 3}}).start()
    answers = [
        server.post("/api/auth/login", json={"username": "ghost", "password": "not the password"}) for _ in range(5)
    ]
    assert [a.status_code for a in answers[:3]] == [401, 401, 401]
    assert answers[4].status_code == 429 and int(answers[4].headers["retry-after"]) >= 1
    refused = sum(a.status_code == 429 for a in answers)
    assert server.metrics()["chatd_http_rate_limited_total"] == refused
