"""HTTP request guards: where a request may come from, a read deadline on request bodies, and a cap on requests in
flight per client address.

- **Cross-site writes.** A POST, PUT, PATCH or DELETE whose ``Origin`` is neither this server's own (the ``Host``
  it was reached at) nor in ``web.allowed_origins`` is refused with 403 ``forbidden``, in every auth mode: a page
  on another site can send "simple" requests (``text/plain``, forms) without asking, and chatd serves no CORS, so
  no legitimate page elsewhere needs one. A request without ``Origin`` comes from a non-browser client (curl, the
  CLI, the bench) and passes. Token mode is not at risk (a token travels in a header a foreign page cannot set),
  but refusing there too keeps the rule one rule, and keeps pages elsewhere from spending a visitor's per-address
  sign-in budget.
- **Open mode answers loopback names only.** In open mode every request, WebSocket handshakes included, must carry
  a ``Host`` that is a loopback name (``gateway.auth.loopback_host``), else 403: a page using DNS rebinding to
  reach a laptop's open server sends its own name there.

granian cuts a client that is slow to send its headers (``limits.handshake_timeout``) but not one that is slow to
send a body, so a client with no account could hold a connection, and a file descriptor, per unfinished POST for
as long as it liked. Two bounds stop that:

- **Body deadline.** A body must be complete within ``limits.body_timeout`` seconds plus its size so far over
  ``limits.body_min_rate`` bytes per second, so a large upload on a slow link has time and a drip-fed one does not.
  Past the deadline the request is answered 408 ``timeout``.
- **In flight per address.** At most ``limits.max_requests_per_ip`` requests from one client address (an IPv6
  client: its /64, ``throttle.address_key``) are being handled at once (``server.trusted_proxies`` says whose
  X-Forwarded-For to believe); past it 429 ``rate_limited``. ``/healthz`` and ``/readyz`` are exempt so probes
  keep answering.

The count is per node: it protects this node's own connections and memory.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from chatd.accounts.throttle import address_key
from chatd.config import Config
from chatd.errors import ChatError, Err
from chatd.gateway.auth import WRITE_METHODS, client_ip, loopback_host, origin_allowed

EXEMPT = frozenset(("/healthz", "/readyz"))


def request_guard(cfg: Config, allow: dict[str, str]) -> Any:
    """A litestar middleware (``app -> app``) applying both bounds with ``cfg``'s limits. It also answers OPTIONS
    with the path's methods from ``allow`` (path template → Allow header), see ``app._allow_map``."""
    lim = cfg.limits
    in_flight: dict[str, int] = {}

    def middleware(app: ASGIApp) -> ASGIApp:
        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP or scope["path"] in EXEMPT:
                await app(scope, receive, send)
                return
            peer = scope.get("client")
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
            refused = refuse_source(cfg, headers, str(scope.get("method", "")))
            if refused:
                raise ChatError(Err.FORBIDDEN, refused)
            ip = address_key(client_ip(peer[0] if peer else None, headers, cfg.server.trusted_proxies))
            held = in_flight.get(ip, 0)
            if lim.max_requests_per_ip and held >= lim.max_requests_per_ip:
                raise ChatError(
                    Err.RATE_LIMITED,
                    f"more than {lim.max_requests_per_ip} requests in flight from your address",
                    retry_after=1,
                )
            if scope.get("method") == "OPTIONS" and (methods := allow.get(scope.get("path_template", ""))):
                await send({"type": "http.response.start", "status": 204, "headers": [(b"allow", methods.encode())]})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            in_flight[ip] = held + 1
            try:
                await app(scope, _deadline(receive, lim.body_timeout, lim.body_min_rate), send)
            finally:
                left = in_flight[ip] - 1
                if left:
                    in_flight[ip] = left
                else:
                    del in_flight[ip]  # bounded by addresses with a request in flight now

        return guarded

    return middleware


def refuse_source(cfg: Config, headers: dict[str, str], method: str) -> str | None:
    """Why a request from where it comes must be refused (see the module docstring), or None."""
    host = headers.get("host")
    if cfg.auth.mode == "open" and not loopback_host(host):
        return "open mode answers only requests addressed to a loopback name such as localhost (the Host header)"
    if method in WRITE_METHODS and not origin_allowed(headers.get("origin"), host, cfg.web.allowed_origins, True):
        return "cross-site request refused: its Origin is neither this server nor in web.allowed_origins"
    return None


def _deadline(receive: Receive, timeout: float, min_rate: int) -> Receive:
    """``receive`` that raises 408 ``timeout`` once the body is later than its deadline (see the module)."""
    start = time.monotonic()
    received = 0
    complete = False

    async def timed() -> ReceiveMessage:
        nonlocal received, complete
        if complete:
            return await receive()  # after the body only a disconnect can come; waiting for it is not a cost
        allowed = timeout + (received / min_rate if min_rate else float("inf"))
        remaining = start + allowed - time.monotonic()
        try:
            message = await asyncio.wait_for(receive(), max(remaining, 0.0))
        except TimeoutError:
            raise ChatError(
                Err.TIMEOUT, f"request body incomplete after {time.monotonic() - start:.0f}s ({received} bytes)"
            ) from None
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            complete = not message.get("more_body", False)
        else:
            complete = True
        return message

    return timed
