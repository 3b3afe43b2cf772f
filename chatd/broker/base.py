"""The broker interface: each node's ingest queue, and the messages nodes send each other.

A send travels gateway → ``submit`` → (this node's ingest queue) → ``take`` by this node's worker → store →
completion to the waiting sender → fan-out. The worker hands stored messages to its own node's hub directly and
to every *other* node through ``publish``. Payloads are encoded once, by the worker, and carried as text.

Contract every backend keeps:

Ingest (``submit`` / ``take`` / ``settle``)
    - **One queue per node.** Items submitted on a node go to that node's queue (named by ``node_name``, which is
      stable across restarts) and are taken by that node's worker, so a sender's sends — one connection, one
      node — are taken in the order they were submitted. A later run of the same node takes what an earlier run
      left unsettled.
    - **Durable before return.** ``submit`` returns only once the backend holds the item (memory or spill file;
      a Redis stream entry; a RabbitMQ publisher confirm). It raises :class:`BrokerUnavailable` when it cannot,
      and the sender is told to resend with the same client_id. Accepting an item is never an ack: the sender
      is acked after the store commit.
    - **Delivery: at least once.** An item taken but not settled (the worker died, the node crashed, the
      connection dropped) may be taken again. The store's idempotency key (room, sender, client_id) turns that
      into exactly-once history.
    - **Bounded.** At most ``queue_max_messages`` items (and, where the backend can measure it,
      ``queue_max_bytes``) are in a node's queue at once. What happens at the bound is the backend's named
      overflow policy: the memory backend spills to an SQLite file; the remote backends make ``submit`` wait,
      which stops reading from that client's socket (TCP backpressure).

Completions (``complete``)
    - Acks for this node's own senders never leave the node. ``complete`` carries the rare completion addressed
      to another node (an item left by a previous run) and is **at most once**: if that node is gone the
      completion is dropped, and its client resends with the same client_id and gets ``duplicate: true``.

Fan-out (``publish``, ``broadcast``)
    - Every publish and broadcast reaches the ``on_delivery`` / ``on_control`` callback of every *other*
      connected node once; a node never receives its own (backends drop their own echoes).
    - Deliveries from one publisher arrive in publish order.
    - **At most once.** A node cut off from the backend misses what was published meanwhile. It is not
      pretended otherwise: the backend reports the link down (``on_link(False)``, ``ready()`` false) and, when
      it is back, up (``on_link(True)``), and the node then catches every room it serves up from the store. Hubs
      order each room by seq and fill any gap from the store, so a missed delivery is delayed, never lost.

Limits (``limiter``)
    - A backend whose engine can keep shared counters atomically provides a cluster-wide :class:`Limiter`
      (Redis); the others leave the default, this process's own (per node). See ``chatd.limiter``.

What a backend declares (the node asks these, never the backend's name)
    - ``from_config`` builds the backend from the whole config.
    - ``cluster_wide``: whether the backend links this node to others (Redis, RabbitMQ). Then presence is gossiped
      between nodes and the node runs its feeds' sweep, since a publish can be missed. False for a broker that is
      the whole deployment in one process (memory): one node, whose presence is all there is and which can miss
      nothing.

Lifecycle
    - ``start`` connects (raising :class:`BrokerUnavailable` if it cannot at all) and installs the callbacks;
      afterwards a backend reconnects on its own with capped exponential backoff, logging once per change of
      state. ``close`` stops taking new work. ``ready()`` says whether the backend can accept and deliver now
      (it feeds ``/readyz``). ``depth()`` is this node's own estimate of its queue, not a cluster-wide number.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import msgspec

from chatd.config import Config
from chatd.limiter import Limiter, LocalLimiter
from chatd.store.base import NewMessage


class BrokerUnavailable(Exception):
    """The backend cannot take an item now (connection down). Nothing was queued."""


class IngestItem(msgspec.Struct, array_like=True, frozen=True):
    """One validated send, waiting to be stored."""

    msg: NewMessage
    origin: str  # the run of the node that took the send in, where the completion must go
    ticket: int  # that node's handle for the waiting sender


@dataclass(slots=True)
class Taken:
    """An item handed to the worker, with the backend's receipt for ``settle`` (a stream id, a delivery tag)."""

    item: IngestItem
    receipt: Any = None


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


class Control(msgspec.Struct, array_like=True, frozen=True):
    """A cluster-wide event every node applies: a membership change, a kick, a user-addressed frame, presence.

    ``kind`` names the event (see ``chatd.core.cluster``); ``args`` are its string arguments; ``payload`` carries an
    encoded frame or a presence snapshot when the event has one.
    """

    kind: str
    args: list[str] = []
    payload: str = ""
    origin: str = ""


def item_size(item: IngestItem) -> int:
    """Approximate bytes an item holds in memory, for the byte bound."""
    m = item.msg
    return 168 + len(m.body) + len(m.room) + len(m.client_id) + 24 * len(m.attachments)


@dataclass(slots=True)
class BrokerEvents:
    """What a backend calls back into its node. Callbacks are plain functions: they never await."""

    on_delivery: Callable[[Delivery], None]
    on_complete: Callable[[Completion], None]
    on_control: Callable[[Control], None] = lambda c: None
    on_link: Callable[[bool], None] = lambda up: None


class Broker(abc.ABC):
    """This node's ingest queue plus its links to the other nodes. See the module docstring for the contract."""

    node_id: str  # this run of this node (completions are addressed to it)
    node_name: str  # this node across runs (names its ingest queue)
    cluster_wide: ClassVar[bool]  # links this node to others (see the module docstring)

    @classmethod
    @abc.abstractmethod
    def from_config(cls, cfg: Config, node_id: str, node_name: str) -> Self:
        """The backend ``cfg.broker`` describes, for this run (``node_id``) of this node (``node_name``); not yet
        started."""

    @abc.abstractmethod
    async def start(self, events: BrokerEvents) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def submit(self, item: IngestItem) -> None:
        """Queue one item for this node's worker; returns once the backend holds it."""

    @abc.abstractmethod
    async def take(self, max_items: int) -> list[Taken]:
        """Wait for at least one item; return up to ``max_items`` in submission order."""

    @abc.abstractmethod
    async def settle(self, taken: list[Taken]) -> None:
        """Mark items from ``take`` as stored, so they are never taken again."""

    @abc.abstractmethod
    async def publish(self, deliveries: list[Delivery]) -> None:
        """Fan deliveries out to every other node, in list order."""

    @abc.abstractmethod
    async def broadcast(self, event: Control) -> None:
        """Send a control event to every other node."""

    @abc.abstractmethod
    async def complete(self, completions: list[Completion]) -> None:
        """Route each completion to the node named by its ``origin`` (never this one)."""

    @abc.abstractmethod
    def depth(self) -> int:
        """Items this node has submitted and not yet settled: a local estimate."""

    @abc.abstractmethod
    def ready(self) -> bool: ...

    def stats(self) -> dict[str, float]:
        """Backend-specific gauges and counters for /metrics (names ending in ``_total`` are counters)."""
        return {}

    def limiter(self) -> Limiter:
        """The node's limits (``chatd.limiter``): shared by every node through this backend's engine where it can
        keep them, else this process's own. Called once, before ``start``; the node starts it after the broker."""
        return LocalLimiter()
