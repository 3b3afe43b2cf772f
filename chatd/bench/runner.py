"""The coordinator: plan the run, start the load processes, watch the server, merge what comes back.

Load always runs in child processes (``--procs N``, default 1), so the coordinator's own work (progress bar,
``/metrics`` scrapes) never steals time from a load loop, and every process's CPU use is measured alike. Clients
are dealt round-robin over processes, so a room's members usually live in different processes; that works because
every process stamps and reads times on the same system-wide monotonic clock.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import secrets
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import quote

import msgspec

from chatd.bench.client import (
    ConnectStats,
    Identity,
    WorkerPlan,
    WorkerResult,
    send_msg,
    wait_msg,
    worker_main,
)
from chatd.bench.report import RunReport, ServerSample, build_report
from chatd.bench.scenario import Layout, Scenario, layout, phases
from chatd.bench.stats import Ledger
from chatd.bench.target import Target, bot_tokens, http_json, machine_busy

Progress = Callable[[str], None]


class Auth(msgspec.Struct):
    """How clients authenticate: open mode names, a list of tokens, or an admin token to create bots with."""

    mode: str = "open"  # "open" | "tokens" | "bots"
    tokens: list[tuple[str, str]] = []
    admin_token: str | None = None
    prefix: str = "bench"  # the namespace: user names start with it, room names with it and a dash
    cleanup: bool = False  # delete the run's rooms (and, for bots, its users) afterwards; needs admin_token


def identities(scn: Scenario, target: Target, auth: Auth, count: int) -> list[Identity]:
    if auth.mode == "bots":
        assert auth.admin_token
        return [Identity(n, t) for n, t in bot_tokens(target.base, auth.admin_token, count, auth.prefix)]
    if auth.mode == "tokens":
        if len(auth.tokens) < count:
            raise ValueError(f"scenario needs {count} clients but only {len(auth.tokens)} tokens were given")
        return [Identity(n, t) for n, t in auth.tokens[:count]]
    width = len(str(count))
    return [Identity(f"{auth.prefix}{i:0{width}d}") for i in range(count)]


class ProgressLine:
    """A one-line live progress bar on a terminal (plain lines every few seconds elsewhere)."""

    def __init__(self, total: float, out: Progress | None) -> None:
        self.total = total
        self.out = out
        self.tty = sys.stderr.isatty()
        self.last_plain = 0.0

    def show(self, elapsed: float, counts: dict[str, int], depth: float | None) -> None:
        if self.out is None:
            return
        frac = min(1.0, elapsed / self.total) if self.total > 0 else 1.0
        bar = "#" * int(frac * 24) + "." * (24 - int(frac * 24))
        q = f"  queue {depth:.0f}" if depth is not None else ""
        line = (
            f"[{bar}] {elapsed:5.1f}/{self.total:.0f}s  sent {counts.get('sent', 0):,}  "
            f"acked {counts.get('acked', 0):,}  delivered {counts.get('delivered', 0):,}"
            f"  skipped {counts.get('skipped', 0):,}{q}"
        )
        if self.tty:
            self.out("\r" + line)
        elif elapsed - self.last_plain >= 5 or (frac >= 1 and self.last_plain < self.total):
            self.last_plain = max(elapsed, self.total) if frac >= 1 else elapsed
            self.out(line + "\n")

    def done(self) -> None:
        if self.out is not None and self.tty:
            self.out("\n")


async def _recv(conn: Connection) -> dict[str, Any]:
    try:
        return await wait_msg(conn)
    except EOFError:
        return {"kind": "failed", "error": "load process exited without a result"}


class Watcher:
    """Scrapes ``/metrics`` (and /proc for a local pid) on an interval while the load runs."""

    def __init__(self, target: Target, interval: float) -> None:
        self.target = target
        self.interval = interval
        self.samples: list[ServerSample] = []
        self.t0 = time.monotonic()
        self.has_metrics = True
        self.last_depth: float | None = None

    async def run(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self.interval)

    async def sample(self) -> None:
        m = await asyncio.to_thread(self.target.metrics) if self.has_metrics else None
        if m is None:
            self.has_metrics = False
        rss = self.target.rss() if self.target.pid is not None else (m or {}).get("chatd_process_rss_bytes")
        # A networked broker reports its own queue (chatd_broker_queue_length); otherwise chatd's ingest queue.
        depth = (m or {}).get("chatd_broker_queue_length", (m or {}).get("chatd_ingest_queue_depth"))
        self.last_depth = depth
        self.samples.append(
            ServerSample(
                t=time.monotonic() - self.t0,
                queue_depth=depth,
                connections=(m or {}).get("chatd_connections"),
                rss_bytes=rss,
                messages_in=(m or {}).get("chatd_messages_in_total"),
                deliveries=(m or {}).get("chatd_messages_out_total"),
                cpu_seconds=self.target.cpu(),
            )
        )


async def run_scenario(
    scn: Scenario, target: Target, procs: int = 1, auth: Auth | None = None, progress: Progress | None = None
) -> RunReport:
    """Run one scenario against one target and return the merged report."""
    auth = auth or Auth()
    procs = max(1, procs)
    nonce = secrets.token_hex(3)
    lay = layout(scn, nonce, auth.prefix)
    count = scn.connections if scn.kind == "connect" else scn.clients
    idents = identities(scn, target, auth, count)
    try:
        return await _run(scn, target, procs, auth, progress, nonce, lay, idents)
    finally:
        if auth.cleanup and auth.admin_token:
            bots = [i.name for i in idents] if auth.mode == "bots" else []
            gone = await asyncio.to_thread(clean_up, target.base, auth.admin_token, lay.room_names, bots)
            if progress:
                progress(f"cleaned up {gone[0]} room(s) and {gone[1]} user(s) in namespace {auth.prefix!r}\n")


def clean_up(base: str, admin_token: str, rooms: list[str], users: list[str]) -> tuple[int, int]:
    """Delete what a run made through the admin API; returns how many rooms and users were deleted. A room the
    run never got to create answers 404 and is skipped."""
    counts = [0, 0]
    for i, (kind, names) in enumerate((("rooms", rooms), ("users", users))):
        for name in names:
            try:
                http_json("DELETE", f"{base}/api/admin/{kind}/{quote(name, safe='')}", None, admin_token)
                counts[i] += 1
            except RuntimeError as e:
                if "HTTP 404" not in str(e):
                    raise
    return counts[0], counts[1]


async def _run(
    scn: Scenario,
    target: Target,
    procs: int,
    auth: Auth,
    progress: Progress | None,
    nonce: str,
    lay: Layout,
    idents: list[Identity],
) -> RunReport:
    count = scn.connections if scn.kind == "connect" else scn.clients
    pair_order = lay.pairs()
    plan_phases = phases(scn, len(pair_order))
    ctx = mp.get_context("spawn")
    pipes: list[Connection] = []
    children: list[Any] = []
    for p in range(procs):
        mine = {i: idents[i] for i in range(p, count, procs)}
        plan = WorkerPlan(
            p,
            nonce,
            target.ws_url,
            target.host,
            target.port,
            scn,
            mine,
            lay.room_names,
            lay.members,
            pair_order,
            plan_phases,
            procs,
        )
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=worker_main, args=(msgspec.msgpack.encode(plan), child), daemon=True, name=f"chatd-bench-{p}"
        )
        proc.start()
        child.close()
        pipes.append(parent)
        children.append(proc)

    watcher = Watcher(target, scn.metrics_interval)
    rss_before = target.rss()
    load_average = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    busy0 = machine_busy()
    server_cpu0 = target.cpu()
    parts0 = target.parts_cpu()
    watching = asyncio.create_task(watcher.run())
    started_wall = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        connect = ConnectStats()
        for pipe in pipes:
            msg = await _recv(pipe)
            if msg["kind"] == "failed":
                raise RuntimeError(f"load process failed: {msg['error']}\n{msg.get('trace', '')}")
            connect.merge(msgspec.convert(msg["connect"], ConnectStats))
        if progress:
            progress(f"connected {connect.ok:,}/{connect.attempted:,} clients to {target.label}\n")
        rss_held: int | None = None
        idle_cpu: float | None = None
        if scn.kind == "connect":
            cpu_idle0, idle0 = target.cpu(), time.monotonic()
            await asyncio.sleep(scn.hold)
            cpu_idle1 = target.cpu()
            if cpu_idle0 is not None and cpu_idle1 is not None:
                idle_cpu = 100.0 * (cpu_idle1 - cpu_idle0) / (time.monotonic() - idle0)
            rss_held = target.rss()
            await watcher.sample()
            for pipe in pipes:
                send_msg(pipe, "close")
            start_ns = time.monotonic_ns()
        else:
            start_ns = time.monotonic_ns() + 300_000_000  # time for the go message to reach every process
            for pipe in pipes:
                send_msg(pipe, "go", start_ns=start_ns)
        total = plan_phases[-1].end if plan_phases else 0.0
        bar = ProgressLine(total, progress if scn.kind not in ("connect", "large") else None)
        counts: dict[int, dict[str, int]] = {}
        results: list[WorkerResult] = []
        pending = dict(enumerate(pipes))
        while pending:
            waits = {asyncio.ensure_future(_recv(pipe)): p for p, pipe in pending.items()}
            done, rest = await asyncio.wait(waits, timeout=0.5, return_when=asyncio.FIRST_COMPLETED)
            for fut in rest:
                fut.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
            for fut in done:
                p = waits[fut]
                msg = fut.result()
                if msg["kind"] == "progress":
                    counts[p] = {k: v for k, v in msg.items() if k != "kind"}
                elif msg["kind"] == "result":
                    results.append(msgspec.msgpack.decode(msg["result"], type=WorkerResult))
                    del pending[p]
                elif msg["kind"] == "failed":
                    raise RuntimeError(f"load process {p} failed: {msg['error']}\n{msg.get('trace', '')}")
            merged = {k: sum(c.get(k, 0) for c in counts.values()) for k in ("sent", "acked", "delivered", "skipped")}
            bar.show(max(0.0, (time.monotonic_ns() - start_ns) / 1e9), merged, watcher.last_depth)
        bar.done()
        await watcher.sample()
        final_metrics = await asyncio.to_thread(target.metrics, True) if watcher.has_metrics else None
    finally:
        watching.cancel()
        for proc in children:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
    busy1 = machine_busy()
    server_cpu1 = target.cpu()
    parts1 = target.parts_cpu()
    parts_cpu = {k: parts1[k] - parts0.get(k, 0.0) for k in parts1} if parts0 is not None and parts1 else None
    machine_pct = None
    if busy0 and busy1 and busy1[1] > busy0[1]:
        machine_pct = 100.0 * (busy1[0] - busy0[0]) / (busy1[1] - busy0[1])
    server_cpu = (server_cpu1 - server_cpu0) if server_cpu0 is not None and server_cpu1 is not None else None

    ledger = Ledger(nonce, start_ns, scn.timeline_tick, plan_phases)
    joined: dict[int, list[int]] = {}
    for r in sorted(results, key=lambda r: r.proc):
        ledger.merge(r.ledger)
        for room, cs in r.joined.items():
            joined.setdefault(room, []).extend(cs)
    report = build_report(
        scn,
        target,
        procs,
        started_wall,
        ledger,
        joined,
        results,
        connect,
        watcher.samples,
        rss_before,
        rss_held,
        server_cpu,
        machine_pct,
        load_average,
        parts_cpu,
        idle_cpu,
    )
    report.server_metrics = final_metrics or {}
    return report
