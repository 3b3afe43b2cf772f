"""Persistence: the Store interface and its SQLite implementation (PostgreSQL lives in plugins/)."""

from __future__ import annotations

from chatd.config import Config
from chatd.registry import load
from chatd.store.base import Store


def make_store(cfg: Config, server: bool = True) -> Store:
    """The configured store. ``server=False`` for tools that only manage users while a server may be running."""
    cls = load("stores", cfg.store.backend)
    store: Store
    if cfg.store.backend == "sqlite":
        store = cls(cfg.store.path, cfg.store.synchronous, exclusive=server, readers=cfg.store.pool_size)
    else:
        store = cls(cfg.store)
    store.reaction_limits = (cfg.limits.reactions_per_message, cfg.limits.reactions_per_user)
    slots = cfg.search.concurrency
    if cfg.store.backend != "sqlite":
        # Searches share a networked store's pool with every other read: they never take all of it.
        slots = max(1, min(slots, cfg.store.pool_size - 1))
    store.search_limits = (cfg.search.timeout, slots)
    return store
