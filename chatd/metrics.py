"""Counters and histograms exposed on /metrics through ``prometheus-client``.

The hot paths update plain attributes (an integer increment costs nothing measurable); a custom collector reads
them only when Prometheus scrapes, and the library writes the exposition format, its escaping, and OpenMetrics
when the scraper asks for it. No metric carries a per-room or per-user label: their number would grow with use.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import os
import resource
import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry


class Histogram:
    __slots__ = ("bounds", "counts", "total", "count")

    def __init__(self, bounds: list[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def family(self, name: str, help_text: str) -> HistogramMetricFamily:
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            buckets.append((f"{bound:g}", running))
        buckets.append(("+Inf", self.count))
        return HistogramMetricFamily(name, help_text, buckets=buckets, sum_value=self.total)


def rss_bytes() -> int:
    """Current resident set size, from /proc where available."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Metrics:
    def __init__(self) -> None:
        self.messages_in = 0  # sends accepted for storage
        self.messages_stored = 0
        self.duplicates = 0
        self.messages_out = 0  # message frames handed to outboxes (one per recipient)
        self.deliveries = 0  # all frames fanned out to outboxes
        self.frames_in = 0
        self.errors_sent = 0
        self.ws_bytes_out = 0
        self.ws_sends = 0
        self.slow_consumer_closes = 0
        self.connections_opened = 0
        self.connections_refused = 0
        self.rate_limited = 0
        self.http_rate_limited = 0  # REST answers 429: sign-in attempts, requests in flight, uploads, new rooms
        self.store_errors = 0  # failed store appends (each retry counts)
        self.broker_reconnects = 0
        self.control_applied = 0  # cluster control events applied (own and other nodes')
        self.control_dropped = 0  # control events that could not be sent to other nodes
        self.gap_fills = 0  # messages read from the store to fill a gap in a room's feed
        self.batches_failed = 0  # worker batches that failed unexpectedly (their senders were answered internal)
        self.rest_send_timeouts = 0  # REST sends answered 503 after limits.rest_send_timeout
        self.pending_sends_waits = 0  # sends that waited because limits.pending_sends_max sends were unanswered
        self.webhook_deliveries = 0  # outgoing webhook POSTs answered 2xx
        self.webhook_failures = 0  # outgoing webhook POSTs that failed (each attempt counts)
        self.webhook_errors = 0  # webhook deliveries cut short by a store error (taken up again)
        self.persist_batch = Histogram([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000])
        # For attributing latency excursions: how late the event loop runs a timer, and how long the garbage
        # collector stops the world.
        self.loop_lag = Histogram([0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0])
        self.gc_pause = Histogram([0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25])
        self._gc_started = 0.0
        self.persist_seconds = Histogram([0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0])
        self.gauges: dict[str, Callable[[], float]] = {}
        # Other parts' own numbers, read at scrape time; a name ending in _total is rendered as a counter.
        self.sources: list[Callable[[], dict[str, float]]] = []
        # Counters with one label, read at scrape time: (name, help, label name, {label value: count}).
        self.labeled: list[Callable[[], tuple[str, str, str, dict[str, float]]]] = []
        self._registry: CollectorRegistry | None = None

    def watch_gc(self) -> None:
        gc.callbacks.append(self._on_gc)

    def unwatch_gc(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pause.observe(time.perf_counter() - self._gc_started)

    async def watch_loop_lag(self, period: float = 0.1) -> None:
        """Runs for the life of the node: a timer that measures how late it fires."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + period
            await asyncio.sleep(period)
            self.loop_lag.observe(max(0.0, loop.time() - due))

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The scrape answer for a request's Accept header: (body, content type)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type

    @property
    def registry(self) -> CollectorRegistry:
        if self._registry is None:
            self._registry = CollectorRegistry(auto_describe=False)
            self._registry.register(_Collector(self))
        return self._registry


COUNTERS = (
    ("chatd_messages_in_total", "messages_in", "Sends accepted onto the ingest queue."),
    ("chatd_messages_stored_total", "messages_stored", "Messages committed to the store."),
    ("chatd_messages_duplicate_total", "duplicates", "Resends recognised by client_id."),
    ("chatd_messages_out_total", "messages_out", "Message frames queued to connections."),
    ("chatd_deliveries_total", "deliveries", "All frames fanned out to connections."),
    ("chatd_frames_in_total", "frames_in", "WebSocket frames received."),
    ("chatd_errors_sent_total", "errors_sent", "Error frames sent."),
    ("chatd_ws_sends_total", "ws_sends", "WebSocket messages written (after packing)."),
    ("chatd_ws_bytes_out_total", "ws_bytes_out", "Characters written in WebSocket messages."),
    ("chatd_slow_consumer_closes_total", "slow_consumer_closes", "Connections closed with 4008."),
    ("chatd_connections_opened_total", "connections_opened", "WebSocket sessions accepted."),
    ("chatd_connections_refused_total", "connections_refused", "Handshakes refused."),
    ("chatd_rate_limited_total", "rate_limited", "Sends refused by the rate limit."),
    ("chatd_http_rate_limited_total", "http_rate_limited", "REST requests answered 429 (sign-in, uploads, ...)."),
    ("chatd_store_errors_total", "store_errors", "Store appends that failed (each retry counts)."),
    ("chatd_broker_reconnects_total", "broker_reconnects", "Times the broker link came back."),
    ("chatd_control_events_total", "control_applied", "Cluster control events applied."),
    ("chatd_control_dropped_total", "control_dropped", "Control events not sent to other nodes."),
    ("chatd_gap_fill_messages_total", "gap_fills", "Messages read from the store to fill gaps."),
    ("chatd_batches_failed_total", "batches_failed", "Worker batches that failed unexpectedly (answered internal)."),
    ("chatd_rest_send_timeouts_total", "rest_send_timeouts", "REST sends answered 503 after rest_send_timeout."),
    ("chatd_pending_sends_waits_total", "pending_sends_waits", "Sends that waited at limits.pending_sends_max."),
    ("chatd_webhook_deliveries_total", "webhook_deliveries", "Outgoing webhook POSTs answered 2xx."),
    ("chatd_webhook_failures_total", "webhook_failures", "Outgoing webhook POSTs that failed (each attempt)."),
    ("chatd_webhook_errors_total", "webhook_errors", "Webhook deliveries cut short by a store error."),
)


class _Collector(Collector):
    """Reads a node's Metrics at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        for name, attr, help_text in COUNTERS:
            yield CounterMetricFamily(name, help_text, value=getattr(m, attr))
        for name, fn in sorted(m.gauges.items()):
            yield GaugeMetricFamily(name, name, value=fn())
        for source in m.sources:
            for name, value in sorted(source().items()):
                kind = CounterMetricFamily if name.endswith("_total") else GaugeMetricFamily
                yield kind(name, name, value=value)
        for labeled in m.labeled:
            name, help_text, label, values = labeled()
            by_label = CounterMetricFamily(name, help_text, labels=[label])
            for value_label, value in sorted(values.items()):
                by_label.add_metric([value_label], value)
            yield by_label
        yield GaugeMetricFamily("chatd_process_rss_bytes", "Resident memory of the server process.", value=rss_bytes())
        yield m.persist_batch.family("chatd_persist_batch_size", "Messages per store transaction.")
        yield m.persist_seconds.family("chatd_persist_seconds", "Time to commit one batch.")
        yield m.loop_lag.family("chatd_loop_lag_seconds", "How late the event loop ran a 0.1 s timer.")
        yield m.gc_pause.family("chatd_gc_pause_seconds", "Garbage collector pauses.")
