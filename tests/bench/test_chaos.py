"""The short randomized fault run (``chatd bench chaos``), over each broker: three nodes behind fault proxies of
their own, resending clients, a fixed seed, and faults of every kind drawn from it. Nothing acked is lost or stored
twice, no room has a gap, no sender's messages are reordered, no reader sees a repeat or a skip, and no node is
left deaf. The long run is for operators (docs/bench.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatd.bench.chaos import FAULTS, ChaosSettings, format_report, run_chaos

pytestmark = pytest.mark.chaos

SEED = 19
DURATION = 45.0


@pytest.mark.parametrize("backend", ["redis", "rabbitmq"])
async def test_a_short_seeded_fault_run_breaks_no_promise(
    backend: str, request: pytest.FixtureRequest, pg_dsn: str, need_nginx: None, tmp_path: Path
) -> None:
    request.getfixturevalue("redis_url" if backend == "redis" else "rabbit_url")
    settings = ChaosSettings(
        broker=backend,
        pg_server=pg_dsn.rsplit("/", 1)[0],
        duration=DURATION,
        seed=SEED,
        fault_min=1.0,
        fault_max=4.0,
        quiet=1.5,
        workdir=tmp_path / backend,
    )
    report = await run_chaos(settings)
    text = format_report(report)
    print(text)
    assert report.faults, text
    assert report.acked > 100, text
    assert set(report.fault_counts) == set(FAULTS), f"not every kind of fault struck: {report.fault_counts}"
    assert report.violations == 0, text
