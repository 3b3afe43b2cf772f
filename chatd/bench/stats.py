"""The bench's accounting: what was sent, answered and delivered, and latency histograms. Pure: no I/O, no clock.

Every message the bench sends is named by a client_id ``NONCE.SENDER.ROOM.N``: the run's nonce, the sending
client's index, the room's index and a counter that runs 0, 1, 2, … for each (sender, room) pair. The body starts
with ``t<monotonic ns>;`` so any process on the machine can measure send → receive on one clock (Linux's
CLOCK_MONOTONIC is system-wide).

Because counters are dense, a receiver keeps one ``bytearray`` per (sender, room): byte N counts how often counter N
arrived. Loss, duplicates and "delivered although refused" fall out of those arrays once the senders say how many
they sent and which were refused; out-of-order falls out of the room ``seq`` each receiver saw. Everything here
merges exactly across processes (counts add, histograms add bucket by bucket, arrays are per receiver), so
``--procs N`` never averages percentiles.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import msgspec

# --- latency histogram -----------------------------------------------------------------------------------------

SUB_BITS = 6
SUB = 1 << SUB_BITS  # 64 sub-buckets per power of two: any recorded value is off by at most 1/64 (1.6 %)


def bucket_of(us: int) -> int:
    """Bucket index of a value in microseconds. Values below 64 µs get a bucket each (exact)."""
    if us < SUB:
        return max(0, us)
    shift = us.bit_length() - SUB_BITS - 1
    return (shift + 1) * SUB + (us >> shift) - SUB


def bucket_bounds(index: int) -> tuple[int, int]:
    """Smallest and largest value (µs) that land in bucket ``index``."""
    if index < SUB:
        return index, index
    shift = index // SUB - 1
    mantissa = index % SUB + SUB
    return mantissa << shift, ((mantissa + 1) << shift) - 1


class Histogram(msgspec.Struct):
    """A log-linear histogram of microsecond values. Mergeable: adding two gives the histogram of both samples."""

    counts: dict[int, int] = msgspec.field(default_factory=dict)
    count: int = 0
    total: int = 0
    min: int = 0
    max: int = 0

    def record(self, us: int) -> None:
        us = max(us, 0)  # two clocks never disagree here, but a negative value must not corrupt the buckets
        b = bucket_of(us)
        counts = self.counts
        counts[b] = counts.get(b, 0) + 1
        if self.count == 0 or us < self.min:
            self.min = us
        self.max = max(self.max, us)
        self.count += 1
        self.total += us

    def merge(self, other: Histogram) -> None:
        if not other.count:
            return
        for b, n in other.counts.items():
            self.counts[b] = self.counts.get(b, 0) + n
        self.min = other.min if not self.count else min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.count += other.count
        self.total += other.total

    def quantile(self, q: float) -> float:
        """Nearest-rank quantile in microseconds: a value v such that at least ``q`` of the samples are <= v.

        Exact below 64 µs; above, the middle of the bucket that holds the rank, clamped to the observed min/max, so
        within 1/64 of the exact answer.
        """
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            if seen >= rank:
                lo, hi = bucket_bounds(b)
                return float(min(max((lo + hi) / 2, self.min), self.max))
        return float(self.max)

    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def summary_ms(self) -> dict[str, float]:
        """p50/p95/p99/max/mean in milliseconds, for reports."""
        return {
            "p50": self.quantile(0.50) / 1e3,
            "p95": self.quantile(0.95) / 1e3,
            "p99": self.quantile(0.99) / 1e3,
            "max": self.max / 1e3,
            "mean": self.mean() / 1e3,
            "count": self.count,
        }


def exact_quantile(samples: Iterable[float], q: float) -> float:
    """Nearest-rank quantile of raw samples (the definition the histogram approximates)."""
    ordered = sorted(samples)
    if not ordered:
        return 0.0
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


# --- client ids and bodies -------------------------------------------------------------------------------------


def client_id(nonce: str, sender: int, room: int, n: int) -> str:
    return f"{nonce}.{sender}.{room}.{n}"


def parse_client_id(cid: str, nonce: str) -> tuple[int, int, int] | None:
    """(sender, room, counter) of one of this run's client_ids, else None (someone else's message)."""
    parts = cid.split(".")
    if len(parts) != 4 or parts[0] != nonce:
        return None
    try:
        return int(parts[1]), int(parts[2]), int(parts[3])
    except ValueError:
        return None


def make_body(send_ns: int, size: int) -> str:
    """``t<ns>;`` then padding up to ``size`` characters (ASCII, so characters are bytes)."""
    head = f"t{send_ns};"
    return head + "x" * (size - len(head)) if size > len(head) else head


def body_time(body: str) -> int | None:
    if not body.startswith("t"):
        return None
    end = body.find(";", 1, 24)
    if end < 0:
        return None
    try:
        return int(body[1:end])
    except ValueError:
        return None


# --- the ledger ----------------------------------------------------------------------------------------------


ACKED = 1
REFUSED = 2


class SenderRecord(msgspec.Struct):
    """One (sender, room) pair as its sender saw it."""

    sender: int
    room: int
    sent: int = 0
    acked: int = 0
    ack_duplicate: int = 0  # acks flagged duplicate: the server thought we resent
    rejected: dict[int, str] = msgspec.field(default_factory=dict)  # counter → error code
    answers: bytearray = msgspec.field(default_factory=bytearray)  # counter → ACKED | REFUSED bits


class ReceiverRecord(msgspec.Struct):
    """What one receiver got from one (sender, room): byte N = how often counter N arrived (saturates at 255)."""

    receiver: int
    sender: int
    room: int
    seen: bytearray = msgspec.field(default_factory=bytearray)


class Phase(msgspec.Struct, frozen=True):
    """A slice of the run (warm-up, a ramp step…). Stats are kept per phase of the *send* time."""

    label: str
    start: float  # seconds from the run's start
    end: float
    rate: float  # offered msgs/s over all processes (0 = as fast as the in-flight window allows)
    senders: int  # active (sender, room) pairs
    measured: bool = True


class PhaseStats(msgspec.Struct):
    sent: int = 0
    acked: int = 0
    expected: int = 0  # deliveries owed for messages sent in this phase (sent × joined members)
    delivered: int = 0  # unique deliveries of messages sent in this phase
    delivery: Histogram = msgspec.field(default_factory=Histogram)
    ack: Histogram = msgspec.field(default_factory=Histogram)

    def merge(self, other: PhaseStats) -> None:
        self.sent += other.sent
        self.acked += other.acked
        self.expected += other.expected
        self.delivered += other.delivered
        self.delivery.merge(other.delivery)
        self.ack.merge(other.ack)


def _bump(series: dict[int, int], key: int, n: int = 1) -> None:
    series[key] = series.get(key, 0) + n


class Ledger(msgspec.Struct):
    """One process's accounting. ``merge`` several, then :func:`tally` the result."""

    nonce: str
    start_ns: int = 0
    tick: float = 0.5  # seconds per timeline bucket
    phases: list[Phase] = msgspec.field(default_factory=list)
    senders: dict[str, SenderRecord] = msgspec.field(default_factory=dict)  # "sender.room"
    receivers: dict[str, ReceiverRecord] = msgspec.field(default_factory=dict)  # "receiver.sender.room"
    room_seq: dict[str, int] = msgspec.field(default_factory=dict)  # "receiver.room" → highest seq seen
    out_of_order: int = 0
    phase_stats: list[PhaseStats] = msgspec.field(default_factory=list)
    sent_series: dict[int, int] = msgspec.field(default_factory=dict)  # timeline bucket → count
    acked_series: dict[int, int] = msgspec.field(default_factory=dict)
    delivered_series: dict[int, int] = msgspec.field(default_factory=dict)
    latency_series: dict[int, Histogram] = msgspec.field(default_factory=dict)  # send-time bucket → delivery µs
    foreign: int = 0  # message frames that are not from this run
    unknown_acks: int = 0
    unmatched_errors: dict[str, int] = msgspec.field(default_factory=dict)  # error frames naming none of our sends
    other_frames: dict[str, int] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        while len(self.phase_stats) < len(self.phases):
            self.phase_stats.append(PhaseStats())

    # -- hot path: called by the load client for every frame ---------------------------------------------------

    def phase_of(self, send_ns: int) -> int:
        t = (send_ns - self.start_ns) / 1e9
        phases = self.phases
        for i in range(len(phases) - 1, -1, -1):
            if t >= phases[i].start:
                return i
        return 0

    def sender(self, sender: int, room: int) -> SenderRecord:
        key = f"{sender}.{room}"
        rec = self.senders.get(key)
        if rec is None:
            rec = self.senders[key] = SenderRecord(sender, room)
        return rec

    def on_send(self, rec: SenderRecord, send_ns: int, fanout: int) -> int:
        """Count a send that ``fanout`` joined members should receive; returns its counter."""
        n = rec.sent
        rec.sent += 1
        rec.answers.append(0)
        if self.phase_stats:
            ps = self.phase_stats[self.phase_of(send_ns)]
            ps.sent += 1
            ps.expected += fanout
        _bump(self.sent_series, int((send_ns - self.start_ns) / 1e9 / self.tick))
        return n

    def on_ack(self, rec: SenderRecord, n: int, send_ns: int | None, now_ns: int, duplicate: bool) -> None:
        if n >= rec.sent or rec.answers[n] & ACKED:
            self.unknown_acks += 1  # an ack for nothing we sent, or a second ack for one send
            return
        rec.answers[n] |= ACKED
        if duplicate:
            rec.ack_duplicate += 1
        rec.acked += 1
        _bump(self.acked_series, int((now_ns - self.start_ns) / 1e9 / self.tick))
        if send_ns is not None and self.phase_stats:
            ps = self.phase_stats[self.phase_of(send_ns)]
            ps.acked += 1
            ps.ack.record((now_ns - send_ns) // 1000)

    def on_error(self, rec: SenderRecord | None, n: int, code: str) -> bool:
        """Book an error frame against the send it names. Returns False if it names none of ours."""
        if rec is None or n >= rec.sent:
            self.unmatched_errors[code] = self.unmatched_errors.get(code, 0) + 1
            return False
        rec.answers[n] |= REFUSED
        rec.rejected[n] = code
        return True

    def on_message(self, receiver: int, sender: int, room: int, n: int, seq: int, body: str, now_ns: int) -> bool:
        """One of this run's messages arrived at ``receiver``. Returns True the first time it arrives there."""
        key = f"{receiver}.{sender}.{room}"
        rec = self.receivers.get(key)
        if rec is None:
            rec = self.receivers[key] = ReceiverRecord(receiver, sender, room)
        seen = rec.seen
        if n >= len(seen):
            seen.extend(bytes(n + 1 - len(seen) + 64))
        first = seen[n] == 0
        if seen[n] < 255:
            seen[n] += 1
        if not first:
            return False  # a duplicate: counted from ``seen`` at tally time; it says nothing about order
        rkey = f"{receiver}.{room}"
        if seq < self.room_seq.get(rkey, 0):
            self.out_of_order += 1
        else:
            self.room_seq[rkey] = seq
        _bump(self.delivered_series, int((now_ns - self.start_ns) / 1e9 / self.tick))
        sent_ns = body_time(body)
        if sent_ns is not None and self.phase_stats:
            us = (now_ns - sent_ns) // 1000
            ps = self.phase_stats[self.phase_of(sent_ns)]
            ps.delivered += 1
            ps.delivery.record(us)
            tick = int((sent_ns - self.start_ns) / 1e9 / self.tick)
            h = self.latency_series.get(tick)
            if h is None:
                h = self.latency_series[tick] = Histogram()
            h.record(us)
        return True

    def on_other(self, kind: str) -> None:
        self.other_frames[kind] = self.other_frames.get(kind, 0) + 1

    # -- merging -------------------------------------------------------------------------------------------------

    def merge(self, other: Ledger) -> None:
        """Add another process's ledger into this one (same nonce, same phases)."""
        self.senders.update(other.senders)  # each (sender, room) is driven by exactly one process
        self.receivers.update(other.receivers)
        self.room_seq.update(other.room_seq)
        self.out_of_order += other.out_of_order
        for mine, theirs in zip(self.phase_stats, other.phase_stats, strict=True):
            mine.merge(theirs)
        for name in ("sent_series", "acked_series", "delivered_series"):
            target = getattr(self, name)
            for k, v in getattr(other, name).items():
                _bump(target, k, v)
        for k, h in other.latency_series.items():
            self.latency_series.setdefault(k, Histogram()).merge(h)
        self.foreign += other.foreign
        self.unknown_acks += other.unknown_acks
        for k, v in other.unmatched_errors.items():
            self.unmatched_errors[k] = self.unmatched_errors.get(k, 0) + v
        for k, v in other.other_frames.items():
            self.other_frames[k] = self.other_frames.get(k, 0) + v


# --- the tally ----------------------------------------------------------------------------------------------


class Loss(msgspec.Struct):
    """One delivery that should have happened and did not (reports list the first few)."""

    receiver: int
    sender: int
    room: int
    counter: int


class Tally(msgspec.Struct):
    sent: int = 0
    acked: int = 0
    ack_duplicate: int = 0
    rejected: dict[str, int] = msgspec.field(default_factory=dict)  # error code → count
    unanswered: int = 0  # sent, but neither acked nor refused: lost silently
    expected_deliveries: int = 0
    unique_deliveries: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    delivered_after_error: int = 0  # a refused send that reached someone anyway
    stray: int = 0  # deliveries to a non-member, or of a counter nobody sent
    lost_examples: list[Loss] = msgspec.field(default_factory=list)


def tally(ledger: Ledger, members: dict[int, list[int]], examples: int = 10) -> Tally:
    """Reconcile sends with deliveries. ``members`` maps room index → receivers joined to it for the whole run.

    Expected deliveries of a (sender, room) = (sent − refused) × members of the room. A send that was never
    answered is still expected to arrive: if it did not, that is loss, and it shows in ``unanswered`` too.
    """
    t = Tally()
    t.out_of_order = ledger.out_of_order
    expected_keys: set[str] = set()
    for rec in ledger.senders.values():
        t.sent += rec.sent
        t.acked += rec.acked
        t.ack_duplicate += rec.ack_duplicate
        for code in rec.rejected.values():
            t.rejected[code] = t.rejected.get(code, 0) + 1
        t.unanswered += rec.answers[: rec.sent].count(0)
        refused = sorted(rec.rejected)
        for receiver in members.get(rec.room, ()):
            key = f"{receiver}.{rec.sender}.{rec.room}"
            expected_keys.add(key)
            got = ledger.receivers.get(key)
            window = bytearray(got.seen[: rec.sent]) if got is not None else bytearray()
            window.extend(bytes(rec.sent - len(window)))
            if got is not None and len(got.seen) > rec.sent:
                t.stray += sum(got.seen[rec.sent :])
            for n in refused:  # take refused sends out of the window: they are owed to no one
                if window[n]:
                    t.delivered_after_error += 1
                    window[n] = 1  # one stray arrival is the whole fault; later copies are duplicates of it
            t.expected_deliveries += rec.sent - len(refused)
            missing = window.count(0) - sum(1 for n in refused if window[n] == 0)
            arrived = rec.sent - len(refused) - missing
            t.unique_deliveries += arrived
            t.lost += missing
            # Each arrived counter contributes (copies − 1) duplicates; refused ones were normalised above.
            t.duplicated += sum(window) - arrived - sum(window[n] for n in refused)
            if missing and len(t.lost_examples) < examples:
                refused_set = set(refused)
                n = window.find(0)
                while n >= 0 and len(t.lost_examples) < examples:
                    if n not in refused_set:
                        t.lost_examples.append(Loss(receiver, rec.sender, rec.room, n))
                    n = window.find(0, n + 1)
    # Deliveries outside the expected set (to a non-member, or from a sender we never heard of) are reported, not
    # silently ignored.
    for key, got in ledger.receivers.items():
        if key not in expected_keys:
            t.stray += sum(got.seen)
    return t
