"""Experiment: chatd with a different WebSocket writer, to measure a write-path idea before proposing it.

Not part of chatd. It starts ``chatd serve`` in this process with ``WsSession._write_loop`` replaced by a variant:

    python bench/experiments/writer_variants.py CONFIG.toml base     # chatd's own writer
    python bench/experiments/writer_variants.py CONFIG.toml linger   # wait 2 ms before packing on a busy connection
    python bench/experiments/writer_variants.py CONFIG.toml raw      # call granian's send, not litestar's wrappers

then drive it with ``chatd bench -t ws://HOST:PORT/ws --server-pid PID -s steady`` and compare server CPU, latency
and ``chatd_ws_sends_total``. Results are in BENCHMARKS.md ("Suggested server changes").
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import uvloop

from chatd import server
from chatd.config import load_config
from chatd.gateway import ws as wsmod

LINGER = 0.002


def _granian_send(send: Any) -> Any:
    """Peel litestar's ``wrapped_send`` and ``capture_response_started`` off the ASGI send they close over."""
    for _ in range(2):
        send = next(
            c.cell_contents
            for c in send.__closure__
            if callable(c.cell_contents) and type(c.cell_contents).__name__ != "WebSocket"
        )
    return send


def make_writer(variant: str) -> Any:
    async def _write_loop(self: wsmod.WsSession) -> None:
        outbox = self.conn.outbox
        send = _granian_send(self.socket.send) if variant == "raw" else self.socket.send
        metrics = self.node.metrics
        last = 0.0
        while True:
            await outbox.wake.wait()
            if not outbox.frames:
                outbox.wake.clear()
                continue
            if variant == "linger" and time.monotonic() - last < LINGER:
                await asyncio.sleep(LINGER)  # a busy connection: let the next batch land in this write
            text = outbox.pack(wsmod.PACK_MAX)
            self._sending = True
            await send({"type": "websocket.send", "text": text})
            self._sending = False
            last = time.monotonic()
            metrics.ws_sends += 1
            metrics.ws_bytes_out += len(text)

    return _write_loop


if __name__ == "__main__":
    config, variant = sys.argv[1], sys.argv[2]
    if variant not in ("base", "linger", "raw"):
        sys.exit("variant: base, linger or raw")
    if variant != "base":
        wsmod.WsSession._write_loop = make_writer(variant)  # type: ignore[method-assign]
    uvloop.run(server._serve(load_config(config)))
