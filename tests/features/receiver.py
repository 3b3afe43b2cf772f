"""A real HTTP server that receives webhook POSTs, for the outgoing-webhook tests: it records each request and
answers per a plan (fail the first N, fail until told otherwise, or take its time)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chatd.deploy.local import free_port


class Received:
    def __init__(self, headers: dict[str, str], body: bytes, status: int) -> None:
        self.headers = headers
        self.body = body
        self.status = status  # what we answered
        self.json: dict[str, Any] = json.loads(body)

    @property
    def id(self) -> tuple[str, int]:
        return self.json["id"]["room"], self.json["id"]["seq"]


class Receiver:
    """``fail_first``: answer 500 to that many requests; ``failing``: answer 500 while true; ``delay``: seconds to
    wait before answering."""

    def __init__(self, fail_first: int = 0, failing: bool = False, delay: float = 0.0) -> None:
        self.fail_first = fail_first
        self.failing = failing
        self.delay = delay
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.port = free_port()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver.lock:
                    fail = receiver.failing or receiver.fail_first > 0
                    if receiver.fail_first > 0:
                        receiver.fail_first -= 1
                    status = 500 if fail else 200
                    receiver.requests.append(Received(dict(self.headers.items()), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def delivered(self) -> list[Received]:
        """The requests answered 2xx, in the order they came."""
        with self.lock:
            return [r for r in self.requests if r.status == 200]

    def wait(self, n: int, timeout: float = 20.0) -> list[Received]:
        """Wait until ``n`` requests were answered 2xx; returns them."""
        deadline = time.monotonic() + timeout
        while len(got := self.delivered()) < n:
            assert time.monotonic() < deadline, f"{len(got)} of {n} delivered: {[r.id for r in got]}"
            time.sleep(0.05)
        return got

    def wait_distinct(self, n: int, timeout: float = 20.0) -> list[Received]:
        """Wait until ``n`` different events were answered 2xx (some possibly twice); returns every 2xx."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.delivered()
            if len({r.id for r in got}) >= n:
                return got
            assert time.monotonic() < deadline, f"{len(got)} delivered, not {n} different: {[r.id for r in got]}"
            time.sleep(0.05)

    def wait_requests(self, n: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < n:
            assert time.monotonic() < deadline, f"{len(self.requests)} of {n} requests came"
            time.sleep(0.05)
