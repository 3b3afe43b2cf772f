"""The message path's middle: ingest queue and fan-out behind one interface, several backends."""

from __future__ import annotations

from chatd.broker.base import Broker
from chatd.config import Config
from chatd.registry import load


def make_broker(cfg: Config, node_id: str, node_name: str) -> Broker:
    """The configured broker for this run (``node_id``) of this node (``node_name``)."""
    cls = load("brokers", cfg.broker.backend)
    if cfg.broker.backend == "memory":
        spill = cfg.broker.spill_path or f"{cfg.store.path}.spill"
        broker: Broker = cls(node_id, cfg.broker.queue_max_messages, cfg.broker.queue_max_bytes, spill, node_name)
    else:
        broker = cls(cfg.broker, node_id, node_name)
    return broker
