"""The node's webhook deliverer: a supervised background task that leases webhooks and POSTs their events.

Every ``webhooks.poll_interval`` it leases webhooks with new events (``WebhookStore.lease_webhooks``), at most
``webhooks.concurrency`` at a time on this node, and gives each a task of its own that POSTs the events past the
webhook's cursor one by one, in seq order, moving the cursor after each 2xx. The first failure (an answer other
than 2xx, no answer within ``webhooks.timeout``, a refused address) ends the task: the store records the attempt
and when to try again (``signing.backoff``), and releases the lease, so the next attempt may be any node's. At
``webhooks.max_attempts`` failures in a row the webhook stops (``failing``) until an admin enables it.

Chat never waits on a receiver: nothing on the send path knows webhooks exist, the POSTs are bounded in number
and time, and a response body is never read.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import socket
import time
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from chatd import __version__
from chatd.config import WebhooksConfig
from chatd.features.outhooks.signing import (
    EVENT_HEADER,
    HOOK_HEADER,
    SIGNATURE_HEADER,
    backoff,
    body_of,
    kind_of,
    signature,
)
from chatd.metrics import Metrics
from chatd.protocol.frames import Entry
from chatd.store.base import Webhook
from chatd.store.roles import MessageStore, WebhookStore

log = logging.getLogger("chatd.webhooks")

BATCH = 100  # entries read from the room's stream at a time
COUNT_EVERY = 10.0  # seconds between reads of how many webhooks are failing (for /metrics)
ERROR_MAX = 300  # characters of an error kept in the store


async def refuse_address(url: str, timeout: float, *, unresolved_ok: bool = False) -> str:
    """Why ``url`` must not be POSTed to when private addresses are not allowed ("" when it may): its host
    resolves to a loopback, private, link-local, reserved or otherwise non-public address. Checked before every
    POST, so a name that later points inside is caught too (not between this check and the connection).
    ``unresolved_ok``: a name that does not resolve now passes (it may later, and is checked again then)."""
    host = urlsplit(url).hostname or ""
    try:
        async with asyncio.timeout(timeout):
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except TimeoutError:
        return "" if unresolved_ok else f"cannot resolve {host} within {timeout:g}s"
    except OSError as e:
        return "" if unresolved_ok else f"cannot resolve {host}: {e}"
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if not addr.is_global:
            return f"{host} resolves to {addr}, not a public address (webhooks.allow_private)"
    return ""


class Delivering(WebhookStore, MessageStore, Protocol):
    """What the deliverer uses: webhooks' leases and cursors, and the room streams they read events from."""


class Deliverer:
    def __init__(self, cfg: WebhooksConfig, store: Delivering, metrics: Metrics, owner: str) -> None:
        self.cfg = cfg
        self.store = store
        self.metrics = metrics
        # The node's stable name: after a restart it takes up its own leases at once instead of waiting them out.
        self.owner = owner
        self.lease_ms = int(cfg.lease * 1000)
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.failing = 0  # webhooks stopped at the bound, as last read from the store
        self._counted = 0.0
        metrics.gauges["chatd_webhooks_failing"] = lambda: self.failing
        metrics.gauges["chatd_webhooks_in_flight"] = lambda: len(self.tasks)

    async def run(self) -> None:
        client = httpx.AsyncClient(
            timeout=self.cfg.timeout,
            follow_redirects=False,  # a redirect is a failure: the receiver's URL is what the admin gave
            headers={"User-Agent": f"chatd/{__version__}", "Content-Type": "application/json"},
            limits=httpx.Limits(max_connections=self.cfg.concurrency, max_keepalive_connections=self.cfg.concurrency),
        )
        try:
            while True:
                free = self.cfg.concurrency - len(self.tasks)
                if free > 0:
                    for hook in await self.store.lease_webhooks(self.owner, self.lease_ms, free, list(self.tasks)):
                        task = asyncio.create_task(self._serve(client, hook), name=f"chatd-webhook-{hook.id}")
                        self.tasks[hook.id] = task
                        task.add_done_callback(functools.partial(self._done, hook.id))
                await self._count()
                await asyncio.sleep(self.cfg.poll_interval)
        finally:
            await self._stop(client)

    def _done(self, hook_id: int, _: asyncio.Task[None]) -> None:
        self.tasks.pop(hook_id, None)

    async def _stop(self, client: httpx.AsyncClient) -> None:
        """Cancel the deliveries in flight and give their leases back, so another node need not wait them out."""
        ids, tasks = list(self.tasks), list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                for hook_id in ids:
                    await self.store.release_webhook(hook_id, self.owner)
        await client.aclose()

    async def _count(self) -> None:
        now = time.monotonic()
        if now - self._counted >= COUNT_EVERY:
            self._counted = now
            self.failing = sum(1 for w in await self.store.webhooks() if w.failing)

    async def _serve(self, client: httpx.AsyncClient, hook: Webhook) -> None:
        """Deliver ``hook``'s events past its cursor in order until none is left, one fails, or the lease is lost."""
        try:
            await self._deliver(client, hook)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The store failed under us: the lease stays ours and the next poll takes the webhook up again.
            log.exception("webhook %d: delivery stopped by an error; it is taken up again", hook.id)
            self.metrics.webhook_errors += 1

    async def _deliver(self, client: httpx.AsyncClient, hook: Webhook) -> None:
        cursor = saved = hook.cursor
        attempts = hook.attempts
        while entries := await self.store.stream(hook.room, after=cursor, limit=BATCH):
            for entry in entries:
                if kind_of(entry) not in hook.events:
                    cursor = entry.seq
                    continue
                error = await self._post(client, hook, entry)
                if error:
                    if cursor > saved:  # the skipped entries before it are handled
                        await self.store.webhook_delivered(hook.id, self.owner, cursor, 0, self.lease_ms)
                    await self._failed(hook, entry, attempts + 1, error)
                    return
                self.metrics.webhook_deliveries += 1
                cursor = saved = entry.seq
                attempts = 0
                if not await self.store.webhook_delivered(hook.id, self.owner, cursor, 1, self.lease_ms):
                    log.warning("webhook %d: lease lost to another node after seq %d", hook.id, cursor)
                    return
            # Entries it does not subscribe to are handled too: saving them renews the lease on a long skip.
            if cursor > saved:
                if not await self.store.webhook_delivered(hook.id, self.owner, cursor, 0, self.lease_ms):
                    return
                saved = cursor
        await self.store.release_webhook(hook.id, self.owner)

    async def _failed(self, hook: Webhook, entry: Entry, attempt: int, error: str) -> None:
        self.metrics.webhook_failures += 1
        cfg = self.cfg
        wait = backoff(attempt, cfg.backoff_min, cfg.backoff_max)
        retry_ms = int(wait * 1000)
        now = await self.store.webhook_failed(hook.id, self.owner, error[:ERROR_MAX], retry_ms, cfg.max_attempts)
        if now >= cfg.max_attempts:
            self.failing += 1
            log.error(
                "webhook %d (%s, room %s) stopped after %d failed attempts at seq %d: %s; "
                "`chatd webhooks enable %d` starts it again",
                hook.id,
                hook.url,
                hook.room,
                now,
                entry.seq,
                error,
                hook.id,
            )
        elif now:
            log.warning(
                "webhook %d: POST of %s/%d failed (attempt %d): %s; next in %.0fs",
                hook.id,
                entry.room,
                entry.seq,
                now,
                error,
                wait,
            )

    async def _post(self, client: httpx.AsyncClient, hook: Webhook, entry: Entry) -> str:
        """POST one event; "" when answered 2xx, else what went wrong."""
        if not self.cfg.allow_private:
            refused = await refuse_address(hook.url, self.cfg.timeout)
            if refused:
                return refused
        body = body_of(hook, entry)
        headers = {
            SIGNATURE_HEADER: signature(hook.secret, body, int(time.time())),
            EVENT_HEADER: f"{entry.room}/{entry.seq}",
            HOOK_HEADER: str(hook.id),
        }
        try:
            # httpx's timeout bounds each step; this bounds the whole exchange, a trickling receiver included.
            async with asyncio.timeout(self.cfg.timeout):
                request = client.build_request("POST", hook.url, content=body, headers=headers)
                response = await client.send(request, stream=True)
                await response.aclose()  # the body is never read: a receiver cannot make us hold its answer
        except TimeoutError:
            return f"no answer within {self.cfg.timeout:g}s (webhooks.timeout)"
        except httpx.HTTPError as e:
            return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        if 200 <= response.status_code < 300:
            return ""
        return f"HTTP {response.status_code}"
