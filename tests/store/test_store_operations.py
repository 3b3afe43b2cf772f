# ruff: noqa: F811
"""The operators' part of the Store contract (users, tokens, archived and deleted rooms, export and import), run
against SQLite and PostgreSQL like the rest of the contract. The SQLite half is in the fast tier
(``make``'s SQLite parameter carries pytest.mark.fast)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

# ``make`` is the contract's store fixture, shared by importing it; tests naming it as an argument is how pytest
# hands it over, which ruff reads as a redefinition.
from test_store_contract import MakeStore, make, msg, room_with  # noqa: F401

from chatd.errors import ChatError, Err
from chatd.store.base import EXPORT_KINDS, HookRecord, NewMessage, Store, UploadRecord
from chatd.store.sqlite import SQLiteStore


async def test_a_disabled_user_authenticates_with_no_token_until_enabled(make: MakeStore) -> None:
    store = await make()
    dora = (await store.create_user("Dora", "hash")).id
    await store.add_token("t1", dora)
    assert await store.set_user(dora, disabled=True)
    assert await store.user_for_token("t1") is None
    [info] = await store.user_info("dora")
    assert (info.id, info.name) == (dora, "Dora") and info.disabled and info.has_password and info.tokens == 1
    assert await store.set_user(dora, disabled=False, admin=True)
    user = await store.user_for_token("t1")
    assert user is not None and user.admin
    assert not await store.set_user(99_999, disabled=True)
    assert await store.set_password_hash(dora, None)
    assert not (await store.user_info("Dora"))[0].has_password


async def test_tokens_are_listed_by_user_and_found_by_the_start_of_their_hash(make: MakeStore) -> None:
    store = await make()
    tk = (await store.create_user("tk", None)).id
    await store.add_token("abcdef0123456789", tk)
    await store.add_token("fedcba9876543210", tk)
    listed = await store.tokens(user=tk)
    assert sorted(t.hash for t in listed) == ["abcdef0123456789", "fedcba9876543210"]
    assert {(t.user, t.name) for t in listed} == {(tk, "tk")}
    assert [t.id for t in listed if t.hash.startswith("ab")] == ["abcdef012345"]
    assert [t.hash for t in await store.tokens(id_prefix="fedc")] == ["fedcba9876543210"]
    assert await store.tokens(id_prefix="%") == [] and await store.tokens(id_prefix="") == []
    await store.touch_token("abcdef0123456789", 1_000_000, every=60_000)
    await store.touch_token("abcdef0123456789", 1_030_000, every=60_000)  # within a minute: not written
    [t] = [t for t in await store.tokens(user=tk) if t.hash.startswith("ab")]
    assert t.last_used == 1_000_000


async def test_an_archived_room_refuses_appends_and_reopens_when_unarchived(make: MakeStore) -> None:
    store = await make()
    arch = (await room_with(store, "old", "arch"))["arch"]
    assert (await store.append([msg("old", arch, "1")]))[0].seq == 1
    assert await store.set_room_archived("old", True)
    [refused] = await store.append([msg("old", arch, "2")])
    assert refused.error == Err.ARCHIVED.code and refused.seq == 0
    assert [(r.archived, r.created_by) for r in await store.admin_rooms() if r.name == "old"] == [(True, "arch")]
    assert await store.set_room_archived("old", False)
    assert (await store.append([msg("old", arch, "3")]))[0].seq == 2
    assert not await store.set_room_archived("missing", True)


async def test_deleting_a_room_removes_its_members_messages_and_uploads(make: MakeStore) -> None:
    store = await make()
    del1 = (await room_with(store, "gone", "del1", "del2", private=True))["del1"]
    await store.append([msg("gone", del1, "1")])
    await store.add_upload(UploadRecord("up1", del1, "image/png", 1, "a", 1))
    await store.attach_uploads(["up1"], del1, "gone")
    assert [(r.name, r.private, r.members) for r in await store.admin_rooms()] == [("gone", True, 2)]
    assert await store.delete_room("gone") == ["up1"]
    assert await store.get_room("gone") is None and await store.history("gone") == []
    assert await store.members("gone") == [] and await store.get_upload("up1") is None
    assert await store.delete_room("gone") is None
    await store.create_room("gone", False, del1)  # the name is free again, seqs start over
    assert (await store.append([msg("gone", del1, "1")]))[0].seq == 1


async def fill(store: Store) -> None:
    ann = (await store.create_user("ann", "scrypt$hash", admin=True)).id
    bob = (await store.create_user("bob", None, bot=True)).id
    gone = (await store.create_user("gone", None)).id
    await store.add_token("ann-token-hash", ann)
    await room_with(store, "lobby", "ann", "bob", "gone")
    await room_with(store, "secret", "bob", private=True)
    await store.append([msg("lobby", ann, "c1", "hello"), msg("lobby", bob, "c2", "hi ann")])
    await store.add_upload(UploadRecord("upl", ann, "image/png", 3, "a.png", 5))
    await store.attach_uploads(["upl"], ann, "lobby")
    await store.append([NewMessage("lobby", ann, "c3", "see", ["upl"])])
    await store.append([NewMessage("lobby", bob, "c4", "ping @ann")])  # a mention of ann
    await store.append(
        [NewMessage("lobby", gone, "c5", "bye"), NewMessage("lobby", bob, "c6", "👋", kind="react", target=5)]
    )
    await store.delete_user(gone)  # a tombstone, which an export carries
    await store.set_read(ann, "lobby", 2)
    await store.set_room_archived("secret", True)
    await store.set_user(bob, disabled=True)
    await store.add_invite("inv-hash", ann, expires=10**13)
    await store.create_identity_user("https://id.example.com", "sub-1", ["dee"])  # a single sign-on user
    # Bots and hooks (issue 24): a scoped token, and a hook whose bot posted under another name.
    hook_bot = (await store.create_user("hook-bot", None, bot=True)).id
    await store.add_token("bot-token-hash", bob, '{"rooms":["lobby"],"actions":["send"]}')
    await store.add_member("lobby", hook_bot)
    await store.add_hook(HookRecord("hook1", "lobby", hook_bot, "secret-hash", ann, 7))
    await store.append([NewMessage("lobby", hook_bot, "h1", "build ok", via="CI")])


async def dump(store: Store) -> dict[str, list[dict[str, Any]]]:
    return {kind: [row async for row in store.export_rows(kind)] for kind in EXPORT_KINDS}


async def test_export_then_import_into_an_empty_store_gives_the_same_rows(make: MakeStore) -> None:
    source = await make()
    await fill(source)
    rows = await dump(source)
    ann, bob, gone, dee, hook_bot = (u["id"] for u in rows["user"])
    assert [(u["name"], u["deleted"]) for u in rows["user"]] == [
        ("ann", False),
        ("bob", False),
        ("gone", True),
        ("dee", False),
        ("hook-bot", False),
    ]
    assert [(r["issuer"], r["subject"], r["user"]) for r in rows["sso_link"]] == [
        ("https://id.example.com", "sub-1", dee)
    ]
    assert [m["seq"] for m in rows["message"]] == [1, 2, 3, 4, 5, 6, 7]
    assert [m["sender"] for m in rows["message"]] == [ann, bob, ann, bob, gone, bob, hook_bot]
    assert rows["message"][2]["attachments"] == ["upl"] and rows["room"][0]["last_seq"] == 7
    assert [m["via"] for m in rows["message"]] == [None] * 6 + ["CI"]
    assert [(t["user"], t["scopes"]) for t in rows["token"]] == [
        (ann, None),
        (bob, '{"rooms":["lobby"],"actions":["send"]}'),
    ]
    assert [(h["id"], h["room"], h["bot_id"]) for h in rows["hook"]] == [("hook1", "lobby", hook_bot)]
    assert [(r["seq"], r["emoji"], r["user"], r["event"]) for r in rows["reaction"]] == [(5, "👋", bob, 6)]
    assert [(r["user"], r["seq"]) for r in rows["read"]] == [(ann, 2)]
    assert [(r["user"], r["room"], r["seq"]) for r in rows["mention"]] == [(ann, "lobby", 4)]
    assert [(r["created_by"], r["used_by"]) for r in rows["invite"]] == [(ann, None)]
    assert not await source.is_empty()
    target = await fresh(make, source)
    try:
        assert await target.is_empty()
        for kind in EXPORT_KINDS:
            await target.import_rows(kind, rows[kind])
        assert await dump(target) == rows
        # the imported store goes on where the source stopped, with the same people
        assert (await target.append([msg("lobby", ann, "c7")]))[0].seq == 8
        assert (await target.append([msg("lobby", ann, "c1")]))[0].duplicate
        assert (await target.create_user("gone", None)).id > gone  # ids are never given again, after an import too
    finally:
        await target.close()  # its connections' threads would keep the test process from exiting


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
        await store.import_rows("user", [{"id": 1, "name": "x", "admin); DROP TABLE users; --": 1}])
    with pytest.raises(ValueError, match="unknown kind"):
        await store.import_rows("secrets", [{"a": 1}])


async def test_an_invite_is_spent_by_the_one_user_it_creates_before_it_expires(make: MakeStore) -> None:
    store = await make()
    boss = (await store.create_user("boss", None)).id
    await store.add_invite("inv-hash-1", boss, expires=10_000)
    await store.add_invite("inv-hash-2", None, expires=10_000)
    for code, now in (("inv-hash-2", 10_000), ("no-such", 0)):  # expired at that moment; unknown
        with pytest.raises(ChatError) as refused:
            await store.create_user("late", None, invite=code, now=now)
        assert refused.value.err is Err.FORBIDDEN and await store.get_user("late") is None
    with pytest.raises(ChatError) as taken:  # a taken name spends no code
        await store.create_user("BOSS", None, invite="inv-hash-1", now=5)
    assert taken.value.err is Err.CONFLICT
    racers = await asyncio.gather(
        *(store.create_user(name, None, invite="inv-hash-1", now=5) for name in ("first", "second")),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in racers) == ["ChatError", "UserRecord"]  # one code, one account
    winner = next(r for r in racers if not isinstance(r, BaseException))
    listed = await store.invites()
    assert [(i.hash, i.created_by, i.used_by) for i in listed] == [
        ("inv-hash-1", "boss", winner.name),  # type: ignore[union-attr]
        ("inv-hash-2", None, None),
    ]


async def test_retention_deletes_a_prefix_of_each_room_and_seqs_carry_on(make: MakeStore) -> None:
    store = await make()
    ret = (await room_with(store, "old", "ret"))["ret"]
    await room_with(store, "other", "ret")
    await store.append([msg("old", ret, str(i)) for i in range(3)])
    await store.append([NewMessage("old", ret, "r", "👍", kind="react", target=3)])
    await store.add_upload(UploadRecord("aged", ret, "image/png", 1, "a", 5))
    assert await store.purged_through("old") == 0
    assert await store.purge_messages(before_ts=1) == 0  # nothing that old
    cutoff = (await store.stream("old", after=0))[-1].ts + 1
    assert await store.purge_messages(before_ts=cutoff) == 4
    assert await store.purged_through("old") == 4 and await store.purged_through("other") == 0
    assert await store.history("old") == []
    assert [r async for r in store.export_rows("reaction")] == []  # a purged message's reactions go with it
    assert (await store.append([msg("old", ret, "new")]))[0].seq == 5
    assert [m.seq for m in await store.history("old", after=0)] == [5]
    assert await store.purge_messages(before_ts=cutoff) == 0  # idempotent
    assert [u.id for u in await store.uploads_before(10, 10, unposted_only=False)] == ["aged"]
    assert await store.uploads_before(5, 10, unposted_only=False) == []


async def test_retention_deletes_in_transactions_of_at_most_a_chunk(make: MakeStore) -> None:
    store = await make()
    ret = (await room_with(store, "long", "ret"))["ret"]
    await room_with(store, "short", "ret")
    await store.append([msg("long", ret, str(i)) for i in range(6)] + [msg("short", ret, "s")])
    await store.append([NewMessage("long", ret, "r", "👍", kind="react", target=6)])  # seq 7: a reaction row on 6
    cutoff = (await store.stream("long", after=0))[-1].ts + 1
    assert await store.purge_plan(1) == {}
    assert await store.purge_plan(cutoff) == {"long": 7, "short": 1}
    # One step at a time: never more than the chunk, and the room is a gapless tail after each.
    assert await store.purge_prefix("long", 7, 3) == (3, 3)
    assert await store.purged_through("long") == 3
    assert [m.seq for m in await store.history("long", after=0)] == [4, 5, 6]
    assert await store.purge_prefix("long", 7, 3) == (3, 6)
    assert [r async for r in store.export_rows("reaction")] == []  # the reaction went with its message
    assert await store.purge_prefix("long", 7, 3) == (1, 7)
    assert await store.purge_prefix("long", 7, 3) == (0, 7)  # done: idempotent
    assert await store.purge_plan(cutoff) == {"short": 1}
    assert await store.purge_messages(cutoff, chunk=3) == 1
    assert await store.purge_plan(cutoff) == {}


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


def test_an_export_from_before_bot_scopes_and_hooks_imports_with_their_columns_null() -> None:
    """Format-2 exports made before migration 016 have no token ``scopes`` and no message ``via``: their tokens
    import unscoped (all a token could be then), their messages as posted by no hook."""
    from chatd.store.base import check_import

    token = {"hash": "h", "user": 1, "created": 1, "last_used": None}
    assert "scopes" in check_import("token", [token]) and token["scopes"] is None
    with pytest.raises(ValueError, match="exactly the keys"):
        check_import("token", [{**token, "extra": 1}])


async def test_an_export_keeps_display_names_and_an_export_from_before_them_imports_without(make: MakeStore) -> None:
    source = await make()
    ann = (await source.create_user("ann", None)).id
    bob = (await source.create_user("bob", None)).id
    await source.set_display_name(ann, "Ann Lée")
    rows = await dump(source)
    assert [(u["name"], u["display_name"]) for u in rows["user"]] == [("ann", "Ann Lée"), ("bob", "")]
    target = await fresh(make, source)
    try:
        older = [{k: v for k, v in u.items() if k != "display_name"} for u in rows["user"] if u["id"] == bob]
        await target.import_rows("user", [u for u in rows["user"] if u["id"] == ann] + older)
        assert (await target.user_by_id(ann)).display_name == "Ann Lée"  # type: ignore[union-attr]
        assert (await target.user_by_id(bob)).display_name == ""  # type: ignore[union-attr]
        assert [u.name for u in await target.directory("ann l")] == ["ann"]  # searchable after the import
    finally:
        await target.close()
