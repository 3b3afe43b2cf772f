"""chatd init, migrate and doctor through real processes."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from chatd.config import load_config
from chatd.deploy.procs import free_port
from harness import ChatdProcess, run_cli


def ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, r.stdout + r.stderr
    return r


@pytest.mark.parametrize("mode", ["single", "redis", "rabbitmq"])
def test_init_writes_a_private_config_with_a_fresh_secret_that_passes_config_check(mode: str, tmp_path: Path) -> None:
    r = ok(run_cli("init", str(tmp_path / "a"), "--mode", mode))
    config = Path(r.stdout.strip())
    assert config == tmp_path / "a" / "chatd.toml" and config.stat().st_mode & 0o777 == 0o600
    cfg = load_config(config, environ={})
    assert cfg.broker.backend == ("memory" if mode == "single" else mode)
    assert cfg.store.backend == ("sqlite" if mode == "single" else "postgres")
    assert len(cfg.auth.secret) >= 40 and cfg.auth.mode == "token"
    ok(run_cli("config", "check", "-c", str(config)))
    other = load_config(Path(ok(run_cli("init", str(tmp_path / "b"), "--mode", mode)).stdout.strip()), environ={})
    assert other.auth.secret != cfg.auth.secret
    again = run_cli("init", str(tmp_path / "a"), "--mode", mode)
    assert again.returncode != 0 and "--force" in again.stderr
    ok(run_cli("init", str(tmp_path / "a"), "--mode", mode, "--force"))


def test_a_single_mode_config_from_init_serves(make_server: Callable[..., ChatdProcess], tmp_path: Path) -> None:
    config = Path(ok(run_cli("init", str(tmp_path), "--mode", "single")).stdout.strip())
    ok(run_cli("users", "add", "root", "--admin", "--create", "-c", str(config)))
    port = free_port()
    server = make_server(env={"CHATD_CONFIG": str(config), "PORT": str(port)})
    server.config_path = config  # the file init wrote, not one of the harness's
    server.port = port
    server.start()
    assert server.get("/healthz").text == "ok"


def test_migrate_applies_pending_migrations_and_serve_refuses_a_newer_database(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    db = tmp_path / "chatd.db"
    config.write_text(f'[store]\npath = "{db}"\n')
    check = run_cli("migrate", "--check", "-c", str(config))
    assert check.returncode == 1 and "001_initial" in check.stdout and "004_operations" in check.stdout
    r = ok(run_cli("migrate", "-c", str(config)))
    assert "applied 001_initial" in r.stdout
    assert "0 pending" in ok(run_cli("migrate", "--check", "-c", str(config))).stdout
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO _migrations (name, applied) VALUES ('999_from_the_future', 0)")
    conn.commit()
    conn.close()
    newer = run_cli("migrate", "-c", str(config))
    assert newer.returncode != 0 and "999_from_the_future" in newer.stderr and "newer chatd" in newer.stderr
    port = str(free_port())
    serve = subprocess.run(
        [*run_cli_args(), "serve", "-c", str(config), "--port", port], capture_output=True, text=True, timeout=60
    )
    assert serve.returncode != 0 and "newer chatd" in serve.stderr


def run_cli_args() -> list[str]:
    import sys

    return [sys.executable, "-m", "chatd"]


def test_migrate_on_postgres(pg_dsn: str, tmp_path: Path) -> None:
    env = {"CHATD_STORE_BACKEND": "postgres", "CHATD_STORE_DSN": pg_dsn}
    config = tmp_path / "pg.toml"
    config.write_text("")
    assert run_cli("migrate", "--check", "-c", str(config), env=env).returncode == 1
    ok(run_cli("migrate", "-c", str(config), env=env))
    assert "0 pending" in ok(run_cli("migrate", "--check", "-c", str(config), env=env)).stdout


def test_doctor_finds_nothing_wrong_with_a_running_server(make_server: Callable[..., ChatdProcess]) -> None:
    server = make_server({"auth": {"mode": "token"}}).start()
    r = ok(run_cli("doctor", "-c", str(server.config_path)))
    lines = r.stdout.splitlines()
    assert lines and all(line.startswith("ok") for line in lines), r.stdout
    for area in ("config", "store", "broker", "disk", "port", "clock"):
        assert any(line.split()[1] == area for line in lines), area
    assert "a chatd server answers" in r.stdout


def test_doctor_names_each_problem_with_what_to_do(tmp_path: Path) -> None:
    db = tmp_path / "chatd.db"
    config = tmp_path / "c.toml"
    config.write_text(f'[store]\npath = "{db}"\n[auth]\nsecret = "s3cret-value-for-the-test"\n')
    config.chmod(0o644)
    ok(run_cli("migrate", "-c", str(config)))
    db.chmod(0o644)
    dead = free_port()
    env = {"CHATD_BROKER_BACKEND": "redis", "CHATD_BROKER_URL": f"redis://127.0.0.1:{dead}/0"}
    r = run_cli("doctor", "-c", str(config), env=env)
    assert r.returncode == 1 and "problem(s) found" in r.stderr
    problems = [line for line in r.stdout.splitlines() if line.startswith("PROBLEM")]
    text = "\n".join(problems)
    assert f"chmod 600 {config}" in text and f"chmod 600 {db}" in text
    assert f"cannot reach the redis broker at 127.0.0.1:{dead}" in text
    assert len(problems) == 3, r.stdout


def test_doctor_init_and_migrate_have_examples() -> None:
    for command in ("doctor", "init", "migrate", "backup", "restore", "export", "import"):
        r = run_cli(command, "--help")
        assert r.returncode == 0 and "Example:" in r.stdout, command
