"""The load client: one process's share of the connections, driven on a shared schedule.

A :class:`WorkerPlan` says which clients this process runs, with which credentials, in which rooms, and the
phases of the run. The worker connects and joins, tells the coordinator it is ready, waits for the common start
time, then paces its sends open-loop (the schedule does not wait for the server; a connection with
``max_inflight`` unanswered sends skips its turn, and the skip is counted). Every frame that comes back goes into
the process's :class:`~chatd.bench.stats.Ledger`.

The coordinator and its workers talk over a ``multiprocessing`` pipe with msgpack-encoded messages
(:func:`send_msg` / :func:`recv_msg`).
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from array import array
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from chatd.bench.scenario import Scenario, frame_size
from chatd.bench.stats import Histogram, Ledger, Phase, SenderRecord, make_body, parse_client_id
from chatd.bench.wsconn import ConnectError, Frame, WsConn, with_user

TICK = 0.004  # pacer period; short enough that sends are not bunched into visible clumps


class Identity(msgspec.Struct, array_like=True):
    name: str
    token: str | None = None


class WorkerPlan(msgspec.Struct):
    proc: int
    nonce: str
    url: str
    host: str
    port: int
    scenario: Scenario
    clients: dict[int, Identity]  # client index → who it connects as
    room_names: list[str]
    members: dict[int, list[int]]  # room → clients (all processes)
    pair_order: list[tuple[int, int]]  # every (sender, room), in activation order
    phases: list[Phase]
    proc_count: int = 1


class ConnectStats(msgspec.Struct):
    attempted: int = 0
    ok: int = 0
    failures: dict[str, int] = msgspec.field(default_factory=dict)  # reason → count
    connect_time: Histogram = msgspec.field(default_factory=Histogram)  # TCP connect → hello, µs
    join_failures: int = 0

    def merge(self, other: ConnectStats) -> None:
        self.attempted += other.attempted
        self.ok += other.ok
        for k, v in other.failures.items():
            self.failures[k] = self.failures.get(k, 0) + v
        self.connect_time.merge(other.connect_time)
        self.join_failures += other.join_failures


class WorkerResult(msgspec.Struct):
    proc: int
    ledger: Ledger
    connect: ConnectStats
    joined: dict[int, list[int]]  # room → this process's clients that joined it
    cpu_seconds: float = 0.0  # CPU this process used while the load ran
    wall_seconds: float = 0.0
    skipped: int = 0  # scheduled sends not made because the connection had max_inflight unanswered
    tick_lag: Histogram = msgspec.field(default_factory=Histogram)  # how late the pacer woke, µs
    disconnects: dict[str, int] = msgspec.field(default_factory=dict)  # close code → connections lost mid-run
    max_frame_bytes: int = 0
    still_open: int = 0  # connect scenario: connections alive at the end of the hold
    rss_bytes: int = 0  # this process's own peak RSS
    phase_cpu: list[float] = []  # % of a core used in each phase


PORTS_PER_SOURCE = 20_000  # of the ~28,000 ephemeral ports Linux gives one source address by default


def source_address(host: str, index: int, per_address: int = PORTS_PER_SOURCE) -> str | None:
    """The loopback source address for client ``index``: 127.0.0.1 for the first ``per_address``, then .2, .3 and
    so on (for ports, or to look like several machines to per-address limits).

    Only a loopback server can be reached from any 127.x address; elsewhere the kernel chooses."""
    if not host.startswith("127.") or index < per_address:
        return None
    return f"127.0.0.{1 + index // per_address}"


# --- pipe messages ---------------------------------------------------------------------------------------------

_enc = msgspec.msgpack.Encoder()


def send_msg(conn: Connection, kind: str, **payload: Any) -> None:
    conn.send_bytes(_enc.encode({"kind": kind, **payload}))


def recv_msg(conn: Connection) -> dict[str, Any]:
    return msgspec.msgpack.decode(conn.recv_bytes(), type=dict[str, Any])


async def wait_msg(conn: Connection) -> dict[str, Any]:
    """Await the next pipe message without blocking the event loop."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    loop.add_reader(conn.fileno(), ready)
    try:
        await fut
    finally:
        loop.remove_reader(conn.fileno())
        os.set_blocking(conn.fileno(), True)  # the event loop made it non-blocking; a big result needs many reads
    return recv_msg(conn)


# --- one client ------------------------------------------------------------------------------------------------


class Client:
    """A bench client: its connection, its (sender, room) records and what it is waiting for."""

    __slots__ = ("conn", "index", "inflight", "joins", "pairs", "worker")

    def __init__(self, index: int, worker: Worker) -> None:
        self.index = index
        self.worker = worker
        self.conn: WsConn | None = None
        self.inflight = 0
        self.joins: dict[str, asyncio.Future[Frame]] = {}
        self.pairs: dict[int, Pair] = {}

    def on_frame(self, frame: Frame, now: int) -> None:
        w = self.worker
        kind = frame.type
        if kind == "message":
            parsed = parse_client_id(frame.client_id, w.nonce)
            if parsed is None:
                w.ledger.foreign += 1
                return
            w.ledger.on_message(self.index, parsed[0], parsed[1], parsed[2], frame.seq, frame.body, now)
            w.delivered += 1
            w.last_delivery = now
        elif kind == "ack":
            parsed = parse_client_id(frame.client_id, w.nonce)
            pair = w.pairs.get((parsed[0], parsed[1])) if parsed else None
            if pair is None or parsed is None or parsed[2] >= pair.rec.sent:
                w.ledger.unknown_acks += 1
                return
            n = parsed[2]
            w.ledger.on_ack(pair.rec, n, pair.send_ns[n], now, frame.duplicate)
            self.inflight -= 1
            w.acked += 1
        elif kind == "error":
            parsed = parse_client_id(frame.ref, w.nonce) if frame.ref else None
            pair = w.pairs.get((parsed[0], parsed[1])) if parsed else None
            if w.ledger.on_error(pair.rec if pair else None, parsed[2] if parsed else 0, frame.code):
                self.inflight -= 1
        elif kind == "joined":
            fut = self.joins.pop(frame.room, None)
            if fut is not None and not fut.done():
                fut.set_result(frame)
        else:
            w.ledger.on_other(kind)

    def on_close(self, conn: WsConn) -> None:
        w = self.worker
        for fut in self.joins.values():
            if not fut.done():
                fut.set_exception(ConnectError("closed while joining", conn.close_code))
        if not w.stopping and conn.ready.done() and not conn.ready.exception():
            key = str(conn.close_code) if conn.close_code is not None else "dropped"
            w.disconnects[key] = w.disconnects.get(key, 0) + 1


class Pair:
    """One (sender, room): the sender's ledger record and when each counter was sent."""

    __slots__ = ("client", "fanout", "prefix", "rec", "room", "room_name", "send_ns")

    def __init__(self, client: Client, room: int, room_name: str, rec: SenderRecord, fanout: int, nonce: str) -> None:
        self.client = client
        self.room = room
        self.room_name = room_name
        self.rec = rec
        self.send_ns = array("q")
        self.fanout = fanout
        self.prefix = f"{nonce}.{client.index}.{room}."


# --- the worker ------------------------------------------------------------------------------------------------


class Worker:
    def __init__(self, plan: WorkerPlan, pipe: Connection) -> None:
        self.plan = plan
        self.pipe = pipe
        self.scn = plan.scenario
        self.nonce = plan.nonce
        self.ledger = Ledger(plan.nonce, tick=plan.scenario.timeline_tick, phases=plan.phases)
        self.clients = {i: Client(i, self) for i in plan.clients}
        self.pairs: dict[tuple[int, int], Pair] = {}
        self.connect = ConnectStats()
        self.joined: dict[int, list[int]] = {}
        self.disconnects: dict[str, int] = {}
        self.stopping = False
        self.delivered = 0
        self.acked = 0
        self.skipped = 0
        self.last_delivery = 0
        self.tick_lag = Histogram()
        self.max_frame_bytes = 0
        self.phase_cpu: list[float] = []  # % of a core this process used in each phase

    # -- connecting ---------------------------------------------------------------------------------------------

    async def open_all(self, concurrency: int) -> None:
        gate = asyncio.Semaphore(max(1, concurrency))
        await asyncio.gather(*(self._open(c, gate) for c in self.clients.values()))

    async def _open(self, client: Client, gate: asyncio.Semaphore) -> None:
        plan = self.plan
        ident = plan.clients[client.index]
        url = with_user(plan.url, ident.name if ident.token is None else None)
        async with gate:
            self.connect.attempted += 1
            started = time.monotonic_ns()
            try:
                conn = await WsConn.open(
                    url,
                    plan.host,
                    plan.port,
                    ident.token,
                    self.scn.connect_timeout,
                    client.on_frame,
                    client.on_close,
                    source_address(plan.host, client.index),
                )
            except ConnectError as e:
                reason = f"closed {e.code}" if e.code is not None else e.reason
                self.connect.failures[reason] = self.connect.failures.get(reason, 0) + 1
                return
            self.connect.connect_time.record((time.monotonic_ns() - started) // 1000)
            self.connect.ok += 1
            client.conn = conn
            if conn.hello is not None and conn.hello.max_frame_bytes:
                self.max_frame_bytes = conn.hello.max_frame_bytes

    async def join_all(self) -> None:
        plan = self.plan
        loop = asyncio.get_running_loop()
        waits = []
        for room, members in plan.members.items():
            for idx in members:
                client = self.clients.get(idx)
                if client is None or client.conn is None:
                    continue
                name = plan.room_names[room]
                fut: asyncio.Future[Frame] = loop.create_future()
                client.joins[name] = fut
                client.conn.send(msgspec.json.encode({"type": "join", "room": name}))
                waits.append((client, room, fut))
        for client, room, fut in waits:
            try:
                await asyncio.wait_for(fut, self.scn.connect_timeout)
            except (TimeoutError, ConnectError):
                self.connect.join_failures += 1
                continue
            self.joined.setdefault(room, []).append(client.index)
        for client, room, _ in waits:
            if client.index in self.joined.get(room, ()):
                fanout = len(plan.members[room])
                rec = self.ledger.sender(client.index, room)
                pair = Pair(client, room, plan.room_names[room], rec, fanout, self.nonce)
                self.pairs[(client.index, room)] = client.pairs[room] = pair

    # -- sending ------------------------------------------------------------------------------------------------

    def send(self, pair: Pair, size: int | None = None) -> bool:
        """One send on ``pair``. ``size`` is a whole-frame size in bytes; default: the scenario's body size."""
        client = pair.client
        conn = client.conn
        if conn is None or conn.closed:
            return False
        now = time.monotonic_ns()
        n = self.ledger.on_send(pair.rec, now, pair.fanout)
        pair.send_ns.append(now)
        head = b'{"type":"send","room":"%s","client_id":"%s%d","body":"' % (
            pair.room_name.encode(),
            pair.prefix.encode(),
            n,
        )
        body_len = self.scn.body_bytes if size is None else size - len(head) - 2
        body = make_body(now, body_len).encode()
        client.inflight += 1
        conn.send(head + body + b'"}')
        return True

    async def run_phases(self, start_ns: int) -> None:
        plan = self.plan
        order = {p: i for i, p in enumerate(plan.pair_order)}
        mine = sorted(self.pairs.values(), key=lambda p: order[(p.client.index, p.room)])
        window = self.scn.max_inflight
        for ph in plan.phases:
            active = [p for p in mine if order[(p.client.index, p.room)] < ph.senders]
            t0 = start_ns + int(ph.start * 1e9)
            t1 = start_ns + int(ph.end * 1e9)
            await _sleep_until(t0)
            cpu0 = time.process_time()
            rate = ph.rate * len(active) / ph.senders if ph.senders else 0.0
            cursor = sent_here = 0
            wake = t0
            while True:
                now = time.monotonic_ns()
                if now >= t1:
                    break
                self.tick_lag.record(max(0, now - wake) // 1000)
                if not active:
                    pass
                elif rate > 0:
                    due = int((now - t0) / 1e9 * rate)
                    while sent_here < due:
                        pair = active[cursor % len(active)]
                        cursor += 1
                        sent_here += 1
                        if pair.client.inflight >= window:
                            self.skipped += 1
                        else:
                            self.send(pair)
                else:
                    for pair in active:
                        while pair.client.inflight < window and self.send(pair):
                            pass
                wake = min(now + int(TICK * 1e9), t1)
                await asyncio.sleep(TICK)
            self.phase_cpu.append(100.0 * (time.process_time() - cpu0) / max(ph.end - ph.start, 1e-9))

    async def run_large(self) -> None:
        """Each pair sends ``per_size`` frames of every size in turn, waiting for answers between sizes."""
        limit = self.max_frame_bytes or 65536
        sizes = [frame_size(s, limit) for s in self.scn.sizes]
        pairs = list(self.pairs.values())
        for size in sizes:
            for pair in pairs:
                for _ in range(self.scn.per_size):
                    while pair.client.inflight >= self.scn.max_inflight and not pair.client.conn.closed:  # type: ignore[union-attr]
                        await asyncio.sleep(0.005)
                    if not self.send(pair, size):
                        self.skipped += 1
            await self.settle(self.scn.drain_timeout, quiet=0.3)

    async def settle(self, timeout: float, quiet: float) -> None:
        """Wait until every send is answered and nothing was delivered for ``quiet`` seconds (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answered = all(c.inflight <= 0 or c.conn is None or c.conn.closed for c in self.clients.values())
            idle = (time.monotonic_ns() - self.last_delivery) / 1e9 >= quiet
            if answered and idle:
                return
            await asyncio.sleep(0.05)

    def close_all(self) -> None:
        self.stopping = True
        for c in self.clients.values():
            if c.conn is not None:
                c.conn.close()

    def progress(self) -> dict[str, int]:
        return {
            "sent": sum(p.rec.sent for p in self.pairs.values()),
            "acked": self.acked,
            "delivered": self.delivered,
            "skipped": self.skipped,
        }

    def result(self, cpu: float, wall: float, still_open: int = 0) -> WorkerResult:
        return WorkerResult(
            self.plan.proc,
            self.ledger,
            self.connect,
            self.joined,
            cpu,
            wall,
            self.skipped,
            self.tick_lag,
            self.disconnects,
            self.max_frame_bytes,
            still_open,
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            self.phase_cpu,
        )


async def _sleep_until(t_ns: int) -> None:
    delay = (t_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)


async def _report_progress(worker: Worker, pipe: Connection, every: float = 0.5) -> None:
    while True:
        await asyncio.sleep(every)
        send_msg(pipe, "progress", **worker.progress())


async def run_worker(plan: WorkerPlan, pipe: Connection) -> None:
    """The whole life of one load process, in step with the coordinator."""
    w = Worker(plan, pipe)
    scn = plan.scenario
    share = max(1, scn.connect_concurrency // max(1, plan.proc_count))
    cpu0, wall0 = time.process_time(), time.monotonic()
    await w.open_all(share)
    if scn.kind == "connect":
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        send_msg(pipe, "ready", connect=msgspec.to_builtins(w.connect))
        await wait_msg(pipe)  # the coordinator measured the server while we held every connection
        alive = sum(1 for c in w.clients.values() if c.conn is not None and not c.conn.closed)
        w.close_all()
        await asyncio.sleep(0.2)
        send_msg(pipe, "result", result=_enc.encode(w.result(cpu, wall, alive)))
        return
    await w.join_all()
    send_msg(pipe, "ready", connect=msgspec.to_builtins(w.connect))
    go = await wait_msg(pipe)
    start_ns = int(go["start_ns"])
    w.ledger.start_ns = start_ns
    reporter = asyncio.create_task(_report_progress(w, pipe))
    await _sleep_until(start_ns)
    cpu0, wall0 = time.process_time(), time.monotonic()
    if scn.kind == "large":
        await w.run_large()
    else:
        await w.run_phases(start_ns)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    await w.settle(scn.drain_timeout, scn.drain_quiet)
    reporter.cancel()
    send_msg(pipe, "progress", **w.progress())
    w.close_all()
    await asyncio.sleep(0.1)
    send_msg(pipe, "result", result=_enc.encode(w.result(cpu, wall)))


def worker_main(plan_bytes: bytes, pipe: Connection) -> None:
    """Entry point of a load process (``multiprocessing`` target)."""
    import uvloop

    plan = msgspec.msgpack.decode(plan_bytes, type=WorkerPlan)
    try:
        uvloop.run(run_worker(plan, pipe))
    except Exception as e:  # noqa: BLE001 - the coordinator must hear why, not just see a dead pipe
        import traceback

        send_msg(pipe, "failed", error=f"{type(e).__name__}: {e}", trace=traceback.format_exc())
