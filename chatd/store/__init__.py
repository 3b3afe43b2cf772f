"""Persistence: the Store interface and its SQLite implementation (PostgreSQL lives in plugins/)."""

from __future__ import annotations

from chatd.config import Config
from chatd.registry import load
from chatd.store.base import Store


def make_store(cfg: Config, server: bool = True) -> Store:
    """The configured store. ``server=False`` for tools that only manage users while a server may be running."""
    backend: type[Store] = load("stores", cfg.store.backend)
    store = backend.from_config(cfg, server)
    store.reaction_limits = (cfg.limits.reactions_per_message, cfg.limits.reactions_per_user)
    slots = cfg.search.concurrency
    if store.networked:
        # Searches share a networked store's pool with every other read: they never take all of it.
        slots = max(1, min(slots, cfg.store.pool_size - 1))
    store.search_limits = (cfg.search.timeout, slots)
    return store
