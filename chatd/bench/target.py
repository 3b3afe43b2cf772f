"""What the bench points at: a URL, a chatd it spawns, or the naive peer it spawns; plus how to watch it.

A target is named on the command line as ``spawn`` (a fresh chatd on a free port with bench-friendly limits),
``naive`` (the reproduction of the naive FastAPI broadcast server in ``bench/peers/``), ``durable`` (the same
server persisting each message to SQLite before its ack: the same-durability peer), ``ceiling`` (the
no-framework ceiling in ``bench/peers/``: picows and uvloop, nothing persisted), ``cluster:redis`` or
``cluster:rabbitmq`` (optionally ``cluster:redis:3``: that many chatd nodes behind nginx on this machine, sharing the
machine's broker and a fresh PostgreSQL database, as ``chatd cluster up`` starts them), or a ``ws://`` URL of any
protocol-v1 server. Watching means scraping ``/metrics`` (Prometheus text) and, when the server runs on this
machine and its pid is known, reading its CPU time and memory from ``/proc``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from chatd.deploy.local import BROKER_URLS, LocalCluster, NodeProcess, drop_database, drop_namespace
from chatd.deploy.procs import ServerFailed, ServerProcess, cpu_seconds, free_port, parse_metrics, rss_bytes

REPO = Path(__file__).resolve().parent.parent.parent
NAIVE_PEER = REPO / "bench" / "peers" / "naive_fastapi.py"
CEILING_PEER = REPO / "bench" / "peers" / "picows_ceiling.py"


def http_base(ws_url: str) -> str:
    """``ws://h:p/ws?x`` → ``http://h:p`` (the REST, metrics and readiness endpoints live beside /ws)."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, "", "", ""))


def host_port(ws_url: str) -> tuple[str, int]:
    parts = urlsplit(ws_url)
    default = 443 if parts.scheme == "wss" else 80
    return parts.hostname or "127.0.0.1", parts.port or default


def http_json(method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 60.0) -> Any:
    """A small JSON request with the standard library (the bench needs no HTTP client dependency)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")[:300]
        raise RuntimeError(f"{method} {url}: HTTP {e.code}: {detail}") from None


def fetch_text(url: str, timeout: float = 5.0) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body: bytes = resp.read()
            return body.decode(errors="replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None


def bot_tokens(base: str, admin_token: str, count: int, prefix: str = "bench") -> list[tuple[str, str]]:
    """Create (or refresh) ``count`` bot users through ``POST /api/admin/bots``; returns (name, token) pairs."""
    got = http_json("POST", f"{base}/api/admin/bots", {"prefix": prefix, "count": count}, admin_token, timeout=300)
    return [(b["name"], b["token"]) for b in got["bots"]]


# --- /proc ---------------------------------------------------------------------------------------------------


def machine_busy() -> tuple[float, float] | None:
    """(busy, total) jiffies of the whole machine, from /proc/stat; diff two readings for a utilisation."""
    try:
        with open("/proc/stat") as f:
            vals = [float(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0.0)
    total = sum(vals[:8])
    return total - idle, total


# --- targets -------------------------------------------------------------------------------------------------


class Target:
    """Where to connect and how to watch. ``pid`` is set when the server process is on this machine; ``server`` and
    ``workdir`` when it is ours (spawned), to stop and clean up."""

    def __init__(self, label: str, ws_url: str, pid: int | None = None, open_mode: bool = True) -> None:
        self.label = label
        self.ws_url = ws_url
        self.base = http_base(ws_url)
        self.host, self.port = host_port(ws_url)
        self.pid = pid
        self.open_mode = open_mode
        self.server: ServerProcess | None = None
        self.workdir: Path | None = None

    def metrics(self, labelled: bool = False) -> dict[str, float] | None:
        text = fetch_text(self.base + "/metrics", timeout=2.0)
        if text is None or "# TYPE" not in text:
            return None
        return parse_metrics(text, labelled)

    def rss(self) -> int | None:
        if self.pid is not None:
            return rss_bytes(self.pid)
        m = self.metrics()
        return int(m["chatd_process_rss_bytes"]) if m and "chatd_process_rss_bytes" in m else None

    def cpu(self) -> float | None:
        return cpu_seconds(self.pid) if self.pid is not None else None

    def parts_cpu(self) -> dict[str, float] | None:
        """CPU seconds by part of the deployment (nodes, nginx, broker, database), where there are parts."""
        return None

    def stop(self) -> None:
        if self.server is not None and self.server.running():
            with contextlib.suppress(subprocess.TimeoutExpired):  # it was killed then
                self.server.stop(30)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _spawned(server: ServerProcess, label: str, timeout: float) -> Target:
    """``server`` (in a temp dir of its own) started, as a Target that stops it and removes the dir; a server that
    fails to start leaves no dir behind (its log's tail is in the :class:`ServerFailed`)."""
    try:
        server.start(timeout)
    except ServerFailed:
        shutil.rmtree(server.workdir, ignore_errors=True)
        raise
    assert server.proc is not None
    target = Target(label, server.ws, pid=server.proc.pid)
    target.server, target.workdir = server, server.workdir
    return target


def chatd_settings(
    port: int,
    workdir: Path,
    connections: int,
    extra: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Config for a spawned chatd: open mode on loopback, no send rate limit, room for the connections."""
    settings: dict[str, dict[str, Any]] = {
        "server": {"host": "127.0.0.1", "port": port, "log_level": "warning"},
        "auth": {"mode": "open"},
        "store": {"path": str(workdir / "bench.db")},
        "limits": {"send_rate": 0, "max_connections": max(20_000, connections + 100), "max_connections_per_user": 32},
    }
    for section, values in (extra or {}).items():
        settings.setdefault(section, {}).update(values)
    return settings


def spawn_chatd(
    connections: int = 1000, extra: dict[str, dict[str, Any]] | None = None, timeout: float = 30.0
) -> Target:
    """``python -m chatd serve --config <generated toml>`` on a free port; returns once /readyz answers."""
    workdir = Path(tempfile.mkdtemp(prefix="chatd-bench-"))
    settings = chatd_settings(free_port(), workdir, connections, extra)
    return _spawned(NodeProcess(workdir, settings), "chatd (spawned)", timeout)


def spawn_peer(script: Path, label: str, timeout: float = 30.0, args: tuple[str, ...] = ()) -> Target:
    """A peer server from ``bench/peers/`` (they need the ``peers`` extra) on a free port, in a temp dir (its cwd)."""
    if not script.is_file():
        raise RuntimeError(f"peer not found at {script} (it lives in the source checkout)")
    workdir = Path(tempfile.mkdtemp(prefix=f"chatd-bench-{script.stem}-"))
    port = free_port()
    argv = [sys.executable, str(script), "--port", str(port), *args]
    return _spawned(ServerProcess(workdir, argv, port, name=label), label, timeout)


def spawn_naive(timeout: float = 30.0) -> Target:
    """The naive FastAPI broadcast peer (fastapi, uvicorn)."""
    return spawn_peer(NAIVE_PEER, "naive FastAPI peer", timeout)


def spawn_durable(timeout: float = 30.0) -> Target:
    """The naive peer plus one committed SQLite INSERT per message before its ack (the same durability as chatd's
    defaults: WAL, synchronous=NORMAL)."""
    return spawn_peer(NAIVE_PEER, "durable FastAPI peer", timeout, ("--db", "peer.db"))


def spawn_ceiling(timeout: float = 30.0) -> Target:
    """The no-framework ceiling: picows + uvloop, nothing persisted or checked."""
    return spawn_peer(CEILING_PEER, "picows ceiling", timeout)


def service_cpu_seconds(name: str) -> float:
    """CPU seconds of every process on this machine whose command name is ``name`` (a shared service: what
    other users of the machine make it do is counted too)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() != name:
                    continue
        except OSError:
            continue
        total += cpu_seconds(int(entry)) or 0.0
    return total


SERVICE_PROCESSES = {"redis": "redis-server", "rabbitmq": "beam.smp", "postgres": "postgres"}


class ClusterTarget(Target):
    """Several chatd nodes behind nginx (:class:`chatd.deploy.local.LocalCluster`); numbers are summed over nodes."""

    def __init__(self, cluster: LocalCluster, dsn_dropped: str) -> None:
        super().__init__(f"chatd x{len(cluster.nodes)} ({cluster.broker}, PostgreSQL, nginx)", cluster.ws)
        self.cluster = cluster
        self.dsn = dsn_dropped

    def _pids(self) -> dict[str, int]:
        pids = {f"node{i}": n.proc.pid for i, n in enumerate(self.cluster.nodes, 1) if n.proc is not None}
        if self.cluster.nginx.proc is not None:
            pids["nginx"] = self.cluster.nginx.proc.pid
        return pids

    def metrics(self, labelled: bool = False) -> dict[str, float] | None:
        merged: dict[str, float] = {}
        for node in self.cluster.nodes:
            text = fetch_text(node.http + "/metrics", timeout=2.0)
            if text is None:
                continue
            for name, value in parse_metrics(text, labelled).items():
                merged[name] = merged.get(name, 0.0) + value
        return merged or None

    def cpu(self) -> float | None:
        return sum(cpu_seconds(pid) or 0.0 for pid in self._pids().values())

    def parts_cpu(self) -> dict[str, float] | None:
        parts = {name: cpu_seconds(pid) or 0.0 for name, pid in self._pids().items()}
        for service in (self.cluster.broker, "postgres"):
            parts[service] = service_cpu_seconds(SERVICE_PROCESSES[service])
        return parts

    def stop(self) -> None:
        self.cluster.stop()
        c = self.cluster
        drop_namespace(c.broker, c.broker_url, c.namespace, c.queue_names())
        try:
            drop_database(self.dsn)
        except Exception:  # noqa: BLE001 - a left-over bench database is harmless; it is named chatd_bench_*
            pass


def spawn_cluster(spec: str, connections: int, extra: dict[str, dict[str, Any]] | None = None) -> Target:
    """``cluster:<broker>[:<nodes>]``: nodes behind nginx with a fresh database and broker namespace."""
    _, _, rest = spec.partition(":")
    broker, _, count = rest.partition(":")
    if broker not in BROKER_URLS:
        raise ValueError(f"target {spec!r}: the broker is one of {', '.join(BROKER_URLS)}")
    nodes = int(count) if count.isdigit() else 2
    nonce = secrets.token_hex(4)
    dsn = f"postgresql://postgres@127.0.0.1:5432/chatd_bench_{nonce}"
    workdir = Path(tempfile.mkdtemp(prefix="chatd-bench-cluster-"))
    settings = chatd_settings(0, workdir, connections, extra)
    settings["server"].pop("port")
    cluster = LocalCluster(workdir, nodes, broker, None, dsn, f"bench{nonce}", free_port(), settings)
    cluster.start()
    return ClusterTarget(cluster, dsn)


def resolve(
    spec: str, connections: int, server_pid: int | None = None, extra: dict[str, dict[str, Any]] | None = None
) -> Target:
    """``spawn``, ``naive``, ``durable``, ``ceiling``, ``cluster:<broker>[:<nodes>]`` or a ws:// URL (``http://`` goes
    to ``/ws``)."""
    if spec == "spawn":
        return spawn_chatd(connections, extra)
    if spec == "naive":
        return spawn_naive()
    if spec == "ceiling":
        return spawn_ceiling()
    if spec == "durable":
        return spawn_durable()
    if spec.startswith("cluster:"):
        return spawn_cluster(spec, connections, extra)
    if spec.startswith(("http://", "https://")):
        parts = urlsplit(spec)
        spec = urlunsplit(
            ("ws" if parts.scheme == "http" else "wss", parts.netloc, parts.path.rstrip("/") or "/ws", parts.query, "")
        )
    if not spec.startswith(("ws://", "wss://")):
        raise ValueError(f"target {spec!r}: give spawn, naive, durable, ceiling, cluster:<broker>, or a ws:// URL")
    return Target(spec, spec, pid=server_pid)
