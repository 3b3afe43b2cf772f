"""Issue 10's "done when", in one go, as a new operator would: install a config, create users, back up a running
server, restore it, move it to PostgreSQL with export/import, disable a user whose sockets then close, and read
every number the Grafana dashboard asks for from /metrics."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from test_grafana_names import dashboard_metrics

from chatd.deploy.procs import free_port
from harness import ChatdProcess, Client, clean_env, run_cli


def ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def node(make_server: Callable[..., ChatdProcess], config: Path, env: dict[str, str] | None = None) -> ChatdProcess:
    """A server on the operator's own config file, on a free port."""
    port = free_port()
    server = make_server(env={"PORT": str(port), **(env or {})})
    server.config_path, server.port = config, port
    return server.start()


async def test_an_operators_first_day(make_server: Callable[..., ChatdProcess], tmp_path: Path, pg_dsn: str) -> None:
    config = Path(ok(run_cli("init", str(tmp_path / "etc"), "--mode", "single")).stdout.strip())
    c = ["-c", str(config)]
    admin = subprocess.run(
        [sys.executable, "-m", "chatd", "users", "add", "root", "--admin", "--password-stdin", "--create", *c],
        input="a long admin password\n",
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    assert admin.returncode == 0, admin.stderr
    alice = ok(run_cli("users", "add", "alice", *c)).stdout.strip()
    server = node(make_server, config)
    doctor = ok(run_cli("doctor", *c))
    assert "PROBLEM" not in doctor.stdout

    a = await Client.connect(server.ws, token=alice)
    await a.join("general")
    for i in range(5):
        await a.say("general", f"before backup {i}", f"b{i}")
    ok(run_cli("backup", str(tmp_path / "backup.db"), *c))
    await a.say("general", "after the backup", "x")
    await a.close()
    server.stop()
    ok(run_cli("restore", str(tmp_path / "backup.db"), *c))
    server.start()
    r = server.get("/api/rooms/general/messages", headers={"authorization": f"Bearer {alice}"}).json()
    assert [m["body"] for m in r["messages"]] == [f"before backup {i}" for i in range(5)]

    export = tmp_path / "move.jsonl"
    ok(run_cli("export", str(export), *c))
    server.stop()
    pg = {"CHATD_STORE_BACKEND": "postgres", "CHATD_STORE_DSN": pg_dsn}
    ok(run_cli("import", str(export), *c, env=pg))
    moved = node(make_server, config, pg)
    a = await Client.connect(moved.ws, token=alice)
    await a.join("general")
    assert (await a.say("general", "on postgres now", "p1"))["seq"] == 6
    ok(run_cli("users", "disable", "alice", *c, env={**pg, "PORT": str(moved.port)}))  # where the node listens
    assert (await a.closed())[0] == 4401

    text = moved.get("/metrics").text
    exposed = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    assert dashboard_metrics() <= exposed
