"""Scenarios: what load to offer. Named presets, or TOML files (``bench/scenarios/*.toml``) with the same fields.

A scenario is one flat struct; ``kind`` says which fields matter. Everything is validated when loaded, so a typo
in a TOML file is an error naming the key, not a silently ignored setting.

Rooms and membership are a pure function of the scenario (:func:`layout`), so every load process can work out
who is in which room without talking to the others.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Literal

import msgspec

from chatd.bench.stats import Phase

Kind = Literal["steady", "ramp", "burst", "connect", "large", "dm"]


class Scenario(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One benchmark scenario. See docs/bench.md for every field."""

    name: str
    kind: Kind = "steady"
    description: str = ""
    # who and where
    clients: int = 100  # connections that join rooms (one user each)
    rooms: int = 10  # clients are dealt evenly into rooms; dm pairs them instead
    # what each sender does
    rate: float = 1000.0  # msgs/s offered over all senders; 0 = as fast as the in-flight window allows
    body_bytes: int = 100
    max_inflight: int = 256  # unacknowledged sends per connection before it skips its turn
    # how long
    duration: float = 10.0  # measured seconds (steady, burst, dm)
    warmup: float = 2.0  # seconds of load before measuring starts (not in the latency figures)
    drain_timeout: float = 15.0  # after the last send: how long to wait for acks and deliveries
    drain_quiet: float = 1.0  # ...finishing early once everything is answered and nothing arrived for this long
    # ramp
    ramp_by: Literal["rate", "clients"] = "rate"
    steps: list[float] = []  # rates (msgs/s) or numbers of sending clients, one per step
    step_duration: float = 5.0
    per_client_rate: float = 10.0  # ramp_by = "clients": msgs/s each active client sends
    slo_p99_ms: float = 50.0  # a step is sustainable if delivery p99 <= this, nothing is lost...
    slo_min_ratio: float = 0.95  # ...and at least this share of the offered rate was acknowledged
    # connect
    connections: int = 1000
    connect_concurrency: int = 256  # handshakes in flight at once (over all processes)
    connect_timeout: float = 30.0
    hold: float = 5.0  # seconds to keep every connection open before measuring memory and closing
    # large
    sizes: list[str] = msgspec.field(  # whole-frame sizes in bytes
        default_factory=lambda: ["1k", "limit/2", "limit", "limit+1", "2*limit"]
    )
    per_size: int = 5  # messages per size, per sending client
    # observation
    metrics_interval: float = 0.5  # seconds between /metrics scrapes
    timeline_tick: float = 0.5  # seconds per bucket of the msgs/s-over-time series

    def __post_init__(self) -> None:
        problems = []
        if self.clients < 1:
            problems.append("clients must be >= 1")
        if self.kind == "dm" and self.clients % 2:
            problems.append("dm needs an even number of clients")
        if self.kind not in ("dm", "connect") and not 1 <= self.rooms <= self.clients:
            problems.append("rooms must be between 1 and clients")
        if self.rate < 0 or self.body_bytes < 1 or self.max_inflight < 1:
            problems.append("rate must be >= 0, body_bytes and max_inflight >= 1")
        if self.kind == "ramp" and not self.steps:
            problems.append("ramp needs steps")
        if self.kind == "connect" and (self.connections < 1 or self.connect_concurrency < 1):
            problems.append("connections and connect_concurrency must be >= 1")
        for s in self.sizes:
            try:
                frame_size(s, 65536)
            except ValueError as e:
                problems.append(str(e))
        if problems:
            raise ValueError(f"scenario {self.name!r}: " + "; ".join(problems))


_SIZE = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*\*\s*)?(limit|\d+k?)\s*(?:(/)\s*(\d+))?\s*(?:([+-])\s*(\d+))?\s*$")


def frame_size(expr: str, limit: int) -> int:
    """A size like ``"1k"``, ``"limit"``, ``"limit+1"``, ``"limit/2"`` or ``"2*limit"``, in bytes."""
    m = _SIZE.match(expr)
    if not m:
        raise ValueError(f"bad size {expr!r} (try 512, 4k, limit, limit+1, limit/2, 2*limit)")
    mult, base, _, div, sign, delta = m.groups()
    value = float(limit if base == "limit" else int(base[:-1]) * 1024 if base.endswith("k") else int(base))
    if mult:
        value *= float(mult)
    if div:
        value /= int(div)
    if sign:
        value += int(delta) if sign == "+" else -int(delta)
    return max(1, int(value))


PRESETS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="steady",
            kind="steady",
            description="100 clients in 10 rooms of 10, 4,000 msgs/s offered, 100-byte bodies",
            clients=100,
            rooms=10,
            rate=4000,
            duration=20,
            warmup=3,
        ),
        Scenario(
            name="ramp",
            kind="ramp",
            description="100 clients in 10 rooms; offered rate stepped up until latency or loss gives",
            clients=100,
            rooms=10,
            steps=[500, 1000, 2000, 3000, 4000, 5000, 6000, 8000],
            step_duration=6,
            warmup=1,
        ),
        Scenario(
            name="burst",
            kind="burst",
            description="100 clients in 10 rooms sending as fast as 64 in-flight sends each allow, for 15 s",
            clients=100,
            rooms=10,
            rate=0,
            max_inflight=64,
            duration=15,
            warmup=0,
        ),
        Scenario(
            name="connect",
            kind="connect",
            description="10,000 concurrent connections: success, connect time, server memory per connection",
            connections=10_000,
            connect_concurrency=256,
            hold=5,
        ),
        Scenario(
            name="large",
            kind="large",
            description="payloads up to the frame limit and beyond: nothing may be lost silently",
            clients=4,
            rooms=2,
            rate=0,
            max_inflight=8,
            warmup=0,
        ),
        Scenario(
            name="dm",
            kind="dm",
            description="100 clients in 50 one-to-one rooms, 2,000 msgs/s",
            clients=100,
            rate=2000,
            duration=20,
            warmup=2,
        ),
        Scenario(
            name="smoke",
            kind="steady",
            description="a few seconds of light load: does it work at all",
            clients=6,
            rooms=2,
            rate=100,
            duration=2,
            warmup=0.5,
            drain_timeout=5,
        ),
    )
}


def load_scenario(ref: str) -> Scenario:
    """A preset name, or a path to a TOML file (whose fields override the preset named by its ``kind``)."""
    if ref in PRESETS:
        return PRESETS[ref]
    path = Path(ref)
    if not path.is_file():
        guess = Path("bench/scenarios") / f"{ref}.toml"
        if not guess.is_file():
            raise ValueError(f"no preset or file {ref!r}; presets: {', '.join(sorted(PRESETS))}")
        path = guess
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not valid TOML: {e}") from None
    raw.setdefault("name", path.stem)
    try:
        return msgspec.convert(raw, Scenario)
    except msgspec.ValidationError as e:
        raise ValueError(f"{path}: {e}") from None


def override(scn: Scenario, **changes: object) -> Scenario:
    """A copy with command-line overrides (None means "not given"), validated again."""
    given = {k: v for k, v in changes.items() if v is not None}
    if not given:
        return scn
    merged = msgspec.structs.asdict(scn) | given
    try:
        return msgspec.convert(merged, Scenario)
    except msgspec.ValidationError as e:
        raise ValueError(str(e)) from None


# --- layout: rooms, members, senders -------------------------------------------------------------------------


class Layout(msgspec.Struct):
    """Who is in which room. Client i is in ``rooms_of[i]``; ``members[r]`` lists room r's clients."""

    room_names: list[str]
    members: dict[int, list[int]]
    rooms_of: dict[int, list[int]]

    def pairs(self) -> list[tuple[int, int]]:
        """Every (sender, room) pair, in a fixed order: all rooms' first members first, so ramp-by-clients
        activates senders spread across rooms."""
        out = []
        for client in sorted(self.rooms_of):
            for room in self.rooms_of[client]:
                out.append((client, room))
        return out


def layout(scn: Scenario, nonce: str, namespace: str = "bench") -> Layout:
    """Rooms are named ``<namespace>-<nonce>-…``: each run gets fresh rooms, and everything a run made can be told
    apart (and deleted) by its namespace."""
    if scn.kind == "connect":
        return Layout([], {}, {})
    if scn.kind == "dm":
        n_rooms = scn.clients // 2
        names = [f"{namespace}-{nonce}-dm{2 * r}-{2 * r + 1}" for r in range(n_rooms)]
        members = {r: [2 * r, 2 * r + 1] for r in range(n_rooms)}
    else:
        n_rooms = scn.rooms
        names = [f"{namespace}-{nonce}-r{r}" for r in range(n_rooms)]
        members = {r: [] for r in range(n_rooms)}
        for c in range(scn.clients):
            members[c % n_rooms].append(c)
    rooms_of: dict[int, list[int]] = {}
    for r, cs in members.items():
        for c in cs:
            rooms_of.setdefault(c, []).append(r)
    return Layout(names, members, rooms_of)


def phases(scn: Scenario, n_pairs: int) -> list[Phase]:
    """The run's time slices. Offered rates are totals over all processes."""
    out: list[Phase] = []
    t = 0.0
    if scn.kind == "ramp":
        if scn.warmup > 0:
            first = scn.steps[0]
            rate = first if scn.ramp_by == "rate" else first * scn.per_client_rate
            senders = n_pairs if scn.ramp_by == "rate" else int(first)
            out.append(Phase("warmup", 0.0, scn.warmup, rate, min(senders, n_pairs), measured=False))
            t = scn.warmup
        for step in scn.steps:
            if scn.ramp_by == "rate":
                out.append(Phase(f"{step:g} msgs/s", t, t + scn.step_duration, step, n_pairs))
            else:
                k = min(int(step), n_pairs)
                out.append(Phase(f"{k} senders", t, t + scn.step_duration, k * scn.per_client_rate, k))
            t += scn.step_duration
        return out
    if scn.kind == "connect":
        return []
    if scn.kind == "large":
        return [Phase("large", 0.0, 0.0, 0.0, n_pairs)]
    if scn.warmup > 0:
        out.append(Phase("warmup", 0.0, scn.warmup, scn.rate, n_pairs, measured=False))
        t = scn.warmup
    out.append(Phase(scn.kind, t, t + scn.duration, scn.rate, n_pairs))
    return out
