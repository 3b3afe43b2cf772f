"""Backends by name.

``[broker] backend = "redis"`` or ``[store] backend = "postgres"`` picks an implementation. Every backend registers
through the ``chatd.brokers`` and ``chatd.stores`` entry-point groups (chatd's own in ``pyproject.toml``, a third
party's in its package); a backend's module, and its client library, is imported only when it is selected. The
table below names chatd's own, with the pip extra that brings each one's client library, so a missing extra gives
an install hint, and so a source checkout that was never installed still finds them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any


@dataclass(frozen=True)
class Backend:
    target: str  # "module:attribute"
    extra: str | None = None  # the pip extra that brings its client library


BROKERS: dict[str, Backend] = {
    "memory": Backend("chatd.broker.memory:MemoryBroker"),
    "redis": Backend("plugins.redis_broker:RedisBroker", "redis"),
    "rabbitmq": Backend("plugins.rabbitmq_broker:RabbitMQBroker", "rabbitmq"),
}

STORES: dict[str, Backend] = {
    "sqlite": Backend("chatd.store.sqlite:SQLiteStore"),
    "postgres": Backend("plugins.postgres_store:PostgresStore", "postgres"),
}


class BackendError(Exception):
    pass


def _known(kind: str, builtins: dict[str, Backend]) -> dict[str, Backend]:
    found = dict(builtins)
    for ep in entry_points(group=f"chatd.{kind}"):
        found.setdefault(ep.name, Backend(ep.value))
    return found


def names(kind: str) -> list[str]:
    """Every backend name of ``kind`` ("brokers" or "stores") that can be selected."""
    return sorted(_known(kind, BROKERS if kind == "brokers" else STORES))


def load(kind: str, name: str) -> Any:
    """Import and return the class registered as ``name`` in ``kind`` ("brokers" or "stores")."""
    builtins = BROKERS if kind == "brokers" else STORES
    known = _known(kind, builtins)
    backend = known.get(name)
    if backend is None:
        raise BackendError(f"unknown {kind[:-1]} backend {name!r}; choose one of: {', '.join(sorted(known))}")
    module_name, _, attr = backend.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        hint = f"; install it with: pip install 'chatd[{backend.extra}]'" if backend.extra else ""
        raise BackendError(f"{kind[:-1]} backend {name!r} needs the missing module {e.name!r}{hint}") from None
    return getattr(module, attr)
