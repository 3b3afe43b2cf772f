"""Helpers for in-process tests of a Node: its config in a temp dir, and what a connection was sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chatd.config import BrokerConfig, Config, LimitsConfig, RetentionConfig, ServerConfig, StoreConfig, UploadsConfig
from chatd.core.hub import Conn
from chatd.deploy.procs import free_port


def node_config(tmp_path: Path, retention_days: float = 0.0, **limits: Any) -> Config:
    """A memory-broker, SQLite node whose files are all in ``tmp_path``; ``limits`` override [limits]."""
    return Config(
        server=ServerConfig(port=free_port(), node_id=f"inproc-{tmp_path.name}"),
        store=StoreConfig(path=str(tmp_path / "chatd.db")),
        broker=BrokerConfig(spill_path=str(tmp_path / "spill.db")),
        uploads=UploadsConfig(dir=str(tmp_path / "uploads")),
        retention=RetentionConfig(messages_days=retention_days),
        limits=LimitsConfig(**{"send_rate": 0, **limits}),
    )


def sent(conn: Conn, skip: tuple[str, ...] = ("presence",)) -> list[dict[str, Any]]:
    """The frames queued for ``conn`` (taken out of its outbox), without those of a type in ``skip``."""
    out: list[dict[str, Any]] = []
    while conn.outbox.frames:
        out += [json.loads(line) for line in conn.outbox.pack(1 << 20).split("\n")]
    return [f for f in out if f["type"] not in skip]
