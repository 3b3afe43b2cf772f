"""Servers as child processes on this machine, and watching them: a free port, an environment that cannot
reconfigure the child, the one launcher (:class:`ServerProcess`), a node's ``/metrics`` page as numbers, and a
process's memory and CPU from ``/proc``.

``chatd cluster up`` (``chatd.deploy.local``), the benchmark (``chatd.bench.target``) and the tests' harness all
start and watch chatd processes (the bench its peers too); they share these instead of each keeping a copy.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Self

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it; a child binds it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without CHATD_* and PORT (they would reconfigure a child), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATD_") and k != "PORT"}
    env.update(extra or {})
    return env


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """The status a GET of ``url`` answers with, or None if nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except (OSError, urllib.error.URLError):
        return None


def exit_description(code: int) -> str:
    """A child's return code in words: ``exited with code 1`` or ``was killed by SIGKILL``."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class ServerFailed(RuntimeError):
    """A server that exited or never became ready. ``str()`` carries its log's tail (for a test's failure);
    ``summary`` is what a person needs: the server, what happened, its last log line, where the log is."""

    def __init__(self, server: ServerProcess, what: str) -> None:
        super().__init__(f"{what}:\n{server.log()[-4000:]}")
        last = (server.log().strip().splitlines() or ["(nothing logged)"])[-1]
        self.summary = f"{server.workdir.name}: {what}: {last}\n(log: {server.log_path})"


class LocalAddress:
    """The URLs of a server on this machine's loopback at ``port`` (a node, or a local cluster's nginx)."""

    port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


class ServerProcess(LocalAddress):
    """One HTTP server as a child: ``argv`` run in ``workdir`` with :func:`child_env`, its output appended to
    ``<workdir>/server.log``, ready once ``GET /readyz`` (or another path) on ``port`` answers 200.

    A chatd node (:class:`chatd.deploy.local.NodeProcess`) is one; so are the bench's peer servers. ``name`` says
    which in a failure (``chatd exited with code 1``)."""

    def __init__(
        self, workdir: Path, argv: list[str], port: int, env: dict[str, str] | None = None, name: str = "chatd"
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.argv = argv
        self.port = port
        self.env = env or {}
        self.name = name
        self.log_path = workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def launch(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, env=child_env(self.env)
            )

    def wait_ready(self, timeout: float = 30.0, path: str = "/readyz") -> None:
        """Until ``path`` answers 200; a child that exits first, or takes longer than ``timeout`` (it is killed
        then), raises :class:`ServerFailed`."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerFailed(self, f"{self.name} {exit_description(self.proc.returncode)}")
            if http_status(self.http + path) == 200:
                return
            time.sleep(0.05)
        self.kill()
        raise ServerFailed(self, f"{self.name} did not become ready in {timeout:.0f}s")

    def start(self, timeout: float = 30.0, path: str = "/readyz") -> Self:
        self.launch()
        self.wait_ready(timeout, path)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, and wait for the drain to finish (SIGKILL, and ``TimeoutExpired`` raised, if it does not)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to drain."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


def parse_metrics(text: str, labelled: bool = False) -> dict[str, float]:
    """Samples of a Prometheus text page by name; labelled ones (``name{le="0.1"}``, keyed with their labels) only
    if ``labelled``. Comments and lines that hold no number are skipped."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#" or ("{" in line and not labelled):
            continue
        # A label value may hold spaces, so a labelled name ends at its last "}"; a trailing timestamp is ignored.
        name, _, value = line.rpartition("}") if "{" in line else line.partition(" ")
        if "{" in line:
            name += "}"
        try:
            out[name] = float(value.split()[0])
        except (ValueError, IndexError):
            continue
    return out


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process in bytes, from ``/proc`` (None if it is gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process, from ``/proc`` (None if it is gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS
    except (OSError, IndexError, ValueError):
        return None
