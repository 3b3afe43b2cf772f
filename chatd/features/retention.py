"""Retention: ``[retention] messages_days`` and ``uploads_days``, applied by a periodic pass on every node.

Messages are deleted as a prefix of each room's history (everything up to the newest message older than the
cutoff), and the room remembers where the cut is (``MessageStore.purged_through``), so clients are told "deleted"
by ``joined`` and by history answers instead of meeting a gap, and seqs carry on. Passes are idempotent, so several
nodes running them at once only repeat each other's work.

A pass is bounded work: it finds what to delete with a read (``RetentionStore.purge_plan``), then deletes room by
room in transactions of at most ``chunk`` entries (``RetentionStore.purge_prefix``), yielding between them, so sends
to any room wait for one chunk at most, never for the whole pass (on SQLite the one writer, on PostgreSQL the room's
row lock).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from chatd.config import RetentionConfig
from chatd.features.uploads import delete_uploads_before
from chatd.store.base import PURGE_CHUNK
from chatd.store.roles import RetentionStore, UploadStore

log = logging.getLogger("chatd.features.retention")


class Retained(RetentionStore, UploadStore, Protocol):
    """What a pass deletes from: the oldest part of each room's stream, and the records of old uploads."""


class Retention:
    def __init__(self, cfg: RetentionConfig, uploads_dir: str, store: Retained, chunk: int = PURGE_CHUNK) -> None:
        self.cfg = cfg
        self.uploads_dir = uploads_dir
        self.store = store
        self.chunk = chunk

    @property
    def enabled(self) -> bool:
        return self.cfg.messages_days > 0 or self.cfg.uploads_days > 0

    async def sweep(self, now: float | None = None) -> tuple[int, int]:
        """One pass: (messages deleted, uploads deleted)."""
        now = time.time() if now is None else now
        messages = uploads = 0
        if self.cfg.messages_days > 0:
            messages = await self.store.purge_messages(int((now - self.cfg.messages_days * 86400) * 1000), self.chunk)
        if self.cfg.uploads_days > 0:
            cutoff = int((now - self.cfg.uploads_days * 86400) * 1000)
            uploads = await delete_uploads_before(self.store, self.uploads_dir, cutoff, unposted_only=False)
        return messages, uploads

    async def run(self) -> None:
        """A pass every ``retention.interval`` for the life of the node (run under the node's supervisor). A pass
        that fails (the store is down) is logged and the next one tries again."""
        while True:
            try:
                messages, uploads = await self.sweep()
                if messages or uploads:
                    log.info("retention deleted %d message(s) and %d upload(s)", messages, uploads)
            except Exception:  # noqa: BLE001 - a failed pass is logged; the next one tries again
                log.exception("retention pass failed")
            await asyncio.sleep(self.cfg.interval)
