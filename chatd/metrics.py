"""Counters and histograms exposed as Prometheus text on /metrics.

Hand-rolled rather than a client library: a handful of numbers, updated on hot paths as plain attribute
increments, rendered only when scraped.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import os
import resource
import time
from collections.abc import Callable


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

    def render(self, name: str, help_text: str) -> list[str]:
        lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        running = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            lines.append(f'{name}_bucket{{le="{bound:g}"}} {running}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{name}_sum {self.total:.6f}")
        lines.append(f"{name}_count {self.count}")
        return lines


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
        self.store_errors = 0  # failed store appends (each retry counts)
        self.broker_reconnects = 0
        self.control_applied = 0  # cluster control events applied (own and other nodes')
        self.control_dropped = 0  # control events that could not be sent to other nodes
        self.gap_fills = 0  # messages read from the store to fill a gap in a room's feed
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

    def render(self) -> str:
        lines: list[str] = []

        def counter(name: str, value: float, help_text: str) -> None:
            lines.extend((f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {value}"))

        def gauge(name: str, value: float, help_text: str = "") -> None:
            lines.extend((f"# HELP {name} {help_text or name}", f"# TYPE {name} gauge", f"{name} {value}"))

        counter("chatd_messages_in_total", self.messages_in, "Sends accepted onto the ingest queue.")
        counter("chatd_messages_stored_total", self.messages_stored, "Messages committed to the store.")
        counter("chatd_messages_duplicate_total", self.duplicates, "Resends recognised by client_id.")
        counter("chatd_messages_out_total", self.messages_out, "Message frames queued to connections.")
        counter("chatd_deliveries_total", self.deliveries, "All frames fanned out to connections.")
        counter("chatd_frames_in_total", self.frames_in, "WebSocket frames received.")
        counter("chatd_errors_sent_total", self.errors_sent, "Error frames sent.")
        counter("chatd_ws_sends_total", self.ws_sends, "WebSocket messages written (after packing).")
        counter("chatd_ws_bytes_out_total", self.ws_bytes_out, "Characters written in WebSocket messages.")
        counter("chatd_slow_consumer_closes_total", self.slow_consumer_closes, "Connections closed with 4008.")
        counter("chatd_connections_opened_total", self.connections_opened, "WebSocket sessions accepted.")
        counter("chatd_connections_refused_total", self.connections_refused, "Handshakes refused.")
        counter("chatd_rate_limited_total", self.rate_limited, "Sends refused by the rate limit.")
        counter("chatd_store_errors_total", self.store_errors, "Store appends that failed (each retry counts).")
        counter("chatd_broker_reconnects_total", self.broker_reconnects, "Times the broker link came back.")
        counter("chatd_control_events_total", self.control_applied, "Cluster control events applied.")
        counter("chatd_control_dropped_total", self.control_dropped, "Control events not sent to other nodes.")
        counter("chatd_gap_fill_messages_total", self.gap_fills, "Messages read from the store to fill gaps.")
        for name, fn in sorted(self.gauges.items()):
            gauge(name, fn())
        for source in self.sources:
            for name, value in sorted(source().items()):
                (counter if name.endswith("_total") else gauge)(name, value, name)
        gauge("chatd_process_rss_bytes", rss_bytes(), "Resident memory of the server process.")
        lines += self.persist_batch.render("chatd_persist_batch_size", "Messages per store transaction.")
        lines += self.persist_seconds.render("chatd_persist_seconds", "Time to commit one batch.")
        lines += self.loop_lag.render("chatd_loop_lag_seconds", "How late the event loop ran a 0.1 s timer.")
        lines += self.gc_pause.render("chatd_gc_pause_seconds", "Garbage collector pauses.")
        return "\n".join(lines) + "\n"
