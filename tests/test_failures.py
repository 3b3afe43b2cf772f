"""Issue 21.5: a service that is down, a path that does not exist or may not be written gets one or two lines from
any chatd command (what failed, where without a password, what to do) and a non-zero exit; the traceback only with
``chatd --debug``.

Each service is "down" as a port nothing listens on (the shared services stay up), and a refused permission is a
path under /sys, which even root may not create files in."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from chatd.config import safe_url
from chatd.deploy.procs import free_port
from harness import run_cli

SECRET = "s3cret-pw"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d[ T]")  # the server's own log lines, which come before the answer


def answer(r: subprocess.CompletedProcess[str]) -> list[str]:
    """What the command said about the failure: stderr without the server's log lines."""
    assert r.returncode != 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and SECRET not in r.stderr + r.stdout, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip() and not LOG_LINE.match(line)]
    assert 1 <= len(lines) <= 2, r.stderr
    return lines


def serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli("serve", "--port", str(free_port()), env={"CHATD_STORE_PATH": str(tmp_path / "c.db"), **env})


def test_serve_with_postgresql_down_names_the_database_and_says_what_to_check(tmp_path: Path) -> None:
    dsn = f"postgresql://chatd:{SECRET}@127.0.0.1:{free_port()}/chatd"
    said = answer(serve(tmp_path, CHATD_STORE_BACKEND="postgres", CHATD_STORE_DSN=dsn))[-1]
    assert safe_url(dsn) in said and "PostgreSQL" in said and "Is it running?" in said and "[store] dsn" in said


@pytest.mark.parametrize(
    ("backend", "url"),
    [("redis", "redis://:{pw}@127.0.0.1:{port}/0"), ("rabbitmq", "amqp://guest:{pw}@127.0.0.1:{port}/")],
)
def test_serve_with_the_broker_down_names_it_and_exits(tmp_path: Path, backend: str, url: str) -> None:
    url = url.format(pw=SECRET, port=free_port())
    said = answer(serve(tmp_path, CHATD_BROKER_BACKEND=backend, CHATD_BROKER_URL=url))[-1]
    assert said.startswith(f"chatd: cannot reach the {backend} broker at {safe_url(url)}") and "[broker] url" in said


def test_serve_refused_a_store_or_uploads_path_says_which(tmp_path: Path) -> None:
    said = answer(serve(tmp_path, CHATD_STORE_PATH="/sys/chatd-test/chatd.db"))[-1]
    assert "SQLite store" in said and "/sys/chatd-test" in said and "owner" in said
    said = answer(serve(tmp_path, CHATD_UPLOADS_DIR="/sys/chatd-test/uploads"))[-1]
    assert "uploads.dir" in said and "/sys/chatd-test" in said


def test_backup_and_export_to_a_missing_directory_name_it(tmp_path: Path) -> None:
    env = {"CHATD_STORE_PATH": str(tmp_path / "c.db")}
    assert run_cli("users", "add", "someone", env=env).returncode == 0  # an absolute path: made on first use
    said = answer(run_cli("backup", str(tmp_path / "no" / "such" / "b.db"), env=env))[0]
    assert f"the directory {tmp_path / 'no'} does not exist" in said and ".partial" not in said
    said = answer(run_cli("export", str(tmp_path / "nowhere" / "e.jsonl"), env=env))[-1]
    assert f"{tmp_path / 'nowhere'} does not exist" in said
    said = answer(run_cli("export", "/sys/chatd-export.jsonl", env=env))[-1]
    assert "/sys/chatd-export.jsonl: Permission denied" in said


@pytest.mark.parametrize("command", [["users", "add", "x"], ["rooms", "list"], ["migrate"], ["invites", "list"]])
def test_admin_commands_with_postgresql_down_name_it(command: list[str]) -> None:
    dsn = f"postgresql://chatd:{SECRET}@127.0.0.1:{free_port()}/chatd"
    said = answer(run_cli(*command, env={"CHATD_STORE_BACKEND": "postgres", "CHATD_STORE_DSN": dsn}))[-1]
    assert f"cannot reach the PostgreSQL store at {safe_url(dsn)}" in said


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    env = {"CHATD_STORE_PATH": str(tmp_path / "c.db")}
    run_cli("users", "add", "someone", env=env)
    r = run_cli("--debug", "backup", str(tmp_path / "no" / "b.db"), env=env)
    assert r.returncode != 0 and "Traceback" in r.stderr and "FileNotFoundError" in r.stderr
    r = run_cli("--debug", "serve", "--port", str(free_port()), env={**env, "CHATD_UPLOADS_DIR": "/sys/x/up"})
    assert r.returncode != 0 and "uploads.dir" in r.stderr
    dsn = f"postgresql://chatd@127.0.0.1:{free_port()}/chatd"
    r = run_cli(
        "--debug", "serve", "--port", str(free_port()), env={"CHATD_STORE_BACKEND": "postgres", "CHATD_STORE_DSN": dsn}
    )
    assert r.returncode != 0 and "Traceback" in r.stderr and "ConnectionRefusedError" in r.stderr


def test_passwords_never_reach_a_message() -> None:
    assert safe_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert safe_url("amqp://guest:p@ss@h/") == "amqp://guest:***@h/"
    assert safe_url("postgresql://chatd@db/chatd") == "postgresql://chatd@db/chatd"
    assert safe_url("host=db password=x user=u") == "host=db password=*** user=u"
