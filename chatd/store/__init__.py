"""Persistence: the Store interface and its SQLite implementation (PostgreSQL lives in plugins/)."""

from __future__ import annotations

from chatd.config import Config
from chatd.registry import load
from chatd.store.base import Store


def make_store(cfg: Config) -> Store:
    cls = load("stores", cfg.store.backend)
    if cfg.store.backend == "sqlite":
        return cls(cfg.store.path, cfg.store.synchronous)
    return cls(cfg.store)
