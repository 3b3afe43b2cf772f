"""Supervised background tasks: none dies unnoticed.

A node runs long-lived tasks beside its sockets (the persist worker, the broker's listener, the heartbeat, the
sweep...). A bug in one of them used to end it quietly while ``/readyz`` kept saying ready, and the node went deaf.
Every such task now runs under a :class:`Supervisor`, in the shape of an OTP supervisor with one restart policy:

- an unexpected exception is logged with its traceback and counted (``chatd_task_crashes_total{task=...}``);
- the task is started again after a backoff (0.1 s doubling to 5 s; reset once it has run for ``healthy_after``);
- while a *required* task is crashed and waiting to restart, :meth:`Supervisor.down` names it, and the node
  reports not ready (``/readyz``), so a load balancer sends new clients elsewhere;
- restarts that come faster than ``intensity`` per minute are logged as an error once per burst: the node keeps
  trying (a partial node is better than none on a laptop), but the operator is told it is looping.

A task that returns normally has finished its job and is not restarted. Cancellation (``stop``) is never a crash,
and every cancelled task is awaited, so nothing outlives the node: one that swallowed its cancellation is cancelled
again, and one still running after ``STOP_TIMEOUT`` is logged by name rather than left to hang the shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

log = logging.getLogger("chatd.supervisor")

BACKOFF_MIN, BACKOFF_MAX = 0.1, 5.0
STOP_TIMEOUT, STOP_RETRY = 5.0, 0.5  # seconds: how long stop waits in all, and between cancellations


class _Child:
    __slots__ = ("name", "factory", "required", "task", "crashes", "down_since", "recent")

    def __init__(self, name: str, factory: Callable[[], Awaitable[None]], required: bool) -> None:
        self.name = name
        self.factory = factory
        self.required = required
        self.task: asyncio.Task[None] | None = None
        self.crashes = 0
        self.down_since: float | None = None  # set while crashed and waiting to restart
        self.recent: deque[float] = deque(maxlen=64)  # restart times, for the intensity warning


class Supervisor:
    """Starts, watches and restarts a node's background tasks (see the module docstring)."""

    def __init__(self, *, healthy_after: float = 30.0, intensity: int = 10) -> None:
        self.healthy_after = healthy_after
        self.intensity = intensity
        self._children: dict[str, _Child] = {}
        self._stopping = False

    def start(self, name: str, factory: Callable[[], Awaitable[None]], *, required: bool = True) -> None:
        """Run ``factory()`` as the task ``name`` for the life of the supervisor, restarting it after a crash.

        ``factory`` is called again for each restart, so it must build a fresh coroutine each time (pass a bound
        method such as ``self._listen``, not a coroutine object). ``required``: the node is not ready while this
        task is down."""
        if name in self._children:
            raise ValueError(f"a task named {name!r} is already supervised")
        child = _Child(name, factory, required)
        self._children[name] = child
        child.task = asyncio.create_task(self._watch(child), name=name)

    async def _watch(self, child: _Child) -> None:
        delay = BACKOFF_MIN
        while True:
            started = time.monotonic()
            child.down_since = None
            try:
                await child.factory()
                return  # finished its job
            except asyncio.CancelledError:
                raise
            except Exception:
                child.crashes += 1
                child.down_since = time.monotonic()
                log.exception(
                    "background task %s crashed (crash %d); restarting in %.1fs", child.name, child.crashes, delay
                )
            if time.monotonic() - started >= self.healthy_after:
                delay = BACKOFF_MIN
            now = time.monotonic()
            child.recent.append(now)
            if sum(1 for t in child.recent if now - t < 60) == self.intensity + 1:
                log.error(
                    "background task %s crashed more than %d times in a minute; it keeps being restarted, but "
                    "something is wrong: see the tracebacks above",
                    child.name,
                    self.intensity,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    def down(self) -> list[str]:
        """Required tasks that are crashed and waiting to be restarted now."""
        return sorted(c.name for c in self._children.values() if c.required and c.down_since is not None)

    def crashes(self) -> dict[str, int]:
        """Crashes so far, by task name (every supervised task, crashed or not)."""
        return {name: c.crashes for name, c in sorted(self._children.items())}

    def running(self, name: str) -> bool:
        child = self._children.get(name)
        return child is not None and child.task is not None and not child.task.done() and child.down_since is None

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Cancel every task and wait for each to end. A task still running is cancelled again every
        ``STOP_RETRY`` seconds: code under it may have swallowed a cancellation (a client library's blocking read
        can; redis-py#2028). One still running after ``timeout`` is logged by name and left, so a node's shutdown
        cannot hang on it."""
        self._stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pending = {c.task for c in self._children.values() if c.task is not None and not c.task.done()}
        while pending:
            for task in pending:
                task.cancel()
            left = deadline - loop.time()
            if left <= 0:
                break
            done, pending = await asyncio.wait(pending, timeout=min(STOP_RETRY, left))
            for task in done:
                if not task.cancelled():
                    task.exception()  # retrieved; a crash was already logged by _watch
        if pending:
            log.error("background tasks did not stop within %gs: %s", timeout, ", ".join(t.get_name() for t in pending))
        self._children.clear()
