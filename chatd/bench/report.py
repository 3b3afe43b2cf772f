"""The report: merged numbers as one msgspec struct (written with ``--json``) and as a summary table.

Rates are taken over the measured window only (warm-up excluded) and counted by *send* time, so a message sent in
the window and delivered during the drain still counts toward the window that caused it. Percentiles come from
merged histograms, never from averaging per-process percentiles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from chatd.bench.scenario import Scenario, frame_size
from chatd.bench.stats import Histogram, Ledger, Tally, tally

if TYPE_CHECKING:
    from chatd.bench.client import ConnectStats, WorkerResult
    from chatd.bench.target import Target

GENERATOR_BUSY = 0.85  # share of one core above which a load process is probably the bottleneck


class ServerSample(msgspec.Struct):
    t: float
    queue_depth: float | None = None
    connections: float | None = None
    rss_bytes: float | None = None
    messages_in: float | None = None
    deliveries: float | None = None
    cpu_seconds: float | None = None


class Latency(msgspec.Struct):
    p50: float = 0.0
    p95: float = 0.0
    p99: float = 0.0
    max: float = 0.0
    mean: float = 0.0
    count: int = 0


def latency(h: Histogram) -> Latency:
    return msgspec.convert(h.summary_ms(), Latency)


class PhaseReport(msgspec.Struct):
    label: str
    measured: bool
    offered_rate: float  # msgs/s asked for (0 = window-limited)
    sent_rate: float
    acked_rate: float
    delivered_rate: float
    lost: int
    delivery_ms: Latency
    ack_ms: Latency
    sustainable: bool | None = None
    generator_cpu: float = 0.0  # % of a core, the busiest load process, in this phase


class TimelinePoint(msgspec.Struct):
    t: float
    sent_per_s: float
    acked_per_s: float
    delivered_per_s: float
    delivery_p50_ms: float = 0.0  # of messages sent in this tick
    delivery_p99_ms: float = 0.0


class Generator(msgspec.Struct):
    procs: int
    cpu_percent: list[float]  # per load process, of one core, while the load ran
    tick_lag_p99_ms: float
    skipped: int
    rss_bytes: list[int]
    saturated: bool


class ServerUsage(msgspec.Struct):
    cpu_percent: float | None = None  # of one core, over the whole run (spawned servers only)
    rss_before: int | None = None
    rss_peak: int | None = None
    machine_cpu_percent: float | None = None  # all cores together, 100 % = every core busy
    load_average: float | None = None  # 1-minute load average when the run started (others' work shows here)
    parts_cpu_percent: dict[str, float] = {}  # of one core, by part of a deployment (nodes, nginx, broker, database)


class SizeReport(msgspec.Struct):
    frame_bytes: int
    sent: int
    acked: int
    refused: dict[str, int]
    unanswered: int
    delivered: int
    expected: int
    verdict: str


class ConnectReport(msgspec.Struct):
    attempted: int
    ok: int
    success_percent: float
    failures: dict[str, int]
    connect_ms: Latency
    still_open: int
    rss_before: int | None
    rss_held: int | None
    rss_per_connection: float | None
    generator_rss_bytes: list[int]
    idle_cpu_percent: float | None = None  # server CPU while every connection sat idle through the hold


class RunReport(msgspec.Struct):
    target: str
    scenario: Scenario
    procs: int
    started: str
    nonce: str
    tally: Tally
    phases: list[PhaseReport]
    delivery_ms: Latency  # over measured phases
    ack_ms: Latency
    msgs_in_per_s: float  # acknowledged sends per second of measured window
    deliveries_per_s: float
    duration_s: float
    connections_ok: int
    connections_attempted: int
    connect_failures: dict[str, int]
    join_failures: int
    disconnects: dict[str, int]
    timeline: list[TimelinePoint]
    server_samples: list[ServerSample]
    generator: Generator
    server: ServerUsage
    sustainable_rate: float | None = None
    first_failed_step: str | None = None
    sizes: list[SizeReport] = []
    connect: ConnectReport | None = None
    warnings: list[str] = []
    server_metrics: dict[str, float] = {}  # the server's /metrics at the end of the run (histogram buckets too)
    clean: bool = True  # nothing lost, duplicated, reordered or left unanswered; every client connected


def _timeline(ledger: Ledger) -> list[TimelinePoint]:
    keys = set(ledger.sent_series) | set(ledger.acked_series) | set(ledger.delivered_series)
    if not keys:
        return []
    tick = ledger.tick
    empty = Histogram()
    return [
        TimelinePoint(
            k * tick,
            ledger.sent_series.get(k, 0) / tick,
            ledger.acked_series.get(k, 0) / tick,
            ledger.delivered_series.get(k, 0) / tick,
            ledger.latency_series.get(k, empty).quantile(0.5) / 1e3,
            ledger.latency_series.get(k, empty).quantile(0.99) / 1e3,
        )
        for k in range(min(0, min(keys)), max(keys) + 1)
    ]


def _sizes(scn: Scenario, ledger: Ledger, members: dict[int, list[int]], limit: int) -> list[SizeReport]:
    """Per frame size: what happened to each send (the ``large`` scenario sends sizes in order, per_size each)."""
    sizes = [frame_size(s, limit) for s in scn.sizes]
    out = []
    for i, size in enumerate(sizes):
        lo, hi = i * scn.per_size, (i + 1) * scn.per_size
        sent = acked = unanswered = delivered = expected = 0
        refused: dict[str, int] = {}
        for rec in ledger.senders.values():
            for n in range(lo, min(hi, rec.sent)):
                sent += 1
                if rec.answers[n] & 1:
                    acked += 1
                if n in rec.rejected:
                    refused[rec.rejected[n]] = refused.get(rec.rejected[n], 0) + 1
                elif not rec.answers[n]:
                    unanswered += 1
                for receiver in members.get(rec.room, ()):
                    got = ledger.receivers.get(f"{receiver}.{rec.sender}.{rec.room}")
                    arrived = got is not None and n < len(got.seen) and got.seen[n] > 0
                    if n not in rec.rejected:
                        expected += 1
                        delivered += arrived
        if unanswered or delivered < expected:
            verdict = "SILENT LOSS" if unanswered else "LOST DELIVERIES"
        elif refused and not acked:
            verdict = "refused: " + ", ".join(sorted(refused))
        elif refused:
            verdict = "mixed: some refused"
        else:
            verdict = "delivered to all"
        out.append(SizeReport(size, sent, acked, refused, unanswered, delivered, expected, verdict))
    return out


def build_report(
    scn: Scenario,
    target: Target,
    procs: int,
    started: str,
    ledger: Ledger,
    joined: dict[int, list[int]],
    results: list[WorkerResult],
    connect: ConnectStats,
    samples: list[ServerSample],
    rss_before: int | None,
    rss_held: int | None,
    server_cpu: float | None,
    machine_pct: float | None,
    load_average: float | None = None,
    parts_cpu: dict[str, float] | None = None,
    idle_cpu_percent: float | None = None,
) -> RunReport:
    t = tally(ledger, joined)
    phase_reports: list[PhaseReport] = []
    measured_delivery, measured_ack = Histogram(), Histogram()
    window = acked_in = delivered_in = 0.0
    for i, (ph, ps) in enumerate(zip(ledger.phases, ledger.phase_stats, strict=True)):
        span = max(ph.end - ph.start, 1e-9)
        lost = max(0, ps.expected - ps.delivered)
        gen_cpu = max((r.phase_cpu[i] for r in results if i < len(r.phase_cpu)), default=0.0)
        pr = PhaseReport(
            ph.label,
            ph.measured,
            ph.rate,
            ps.sent / span,
            ps.acked / span,
            ps.delivered / span,
            lost,
            latency(ps.delivery),
            latency(ps.ack),
            generator_cpu=gen_cpu,
        )
        if scn.kind == "ramp" and ph.measured:
            offered = ph.rate or pr.sent_rate
            pr.sustainable = (
                pr.delivery_ms.p99 <= scn.slo_p99_ms and lost == 0 and pr.acked_rate >= scn.slo_min_ratio * offered
            )
        phase_reports.append(pr)
        if ph.measured:
            measured_delivery.merge(ps.delivery)
            measured_ack.merge(ps.ack)
            window += ph.end - ph.start
            acked_in += ps.acked
            delivered_in += ps.delivered
    cpu_pct = [100.0 * r.cpu_seconds / r.wall_seconds if r.wall_seconds else 0.0 for r in results]
    lag = Histogram()
    for r in results:
        lag.merge(r.tick_lag)
    busy_phases = [p.label for p in phase_reports if p.measured and p.generator_cpu >= GENERATOR_BUSY * 100]
    saturated = any(c >= GENERATOR_BUSY * 100 for c in cpu_pct) or bool(busy_phases)
    gen = Generator(
        procs,
        cpu_pct,
        lag.quantile(0.99) / 1e3,
        sum(r.skipped for r in results),
        [r.rss_bytes for r in results],
        saturated,
    )
    disconnects: dict[str, int] = {}
    for r in results:
        for k, v in r.disconnects.items():
            disconnects[k] = disconnects.get(k, 0) + v
    rss_values = [s.rss_bytes for s in samples if s.rss_bytes is not None]
    wall = samples[-1].t - samples[0].t if len(samples) > 1 else 0.0
    server = ServerUsage(
        100.0 * server_cpu / wall if server_cpu is not None and wall > 0 else None,
        rss_before,
        int(max(rss_values)) if rss_values else None,
        machine_pct,
        load_average,
        {k: round(100.0 * v / wall, 1) for k, v in (parts_cpu or {}).items()} if wall > 0 else {},
    )
    report = RunReport(
        target=target.label,
        scenario=scn,
        procs=procs,
        started=started,
        nonce=ledger.nonce,
        tally=t,
        phases=phase_reports,
        delivery_ms=latency(measured_delivery),
        ack_ms=latency(measured_ack),
        msgs_in_per_s=acked_in / window if window else 0.0,
        deliveries_per_s=delivered_in / window if window else 0.0,
        duration_s=window,
        connections_ok=connect.ok,
        connections_attempted=connect.attempted,
        connect_failures=connect.failures,
        join_failures=connect.join_failures,
        disconnects=disconnects,
        timeline=_timeline(ledger),
        server_samples=samples,
        generator=gen,
        server=server,
    )
    if scn.kind == "ramp":
        # Sustainable means every step up to it held: a lucky step above a failed one does not count.
        report.sustainable_rate = 0.0
        for p in phase_reports:
            if p.sustainable is None:
                continue
            if not p.sustainable:
                report.first_failed_step = p.label
                break
            report.sustainable_rate = p.offered_rate or p.sent_rate
    if scn.kind == "large":
        limit = max((r.max_frame_bytes for r in results), default=0) or 65536
        report.sizes = _sizes(scn, ledger, joined, limit)
    if scn.kind == "connect":
        ok = connect.ok
        report.connect = ConnectReport(
            connect.attempted,
            ok,
            100.0 * ok / connect.attempted if connect.attempted else 0.0,
            connect.failures,
            latency(connect.connect_time),
            sum(r.still_open for r in results),
            rss_before,
            rss_held,
            (rss_held - rss_before) / ok if ok and rss_held is not None and rss_before is not None else None,
            [r.rss_bytes for r in results],
            idle_cpu_percent,
        )
    _judge(report)
    return report


def _judge(r: RunReport) -> None:
    """Warnings a reader must not miss, and the clean/not-clean verdict."""
    t, w = r.tally, r.warnings
    if r.generator.saturated:
        busiest = max([*r.generator.cpu_percent, *(p.generator_cpu for p in r.phases if p.measured)])
        where = [p.label for p in r.phases if p.measured and p.generator_cpu >= GENERATOR_BUSY * 100]
        w.append(
            f"load generator busy ({busiest:.0f}% of a core in one process"
            + (f", in {', '.join(where)}" if where else "")
            + f"): the server may be faster than measured there; try --procs {r.procs + 1}"
        )
    if r.generator.tick_lag_p99_ms > 20:
        w.append(f"pacer woke up {r.generator.tick_lag_p99_ms:.0f} ms late at p99: sends were bunched")
    if r.generator.skipped:
        w.append(f"{r.generator.skipped:,} scheduled sends skipped: connections had max_inflight unanswered sends")
    if r.connections_ok < r.connections_attempted:
        w.append(f"{r.connections_attempted - r.connections_ok:,} connections failed: {r.connect_failures}")
    if r.join_failures:
        w.append(f"{r.join_failures} joins failed")
    if r.disconnects:
        w.append(f"connections lost mid-run, by close code: {r.disconnects}")
    if t.unanswered:
        w.append(f"{t.unanswered:,} sends were never answered (no ack, no error): lost silently")
    if t.stray:
        w.append(f"{t.stray:,} deliveries to clients that were not room members, or of messages never sent")
    if t.delivered_after_error:
        w.append(f"{t.delivered_after_error:,} refused sends were delivered anyway")
    if t.ack_duplicate:
        w.append(f"{t.ack_duplicate:,} acks said duplicate for first sends")
    if r.server.machine_cpu_percent is not None and r.server.machine_cpu_percent > 95:
        w.append(f"machine CPU {r.server.machine_cpu_percent:.0f}% busy: server and generator compete for cores")
    r.clean = (
        t.lost == 0
        and t.duplicated == 0
        and t.out_of_order == 0
        and t.unanswered == 0
        and t.stray == 0
        and t.delivered_after_error == 0
        and r.connections_ok == r.connections_attempted
        and not r.join_failures
        and not r.disconnects
    )


# --- text ----------------------------------------------------------------------------------------------------


def _n(v: float) -> str:
    return f"{v:,.0f}"


def _mb(v: float | None) -> str:
    return "n/a" if v is None else f"{v / 2**20:,.1f} MiB"


def format_report(r: RunReport) -> str:
    """The summary table printed after a run."""
    t = r.tally
    lines = [f"chatd bench: {r.scenario.name} ({r.scenario.kind}) against {r.target}, {r.procs} load process(es)", ""]
    if r.connect is not None:
        c = r.connect
        lines += [
            f"  connections      {c.ok:,}/{c.attempted:,} ok ({c.success_percent:.2f}%), {c.still_open:,} still "
            f"open after the hold",
            f"  connect time     p50 {c.connect_ms.p50:.1f} ms  p95 {c.connect_ms.p95:.1f} ms  "
            f"p99 {c.connect_ms.p99:.1f} ms  max {c.connect_ms.max:.1f} ms",
            f"  server RSS       {_mb(c.rss_before)} before, {_mb(c.rss_held)} holding: "
            + (
                f"{c.rss_per_connection / 1024:.1f} KiB per connection"
                if c.rss_per_connection is not None
                else "n/a per connection"
            ),
            f"  generator RSS    {', '.join(_mb(x) for x in c.generator_rss_bytes)}",
            "  server CPU idle  "
            + ("n/a" if c.idle_cpu_percent is None else f"{c.idle_cpu_percent:.1f}% of a core")
            + " while every connection sat idle through the hold",
        ]
        if c.failures:
            lines.append(f"  failures         {c.failures}")
    else:
        lines += [
            f"  sent {_n(t.sent)}   acked {_n(t.acked)}   refused {sum(t.rejected.values()):,} {t.rejected or ''}"
            f"   unanswered {_n(t.unanswered)}",
            f"  deliveries       expected {_n(t.expected_deliveries)}   unique {_n(t.unique_deliveries)}",
            f"  lost {_n(t.lost)}   duplicated {_n(t.duplicated)}   out-of-order {_n(t.out_of_order)}"
            f"   stray {_n(t.stray)}",
            f"  throughput       {_n(r.msgs_in_per_s)} msgs/s in, {_n(r.deliveries_per_s)} deliveries/s out "
            f"(over {r.duration_s:.1f} s measured)"
            if r.duration_s
            else "  throughput       n/a (not timed)",
            f"  delivery latency p50 {r.delivery_ms.p50:.1f} ms  p95 {r.delivery_ms.p95:.1f} ms  "
            f"p99 {r.delivery_ms.p99:.1f} ms  max {r.delivery_ms.max:.1f} ms",
            f"  ack latency      p50 {r.ack_ms.p50:.1f} ms  p95 {r.ack_ms.p95:.1f} ms  p99 {r.ack_ms.p99:.1f} ms  "
            f"max {r.ack_ms.max:.1f} ms",
            f"  connections      {r.connections_ok:,}/{r.connections_attempted:,} ok",
        ]
        if t.lost_examples:
            ex = ", ".join(
                f"#{x.counter} from client {x.sender} in room {x.room} to client {x.receiver}"
                for x in t.lost_examples[:3]
            )
            lines.append(f"  first losses     {ex}")
    g = r.generator
    lag = f"; pacer lag p99 {g.tick_lag_p99_ms:.1f} ms" if r.phases else " while connecting"
    lines.append(f"  generator CPU    {', '.join(f'{c:.0f}%' for c in g.cpu_percent)} of a core per process{lag}")
    s = r.server
    parts = []
    if s.cpu_percent is not None:
        parts.append(f"server CPU {s.cpu_percent:.0f}% of a core")
    if s.rss_peak is not None:
        parts.append(f"server RSS peak {_mb(s.rss_peak)}")
    if s.machine_cpu_percent is not None:
        parts.append(f"machine {s.machine_cpu_percent:.0f}% busy")
    if s.load_average is not None:
        parts.append(f"load average {s.load_average:.2f} at start")
    if parts:
        lines.append("  " + ", ".join(parts))
    if s.parts_cpu_percent:
        by_part = ", ".join(f"{name} {pct:.0f}%" for name, pct in s.parts_cpu_percent.items())
        lines.append(f"  CPU by part      {by_part} (% of a core; broker and database are the machine's shared ones)")
    depth = [x.queue_depth for x in r.server_samples if x.queue_depth is not None]
    if depth:
        every = r.scenario.metrics_interval
        lines.append(f"  ingest queue     max depth {max(depth):,.0f} (scraped every {every:g} s)")
    if r.phases and (len(r.phases) > 1 or r.scenario.kind == "ramp"):
        lines += [
            "",
            f"  {'phase':<16}{'offered':>10}{'sent/s':>10}{'acked/s':>10}{'deliv/s':>11}{'lost':>8}"
            f"{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'gen CPU':>9}  ok",
        ]
        for p in r.phases:
            ok = "" if p.sustainable is None else ("yes" if p.sustainable else "no")
            offered = "max" if not p.offered_rate else _n(p.offered_rate)
            lines.append(
                f"  {p.label:<16}{offered:>10}{_n(p.sent_rate):>10}{_n(p.acked_rate):>10}"
                f"{_n(p.delivered_rate):>11}{p.lost:>8,}{p.delivery_ms.p50:>9.1f}{p.delivery_ms.p99:>9.1f}"
                f"{p.delivery_ms.max:>9.1f}{p.generator_cpu:>8.0f}%  {ok}"
            )
    if r.sustainable_rate is not None:
        lines.append(
            f"\n  sustainable rate {_n(r.sustainable_rate)} msgs/s: every step up to it had delivery p99 <= "
            f"{r.scenario.slo_p99_ms:g} ms, 0 lost, >= {r.scenario.slo_min_ratio:.0%} acknowledged"
            + (f"; first miss: {r.first_failed_step}" if r.first_failed_step else "")
        )
    if r.sizes:
        lines += [
            "",
            f"  {'frame bytes':>12}{'sent':>7}{'acked':>7}{'refused':>22}{'unanswered':>12}{'delivered':>15}  verdict",
        ]
        for z in r.sizes:
            ref = ", ".join(f"{k} {v}" for k, v in z.refused.items()) or "0"
            lines.append(
                f"  {z.frame_bytes:>12,}{z.sent:>7}{z.acked:>7}{ref:>22}{z.unanswered:>12}"
                f"{f'{z.delivered}/{z.expected}':>15}  {z.verdict}"
            )
    lines.append("")
    for warning in r.warnings:
        lines.append(f"  WARNING: {warning}")
    lines.append(f"  result: {'CLEAN' if r.clean else 'PROBLEMS FOUND'}")
    return "\n".join(lines) + "\n"


def write_json(path: str, payload: object) -> None:
    with open(path, "wb") as f:
        f.write(msgspec.json.encode(payload) + b"\n")  # compact: reports with timelines get big
