"""The chatd command line, run as a real process."""

from __future__ import annotations

from pathlib import Path

from harness import ChatdProcess, Client, clean_env, run_cli


async def test_users_add_prints_a_token_that_connects(make_server, tmp_path: Path) -> None:
    server: ChatdProcess = make_server({"auth": {"mode": "token"}})
    r = run_cli("users", "add", "carol", "--create", "--config", str(server.config_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert token.startswith("chatd_") and "carol" in r.stderr
    server.start()
    c = await Client.connect(server.ws, token=token)
    assert c.hello["user"] == "carol"
    await c.close()
    again = run_cli("users", "add", "carol", "--config", str(server.config_path), cwd=tmp_path)
    assert again.returncode != 0 and "already exists" in again.stderr
    # while the server runs (and holds the store's lock), users can still be added and connect at once
    live = run_cli("users", "add", "dave", "--config", str(server.config_path), cwd=tmp_path)
    assert live.returncode == 0, live.stderr
    d = await Client.connect(server.ws, token=live.stdout.strip())
    assert d.hello["user"] == "dave"
    await d.close()


def test_open_mode_refuses_a_public_address(tmp_path: Path) -> None:
    r = run_cli("serve", "--dev", "--host", "0.0.0.0", "--port", "18999", cwd=tmp_path)
    assert r.returncode == 2 and "loopback" in r.stderr


def test_help_shows_examples() -> None:
    r = run_cli("serve", "--help")
    assert r.returncode == 0 and "Example:" in r.stdout and "--dev" in r.stdout


async def test_chat_command_sends_typed_lines_and_prints_messages(server: ChatdProcess) -> None:
    import asyncio
    import sys

    watcher = await Client.connect(server.ws, user="term_watcher")
    await watcher.join("term-room")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chatd",
        "chat",
        "--url",
        server.ws,
        "--user",
        "term_user",
        "--room",
        "term-room",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=clean_env(),
    )
    assert proc.stdin is not None and proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    assert b"connected as term_user" in line
    while b"joined #term-room" not in line:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
    proc.stdin.write(b"typed in a terminal\n")
    await proc.stdin.drain()
    (msg,) = await watcher.messages(1)
    assert msg["from"] == "term_user" and msg["body"] == "typed in a terminal"
    await watcher.say("term-room", "answer from the watcher", "w1")
    while b"answer from the watcher" not in line:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
    assert b"term_watcher: answer from the watcher" in line
    proc.stdin.close()
    assert await asyncio.wait_for(proc.wait(), 20) == 0
    await watcher.close()


def test_a_second_server_on_a_taken_port_refuses_to_start(server: ChatdProcess, tmp_path: Path) -> None:
    # granian binds with SO_REUSEPORT: without this check both servers would run and split the connections.
    r = run_cli("serve", "--dev", "--port", str(server.port), cwd=tmp_path)
    assert r.returncode == 2 and f"127.0.0.1:{server.port}" in r.stderr


def test_a_second_server_on_the_same_sqlite_file_refuses_to_start(server: ChatdProcess, tmp_path: Path) -> None:
    from harness import free_port

    env = {"CHATD_STORE_PATH": server.settings["store"]["path"]}
    r = run_cli("serve", "--dev", "--port", str(free_port()), env=env, cwd=tmp_path)
    assert r.returncode == 2 and "another chatd server is using" in r.stderr


def test_an_unknown_backend_is_refused_with_the_valid_names(tmp_path: Path) -> None:
    for command in (["serve", "--dev", "--port", "18998"], ["config", "check"]):
        r = run_cli(*command, env={"CHATD_BROKER_BACKEND": "kafka"}, cwd=tmp_path)
        assert r.returncode != 0 and "unknown broker backend 'kafka'" in r.stderr, r.stderr
        assert "memory, rabbitmq, redis" in r.stderr and "Traceback" not in r.stderr


def test_a_backend_whose_client_library_is_missing_gives_the_pip_hint(tmp_path: Path) -> None:
    # A package named like the client library that fails to import, first on the path: as if it were not installed.
    shadow = tmp_path / "shadow" / "redis"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'redis'\", name='redis')\n")
    env = {
        "CHATD_BROKER_BACKEND": "redis",
        "CHATD_BROKER_URL": "redis://127.0.0.1:1",
        "PYTHONPATH": str(tmp_path / "shadow"),
    }
    for command in (["serve", "--dev", "--port", "18997"], ["config", "check"]):
        r = run_cli(*command, env=env, cwd=tmp_path)
        assert r.returncode != 0 and "pip install 'chatd[redis]'" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
