"""The bench's accounting, run for real: a server that drops, duplicates, reorders and swallows acks on purpose
must be reported as doing exactly that, across several load processes."""

from __future__ import annotations

from faulty import FaultyServer

from chatd.bench.runner import run_scenario
from chatd.bench.scenario import Scenario
from chatd.bench.target import Target


async def test_report_names_exactly_the_drops_duplicates_swaps_and_missing_acks() -> None:
    server = await FaultyServer().start()
    scn = Scenario(
        name="faulty",
        kind="steady",
        clients=6,
        rooms=2,
        rate=300,
        duration=1.5,
        warmup=0,
        drain_timeout=3,
        drain_quiet=0.6,
        metrics_interval=1.0,
    )
    try:
        report = await run_scenario(scn, Target("faulty", server.url), procs=2)
    finally:
        await server.stop()
    f, t = server.faults, report.tally
    assert f.dropped and f.duplicated and f.swapped and f.acks_dropped  # the server really misbehaved
    assert t.lost == f.dropped
    assert t.duplicated == f.duplicated
    assert t.out_of_order == f.swapped
    assert t.unanswered == f.acks_dropped
    assert t.acked == t.sent - f.acks_dropped
    assert t.expected_deliveries == t.sent * 3  # rooms of 3, the sender included
    assert t.unique_deliveries == t.expected_deliveries - f.dropped
    assert t.stray == 0 and t.delivered_after_error == 0
    assert len(t.lost_examples) == min(10, f.dropped)
    assert not report.clean
    assert any("never answered" in w for w in report.warnings)


async def test_a_well_behaved_run_against_the_same_server_is_clean() -> None:
    """With every fault switched off the same machinery reports nothing: the counts above are not noise."""
    server = FaultyServer()
    f = server.faults
    f.drop_every = f.dup_every = f.swap_every = f.ack_drop_every = 10**9
    f.drop_at = f.dup_at = f.swap_at = -1
    await server.start()
    scn = Scenario(
        name="clean",
        kind="steady",
        clients=4,
        rooms=2,
        rate=200,
        duration=1.0,
        warmup=0,
        drain_timeout=3,
        drain_quiet=0.5,
        metrics_interval=1.0,
    )
    try:
        report = await run_scenario(scn, Target("clean", server.url), procs=1)
    finally:
        await server.stop()
    t = report.tally
    assert t.sent > 100
    assert (t.lost, t.duplicated, t.out_of_order, t.unanswered) == (0, 0, 0, 0)
    assert t.unique_deliveries == t.sent * 2
    assert report.clean
