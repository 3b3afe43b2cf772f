"""Percentile maths and the ledger's reconciliation, without sockets."""

from __future__ import annotations

import random

import pytest

from chatd.bench.stats import (
    SUB,
    Histogram,
    Ledger,
    Phase,
    body_time,
    bucket_bounds,
    bucket_of,
    exact_quantile,
    make_body,
    parse_client_id,
    tally,
)

pytestmark = pytest.mark.fast  # in-process: ./scripts/test --fast runs it


def test_buckets_tile_the_number_line_without_gaps_or_overlaps() -> None:
    prev_hi = -1
    for index in range(40 * SUB):
        lo, hi = bucket_bounds(index)
        assert lo == prev_hi + 1
        assert bucket_of(lo) == index and bucket_of(hi) == index
        prev_hi = hi


@pytest.mark.parametrize("q", [0.5, 0.9, 0.95, 0.99, 0.999, 1.0])
def test_quantiles_are_within_one_bucket_of_the_exact_nearest_rank(q: float) -> None:
    rng = random.Random(42)
    samples = [int(rng.lognormvariate(8, 1.5)) for _ in range(20_000)]
    h = Histogram()
    for s in samples:
        h.record(s)
    exact = exact_quantile(samples, q)
    assert abs(h.quantile(q) - exact) <= exact / SUB + 1


def test_small_values_are_exact() -> None:
    h = Histogram()
    for v in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]:
        h.record(v)
    assert h.quantile(0.5) == 5
    assert h.quantile(0.9) == 9
    assert h.quantile(0.99) == 10
    assert h.quantile(0.0) == 1
    assert (h.min, h.max, h.count) == (1, 10, 10)


def test_merging_histograms_equals_one_histogram_of_all_samples() -> None:
    rng = random.Random(7)
    a_samples = [rng.randrange(0, 5_000) for _ in range(3000)]
    b_samples = [rng.randrange(1_000, 900_000) for _ in range(500)]
    a, b, both = Histogram(), Histogram(), Histogram()
    for s in a_samples:
        a.record(s)
        both.record(s)
    for s in b_samples:
        b.record(s)
        both.record(s)
    a.merge(b)
    assert a.counts == both.counts
    assert (a.count, a.total, a.min, a.max) == (both.count, both.total, both.min, both.max)
    for q in (0.5, 0.99):
        assert a.quantile(q) == both.quantile(q)
    # Averaging the two processes' p99s would be far off the true p99 here; the merge is exact.
    assert abs((Histogram_q(a_samples, 0.99) + Histogram_q(b_samples, 0.99)) / 2 - both.quantile(0.99)) > 1000


def Histogram_q(samples: list[int], q: float) -> float:
    h = Histogram()
    for s in samples:
        h.record(s)
    return h.quantile(q)


def test_empty_histogram_reports_zero() -> None:
    assert Histogram().quantile(0.99) == 0.0
    assert Histogram().summary_ms()["count"] == 0


def test_client_ids_and_bodies_round_trip_and_foreign_ones_are_refused() -> None:
    assert parse_client_id("abc123.4.2.17", "abc123") == (4, 2, 17)
    assert parse_client_id("other1.4.2.17", "abc123") is None
    assert parse_client_id("abc123.x.2.17", "abc123") is None
    assert parse_client_id("rest-deadbeef", "abc123") is None
    body = make_body(123456789, 100)
    assert len(body) == 100 and body_time(body) == 123456789
    assert body_time("hello") is None


def _ledger() -> Ledger:
    return Ledger("n0", start_ns=0, phases=[Phase("all", 0.0, 10.0, 100.0, 2)])


def test_tally_reconciles_losses_duplicates_refusals_and_strays() -> None:
    led = _ledger()
    a = led.sender(0, 0)  # client 0 in room 0, whose members are clients 0 and 1
    for n in range(5):
        led.on_send(a, 1_000 * n, fanout=2)
    for n in range(4):
        led.on_ack(a, n, 1_000 * n, 2_000_000, duplicate=False)
    led.on_error(a, 4, "too_large")
    for receiver in (0, 1):
        for n in range(4):
            led.on_message(receiver, 0, 0, n, n + 1, make_body(1_000 * n, 40), 3_000_000)
    led.on_message(1, 0, 0, 2, 3, make_body(2_000, 40), 3_100_000)  # a duplicate
    led.on_message(1, 0, 0, 4, 5, make_body(4_000, 40), 3_200_000)  # the refused one, delivered anyway
    led.on_message(7, 0, 0, 0, 1, make_body(0, 40), 3_300_000)  # client 7 is no member of room 0
    t = tally(led, {0: [0, 1]})
    assert (t.sent, t.acked, t.rejected, t.unanswered) == (5, 4, {"too_large": 1}, 0)
    assert t.expected_deliveries == 8 and t.unique_deliveries == 8 and t.lost == 0
    assert t.duplicated == 1 and t.delivered_after_error == 1 and t.stray == 1


def test_tally_names_each_lost_delivery_and_unanswered_send() -> None:
    led = _ledger()
    a = led.sender(3, 1)
    for _ in range(3):
        led.on_send(a, 0, fanout=2)
    led.on_ack(a, 0, 0, 1, duplicate=False)
    led.on_ack(a, 0, 0, 1, duplicate=False)  # a second ack for one send is not a second acknowledgement
    led.on_message(3, 3, 1, 0, 1, make_body(0, 30), 5)
    led.on_message(3, 3, 1, 2, 3, make_body(0, 30), 5)
    led.on_message(4, 3, 1, 2, 3, make_body(0, 30), 5)
    led.on_message(4, 3, 1, 0, 1, make_body(0, 30), 5)  # seq 1 after seq 3: out of order
    t = tally(led, {1: [3, 4]})
    assert t.acked == 1 and t.unanswered == 2 and led.unknown_acks == 1
    assert t.lost == 2 and t.out_of_order == 1
    assert {(x.receiver, x.counter) for x in t.lost_examples} == {(3, 1), (4, 1)}


def test_merged_ledgers_tally_like_one() -> None:
    """Two processes: one sends, the other receives; the merge must see every delivery once."""
    sender_side, receiver_side = _ledger(), _ledger()
    rec = sender_side.sender(0, 0)
    for n in range(4):
        sender_side.on_send(rec, 0, fanout=1)
        sender_side.on_ack(rec, n, 0, 10, duplicate=False)
    for n in (0, 1, 3):
        receiver_side.on_message(1, 0, 0, n, n + 1, make_body(0, 30), 10)
    sender_side.merge(receiver_side)
    t = tally(sender_side, {0: [1]})
    assert (t.expected_deliveries, t.unique_deliveries, t.lost) == (4, 3, 1)
    assert sender_side.phase_stats[0].delivered == 3 and sender_side.phase_stats[0].expected == 4
