"""Issue 13 item 4: users from the CLI: first admin, tokens for existing users, one password rule, and no store
made by accident."""

from __future__ import annotations

from pathlib import Path

from security.conftest import bearer, hardened, new_user, post

from harness import ChatdProcess, Client, run_cli


def test_users_add_refuses_to_create_a_database_unless_told(tmp_path: Path) -> None:
    r = run_cli("users", "add", "alice", cwd=tmp_path)
    assert r.returncode != 0 and "no chatd database" in r.stderr and "--create" in r.stderr
    assert str(tmp_path / "chatd.db") in r.stderr
    assert not (tmp_path / "chatd.db").exists()
    r = run_cli("users", "add", "alice", "--create", cwd=tmp_path)
    assert r.returncode == 0 and f"store: sqlite {tmp_path / 'chatd.db'}" in r.stderr, r.stderr
    r = run_cli("users", "token", "nobody", cwd=tmp_path / "..")
    assert r.returncode != 0 and "no chatd database" in r.stderr


async def test_users_token_issues_a_token_for_a_user_who_registered_on_the_web(make_server) -> None:
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token"}})).start()
    new_user(server, "WebUser")
    again = run_cli("users", "add", "webuser", "--config", str(server.config_path))
    assert again.returncode != 0 and "already exists" in again.stderr and "chatd users token WebUser" in again.stderr
    r = run_cli("users", "token", "webuser", "--config", str(server.config_path))
    assert r.returncode == 0 and "store: sqlite" in r.stderr, r.stderr
    c = await Client.connect(server.ws, token=r.stdout.strip())
    assert c.hello["user"] == "WebUser"
    await c.close()


def test_cli_passwords_follow_the_web_rule_and_sign_in(make_server) -> None:
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token"}})).start()
    cfg = str(server.config_path)
    short = run_cli("users", "add", "shorty", "--password", "12345", "--config", cfg)
    assert short.returncode != 0 and "passwords are 8-" in short.stderr
    web = post(server, "/api/auth/register", json={"username": "shorty", "password": "12345"})
    assert web.status_code == 400 and "8" in web.json()["message"]  # the same rule: at least 8 characters
    eight = run_cli("users", "add", "eight", "--password", "12345678", "--config", cfg)
    assert eight.returncode == 0, eight.stderr
    import subprocess
    import sys

    from harness import clean_env

    piped = subprocess.run(
        [sys.executable, "-m", "chatd", "users", "add", "piped", "--password-stdin", "--config", cfg],
        input="a good long password\n",
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert piped.returncode == 0 and "with a password" in piped.stderr, piped.stderr
    r = post(server, "/api/auth/login", json={"username": "piped", "password": "a good long password"})
    assert r.status_code == 200
    tokenonly = run_cli("users", "add", "tokenonly", "--config", cfg)
    assert tokenonly.returncode == 0 and "token-only" in tokenonly.stderr and "created user" in tokenonly.stderr
    assert server.get("/api/me", headers=bearer(tokenonly.stdout.strip())).json()["admin"] is False
