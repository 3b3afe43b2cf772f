"""What every launcher and watcher of chatd processes on this machine needs: a free port, an environment that
cannot reconfigure the child, a node's ``/metrics`` page as numbers, and a process's memory and CPU from ``/proc``.

``chatd cluster up`` (``chatd.deploy.local``), the benchmark (``chatd.bench.target``) and the tests' harness all
start and watch chatd processes; they share these instead of each keeping a copy.
"""

from __future__ import annotations

import os
import socket

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
