"""The broker interface: the ingest work queue and room fan-out.

A send travels gateway → ``submit`` → (queue) → ``take`` by the worker → store → ``complete`` (the ack goes back to
the node that took the send in) and ``publish`` (the stored message goes to every node's hub). Payloads are
encoded once, by the worker, and carried as text.

Contract every backend keeps:

Ingest (``submit`` / ``take`` / ``settle``)
    - **Ordering.** Items submitted on one node are taken in submission order. Per-sender order therefore holds
      as long as one worker drains the queue, which is how every backend is used.
    - **Delivery: at least once.** An item taken but not settled (the worker died, the node crashed) may be taken
      again. The store's idempotency key (room, sender, client_id) turns that into exactly-once history.
    - **Bounded memory.** ``submit`` never holds an unbounded number of items in memory. What a backend does at
      its bound is its named overflow policy (the memory backend spills to an SQLite file).
    - **Nothing is acked from here.** Accepting an item is not an ack; the sender is acked by ``complete`` after
      the store commit.

Completions (``complete``)
    - Route each ack to the node named by ``origin``, at most once. If that node is gone the completion is dropped:
      its client resends with the same client_id and gets ``duplicate: true``.

Fan-out (``publish``)
    - Every publish reaches the ``on_delivery`` callback of every connected node, **including the publishing
      node**, once per node.
    - Deliveries of one room arrive in publish order, which is seq order because one worker publishes a room's
      messages after committing them.
    - **At most once.** A node cut off from the backend misses what was published meanwhile; it must not pretend
      otherwise: ``ready()`` turns false, and clients fill gaps with ``join`` + ``since``.

Lifecycle
    - ``start`` connects and installs the callbacks; ``close`` stops taking new work. ``ready()`` says whether the
      backend can currently accept and deliver (it feeds ``/readyz``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import msgspec

from chatd.store.base import NewMessage


class IngestItem(msgspec.Struct, array_like=True, frozen=True):
    """One validated send, waiting to be stored."""

    msg: NewMessage
    origin: str  # node id that took the send in, where the ack must go
    ticket: int  # that node's handle for the waiting sender


class Completion(msgspec.Struct, array_like=True, frozen=True):
    """The outcome of one ingest item, routed back to its origin node."""

    origin: str
    ticket: int
    room: str
    client_id: str
    seq: int = 0
    ts: int = 0
    duplicate: bool = False
    error: str = ""  # an error code from chatd.errors when the item could not be stored
    message: str = ""


class Delivery(msgspec.Struct, array_like=True, frozen=True):
    """Frames for the local members of a room. ``seq`` is 0 for ephemeral frames (typing, presence)."""

    room: str
    seq: int
    payload: str
    origin: str = ""
    skip: int = 0  # a connection on the origin node that must not get it (the typist); 0 for none


def item_size(item: IngestItem) -> int:
    """Approximate bytes an item holds in memory, for the byte bound."""
    m = item.msg
    return 160 + len(m.body) + len(m.room) + len(m.sender) + len(m.client_id) + 24 * len(m.attachments)


DeliveryCallback = Callable[[Delivery], None]
CompletionCallback = Callable[[Completion], None]


class Broker(abc.ABC):
    """Ingest queue plus room fan-out. See the module docstring for the contract."""

    node_id: str

    @abc.abstractmethod
    async def start(self, on_delivery: DeliveryCallback, on_complete: CompletionCallback) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def submit(self, item: IngestItem) -> None:
        """Accept one item for the worker. Returns once the item is queued (or spilled)."""

    @abc.abstractmethod
    async def take(self, max_items: int) -> list[IngestItem]:
        """Wait for at least one item; return up to ``max_items`` in submission order."""

    @abc.abstractmethod
    async def settle(self, items: list[IngestItem]) -> None:
        """Mark items from the last ``take`` as stored, so they are never taken again."""

    @abc.abstractmethod
    async def publish(self, deliveries: list[Delivery]) -> None:
        """Fan deliveries out to every node, in list order."""

    @abc.abstractmethod
    async def complete(self, completions: list[Completion]) -> None:
        """Route each completion to the node named by its ``origin``."""

    @abc.abstractmethod
    def depth(self) -> int:
        """Items submitted and not yet taken (memory and spill)."""

    @abc.abstractmethod
    def ready(self) -> bool: ...

    def stats(self) -> dict[str, float]:
        """Backend-specific gauges for /metrics."""
        return {}
