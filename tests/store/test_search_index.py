"""The SQLite store indexes messages for search in bulk, off the append transaction (migration 010)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from store.test_store_contract import change, msg, room_with

from chatd.store import sqlite as sqlite_store
from chatd.store.sqlite import SQLiteStore

pytestmark = pytest.mark.fast  # in-process: ./scripts/test --fast runs it


def search_seq(path: Path, room: str) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT search_seq FROM rooms WHERE name = ?", (room,)).fetchone()[0]


async def test_appends_leave_indexing_to_later_and_a_search_sees_every_stored_message(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "chatd.db")
    await store.open()
    try:
        ann = (await room_with(store, "r", "ann"))["ann"]
        await store.append([msg("r", ann, "1", "budget draft"), msg("r", ann, "2", "lunch plans")])
        assert search_seq(tmp_path / "chatd.db", "r") == 0  # nothing indexed inside the append
        assert [h.seq for h in await store.search(ann, ["budget"])] == [1]
        assert search_seq(tmp_path / "chatd.db", "r") == 2
    finally:
        await store.close()


async def test_edits_and_deletes_are_searchable_in_their_current_state_indexed_or_not(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "chatd.db")
    await store.open()
    try:
        ann = (await room_with(store, "r", "ann"))["ann"]
        await store.append([msg("r", ann, "1", "old words"), msg("r", ann, "2", "keep me")])
        assert [h.seq for h in await store.search(ann, ["old"])] == [1]  # 1 and 2 now indexed
        await store.append([msg("r", ann, "3", "typo hre"), msg("r", ann, "4", "secret plan")])
        # 1 is indexed and edited (the trigger re-indexes); 3 is not yet indexed and edited; 4 deleted unindexed.
        await store.append(
            [
                change("r", ann, "e1", "edit", 1, "new words"),
                change("r", ann, "e3", "edit", 3, "typo here"),
                change("r", ann, "d4", "delete", 4),
            ]
        )
        assert await store.search(ann, ["old"]) == []
        assert [h.seq for h in await store.search(ann, ["new"])] == [1]
        assert [h.seq for h in await store.search(ann, ["here"])] == [3]
        assert await store.search(ann, ["hre"]) == []
        assert await store.search(ann, ["secret"]) == []
        assert [h.seq for h in await store.search(ann, ["keep"])] == [2]
    finally:
        await store.close()


async def test_a_busy_store_catches_the_index_up_in_the_background(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sqlite_store, "INDEX_AFTER", 10)
    monkeypatch.setattr(sqlite_store, "INDEX_CHUNK", 4)  # several chunks, so the loop over chunks runs
    store = SQLiteStore(tmp_path / "chatd.db")
    await store.open()
    try:
        ann = (await room_with(store, "r", "ann"))["ann"]
        await store.append([msg("r", ann, str(i), f"word{i}") for i in range(12)])
        for _ in range(100):
            if search_seq(tmp_path / "chatd.db", "r") == 12:
                break
            await asyncio.sleep(0.02)
        assert search_seq(tmp_path / "chatd.db", "r") == 12
    finally:
        await store.close()


async def test_a_catch_up_stops_at_what_was_pending_instead_of_chasing_new_sends(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sqlite_store, "INDEX_CHUNK", 4)
    store = SQLiteStore(tmp_path / "chatd.db")
    await store.open()
    try:
        ann = (await room_with(store, "r", "ann"))["ann"]
        await store.append([msg("r", ann, f"a{i}", f"word{i}") for i in range(10)])
        catch_up = asyncio.create_task(store._index_pending())
        # A steady sender: one message between every two index transactions (they take turns on the writer).
        sent = 0
        while not catch_up.done() and sent < 50:
            await store.append([msg("r", ann, f"b{sent}", "more")])
            sent += 1
        await catch_up
        assert sent < 10, f"the catch-up chased {sent} new messages, one small transaction each"
        assert search_seq(tmp_path / "chatd.db", "r") >= 10  # everything pending when it started is indexed
        # A search still sees every stored message, the ones sent during the catch-up included.
        assert len(await store.search(ann, ["more"], limit=100)) == sent
    finally:
        await store.close()
