"""``chatd bench chaos``: a seeded, randomized fault run against a deployment on this machine, and its checker.

It starts N nodes (``chatd.deploy.local.LocalCluster``, what ``chatd cluster up`` starts) over Redis or RabbitMQ
and PostgreSQL, each node reaching each service through a :class:`~chatd.bench.faultproxy.FaultProxy` of its own,
so a fault can hit one node's link while the shared services and the other nodes go on. Then:

- **Senders** (``s0``, ``s1``, …; each on its home node, one room each) send at a steady rate with a window of
  unacked sends, as a careful client does: a send refused as ``unavailable`` or ``internal`` is resent with the same
  client_id, in the order sent; a connection that drops or goes silent (no ack for ``ACK_PATIENCE`` seconds while
  sends are waiting) is replaced by one to the next node that answers, and every unacked send is resent in order.
- **Readers** (one per node and room) follow their room on their own node only, resuming with ``join`` +
  ``since`` after any drop, and record every seq they are given.
- **Faults** come one at a time from a schedule drawn with ``random.Random(seed)`` (every kind once per round, in
  a drawn order, on a drawn node, for a drawn length): ``kill`` (kill -9, restarted
  after the fault's length), ``stop`` (SIGSTOP, then SIGCONT), ``broker-partition`` / ``pg-partition`` (one node's
  link blackholed), ``broker-delay`` / ``pg-delay`` (one node's link slowed), ``broker-cut`` (RabbitMQ:
  ``rabbitmqctl close_connection`` of this deployment's connections; Redis: every node's link reset), and
  ``pg-terminate`` (``pg_terminate_backend`` of this deployment's sessions). The shared services are never
  restarted. A quiet spell follows each fault.

At the end every fault is healed, the senders resend what is unacked until all is acked, and the checker compares
the store (each room's history, read over REST) with what the clients saw:

- **lost**: acked, but not stored at the acked seq; **duplicated**: one (sender, client_id) stored twice;
  **gaps**: seqs of a room that are not 1, 2, 3, …; **phantoms**: stored messages no sender sent;
- **inversions**: a sender's messages stored out of the order it sent them;
- **reader faults**: a reader given a seq twice or out of order (a repeat or a skip on a live socket);
- **deaf**: a reader that, once everything is healed, does not reach its room's last seq (its node no longer
  passes on what other nodes store);
- the worst **ack latency** per fault kind: from a send's first attempt to its ack, charged to the fault in force
  when it was sent (the latest to start, so its recovery counts) and to any fault that struck its node while it
  waited; apart for sends that went to the node the fault hit (first or in the end), and for sends made and acked
  on one connection to another node (what one node's fault costs the rest).

The deployment's namespace and database are removed afterwards (``--keep`` keeps the work directory's logs).
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import signal
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import websockets

from chatd.bench.faultproxy import FaultProxy
from chatd.deploy.local import (
    BROKER_URLS,
    LocalCluster,
    close_rabbit_connections,
    drop_database,
    drop_namespace,
    ensure_database,
    terminate_sessions,
)
from chatd.deploy.procs import free_port

FAULTS = (
    "kill",
    "stop",
    "broker-partition",
    "pg-partition",
    "broker-delay",
    "pg-delay",
    "broker-cut",
    "pg-terminate",
)
ACK_PATIENCE = 10.0  # seconds without an ack, sends waiting, before a sender tries another node
RESEND_AFTER = 0.2  # seconds after a refusal before the resend
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"


@dataclass
class ChaosSettings:
    broker: str = "redis"
    broker_url: str = ""
    pg_server: str = PG_SERVER
    nodes: int = 3
    duration: float = 60.0
    seed: int = 1
    senders: int = 6
    rooms: int = 3
    rate: float = 4.0  # sends per second per sender
    window: int = 10
    fault_min: float = 2.0
    fault_max: float = 10.0
    quiet: float = 3.0
    faults: tuple[str, ...] = FAULTS
    workdir: Path = Path("chaos-run")


@dataclass
class FaultRecord:
    kind: str
    node: int  # -1: every node
    start: float
    length: float


@dataclass
class ChaosReport:
    broker: str
    seed: int
    nodes: int
    duration: float
    faults: list[dict[str, Any]]
    fault_counts: dict[str, int]
    sent: int
    acked: int
    lost: int
    duplicated: int
    gaps: int
    phantoms: int
    inversions: int
    reader_repeats: int
    reader_skips: int
    deaf: list[str]
    unacked_at_end: int
    errors: dict[str, int]
    reconnects: int
    worst_ack_seconds: dict[str, float]  # senders on the node the fault hit (every sender for a cluster-wide one)
    worst_ack_elsewhere: dict[str, float]  # senders on the other nodes meanwhile
    examples: list[str] = field(default_factory=list)
    slowest: list[str] = field(default_factory=list)  # the slowest acks, with where and when

    @property
    def violations(self) -> int:
        return (
            self.lost
            + self.duplicated
            + self.gaps
            + self.phantoms
            + self.inversions
            + self.reader_repeats
            + self.reader_skips
            + len(self.deaf)
            + self.unacked_at_end
        )


class Run:
    """The deployment, its proxies and the fault clock, shared by the clients."""

    def __init__(self, s: ChaosSettings) -> None:
        self.s = s
        self.namespace = f"chaos{secrets.token_hex(4)}"
        self.dsn = f"{s.pg_server}/chatd_chaos_{secrets.token_hex(4)}"
        self.broker_url = s.broker_url or BROKER_URLS[s.broker]
        self.broker_proxies: list[FaultProxy] = []
        self.pg_proxies: list[FaultProxy] = []
        self.cluster: LocalCluster | None = None
        self.records: list[FaultRecord] = []
        self.over = False
        self.started = time.monotonic()

    def ws(self, i: int) -> str:
        assert self.cluster is not None
        return self.cluster.nodes[i].ws

    def http(self, i: int) -> str:
        assert self.cluster is not None
        return self.cluster.nodes[i].http

    async def start(self) -> None:
        s = self.s
        await asyncio.to_thread(ensure_database, self.dsn)
        b, p = urlsplit(self.broker_url), urlsplit(self.dsn)
        assert b.hostname and b.port and p.hostname
        env: dict[int, dict[str, str]] = {}
        for i in range(s.nodes):
            bp = await FaultProxy(b.hostname, b.port).start()
            pp = await FaultProxy(p.hostname, p.port or 5432).start()
            self.broker_proxies.append(bp)
            self.pg_proxies.append(pp)
            env[i] = {"CHATD_BROKER_URL": bp.via(self.broker_url), "CHATD_STORE_DSN": pp.via(self.dsn)}
        settings: dict[str, dict[str, Any]] = {
            "auth": {"mode": "open"},
            "limits": {"send_rate": 0},
            "rooms": {"replay_max": 100_000},
            "server": {"drain_timeout": 5.0},
        }
        self.cluster = LocalCluster(
            s.workdir, s.nodes, s.broker, self.broker_url, self.dsn, self.namespace, free_port(), settings, env
        )
        await asyncio.to_thread(self.cluster.start, False)  # in a thread: the proxies run in this loop

    async def stop(self) -> None:
        for proxy in (*self.broker_proxies, *self.pg_proxies):
            proxy.set("pass")
        if self.cluster is not None:
            for node in self.cluster.nodes:
                if node.proc is not None and node.proc.poll() is None:
                    node.proc.send_signal(signal.SIGCONT)
            await asyncio.to_thread(self.cluster.stop)
        for proxy in (*self.broker_proxies, *self.pg_proxies):
            await proxy.close()
        queues = self.cluster.queue_names() if self.cluster is not None else []
        try:
            await asyncio.to_thread(drop_namespace, self.s.broker, self.broker_url, self.namespace, queues)
        finally:
            await asyncio.to_thread(drop_database, self.dsn)


# --- clients ---------------------------------------------------------------------------------------------------


async def connect(url: str, user: str) -> Any:
    ws = await websockets.connect(f"{url}?user={user}", open_timeout=5, max_size=None, ping_interval=None)
    try:
        async with asyncio.timeout(5):
            while True:
                if any(f["type"] == "hello" for f in await recv(ws)):
                    return ws
    except BaseException:
        await ws.close()
        raise


async def recv(ws: Any) -> list[dict[str, Any]]:
    """The frames of the next WebSocket message (the server packs several, separated by newlines)."""
    return [json.loads(line) for line in (await ws.recv()).split("\n")]


class Sender:
    def __init__(self, run: Run, n: int, room: str) -> None:
        self.run = run
        self.user = f"s{n}"
        self.home = n % run.s.nodes
        self.room = room
        self.order: list[str] = []  # client_ids in the order sent
        # client_id -> (first attempt, the node and the connection (a counter) it went to)
        self.first: dict[str, tuple[float, int, int]] = {}
        self.node = self.home
        self.acked: dict[str, int] = {}
        # client_id -> (ack time, seconds since the first attempt, the node and connection the ack came on)
        self.latency: dict[str, tuple[float, float, int, int]] = {}
        self.session = 0
        self.conflicts: list[str] = []
        self.unacked: OrderedDict[str, str] = OrderedDict()
        self.errors: Counter[str] = Counter()
        self.reconnects = 0
        self.draining = False

    async def run_until_done(self) -> None:
        nodes = self.run.s.nodes
        while not (self.draining and not self.unacked):
            for k in range(nodes):
                url = self.run.ws((self.home + k) % nodes)
                try:
                    ws = await connect(url, self.user)
                except (OSError, TimeoutError, websockets.WebSocketException):
                    continue
                self.node = (self.home + k) % nodes
                self.session += 1
                try:
                    await self._session(ws)
                except (OSError, TimeoutError, websockets.WebSocketException):
                    pass
                finally:
                    await ws.close()
                break
            if self.draining and not self.unacked:
                return
            self.reconnects += 1
            await asyncio.sleep(0.3)

    async def _session(self, ws: Any) -> None:
        await ws.send(json.dumps({"type": "join", "room": self.room}))
        async with asyncio.timeout(10):
            while not any(f["type"] == "joined" for f in await recv(ws)):
                pass
        for cid, body in self.unacked.items():  # everything unacked, in the order sent
            await self._send(ws, cid, body)
        resend: list[tuple[float, str]] = []
        step = 1.0 / self.run.s.rate
        next_at = time.monotonic()
        progress = time.monotonic()
        while not (self.draining and not self.unacked):
            now = time.monotonic()
            while resend and resend[0][0] <= now:
                cid = resend.pop(0)[1]
                if cid in self.unacked:
                    await self._send(ws, cid, self.unacked[cid])
            if not self.draining and now >= next_at and len(self.unacked) < self.run.s.window:
                cid = f"{self.user}-{len(self.order)}"
                self.order.append(cid)
                self.first[cid] = (now, self.node, self.session)
                self.unacked[cid] = f"{self.user} {cid}"
                await self._send(ws, cid, self.unacked[cid])
                next_at = max(next_at + step, now - 1.0)
            if not self.unacked:
                progress = now
            elif now - progress > ACK_PATIENCE:
                raise TimeoutError("no ack for a while: try another node")
            wait = min(0.2, max(0.005, next_at - now), *(max(0.005, due - now) for due, _ in resend[:1]))
            try:
                async with asyncio.timeout(wait):
                    frames = await recv(ws)
            except TimeoutError:
                continue
            for f in frames:
                if f["type"] == "ack" and f.get("client_id") in self.first:
                    cid = f["client_id"]
                    if cid in self.acked and self.acked[cid] != f["seq"]:
                        self.conflicts.append(f"{self.user}/{cid}: acked at {self.acked[cid]} and {f['seq']}")
                    if cid not in self.acked:
                        self.acked[cid] = f["seq"]
                        acked_at = time.monotonic()
                        self.latency[cid] = (acked_at, acked_at - self.first[cid][0], self.node, self.session)
                    self.unacked.pop(cid, None)
                    progress = time.monotonic()
                elif f["type"] == "error" and f.get("ref") in self.unacked:
                    self.errors[f["code"]] += 1
                    progress = time.monotonic()
                    if f["code"] in ("unavailable", "internal"):
                        resend.append((time.monotonic() + RESEND_AFTER, f["ref"]))
                    else:  # refused for good: never expected here, and reported
                        self.unacked.pop(f["ref"], None)

    async def _send(self, ws: Any, cid: str, body: str) -> None:
        await ws.send(json.dumps({"type": "send", "room": self.room, "body": body, "client_id": cid}))


class Reader:
    def __init__(self, run: Run, node: int, room: str) -> None:
        self.run = run
        self.node = node
        self.room = room
        self.user = f"r{node}-{room}"
        self.last = 0
        self.repeats = 0
        self.skips = 0
        self.examples: list[str] = []

    async def follow(self) -> None:
        while not self.run.over:
            try:
                ws = await connect(self.run.ws(self.node), self.user)
            except (OSError, TimeoutError, websockets.WebSocketException):
                await asyncio.sleep(0.5)
                continue
            try:
                await ws.send(json.dumps({"type": "join", "room": self.room, "since": self.last}))
                while True:
                    for f in await recv(ws):
                        if f["type"] == "message" and f["room"] == self.room:
                            self._seen(f["seq"])
            except (OSError, TimeoutError, websockets.WebSocketException):
                pass
            finally:
                await ws.close()
            await asyncio.sleep(0.3)

    def _seen(self, seq: int) -> None:
        if seq <= self.last:
            self.repeats += 1
            self._example(f"reader {self.user} on node{self.node + 1}: seq {seq} again after {self.last}")
            return
        if seq != self.last + 1:
            self.skips += 1
            self._example(f"reader {self.user} on node{self.node + 1}: seq {seq} after {self.last}")
        self.last = seq

    def _example(self, text: str) -> None:
        if len(self.examples) < 5:
            self.examples.append(text)


# --- faults ----------------------------------------------------------------------------------------------------


async def apply_fault(run: Run, rng: random.Random, kind: str, node: int, length: float) -> None:
    """Cause one fault, hold it for ``length`` seconds, heal it."""
    assert run.cluster is not None
    target = run.cluster.nodes[node]
    if kind == "kill":
        await asyncio.to_thread(target.kill)
        await asyncio.sleep(length)
        target.launch()
        await asyncio.to_thread(target.wait_ready, 60)
    elif kind == "stop":
        assert target.proc is not None
        target.proc.send_signal(signal.SIGSTOP)
        await asyncio.sleep(length)
        target.proc.send_signal(signal.SIGCONT)
    elif kind in ("broker-partition", "pg-partition", "broker-delay", "pg-delay"):
        proxy = (run.broker_proxies if kind.startswith("broker") else run.pg_proxies)[node]
        if kind.endswith("delay"):
            proxy.set("delay", round(rng.uniform(0.1, 1.0), 2))
        else:
            proxy.set("blackhole")
        await asyncio.sleep(length)
        proxy.set("pass")
    elif kind == "broker-cut":
        if run.s.broker == "rabbitmq":
            await asyncio.to_thread(close_rabbit_connections, run.namespace)
        else:
            for proxy in run.broker_proxies:
                proxy.set("cut")
            await asyncio.sleep(min(length, 3.0))
            for proxy in run.broker_proxies:
                proxy.set("pass")
    elif kind == "pg-terminate":
        await terminate_sessions(run.dsn)
    else:
        raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULTS)}")


async def schedule(run: Run, progress: Callable[[str], None]) -> None:
    s = run.s
    rng = random.Random(s.seed)
    end = run.started + s.duration
    await asyncio.sleep(min(s.quiet, s.duration))
    deck: list[str] = []
    while time.monotonic() < end:
        if not deck:  # every kind once per round, in an order drawn from the seed
            deck = rng.sample(s.faults, len(s.faults))
        kind = deck.pop()
        node = -1 if kind in ("broker-cut", "pg-terminate") else rng.randrange(s.nodes)
        length = round(rng.uniform(s.fault_min, s.fault_max), 1)
        run.records.append(FaultRecord(kind, node, time.monotonic() - run.started, length))
        where = "every node" if node < 0 else f"node{node + 1}"
        progress(f"{time.monotonic() - run.started:6.1f}s  {kind} on {where} for {length}s")
        await apply_fault(run, rng, kind, max(node, 0), length)
        await asyncio.sleep(s.quiet)


# --- the run and the checker -----------------------------------------------------------------------------------


async def history(http: str, room: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = 0
    async with httpx.AsyncClient(timeout=30) as client:
        while True:
            r = await client.get(
                f"{http}/api/rooms/{room}/messages", params={"after": after, "limit": 500, "user": "checker"}
            )
            r.raise_for_status()
            body = r.json()
            out += body["messages"]
            if not body["has_more"] or not body["messages"]:
                return out
            after = body["messages"][-1]["seq"]


def fault_at(run: Run, t: float) -> FaultRecord | None:
    """The fault in force at a moment of the run: the latest one to start by then (its recovery included)."""
    latest = None
    for record in run.records:
        if record.start <= t:
            latest = record
    return latest


def check(
    run: Run, senders: list[Sender], readers: list[Reader], stored: dict[str, list[dict[str, Any]]]
) -> ChaosReport:
    s = run.s
    examples: list[str] = []
    gaps = duplicated = phantoms = lost = inversions = 0
    at: dict[tuple[str, str], int] = {}
    sent = {(x.user, cid) for x in senders for cid in x.order}
    for room, msgs in stored.items():
        seqs = [m["seq"] for m in msgs]
        gaps += sum(1 for a, b in zip([0, *seqs], seqs, strict=False) if b != a + 1)
        for m in msgs:
            key = (m["from"], m["client_id"])
            if key in at:
                duplicated += 1
                examples.append(f"{room}: {key} stored at {at[key]} and {m['seq']}")
            at[key] = m["seq"]
            if key not in sent:
                phantoms += 1
    for x in senders:
        for cid, seq in x.acked.items():
            if at.get((x.user, cid)) != seq:
                lost += 1
                examples.append(f"{x.user}/{cid} acked at seq {seq}, stored at {at.get((x.user, cid))}")
        placed = [at[(x.user, cid)] for cid in x.order if (x.user, cid) in at]
        for a, b in zip(placed, placed[1:], strict=False):
            if b < a:
                inversions += 1
                if len(examples) < 20:
                    examples.append(f"{x.user}: a later send stored at {b}, before an earlier one at {a}")
        examples += x.conflicts
        lost += len(x.conflicts)
    last = {room: (msgs[-1]["seq"] if msgs else 0) for room, msgs in stored.items()}
    deaf = [
        f"{r.user} on node{r.node + 1} stopped at {r.last} of {last[r.room]}" for r in readers if r.last < last[r.room]
    ]
    for r in readers:
        examples += r.examples
    worst: dict[str, float] = {}
    elsewhere: dict[str, float] = {}
    for x in senders:
        for cid, (acked_at, seconds, node, session) in x.latency.items():
            sent_at, first_node, first_session = x.first[cid]
            touched = (-1, first_node, node)
            t0, t1 = sent_at - run.started, acked_at - run.started
            # The fault in force when it was sent, and any that struck its node while it waited.
            later = [f for f in run.records if t0 < f.start <= t1 and f.node in touched]
            first = fault_at(run, t0)
            charged = later if first is None and later else [first, *later]
            for fault in charged:
                if fault is None or fault.node in touched:
                    into = worst  # the send went to the node the fault hit (or the fault hit every node)
                elif session == first_session:
                    into = elsewhere  # sent and acked on one connection to a node the fault did not hit
                else:
                    continue  # moved nodes meanwhile: no clean measure of what this fault cost the others
                kind = fault.kind if fault is not None else "none"
                into[kind] = max(into.get(kind, 0.0), round(seconds, 3))
    slow = sorted(((lat[1], x, cid) for x in senders for cid, lat in x.latency.items()), key=lambda t: t[0])[-5:]
    slowest = [
        f"{x.user}/{cid}: {seconds:.2f}s, sent at {x.first[cid][0] - run.started:.1f}s to node{x.first[cid][1] + 1}, "
        f"acked on node{x.latency[cid][2] + 1}{' (moved)' if x.latency[cid][3] != x.first[cid][2] else ''}"
        for seconds, x, cid in reversed(slow)
    ]
    errors: Counter[str] = Counter()
    for x in senders:
        errors.update(x.errors)
    return ChaosReport(
        broker=s.broker,
        seed=s.seed,
        nodes=s.nodes,
        duration=s.duration,
        faults=[vars(f) for f in run.records],
        fault_counts=dict(Counter(f.kind for f in run.records)),
        sent=len(sent),
        acked=sum(len(x.acked) for x in senders),
        lost=lost,
        duplicated=duplicated,
        gaps=gaps,
        phantoms=phantoms,
        inversions=inversions,
        reader_repeats=sum(r.repeats for r in readers),
        reader_skips=sum(r.skips for r in readers),
        deaf=deaf,
        unacked_at_end=sum(len(x.unacked) for x in senders),
        errors=dict(errors),
        reconnects=sum(x.reconnects for x in senders),
        worst_ack_seconds=dict(sorted(worst.items())),
        worst_ack_elsewhere=dict(sorted(elsewhere.items())),
        examples=examples[:20],
        slowest=slowest,
    )


async def run_chaos(s: ChaosSettings, progress: Callable[[str], None] = lambda text: None) -> ChaosReport:
    """Start the deployment, run the clients under the fault schedule, heal, drain, check, clean up."""
    bad = [k for k in s.faults if k not in FAULTS]
    if bad:
        raise ValueError(f"unknown fault(s) {', '.join(bad)}; choose from {', '.join(FAULTS)}")
    run = Run(s)
    progress(f"chaos: {s.nodes} nodes over {s.broker}, seed {s.seed}, {s.duration:.0f}s (workdir {s.workdir})")
    await run.start()
    rooms = [f"room{i}" for i in range(s.rooms)]
    senders = [Sender(run, n, rooms[n % s.rooms]) for n in range(s.senders)]
    readers = [Reader(run, i, room) for i in range(s.nodes) for room in rooms]
    tasks: list[asyncio.Task[None]] = []
    try:
        tasks = [asyncio.create_task(r.follow()) for r in readers]
        sending = [asyncio.create_task(x.run_until_done()) for x in senders]
        run.started = time.monotonic()
        await schedule(run, progress)
        progress(f"{time.monotonic() - run.started:6.1f}s  healed; draining the senders")
        for x in senders:
            x.draining = True
        done, pending = await asyncio.wait(sending, timeout=120)
        for t in pending:
            t.cancel()
        for t in done:
            t.result()
        stored = {room: await history(run.http(0), room) for room in rooms}
        last = {room: (msgs[-1]["seq"] if msgs else 0) for room, msgs in stored.items()}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(r.last < last[r.room] for r in readers):
            await asyncio.sleep(0.2)
        run.over = True
        return check(run, senders, readers, stored)
    finally:
        run.over = True
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await run.stop()


def format_report(r: ChaosReport) -> str:
    lines = [
        f"chaos over {r.broker}: seed {r.seed}, {r.nodes} nodes, {r.duration:.0f}s, "
        f"{len(r.faults)} faults ({', '.join(f'{k} {v}' for k, v in sorted(r.fault_counts.items()))})",
        f"  sent {r.sent}, acked {r.acked}, unacked at the end {r.unacked_at_end}",
        f"  lost {r.lost}, duplicated {r.duplicated}, gaps {r.gaps}, phantoms {r.phantoms}, "
        f"inversions {r.inversions}, reader repeats {r.reader_repeats}, reader skips {r.reader_skips}, "
        f"deaf {len(r.deaf)}",
        f"  refusals resent: {', '.join(f'{k} {v}' for k, v in sorted(r.errors.items())) or 'none'}; "
        f"sender reconnects {r.reconnects}",
        "  worst ack latency, on the node hit: "
        + ", ".join(f"{k} {v:.2f}s" for k, v in sorted(r.worst_ack_seconds.items(), key=lambda kv: -kv[1])),
        "  worst ack latency, on the other nodes: "
        + ", ".join(f"{k} {v:.2f}s" for k, v in sorted(r.worst_ack_elsewhere.items(), key=lambda kv: -kv[1])),
    ]
    lines += [f"  slowest: {line}" for line in r.slowest]
    lines += [f"  ! {d}" for d in r.deaf]
    lines += [f"  ! {e}" for e in r.examples]
    lines.append("  OK: nothing lost, duplicated, reordered or missed" if not r.violations else "  FAILED")
    return "\n".join(lines) + "\n"
