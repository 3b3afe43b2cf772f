"""The chatd command line, run as a real process."""

from __future__ import annotations

from pathlib import Path

from harness import ChatdProcess, Client
from test_config import run_cli


async def test_users_add_prints_a_token_that_connects(make_server, tmp_path: Path) -> None:
    server: ChatdProcess = make_server({"auth": {"mode": "token"}})
    r = run_cli("users", "add", "carol", "--config", str(server.config_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert token.startswith("chatd_") and "carol" in r.stderr
    server.start()
    c = await Client.connect(server.ws, token=token)
    assert c.hello["user"] == "carol"
    await c.close()
    again = run_cli("users", "add", "carol", "--config", str(server.config_path), cwd=tmp_path)
    assert again.returncode != 0 and "already exists" in again.stderr


def test_open_mode_refuses_a_public_address(tmp_path: Path) -> None:
    r = run_cli("serve", "--dev", "--host", "0.0.0.0", "--port", "18999", cwd=tmp_path)
    assert r.returncode == 2 and "loopback" in r.stderr


def test_help_shows_examples() -> None:
    r = run_cli("serve", "--help")
    assert r.returncode == 0 and "Example:" in r.stdout and "--dev" in r.stdout
