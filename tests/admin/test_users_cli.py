"""``chatd users …`` administration through a real process against a running server (and, for disabling, a
cluster): what each command changes is checked through the server, not the store."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from chatd.deploy.local import LocalCluster
from harness import ChatdProcess, Client, clean_env, register, run_cli


def cli(server: ChatdProcess, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [*args, "--config", str(server.config_path)]
    if stdin is None:
        return run_cli(*cmd)
    return subprocess.run(
        [sys.executable, "-m", "chatd", *cmd], input=stdin, capture_output=True, text=True, env=clean_env(), timeout=60
    )


def ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture
def server(make_server: Callable[..., ChatdProcess]) -> ChatdProcess:
    """A token-mode server of this test's own (the shared module-wide one is in open mode)."""
    return make_server({"auth": {"mode": "token"}}).start()


def me(server: ChatdProcess, token: str) -> httpx.Response:
    return server.get("/api/me", headers={"authorization": f"Bearer {token}"})


async def test_disable_closes_the_users_sockets_and_refuses_them_until_enabled(server: ChatdProcess) -> None:
    token = register(server, "mallory", "mallory's password")
    bystander = register(server, "bystander", "bystander password")
    sock = await Client.connect(server.ws, token=token)
    other = await Client.connect(server.ws, token=bystander)
    r = ok(cli(server, "users", "disable", "Mallory"))
    assert "disabled 'mallory'" in r.stdout and "told the nodes" in r.stderr
    code, _ = await sock.closed()
    assert code == 4401
    assert me(server, token).status_code == 401
    login = server.post("/api/auth/login", json={"username": "mallory", "password": "mallory's password"})
    assert login.status_code == 401 and "disabled" in login.json()["message"]
    listed = ok(cli(server, "users", "list", "--json")).stdout
    assert '"name":"mallory"' in listed and '"disabled":true' in listed
    await other.join("still-here")  # nobody else was touched
    await other.close()
    ok(cli(server, "users", "enable", "mallory"))
    assert me(server, token).status_code == 200


async def test_revoke_closes_only_the_sockets_of_that_token(server: ChatdProcess) -> None:
    first = register(server, "tess", "tess password 1")
    second = ok(cli(server, "users", "token", "tess")).stdout.strip()
    a = await Client.connect(server.ws, token=first)
    b = await Client.connect(server.ws, token=second)
    assert me(server, second).status_code == 200  # a use to show up as "last used"
    table = ok(cli(server, "users", "tokens", "tess")).stdout.splitlines()
    assert table[0].startswith("ID") and len(table) == 3
    second_id = hashlib.sha256(second.encode()).hexdigest()[:12]
    [row] = [line for line in table if line.startswith(second_id)]
    assert "never" not in row  # issued and used: both columns hold dates
    ok(cli(server, "users", "revoke", second_id))
    code, _ = await b.closed()
    assert code == 4401
    assert me(server, second).status_code == 401 and me(server, first).status_code == 200
    await a.join("lobby")  # the other token's socket is still open
    await a.close()
    again = cli(server, "users", "revoke", second_id)
    assert again.returncode != 0 and "no token" in again.stderr


def test_promote_and_demote_change_the_role_the_server_sees(server: ChatdProcess) -> None:
    token = register(server, "pat", "pat's password")
    assert me(server, token).json()["admin"] is False
    ok(cli(server, "users", "promote", "pat"))
    assert me(server, token).json()["admin"] is True
    ok(cli(server, "users", "promote", "pat", "--demote"))
    assert me(server, token).json()["admin"] is False
    missing = cli(server, "users", "promote", "nobody")
    assert missing.returncode != 0 and "no user 'nobody'" in missing.stderr


def test_reset_password_lets_the_new_one_in_and_revokes_old_tokens(server: ChatdProcess) -> None:
    token = register(server, "rita", "old password")
    r = ok(cli(server, "users", "reset-password", "rita", "--password-stdin", stdin="brand new pass\n"))
    assert "revoked 1 token" in r.stdout
    assert me(server, token).status_code == 401
    old = server.post("/api/auth/login", json={"username": "rita", "password": "old password"})
    new = server.post("/api/auth/login", json={"username": "rita", "password": "brand new pass"})
    assert old.status_code == 401 and new.status_code == 200
    short = cli(server, "users", "reset-password", "rita", "--password-stdin", stdin="short\n")
    assert short.returncode != 0 and "8-1024" in short.stderr


def test_a_disable_with_no_server_running_is_stored_and_says_sockets_stay(
    make_server: Callable[..., ChatdProcess], tmp_path: Path
) -> None:
    stopped: ChatdProcess = make_server({"auth": {"mode": "token"}})
    ok(cli(stopped, "users", "add", "ghost", "--create"))
    r = ok(cli(stopped, "users", "disable", "ghost"))
    assert "no chatd server answered" in r.stderr
    assert '"disabled":true' in ok(cli(stopped, "users", "list", "--json")).stdout


@pytest.mark.parametrize("command", ["list", "disable", "enable", "promote", "reset-password", "tokens", "revoke"])
def test_every_users_command_has_an_example(command: str) -> None:
    r = run_cli("users", command, "--help")
    assert r.returncode == 0 and "Example:" in r.stdout


async def test_disabling_a_user_closes_their_sockets_on_every_node(cluster: Callable[..., LocalCluster]) -> None:
    c = cluster(2)
    n1, n2 = c.nodes
    far = await Client.connect(n2.ws, user="wanderer")
    near = await Client.connect(n1.ws, user="wanderer")
    r = run_cli("users", "disable", "wanderer", "--config", str(n1.config_path))  # the file alone is enough
    assert r.returncode == 0, r.stderr
    assert (await far.closed())[0] == 4401 and (await near.closed())[0] == 4401


def test_tokens_show_when_they_expire_under_token_ttl(make_server: Callable[..., ChatdProcess]) -> None:
    server = make_server({"auth": {"mode": "token", "token_ttl": 3600}}).start()
    register(server, "temp", "temp password")
    table = ok(cli(server, "users", "tokens", "temp")).stdout.splitlines()
    assert table[0].split()[-1] == "EXPIRES"
    issued, expires = table[1].split()[1:3], table[1].split()[-2:]
    assert issued[0] == expires[0] or expires[0] > issued[0]  # same day or the next
    hour = int(issued[1][:2])
    assert int(expires[1][:2]) == (hour + 1) % 24
