"""``chatd bench rest``: sends over the REST API from a fixed number of concurrent clients, closed loop.

Each client holds one keep-alive HTTP/1.1 connection and has exactly one ``POST /api/rooms/{room}/messages`` in
flight: the concurrency model of a request-per-message deployment (80 is Cloud Run's default per instance). A 201
means stored, so after the run every 201 is looked up in the rooms' history; a 201 whose message is missing counts
as lost. Any other status, a reset or a timeout counts as an error, by kind.

The client speaks HTTP/1.1 on raw asyncio streams so that its own cost per request stays small and is reported
(the generator shares the machine with the server).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from urllib.parse import quote

import msgspec

from chatd.bench.client import source_address
from chatd.bench.report import Latency, latency
from chatd.bench.stats import Histogram
from chatd.bench.target import Target, host_port, http_json

REQUEST_TIMEOUT = 30.0
OWNER = "rest-owner"  # creates the rooms and adds the clients
CLIENTS_PER_ADDRESS = 32  # half of chatd's default limits.max_requests_per_ip, as if from several machines


class RestReport(msgspec.Struct):
    target: str
    clients: int
    rooms: int
    body_bytes: int
    duration: float
    sent: int
    created: int  # 201 answers: stored, per the API's contract
    errors: dict[str, int]  # status code or failure kind → count
    lost: int  # 201 answers whose message is not in the room's history
    throughput: float  # 201 answers per second over the measured window
    latency_ms: Latency
    server_cpu_percent: float | None
    generator_cpu_percent: float
    load_average: float


class _Conn:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, host: str, port: int, source: str | None = None) -> None:
        self.host, self.port, self.source = host, port, source
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            local = (self.source, 0) if self.source else None
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port, local_addr=local)
        assert self.reader is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionResetError("closed by the server")
        status = int(status_line.split()[1])
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        payload = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _user(i: int) -> str:
    return f"rest{i:04d}"


def _url_user(path: str, user: str | None) -> str:
    return path if user is None else f"{path}?user={quote(user)}"


async def run_rest(
    target: Target,
    clients: int = 80,
    rooms: int = 10,
    duration: float = 20.0,
    warmup: float = 2.0,
    body_bytes: int = 100,
) -> RestReport:
    """Open-mode targets only (``?user=NAME``): the spawned chatd and clusters the bench starts."""
    host, port = host_port(target.base)
    base = target.base
    room_names = [f"rest-{secrets.token_hex(3)}-{i}" for i in range(rooms)]  # fresh names: a reused server has others
    for name in room_names:
        http_json("POST", base + _url_user("/api/rooms", OWNER), {"name": name})
    for i in range(clients):
        http_json("GET", base + _url_user("/api/me", _user(i)))  # open mode makes the user on first sight
        http_json("POST", base + _url_user(f"/api/rooms/{room_names[i % rooms]}/members", OWNER), {"user": _user(i)})

    hist = Histogram()
    errors: dict[str, int] = {}
    created: dict[str, list[str]] = {name: [] for name in room_names}  # room → client_ids answered 201
    measured = 0  # 201 answers to sends made in the measured window
    pad = "x" * max(0, body_bytes - 12)
    loop_start = time.monotonic()
    measure_from = loop_start + warmup
    stop_at = measure_from + duration

    async def client(i: int) -> None:
        nonlocal measured
        conn = _Conn(host, port, source_address(host, i, CLIENTS_PER_ADDRESS))
        room = room_names[i % rooms]
        path = _url_user(f"/api/rooms/{room}/messages", _user(i))
        n = 0
        try:
            while (now := time.monotonic()) < stop_at:
                n += 1
                client_id = f"r{i}-{n}"
                body = msgspec.json.encode({"body": f"{n:>10} {pad}", "client_id": client_id})
                started = time.perf_counter_ns()
                try:
                    status, _ = await asyncio.wait_for(conn.request("POST", path, body), REQUEST_TIMEOUT)
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as e:
                    kind = type(e).__name__
                    errors[kind] = errors.get(kind, 0) + 1
                    conn.close()
                    continue
                if status == 201:
                    created[room].append(client_id)  # warm-up sends are checked for loss too
                    if now >= measure_from:
                        hist.record((time.perf_counter_ns() - started) // 1000)
                        measured += 1
                else:
                    errors[str(status)] = errors.get(str(status), 0) + 1
        finally:
            conn.close()

    load_average = os.getloadavg()[0]
    cpu0, gen0 = target.cpu(), time.process_time()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.monotonic() - loop_start
    cpu1, gen1 = target.cpu(), time.process_time()
    lost = _count_lost(base, created)
    return RestReport(
        target=target.label,
        clients=clients,
        rooms=rooms,
        body_bytes=body_bytes,
        duration=duration,
        sent=sum(len(v) for v in created.values()) + sum(errors.values()),
        created=sum(len(v) for v in created.values()),
        errors=errors,
        lost=lost,
        throughput=measured / duration,
        latency_ms=latency(hist),
        server_cpu_percent=None if cpu0 is None or cpu1 is None else 100.0 * (cpu1 - cpu0) / elapsed,
        generator_cpu_percent=100.0 * (gen1 - gen0) / elapsed,
        load_average=load_average,
    )


def _count_lost(base: str, created: dict[str, list[str]]) -> int:
    """How many 201-answered client_ids are missing from their room's history (read back page by page)."""
    lost = 0
    for room, ids in created.items():
        stored: set[str] = set()
        after = 0
        while True:
            page = http_json("GET", f"{base}/api/rooms/{room}/messages?user={OWNER}&after={after}&limit=500")
            stored.update(m["client_id"] for m in page["messages"])
            if not page["messages"] or not page["has_more"]:
                break
            after = page["messages"][-1]["seq"]
        lost += sum(1 for cid in ids if cid not in stored)
    return lost


def format_rest(r: RestReport) -> str:
    errors = ", ".join(f"{k}: {v:,}" for k, v in sorted(r.errors.items())) or "none"
    lat = r.latency_ms
    cpu = "n/a" if r.server_cpu_percent is None else f"{r.server_cpu_percent:.0f}% of a core"
    return "\n".join(
        [
            f"chatd bench rest: {r.clients} concurrent clients, {r.rooms} rooms, {r.body_bytes}-byte bodies, "
            f"against {r.target}",
            "",
            f"  requests         {r.sent:,} sent, {r.created:,} answered 201 (stored)",
            f"  errors           {errors}",
            f"  lost             {r.lost:,} (201 answers missing from history)",
            f"  throughput       {r.throughput:,.0f} sends/s (over {r.duration:.0f} s measured)",
            f"  latency          p50 {lat.p50:.1f} ms  p95 {lat.p95:.1f} ms  p99 {lat.p99:.1f} ms  "
            f"max {lat.max:.1f} ms",
            f"  server CPU       {cpu}; generator CPU {r.generator_cpu_percent:.0f}% of a core; "
            f"load average {r.load_average:.2f} at start",
            f"  result: {'CLEAN' if not r.errors and not r.lost else 'PROBLEMS FOUND'}",
            "",
        ]
    )
