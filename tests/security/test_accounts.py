"""Finding 6: password guessing and mass registration are throttled and logged; nobody races to admin."""

from __future__ import annotations

import pytest
from security.conftest import bearer, hardened, new_user, post

from harness import ChatdProcess, run_cli


def login(server: ChatdProcess, name: str, password: str, ip: str):
    return post(server, "/api/auth/login", ip, json={"username": name, "password": password})


def test_sign_in_attempts_are_limited_per_client_address(make_server) -> None:
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token", "attempts_per_minute": 4}})).start()
    codes = [login(server, f"who{i}", "whatever1", "127.0.0.31").status_code for i in range(6)]
    assert codes[:4] == [401] * 4 and codes[4:] == [429, 429]
    r = login(server, "who", "whatever1", "127.0.0.31")
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    r = post(server, "/api/auth/register", "127.0.0.31", json={"username": "late", "password": "long enough"})
    assert r.status_code == 429  # registration spends from the same per-address budget
    assert login(server, "who", "whatever1", "127.0.0.32").status_code == 401  # another address is not affected


def test_registrations_are_limited_per_client_address(make_server) -> None:
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token", "registrations_per_hour": 3}})).start()
    codes = [
        post(server, "/api/auth/register", "127.0.0.41", json={"username": f"mass{i}", "password": "long enough"})
        for i in range(5)
    ]
    assert [r.status_code for r in codes] == [201, 201, 201, 429, 429]
    assert int(codes[-1].headers["retry-after"]) > 60
    r = post(server, "/api/auth/register", "127.0.0.42", json={"username": "x1", "password": "long enough"})
    assert r.status_code == 201


def test_the_first_registrant_is_not_admin_by_default_and_the_cli_makes_one(make_server) -> None:
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token"}})).start()
    first = new_user(server, "early_bird")
    assert server.get("/api/me", headers=bearer(first)).json()["admin"] is False
    r = run_cli("users", "add", "boss", "--admin", "--config", str(server.config_path), cwd=server.workdir)
    assert r.returncode == 0 and "created admin 'boss'" in r.stderr, r.stderr
    assert server.get("/api/me", headers=bearer(r.stdout.strip())).json()["admin"] is True


@pytest.mark.parametrize("admin_exists", [False, True])
def test_first_user_admin_applies_only_while_no_admin_exists(make_server, admin_exists: bool) -> None:
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token", "first_user_admin": True}}))
    if admin_exists:
        r = run_cli("users", "add", "root", "--admin", "--create", "--config", str(server.config_path))
        assert r.returncode == 0, r.stderr
    server.start()
    first = new_user(server, "first_web_user")
    assert server.get("/api/me", headers=bearer(first)).json()["admin"] is (not admin_exists)
    second = new_user(server, "second_web_user")
    assert server.get("/api/me", headers=bearer(second)).json()["admin"] is False
