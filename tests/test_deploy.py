"""The deployment files: the shipped nginx configs pass ``nginx -t``, the example is the template the cluster command
renders, and ``chatd cluster up`` starts nodes behind nginx and stops them all on a signal."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from chatd.config import load_config
from chatd.deploy.local import NginxProcess
from chatd.deploy.nginx import EXAMPLE_RUN_DIR, example, prepare_run_dir
from chatd.deploy.procs import free_port, http_status
from harness import ROOT, clean_env


def nginx_test(conf_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    run = tmp_path / "run"
    prepare_run_dir(run)
    conf = tmp_path / "nginx.conf"
    conf.write_text(conf_text)
    binary = NginxProcess.binary()
    assert binary is not None
    return subprocess.run([binary, "-t", "-c", str(conf), "-p", str(run)], capture_output=True, text=True)


def test_the_example_nginx_config_is_the_template_and_nginx_accepts_it(tmp_path: Path, need_nginx: None) -> None:
    shipped = (ROOT / "config" / "nginx.conf").read_text()
    assert shipped == example(), "config/nginx.conf drifted from chatd/deploy/nginx.py; regenerate it"
    # The same text with its state paths and port moved somewhere this test may write.
    local = shipped.replace(EXAMPLE_RUN_DIR, str(tmp_path / "run")).replace("/var/log/nginx", str(tmp_path))
    local = re.sub(r"listen 80;", f"listen 127.0.0.1:{free_port()};", local)
    r = nginx_test(local, tmp_path)
    assert r.returncode == 0, r.stderr
    for needle in ("proxy_set_header Upgrade $http_upgrade", "least_conn", "proxy_read_timeout 120s", "$uri"):
        assert needle in shipped
    assert "$request " not in shipped and "$request_uri" not in shipped  # no query strings (tokens) in the log


def test_the_single_node_site_config_is_accepted_by_nginx(tmp_path: Path, need_nginx: None) -> None:
    site = (ROOT / "config" / "nginx-chatd.conf").read_text().replace("listen 80;", f"listen {free_port()};")
    wrapper = f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\nhttp {{\n{site}\n}}\n"
    r = nginx_test(wrapper, tmp_path)
    assert r.returncode == 0, r.stderr


def test_cluster_up_starts_nodes_behind_nginx_and_a_signal_stops_them_all(
    tmp_path: Path, need_nginx: None, redis_url: str, namespace: str, pg_dsn: str
) -> None:
    port = free_port()
    workdir = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chatd",
            "cluster",
            "up",
            "-n",
            "2",
            "--broker",
            "redis",
            "--dev",
            "--port",
            str(port),
            "--dir",
            str(workdir),
            "--namespace",
            namespace,
            "--dsn",
            pg_dsn,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        deadline = time.monotonic() + 60
        while http_status(f"http://127.0.0.1:{port}/readyz") != 200:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the cluster did not come up"
            time.sleep(0.2)
        for i in range(4):
            assert httpx.get(f"http://127.0.0.1:{port}/api/me?user=u{i}").status_code == 200
        # nginx writes the access log line after it sent the response: give the last line a moment.
        log_path = workdir / "nginx" / "access.log"
        deadline = time.monotonic() + 5
        while log_path.read_text().count('GET /api/me"') < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        log = log_path.read_text()
        assert log.count('GET /api/me"') == 4 and "user=" not in log  # proxied, and no query strings logged
        upstreams = {line.split()[-1] for line in log.splitlines() if "/api/me" in line}
        assert len(upstreams) == 2  # both nodes served
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"chatd is up at http://127.0.0.1:{port}" in out
    for name in ("node1", "node2"):
        assert "stopped" in (workdir / name / "server.log").read_text()  # drained, not killed


def wait_for(check, what: str, timeout: float = 60) -> None:  # noqa: ANN001 - a zero-argument predicate
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_cluster_up_configs_serve_the_operator_and_a_dead_node_is_restarted(
    tmp_path: Path, need_nginx: None, redis_url: str, namespace: str, pg_dsn: str
) -> None:
    """Issue 21.6: the nodes' config files are complete, so chatd users add pointed at one writes to the cluster's
    PostgreSQL (the token works on every node), and a node killed with SIGKILL is reported and started again."""
    port = free_port()
    workdir = tmp_path / "run"
    said = tmp_path / "cluster-up.err"
    args = ["cluster", "up", "-n", "2", "--broker", "redis", "--broker-url", redis_url, "--port", str(port)]
    args += ["--dir", str(workdir), "--namespace", namespace, "--dsn", pg_dsn]
    with open(said, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chatd", *args], stdout=subprocess.DEVNULL, stderr=err, env=clean_env()
        )
    try:
        wait_for(
            lambda: http_status(f"http://127.0.0.1:{port}/readyz") == 200 or proc.poll() is not None, "the cluster"
        )
        assert proc.poll() is None, said.read_text()
        node1 = workdir / "node1" / "chatd.toml"
        cfg = load_config(node1, environ={})
        assert (cfg.store.backend, cfg.store.dsn) == ("postgres", pg_dsn)
        assert (cfg.broker.backend, cfg.broker.url, cfg.broker.namespace) == ("redis", redis_url, namespace)
        assert cfg.server.node_id == "node1" and node1.stat().st_mode & 0o077 == 0
        added = subprocess.run(
            [sys.executable, "-m", "chatd", "users", "add", "dave", "-c", str(node1)],
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=60,
        )
        assert added.returncode == 0 and "store: postgres" in added.stderr, added.stderr
        token = {"Authorization": f"Bearer {added.stdout.strip()}"}
        node2_port = load_config(workdir / "node2" / "chatd.toml", environ={}).server.port
        for base in (f"http://127.0.0.1:{port}", f"http://127.0.0.1:{node2_port}"):
            assert httpx.get(f"{base}/api/me", headers=token).json()["name"] == "dave"

        pid = int(re.search(r"node2: \S+ +\(pid (\d+)", said.read_text())[1])
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: "node2 is back" in said.read_text() or proc.poll() is not None, "node2 to be restarted")
        text = said.read_text()
        assert f"node2 (pid {pid}) was killed by SIGKILL; restarting it" in text, text
        assert http_status(f"http://127.0.0.1:{node2_port}/readyz") == 200
        assert httpx.get(f"http://127.0.0.1:{node2_port}/api/me", headers=token).json()["name"] == "dave"
        for command in (["doctor"], ["rooms", "list"], ["users", "disable", "dave"]):  # as docs/scale-out.md shows
            r = subprocess.run(
                [sys.executable, "-m", "chatd", *command, "-c", str(node1)],
                capture_output=True,
                text=True,
                env=clean_env(),
                timeout=60,
            )
            assert r.returncode == 0 and "PROBLEM" not in r.stdout, r.stdout + r.stderr
        assert httpx.get(f"http://127.0.0.1:{node2_port}/api/me", headers=token).status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert proc.returncode == 0, said.read_text()


def test_cluster_up_explains_a_missing_nginx_or_database(tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "chatd",
            "cluster",
            "up",
            "-n",
            "1",
            "--dsn",
            "postgresql://nobody:pw@127.0.0.1:1/x",
            "--dir",
            str(tmp_path / "run"),
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "Error: cannot reach the PostgreSQL server at postgresql://nobody:***@127.0.0.1:1/x" in r.stderr
    assert ":pw@" not in r.stderr


@pytest.mark.parametrize("command", [["cluster", "up"]])
def test_cluster_help_has_an_example(command: list[str]) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "chatd", *command, "--help"], capture_output=True, text=True, env=clean_env()
    )
    assert "Example:" in r.stdout and "CHATD_BROKER_URL" in r.stdout
