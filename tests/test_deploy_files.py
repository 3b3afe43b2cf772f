"""The Dockerfile, docker-compose.yml and the systemd unit, tested as far as this machine can run them: the
commands they start run and answer, their CHATD_* variables are config keys, their service names line up, and
nginx accepts the compose setup's config."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from chatd.config import load_config
from chatd.deploy.local import NginxProcess
from chatd.deploy.nginx import COMPOSE_RUN_DIR, COMPOSE_UPSTREAMS, compose, prepare_run_dir
from chatd.deploy.procs import free_port, http_status
from harness import ROOT, clean_env

OPERATIONS = (ROOT / "docs" / "operations.md").read_text()


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        stages[-1].append((word.upper(), rest.strip()))
    return stages[-1]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in dockerfile():
        if word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def run_until_healthy(cmd: list[str], env: dict[str, str], cwd: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, env=clean_env(env), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while http_status(f"http://127.0.0.1:{port}/healthz") != 200:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"{cmd} did not become healthy:\n{out}")
        time.sleep(0.1)
    return proc


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_image_runs_as_non_root_with_port_and_a_healthcheck_on_healthz() -> None:
    instructions = dockerfile()
    users = [rest for word, rest in instructions if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    [health] = [rest for word, rest in instructions if word == "HEALTHCHECK"]
    assert "/healthz" in health and "PORT" in health
    assert image_env()["PORT"] == "8000" and "EXPOSE" in dict(instructions)
    assert load_config(None, environ=image_env()).server.host == "0.0.0.0"  # every CHATD_* is a config key


def test_the_images_cmd_is_the_documented_command_and_it_serves_with_the_image_env(tmp_path: Path) -> None:
    [cmd] = [json.loads(rest) for word, rest in dockerfile() if word == "CMD"]
    assert f"`{' '.join(cmd)}`" in OPERATIONS.split("## Docker", 1)[1].split("\n## ", 1)[0]
    port = free_port()
    env = {**image_env(), "PORT": str(port)}
    for key in ("CHATD_STORE_PATH", "CHATD_UPLOADS_DIR"):  # the volume's paths, moved somewhere writable
        env[key] = str(tmp_path / Path(env[key]).name)
    exe = [sys.executable, "-m", "chatd", *cmd[1:]]
    proc = run_until_healthy(exe, env, tmp_path, port)
    try:
        health = [rest for word, rest in dockerfile() if word == "HEALTHCHECK"][0]
        probe = json.loads(health.split("CMD", 1)[1].strip())
        assert probe[0] == "python"
        r = subprocess.run([sys.executable, *probe[1:]], env=clean_env({"PORT": str(port)}), timeout=10)
        assert r.returncode == 0  # the HEALTHCHECK command passes against the running server
        first = proc.stdout.readline().decode() if proc.stdout else ""
        assert json.loads(first)["level"]  # the image logs JSON lines
    finally:
        assert stop(proc) == 0


def substitute(value: str) -> str:
    """docker compose's ${VAR:-default} and ${VAR:?message}, with test values for the required ones."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2) or "", m.group(3) or ""
        return arg if op == ":-" else f"test-{name.lower()}"

    return re.sub(r"\$\{(\w+)(:[-?])?([^}]*)\}", one, value)


def compose_file() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_nodes_are_configured_only_through_real_config_keys_and_reach_real_services() -> None:
    services = compose_file()["services"]
    assert {"chatd-1", "chatd-2", "nginx", "postgres", "redis", "rabbitmq"} <= set(services)
    nodes = [name for name in services if name.startswith("chatd-")]
    assert [f"{n}:8000" for n in nodes] == COMPOSE_UPSTREAMS
    ids = set()
    for name in nodes:
        env = {k: substitute(str(v)) for k, v in services[name]["environment"].items()}
        assert all(k.startswith("CHATD_") for k in env)
        cfg = load_config(None, environ=env)  # an unknown CHATD_ key or a bad value raises here
        assert cfg.store.backend == "postgres" and cfg.broker.backend == "redis" and cfg.auth.secret
        ids.add(cfg.server.node_id)
        assert re.search(r"@(\w+):", cfg.store.dsn).group(1) in services  # type: ignore[union-attr]
        assert re.search(r"//(\w+):", cfg.broker.url).group(1) in services  # type: ignore[union-attr]
        assert "postgres" in services[name]["depends_on"]
        assert int(re.sub(r"\D", "", services[name]["stop_grace_period"])) > cfg.server.drain_timeout
    assert len(ids) == len(nodes)  # each node its own queue
    nginx = services["nginx"]
    mounted = [v.split(":")[0] for v in nginx["volumes"]]
    assert "./config/nginx-compose.conf" in mounted and COMPOSE_RUN_DIR in nginx["command"]


def test_the_compose_nginx_config_is_the_template_and_nginx_accepts_it(tmp_path: Path, need_nginx: None) -> None:
    shipped = (ROOT / "config" / "nginx-compose.conf").read_text()
    assert shipped == compose(), "config/nginx-compose.conf drifted from chatd/deploy/nginx.py; regenerate it"
    local = shipped.replace(COMPOSE_RUN_DIR, str(tmp_path / "run")).replace("listen 80;", f"listen {free_port()};")
    local = local.replace("/var/log/nginx", str(tmp_path))
    for upstream in COMPOSE_UPSTREAMS:  # compose's service names resolve only inside its network
        local = local.replace(upstream, f"127.0.0.1:{free_port()}")
    prepare_run_dir(tmp_path / "run")
    conf = tmp_path / "nginx.conf"
    conf.write_text(local)
    binary = NginxProcess.binary()
    assert binary is not None
    r = subprocess.run([binary, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def unit() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (ROOT / "config" / "chatd.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_the_systemd_unit_is_sandboxed() -> None:
    u = unit()
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "UMask": "0077",
        "StateDirectory": "chatd",
        "KillSignal": "SIGTERM",
    }.items():
        assert u[key] == [value], key
    assert u["User"] != ["root"] and u["CapabilityBoundingSet"] == [""]
    assert u["ReadWritePaths"] == ["/var/lib/chatd"] and u["WorkingDirectory"] == ["/var/lib/chatd"]


def test_the_systemd_units_execstart_runs_and_its_stop_signal_drains(tmp_path: Path) -> None:
    [exec_start] = unit()["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0] == "/opt/chatd/bin/chatd" and argv[1] == "serve"
    assert f"`{exec_start.replace('/opt/chatd/bin/', '')}`" in OPERATIONS or exec_start in OPERATIONS
    config_at = argv.index("--config") + 1
    port = free_port()
    config = tmp_path / "chatd.toml"
    config.write_text(
        f'[server]\nport = {port}\n[store]\npath = "{tmp_path}/chatd.db"\n[uploads]\ndir = "{tmp_path}/up"\n'
    )
    argv[config_at] = str(config)
    proc = run_until_healthy([sys.executable, "-m", "chatd", *argv[1:]], {}, tmp_path, port)
    timeout = float(unit()["TimeoutStopSec"][0])
    assert stop(proc, getattr(signal, unit()["KillSignal"][0]), timeout) == 0
    assert oct(os.stat(tmp_path / "chatd.db").st_mode & 0o777) == oct(0o600)


@pytest.mark.skipif(not Path("/usr/bin/systemd-analyze").exists(), reason="systemd-analyze is not installed")
def test_systemd_analyze_finds_no_syntax_errors_in_the_unit(tmp_path: Path) -> None:
    r = subprocess.run(
        ["systemd-analyze", "verify", str(ROOT / "config" / "chatd.service")], capture_output=True, text=True
    )
    # The chatd user and /opt/chatd do not exist here; anything else it complains about is a mistake in the unit.
    problems = [
        line
        for line in r.stderr.splitlines()
        if line.strip()
        and not re.search(r"/opt/chatd|chatd\.service: Failed to|user|User|Command .* is not executable", line)
    ]
    assert not problems, r.stderr
