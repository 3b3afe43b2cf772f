"""Data safety through real processes: a backup of a running server restores to exactly what it held, and
export → import moves a deployment from SQLite to PostgreSQL (and the export of the result is identical)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx

from harness import ChatdProcess, Client, register, run_cli

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


def ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, r.stderr
    return r


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def bodies(server: ChatdProcess, token: str, room: str) -> list[tuple[int, str, str]]:
    r = server.get(f"/api/rooms/{room}/messages?limit=500", headers=auth(token))
    assert r.status_code == 200, r.text
    return [(m["seq"], m["client_id"], m["body"]) for m in r.json()["messages"]]


async def test_a_backup_of_a_running_server_restores_to_what_it_held(
    make_server: Callable[..., ChatdProcess], tmp_path: Path
) -> None:
    server = make_server({"auth": {"mode": "token"}}).start()
    cfg = ["--config", str(server.config_path)]
    token = register(server, "keeper", "keeper password")
    c = await Client.connect(server.ws, token=token)
    await c.join("vault")
    for i in range(50):
        await c.send({"type": "send", "room": "vault", "body": f"before {i}", "client_id": f"b{i}"})
    for _ in range(50):
        await c.expect("ack", skip=("presence", "ping", "typing", "message"))
    before = bodies(server, token, "vault")
    copy = tmp_path / "backup.db"
    r = ok(run_cli("backup", str(copy), *cfg))
    assert "50 messages" in r.stdout and copy.stat().st_mode & 0o077 == 0
    assert not Path(f"{copy}-wal").exists()
    for i in range(10):
        await c.say("vault", f"after {i}", f"a{i}")
    await c.close()
    refused = run_cli("restore", str(copy), *cfg)
    assert refused.returncode != 0 and "stop it first" in refused.stderr
    assert len(bodies(server, token, "vault")) == 60  # the refused restore touched nothing
    server.stop()
    r = ok(run_cli("restore", str(copy), *cfg))
    assert "pre-restore" in r.stdout
    server.start()
    assert bodies(server, token, "vault") == before
    c = await Client.connect(server.ws, token=token)
    await c.join("vault")
    assert (await c.say("vault", "after restore", "x1"))["seq"] == 51
    await c.close()
    bad = tmp_path / "not-a-db"
    bad.write_bytes(b"hello")
    r = run_cli("restore", str(bad), *cfg)
    assert r.returncode != 0 and "not a chatd database" in r.stderr


async def test_export_from_sqlite_import_into_postgres_export_again_is_identical(
    make_server: Callable[..., ChatdProcess], tmp_path: Path, pg_dsn: str
) -> None:
    server = make_server({"auth": {"mode": "token"}}).start()
    ann = register(server, "ann", "ann password")
    bob = register(server, "Bob", "bob password")
    ok(run_cli("rooms", "create", "hq", "--owner", "ann", "--private", "--config", str(server.config_path)))
    ok(run_cli("rooms", "members", "hq", "--add", "Bob", "--config", str(server.config_path)))
    up = httpx.post(
        server.http + "/api/uploads",
        params={"name": "pixel.png"},
        content=PNG,
        headers={**auth(ann), "Content-Type": "application/octet-stream"},
    )
    assert up.status_code == 201, up.text
    a = await Client.connect(server.ws, token=ann)
    b = await Client.connect(server.ws, token=bob)
    for cl in (a, b):
        await cl.join("hq")
        await cl.join("lobby")
    await a.send({"type": "send", "room": "hq", "body": "see ✓", "client_id": "p1", "attachments": [up.json()["id"]]})
    await a.expect("ack", skip=("presence", "ping", "typing", "message"))
    for i in range(20):
        await (a if i % 2 else b).say("lobby", f'line {i} with "quotes"\nand a newline', f"l{i}")
    await a.close()
    await b.close()
    ok(run_cli("rooms", "archive", "hq", "--config", str(server.config_path)))
    first = tmp_path / "sqlite.jsonl"
    r = ok(run_cli("export", str(first), "--config", str(server.config_path)))  # while the server runs
    assert "21 messages" in r.stderr and "1 uploads" in r.stderr

    pg_env = {"CHATD_STORE_BACKEND": "postgres", "CHATD_STORE_DSN": pg_dsn}
    config = tmp_path / "pg.toml"
    config.write_text("")
    r = ok(run_cli("import", str(first), "--config", str(config), env=pg_env))
    assert "21 messages" in r.stderr
    again = run_cli("import", str(first), "--config", str(config), env=pg_env)
    assert again.returncode != 0 and "empty store" in again.stderr
    second = tmp_path / "postgres.jsonl"
    ok(run_cli("export", str(second), "--config", str(config), env=pg_env))
    assert second.read_bytes() == first.read_bytes()

    # a server on the PostgreSQL store takes the same tokens and goes on with the same seqs
    server.stop()
    moved = make_server({"auth": {"mode": "token"}}, env=pg_env).start()
    assert bodies(moved, bob, "lobby") == bodies_from(first, "lobby")
    c = await Client.connect(moved.ws, token=ann)
    await c.join("lobby")
    assert (await c.say("lobby", "on postgres", "pg1"))["seq"] == 21
    assert (await c.say("lobby", "line 1 resent", "l1"))["duplicate"] is True
    await c.close()


def bodies_from(export: Path, room: str) -> list[tuple[int, str, str]]:
    import json

    rows = [json.loads(line) for line in export.read_text().splitlines()[1:]]
    return [(r["seq"], r["client_id"], r["body"]) for r in rows if r["kind"] == "message" and r["room"] == room]
