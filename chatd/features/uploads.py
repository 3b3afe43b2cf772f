"""Upload files on disk, and the rules that keep one user from filling it.

- ``uploads.quota_bytes``: what one user may keep in total (posted or not); checked before and while streaming,
  and again atomically when the record is stored, so concurrent uploads cannot overshoot together.
- ``uploads.rate`` / ``uploads.burst``: uploads per second per user (a token bucket in the node's limiter: across
  nodes where the broker shares limits).
- ``uploads.min_free_bytes``: an upload that would leave less free space on the uploads' filesystem is refused
  with 507 before a byte is written, so uploads stop well before the store's disk fills.
- ``uploads.unposted_ttl``: an upload never posted in a room is deleted after this long by :class:`Sweeper`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from chatd.accounts.throttle import refuse
from chatd.config import UploadsConfig
from chatd.errors import ChatError, Err
from chatd.limiter import Limiter
from chatd.store.records import UploadRecord
from chatd.store.roles import Lifecycle, UploadStore

log = logging.getLogger("chatd.features.uploads")

SWEEP_BATCH = 500


def upload_path(root: str, upload_id: str) -> Path:
    return Path(root) / upload_id[:2] / upload_id


def free_bytes(path: str) -> int:
    """Free bytes on the filesystem holding ``path`` (or its nearest existing parent)."""
    p = Path(path).resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    st = os.statvfs(p)
    return st.f_bavail * st.f_frsize


class UploadRules:
    """The per-user checks of a new upload, in the order an upload meets them."""

    def __init__(self, cfg: UploadsConfig, store: UploadStore, limiter: Limiter) -> None:
        self.cfg = cfg
        self.store = store
        self.limiter = limiter

    async def admit(self, user: int, declared: int | None) -> int:
        """Raise if the user with id ``user`` may not upload now; otherwise the most bytes this upload may have."""
        cfg = self.cfg
        if declared is not None and declared > cfg.max_bytes:
            raise ChatError(Err.TOO_LARGE, f"uploads are limited to {cfg.max_bytes} bytes")
        wait = await self.limiter.take(f"upload:{user}", cfg.rate, cfg.burst)
        if wait:
            raise refuse("uploads (uploads.rate)", wait)
        limit = cfg.max_bytes
        if cfg.quota_bytes:
            room = cfg.quota_bytes - await self.store.upload_usage(user)
            if room <= 0 or (declared is not None and declared > room):
                raise self.over_quota()
            limit = min(limit, room)
        worst = declared if declared is not None else limit
        if free_bytes(cfg.dir) - worst < cfg.min_free_bytes:
            log.error("upload refused: the uploads disk is below uploads.min_free_bytes (%d)", cfg.min_free_bytes)
            raise ChatError(Err.INSUFFICIENT_STORAGE, "the server's disk is too full for uploads now")
        return limit

    def over_limit(self, limit: int) -> ChatError:
        """The error for a body that passed ``limit`` while streaming: the size cap or the quota."""
        if limit < self.cfg.max_bytes:
            return self.over_quota()
        return ChatError(Err.TOO_LARGE, f"uploads are limited to {self.cfg.max_bytes} bytes")

    def over_quota(self) -> ChatError:
        return ChatError(Err.QUOTA_EXCEEDED, f"your uploads would pass your quota of {self.cfg.quota_bytes} bytes")

    async def record(self, upload: UploadRecord) -> bool:
        """Keep the record of a stored file, unless it would pass its owner's quota (checked and inserted in one
        step, so concurrent uploads cannot overshoot together); whether it was kept."""
        return await self.store.add_upload(upload, self.cfg.quota_bytes)

    async def find(self, upload_id: str) -> UploadRecord | None:
        return await self.store.get_upload(upload_id)

    async def delete(self, upload_id: str) -> bool:
        """Delete the upload's record, then its file; whether there was a record."""
        deleted = await self.store.delete_upload(upload_id)
        if deleted:
            await delete_file(self.cfg.dir, upload_id)
        return deleted


async def delete_files(root: str, upload_ids: Sequence[str]) -> None:
    """Remove uploads' files (already gone is fine), in one trip to a worker thread."""

    def unlink_all() -> None:
        for upload_id in upload_ids:
            upload_path(root, upload_id).unlink(missing_ok=True)

    if upload_ids:
        await asyncio.to_thread(unlink_all)


async def delete_file(root: str, upload_id: str) -> None:
    await delete_files(root, [upload_id])


async def delete_uploads_before(store: UploadStore, root: str, cutoff: int, *, unposted_only: bool) -> int:
    """Delete uploads created before ``cutoff`` (Unix ms), record first, then file; returns how many. With
    ``unposted_only`` a message attaching one at this moment wins, and its file stays."""
    deleted = 0
    while batch := await store.uploads_before(cutoff, SWEEP_BATCH, unposted_only=unposted_only):
        for record in batch:
            if await store.delete_upload(record.id, unposted_only=unposted_only):
                await delete_file(root, record.id)
                deleted += 1
        if len(batch) < SWEEP_BATCH:
            break
    return deleted


class Sweeper:
    """Deletes uploads never posted in a room once they are ``uploads.unposted_ttl`` old (record, then file)."""

    def __init__(self, cfg: UploadsConfig, store: UploadStore) -> None:
        self.cfg = cfg
        self.store = store

    @property
    def enabled(self) -> bool:
        return self.cfg.unposted_ttl > 0

    async def sweep(self) -> int:
        """One pass; returns how many uploads it deleted."""
        cutoff = int((time.time() - self.cfg.unposted_ttl) * 1000)
        return await delete_uploads_before(self.store, self.cfg.dir, cutoff, unposted_only=True)

    async def run(self) -> None:
        """A pass every half ``unposted_ttl`` (at most 10 minutes) for the life of the node (supervised)."""
        period = min(self.cfg.unposted_ttl / 2, 600.0)
        while True:
            await asyncio.sleep(period)
            try:
                if n := await self.sweep():
                    log.info("deleted %d unposted upload(s) older than %gs", n, self.cfg.unposted_ttl)
            except Exception:  # noqa: BLE001 - a failed pass is logged; the next one tries again
                log.exception("upload sweep failed")


class StoreDisk:
    """Whether the store's filesystem keeps ``store.min_free_bytes`` free: below it ``/readyz`` says not ready and
    sends are refused with ``unavailable`` (resend later or elsewhere) rather than left to a store that cannot
    write. Re-read at most once a second, so a send costs no system call."""

    PERIOD = 1.0

    def __init__(self, store: Lifecycle, min_free: int) -> None:
        self.store = store
        self.min_free = min_free
        self._ok = True
        self._checked = -self.PERIOD

    def ok(self, fresh: bool = False) -> bool:
        now = time.monotonic()
        if fresh or now - self._checked >= self.PERIOD:
            free = self.store.free_bytes()
            was, self._ok = self._ok, free is None or free >= self.min_free
            self._checked = now
            if was and not self._ok:  # once per change, not per send
                log.error("the store's disk is below store.min_free_bytes (%d): sends are refused", self.min_free)
            elif self._ok and not was:
                log.info("the store's disk is above store.min_free_bytes again: sends are taken")
        return self._ok

    def require(self, client_id: str | None) -> None:
        if not self.ok():
            raise ChatError(Err.UNAVAILABLE, "the server's store is nearly out of disk; resend later", client_id)
