# ruff: noqa: F811
"""The operators' part of the Store contract (users, tokens, archived and deleted rooms, export and import), run
against SQLite and PostgreSQL like the rest of the contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

# ``make`` is the contract's store fixture, shared by importing it; tests naming it as an argument is how pytest
# hands it over, which ruff reads as a redefinition.
from test_store_contract import MakeStore, make, msg, room_with  # noqa: F401

from chatd.errors import Err
from chatd.store.base import EXPORT_KINDS, NewMessage, Store, UploadRecord
from chatd.store.sqlite import SQLiteStore


async def test_a_disabled_user_authenticates_with_no_token_until_enabled(make: MakeStore) -> None:
    store = await make()
    await store.create_user("Dora", "hash")
    await store.add_token("t1", "Dora")
    assert await store.set_user("Dora", disabled=True)
    assert await store.user_for_token("t1") is None
    [info] = await store.user_info("dora")
    assert info.name == "Dora" and info.disabled and info.has_password and info.tokens == 1
    assert await store.set_user("Dora", disabled=False, admin=True)
    user = await store.user_for_token("t1")
    assert user is not None and user.admin
    assert not await store.set_user("nobody", disabled=True)
    assert await store.set_password_hash("Dora", None)
    assert not (await store.user_info("Dora"))[0].has_password


async def test_tokens_are_listed_by_user_and_found_by_the_start_of_their_hash(make: MakeStore) -> None:
    store = await make()
    await store.create_user("tk", None)
    await store.add_token("abcdef0123456789", "tk")
    await store.add_token("fedcba9876543210", "tk")
    listed = await store.tokens(user="tk")
    assert sorted(t.hash for t in listed) == ["abcdef0123456789", "fedcba9876543210"]
    assert [t.id for t in listed if t.hash.startswith("ab")] == ["abcdef012345"]
    assert [t.hash for t in await store.tokens(id_prefix="fedc")] == ["fedcba9876543210"]
    assert await store.tokens(id_prefix="%") == [] and await store.tokens(id_prefix="") == []
    await store.touch_token("abcdef0123456789", 1_000_000, every=60_000)
    await store.touch_token("abcdef0123456789", 1_030_000, every=60_000)  # within a minute: not written
    [t] = [t for t in await store.tokens(user="tk") if t.hash.startswith("ab")]
    assert t.last_used == 1_000_000


async def test_an_archived_room_refuses_appends_and_reopens_when_unarchived(make: MakeStore) -> None:
    store = await make()
    await room_with(store, "old", "arch")
    assert (await store.append([msg("old", "arch", "1")]))[0].seq == 1
    assert await store.set_room_archived("old", True)
    [refused] = await store.append([msg("old", "arch", "2")])
    assert refused.error == Err.ARCHIVED.code and refused.seq == 0
    assert [r.archived for r in await store.admin_rooms() if r.name == "old"] == [True]
    assert await store.set_room_archived("old", False)
    assert (await store.append([msg("old", "arch", "3")]))[0].seq == 2
    assert not await store.set_room_archived("missing", True)


async def test_deleting_a_room_removes_its_members_messages_and_uploads(make: MakeStore) -> None:
    store = await make()
    await room_with(store, "gone", "del1", "del2", private=True)
    await store.append([msg("gone", "del1", "1")])
    await store.add_upload(UploadRecord("up1", "del1", "image/png", 1, "a", 1))
    await store.attach_uploads(["up1"], "del1", "gone")
    assert [(r.name, r.private, r.members) for r in await store.admin_rooms()] == [("gone", True, 2)]
    assert await store.delete_room("gone") == ["up1"]
    assert await store.get_room("gone") is None and await store.history("gone") == []
    assert await store.members("gone") == [] and await store.get_upload("up1") is None
    assert await store.delete_room("gone") is None
    await store.create_room("gone", False, "del1")  # the name is free again, seqs start over
    assert (await store.append([msg("gone", "del1", "1")]))[0].seq == 1


async def fill(store: Store) -> None:
    await store.create_user("ann", "scrypt$hash", admin=True)
    await store.create_user("bob", None, bot=True)
    await store.add_token("ann-token-hash", "ann")
    await room_with(store, "lobby", "ann", "bob")
    await room_with(store, "secret", "bob", private=True)
    await store.append([msg("lobby", "ann", "c1", "hello"), msg("lobby", "bob", "c2", "hi ann")])
    await store.add_upload(UploadRecord("upl", "ann", "image/png", 3, "a.png", 5))
    await store.attach_uploads(["upl"], "ann", "lobby")
    await store.append([NewMessage("lobby", "ann", "c3", "see", ["upl"])])
    await store.append([NewMessage("lobby", "bob", "c4", "ping @ann")])  # a mention of ann
    await store.set_read("ann", "lobby", 2)
    await store.set_room_archived("secret", True)
    await store.set_user("bob", disabled=True)


async def dump(store: Store) -> dict[str, list[dict[str, Any]]]:
    return {kind: [row async for row in store.export_rows(kind)] for kind in EXPORT_KINDS}


async def test_export_then_import_into_an_empty_store_gives_the_same_rows(make: MakeStore) -> None:
    source = await make()
    await fill(source)
    rows = await dump(source)
    assert [m["seq"] for m in rows["message"]] == [1, 2, 3, 4]
    assert rows["message"][2]["attachments"] == ["upl"] and rows["room"][0]["last_seq"] == 4
    assert [(r["user"], r["seq"]) for r in rows["read"]] == [("ann", 2)]
    assert [(r["user"], r["room"], r["seq"]) for r in rows["mention"]] == [("ann", "lobby", 4)]
    assert not await source.is_empty()
    target = await fresh(make, source)
    assert await target.is_empty()
    for kind in EXPORT_KINDS:
        await target.import_rows(kind, rows[kind])
    assert await dump(target) == rows
    # the imported store goes on where the source stopped
    assert (await target.append([msg("lobby", "ann", "c5")]))[0].seq == 5
    assert (await target.append([msg("lobby", "ann", "c1")]))[0].duplicate


async def fresh(make: MakeStore, source: Store) -> Store:
    """A second, empty SQLite store next to the first (PostgreSQL as a target has its own test)."""
    if isinstance(source, SQLiteStore):
        other = SQLiteStore(Path(source.path).with_name("other.db"))
        await other.open()
        return other
    pytest.skip("one PostgreSQL database per test: tests/admin/test_data.py moves SQLite into PostgreSQL and back")


async def test_import_refuses_rows_with_unknown_columns(make: MakeStore) -> None:
    store = await make()
    with pytest.raises(ValueError, match="exactly the keys"):
        await store.import_rows("user", [{"name": "x", "admin); DROP TABLE users; --": 1}])
    with pytest.raises(ValueError, match="unknown kind"):
        await store.import_rows("secrets", [{"a": 1}])


async def test_an_invite_is_used_once_before_it_expires_and_can_be_given_back(make: MakeStore) -> None:
    store = await make()
    await store.add_invite("inv-hash-1", "admin", expires=10_000)
    await store.add_invite("inv-hash-2", "admin", expires=10_000)
    assert not await store.use_invite("inv-hash-2", "late", now=10_000)  # expired at that moment
    assert not await store.use_invite("no-such", "x", now=0)
    assert await store.use_invite("inv-hash-1", "first", now=5)
    assert not await store.use_invite("inv-hash-1", "second", now=5)
    await store.release_invite("inv-hash-1", "first")
    assert await store.use_invite("inv-hash-1", "second", now=6)
    listed = await store.invites()
    assert [(i.hash, i.used_by) for i in listed] == [("inv-hash-1", "second"), ("inv-hash-2", None)]


async def test_retention_deletes_a_prefix_of_each_room_and_seqs_carry_on(make: MakeStore) -> None:
    store = await make()
    await room_with(store, "old", "ret")
    await room_with(store, "other", "ret")
    await store.append([msg("old", "ret", str(i)) for i in range(3)])
    await store.add_upload(UploadRecord("aged", "ret", "image/png", 1, "a", 5))
    assert await store.purged_through("old") == 0
    assert await store.purge_messages(before_ts=1) == 0  # nothing that old
    cutoff = (await store.history("old"))[-1].ts + 1
    assert await store.purge_messages(before_ts=cutoff) == 3
    assert await store.purged_through("old") == 3 and await store.purged_through("other") == 0
    assert await store.history("old") == []
    assert (await store.append([msg("old", "ret", "new")]))[0].seq == 4
    assert [m.seq for m in await store.history("old", after=0)] == [4]
    assert await store.purge_messages(before_ts=cutoff) == 0  # idempotent
    assert [u.id for u in await store.uploads_before(10, 10, unposted_only=False)] == ["aged"]
    assert await store.uploads_before(5, 10, unposted_only=False) == []


async def test_an_export_inside_a_snapshot_does_not_see_writes_made_meanwhile(make: MakeStore) -> None:
    reader, writer = await make(), await make()
    await writer.create_user("early", None)
    async with reader.snapshot():
        before = [row async for row in reader.export_rows("user")]
        await writer.create_user("late", None)
        during = [row async for row in reader.export_rows("user")]
    after = [row async for row in reader.export_rows("user")]
    assert [r["name"] for r in before] == [r["name"] for r in during] == ["early"]
    assert [r["name"] for r in after] == ["early", "late"]
