"""The message path's middle: ingest queue and fan-out behind one interface, several backends."""

from __future__ import annotations

from chatd.broker.base import Broker
from chatd.config import Config
from chatd.registry import load


def make_broker(cfg: Config, node_id: str, node_name: str) -> Broker:
    """The configured broker for this run (``node_id``) of this node (``node_name``)."""
    backend: type[Broker] = load("brokers", cfg.broker.backend)
    return backend.from_config(cfg, node_id, node_name)
