"""Report judgements: the sustainable rate of a ramp, and the generator-bottleneck warning."""

from __future__ import annotations

import pytest

from chatd.bench.client import ConnectStats, WorkerResult
from chatd.bench.report import build_report, format_report
from chatd.bench.scenario import Scenario
from chatd.bench.stats import Ledger, Phase
from chatd.bench.target import Target

pytestmark = pytest.mark.fast  # in-process: ./scripts/test --fast runs it

Judged = tuple[float | None, str | None, str, list[str]]


def _ramp_report(p99s_ms: list[float], cpu: float = 40.0) -> Judged:
    scn = Scenario(
        name="r",
        kind="ramp",
        steps=[1000.0 * (i + 1) for i in range(len(p99s_ms))],
        step_duration=1,
        warmup=0,
        slo_p99_ms=50,
    )
    phases = [
        Phase(f"{1000 * (i + 1)} msgs/s", float(i), float(i + 1), 1000.0 * (i + 1), 10) for i in range(len(p99s_ms))
    ]
    ledger = Ledger("n", phases=phases)
    for ps, ph, p99 in zip(ledger.phase_stats, phases, p99s_ms, strict=True):
        n = int(ph.rate)
        ps.sent = ps.acked = n
        ps.expected = ps.delivered = 10 * n
        for _ in range(99):
            ps.delivery.record(1000)
        ps.delivery.record(int(p99 * 1000) * 2)  # the maximum; with 101 samples the p99 rank lands on the next one
        ps.delivery.record(int(p99 * 1000))
    result = WorkerResult(0, ledger, ConnectStats(attempted=10, ok=10), {}, cpu_seconds=cpu / 100, wall_seconds=1)
    report = build_report(
        scn,
        Target("t", "ws://127.0.0.1:9/ws"),
        1,
        "now",
        ledger,
        {},
        [result],
        ConnectStats(attempted=10, ok=10),
        [],
        None,
        None,
        None,
        None,
    )
    return report.sustainable_rate, report.first_failed_step, format_report(report), report.warnings


def test_sustainable_rate_stops_at_the_first_step_that_misses_even_if_a_later_one_passes() -> None:
    rate, first_miss, text, _ = _ramp_report([5, 8, 120, 30])
    assert rate == 2000 and first_miss == "3000 msgs/s"
    assert "sustainable rate 2,000 msgs/s" in text and "first miss: 3000 msgs/s" in text


def test_every_step_holding_makes_the_top_step_sustainable() -> None:
    rate, first_miss, _, _ = _ramp_report([5, 8, 12])
    assert rate == 3000 and first_miss is None


def test_a_busy_generator_is_called_out() -> None:
    *_, warnings = _ramp_report([5], cpu=97)
    assert any("load generator busy" in w for w in warnings)
    *_, warnings = _ramp_report([5], cpu=30)
    assert not any("load generator busy" in w for w in warnings)
