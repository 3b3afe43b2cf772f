"""The Store contract (chatd/store/base.py), run against SQLite and PostgreSQL (a fresh database per test)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from chatd.config import StoreConfig
from chatd.errors import ChatError, Err
from chatd.protocol.frames import Edited, Message, Reaction
from chatd.registry import load
from chatd.store.base import HookRecord, NewMessage, Store, StreamPosition, UploadRecord, UserRef
from chatd.store.sqlite import SQLiteStore

MakeStore = Callable[[], Awaitable[Store]]


@pytest.fixture(params=[pytest.param("sqlite", marks=pytest.mark.fast), "postgres"])
async def make(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeStore]:
    """``await make()`` opens a store on the test's database; several calls are several nodes (PostgreSQL)."""
    opened: list[Store] = []
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgres" else ""

    async def factory() -> Store:
        store: Store
        if request.param == "sqlite":
            store = SQLiteStore(tmp_path / "chatd.db", exclusive=not opened)
        else:
            store = load("stores", "postgres")(StoreConfig(backend="postgres", dsn=dsn, pool_size=4))
        await store.open()
        opened.append(store)
        return store

    factory.kind = request.param  # type: ignore[attr-defined]
    yield factory
    for store in opened:
        await store.close()


async def uid(store: Store, name: str) -> int:
    """The id of the live user ``name``, created (token-only) if there is none."""
    found = await store.get_user(name)
    return found.id if found else (await store.create_user(name, None)).id


async def room_with(store: Store, room: str, *users: str, private: bool = False) -> dict[str, int]:
    """A room made by the first of ``users`` with the others added; returns every user's id by name."""
    ids = {name: await uid(store, name) for name in users}
    await store.create_room(room, private, ids[users[0]])
    for name in users[1:]:
        await store.add_member(room, ids[name])
    return ids


def msg(room: str, sender: int, cid: str, body: str = "hi") -> NewMessage:
    return NewMessage(room, sender, cid, body)


async def test_seqs_start_at_1_with_no_gaps_per_room_and_outcomes_keep_batch_order(make: MakeStore) -> None:
    store = await make()
    u = (await room_with(store, "a", "u"))["u"]
    await room_with(store, "b", "u")
    out = await store.append([msg("a", u, "1"), msg("b", u, "1"), msg("a", u, "2"), msg("a", u, "3")])
    assert [(o.seq, o.duplicate, o.error) for o in out] == [
        (1, False, ""),
        (1, False, ""),
        (2, False, ""),
        (3, False, ""),
    ]
    assert {o.name for o in out} == {"u"}  # the sender's name at the commit, for the frame
    out = await store.append([msg("b", u, "2")])
    assert out[0].seq == 2
    assert await store.last_seqs(["a", "b", "nope"]) == {"a": 3, "b": 2}


async def test_a_room_stream_has_an_epoch_that_a_room_made_again_does_not_share(make: MakeStore) -> None:
    store = await make()
    u = (await room_with(store, "a", "u", "v"))["u"]
    v = await uid(store, "v")
    await room_with(store, "b", "u")
    await store.append([msg("a", u, "1"), msg("a", u, "2")])
    a, b = await store.get_room("a"), await store.get_room("b")
    assert a is not None and b is not None and a.epoch and b.epoch and a.epoch != b.epoch
    assert await store.position("a") == StreamPosition(a.epoch, 2)
    assert await store.positions(["a", "b", "nope"]) == {
        "a": StreamPosition(a.epoch, 2),
        "b": StreamPosition(b.epoch, 0),
    }
    assert await store.position("nope") is None
    assert [(r.name, r.epoch) for r, _ in await store.list_rooms(u)] == [("a", a.epoch), ("b", b.epoch)]
    await store.delete_room("a")
    await room_with(store, "a", "u")
    again = await store.position("a")
    assert again is not None and again.seq == 0 and again.epoch not in (a.epoch, "")
    dm, _ = await store.open_dm(f"dm:{min(u, v)}:{max(u, v)}", u, v)
    assert dm.epoch and (await store.position(dm.name)) == StreamPosition(dm.epoch, 0)


async def test_a_repeated_key_is_a_duplicate_carrying_the_first_stored_message(make: MakeStore) -> None:
    store = await make()
    u = (await room_with(store, "r", "u"))["u"]
    first = (await store.append([msg("r", u, "k", "original")]))[0]
    again = await store.append([msg("r", u, "k", "changed"), msg("r", u, "x"), msg("r", u, "x")])
    assert again[0].duplicate and again[0].seq == first.seq and again[0].ts == first.ts
    stored = again[0].stored
    assert isinstance(stored, Message) and (stored.body, stored.uid, stored.from_) == ("original", u, "u")
    assert (again[1].seq, again[1].duplicate) == (2, False)
    assert (again[2].seq, again[2].duplicate) == (2, True)  # a repeat within one batch
    repeat = again[2].stored
    assert isinstance(repeat, Message) and (repeat.seq, repeat.body) == (2, "hi")
    assert [m.body for m in await store.history("r")] == ["original", "hi"]


async def test_sends_to_missing_rooms_or_from_non_members_are_refused_alone(make: MakeStore) -> None:
    store = await make()
    ids = await room_with(store, "r", "owner", "bob")
    eve = await uid(store, "eve")
    owner, bob = ids["owner"], ids["bob"]
    out = await store.append([msg("r", owner, "1"), msg("r", eve, "1"), msg("nope", owner, "1"), msg("r", bob, "1")])
    assert [o.error for o in out] == ["", "not_member", "not_found", ""]
    assert [o.seq for o in out if not o.error] == [1, 2]
    await store.remove_member("r", bob)
    assert (await store.append([msg("r", bob, "2")]))[0].error == "not_member"
    assert await store.last_seq("r") == 2
    # A private room's outsider is answered as a missing room's sender is: nothing tells them it exists.
    await room_with(store, "hidden", "owner", private=True)
    refused = await store.append([msg("hidden", eve, "h"), msg("nothing", eve, "n")])
    masked = [(o.error, o.message.replace(name, "X")) for o, name in zip(refused, ("hidden", "nothing"), strict=True)]
    assert masked[0] == masked[1] and masked[0][0] == "not_found"


async def test_two_nodes_appending_to_one_room_at_once_get_gapless_unique_seqs(make: MakeStore) -> None:
    if make.kind == "sqlite":  # type: ignore[attr-defined]
        pytest.skip("an SQLite file has one server (it holds <path>.lock); several nodes need PostgreSQL")
    a, b = await make(), await make()
    ids = await room_with(a, "r", *[f"u{i}" for i in range(4)])

    async def node(store: Store, user: int) -> list[int]:
        seqs: list[int] = []
        for n in range(0, 200, 10):
            out = await store.append([msg("r", user, f"{n + i}") for i in range(10)])
            seqs += [o.seq for o in out]
        return seqs

    results = await asyncio.gather(*(node(store, ids[f"u{i}"]) for i, store in enumerate((a, b, a, b))))
    every = sorted(s for seqs in results for s in seqs)
    assert every == list(range(1, 801))
    for seqs in results:
        assert seqs == sorted(seqs)  # each sender's messages keep their order
    # The same key from two nodes at once: one stores it, the other gets the duplicate with the same seq.
    u0 = ids["u0"]
    x, y = await asyncio.gather(a.append([msg("r", u0, "same")]), b.append([msg("r", u0, "same")]))
    assert x[0].seq == y[0].seq == 801 and {x[0].duplicate, y[0].duplicate} == {True, False}


async def test_history_pages_forward_and_backward(make: MakeStore) -> None:
    store = await make()
    u = (await room_with(store, "r", "u"))["u"]
    await store.append([msg("r", u, str(i), f"m{i}") for i in range(1, 11)])
    assert [m.seq for m in await store.history("r", limit=3)] == [8, 9, 10]
    assert [m.seq for m in await store.history("r", after=2, limit=3)] == [3, 4, 5]
    assert [m.seq for m in await store.history("r", before=4, limit=10)] == [1, 2, 3]
    assert [m.seq for m in await store.history("r", after=2, before=6)] == [3, 4, 5]
    m = (await store.history("r", after=0, limit=1))[0]
    assert (m.room, m.from_, m.uid, m.client_id, m.body) == ("r", "u", u, "1", "m1") and m.ts > 0


async def test_users_tokens_rooms_and_members(make: MakeStore) -> None:
    store = await make()
    first = await store.create_user("ann", "hash", admin_if_none=True)
    second = await store.create_user("ben", None, bot=True, admin_if_none=True)
    assert first.admin and not second.admin and second.bot
    assert first.id != second.id and await store.user_by_id(second.id) == second
    with pytest.raises(ChatError):
        await store.create_user("ann", None)
    assert await store.password_hash(first.id) == "hash"
    await store.add_token("t1", first.id)
    assert await store.user_for_token("t1") == first
    assert await store.revoke_token("t1") and not await store.revoke_token("t1")
    assert await store.user_for_token("t1") is None
    ann, ben = first.id, second.id
    made = await store.create_room("pub", False, ann)
    assert (made.created_by, made.creator) == (ann, "ann")
    await store.create_room("priv", True, ann)
    with pytest.raises(ChatError):
        await store.create_room("pub", False, ben)
    assert [(r.name, m) for r, m in await store.list_rooms(ben)] == [("pub", False)]
    assert await store.add_member("priv", ben) and not await store.add_member("priv", ben)
    assert [(r.name, m) for r, m in await store.list_rooms(ben)] == [("priv", True), ("pub", False)]
    assert await store.members("priv") == [UserRef(ann, "ann"), UserRef(ben, "ben", bot=True)]
    assert await store.is_member("priv", ben)
    assert await store.remove_member("priv", ben) and not await store.is_member("priv", ben)
    with pytest.raises(ChatError):
        await store.add_member("priv", 99_999)  # no such user
    with pytest.raises(ChatError):
        await store.add_member("nowhere", ben)  # no such room
    assert await store.user_names([ann, ben, 99_999]) == {ann: "ann", ben: "ben"}


async def test_uploads_bind_to_a_room_once_and_only_for_their_owner(make: MakeStore) -> None:
    store = await make()
    ids = await room_with(store, "r", "u", "v")
    u, v = ids["u"], ids["v"]
    await store.add_upload(UploadRecord("up1", u, "image/png", 10, "a.png", 1))
    await store.add_upload(UploadRecord("up2", u, "image/png", 10, "b.png", 1))
    assert await store.attach_uploads(["up1"], v, "r") == []  # not the owner
    assert await store.attach_uploads(["up1", "up2", "missing"], u, "r") == ["up1", "up2"]
    assert await store.attach_uploads(["up1"], u, "other") == []  # already bound elsewhere
    found = await store.get_upload("up1")
    assert found is not None and (found.room, found.owner) == ("r", u)


async def test_a_delete_releases_the_uploads_only_its_message_attached(make: MakeStore) -> None:
    """Issue 20, finding 8: a deleted message's attachments stop being served and stop counting against their
    uploader's quota, in the delete's transaction; one another live message still shows stays."""
    store = await make()
    ids = await room_with(store, "r", "u", "admin")
    u = ids["u"]
    for upload_id in ("only", "shared", "elsewhere"):
        await store.add_upload(UploadRecord(upload_id, u, "image/png", 10, f"{upload_id}.png", 1))
    assert await store.attach_uploads(["only", "shared"], u, "r") == ["only", "shared"]
    await store.append(
        [
            NewMessage("r", u, "1", "", ["only", "shared"]),
            NewMessage("r", u, "2", "the same picture again", ["shared"]),
        ]
    )
    assert await store.upload_usage(u) == 30
    out = await store.append([change("r", u, "d1", "delete", 1)])
    assert (out[0].error, out[0].released) == ("", ["only"])
    assert await store.get_upload("only") is None and await store.get_upload("shared") is not None
    assert await store.upload_usage(u) == 20
    again = await store.append([change("r", u, "d1", "delete", 1)])  # a resend releases nothing more
    assert again[0].duplicate and again[0].released == []
    out = await store.append([change("r", u, "d2", "delete", 2)])
    assert out[0].released == ["shared"] and await store.get_upload("shared") is None
    assert await store.upload_usage(u) == 10  # the upload never posted is untouched


async def test_user_names_are_case_insensitive_and_keep_their_spelling(make: MakeStore) -> None:
    store = await make()
    made = await store.create_user("Alice", "hash")
    assert made.name == "Alice" and not made.admin
    for spelling in ("alice", "ALICE"):
        with pytest.raises(ChatError):
            await store.create_user(spelling, None)
        assert await store.get_user(spelling) == made
    assert await store.get_user("alicia") is None


async def test_admin_is_given_when_asked_or_when_none_exists(make: MakeStore) -> None:
    store = await make()
    assert not (await store.create_user("plain", None)).admin
    assert (await store.create_user("root", None, admin=True)).admin
    assert not (await store.create_user("late", None, admin_if_none=True)).admin  # root is admin already


async def test_tokens_issued_before_a_bound_do_not_authenticate(make: MakeStore) -> None:
    store = await make()
    tok = await uid(store, "tok")
    await store.add_token("h1", tok)
    found = await store.user_for_token("h1", 0)
    assert found is not None and (found.id, found.name) == (tok, "tok")
    assert await store.user_for_token("h1", 2**62) is None


async def test_rooms_list_in_pages_by_name(make: MakeStore) -> None:
    store = await make()
    pager = await uid(store, "pager")
    for name in ("b", "a", "d", "c", "e"):
        await store.create_room(name, False, pager)
    first = [r.name for r, _ in await store.list_rooms(pager, limit=2)]
    rest = [r.name for r, _ in await store.list_rooms(pager, after=first[-1])]
    assert first == ["a", "b"] and rest == ["c", "d", "e"]


async def test_upload_quota_usage_deletion_and_unposted_sweep(make: MakeStore) -> None:
    store = await make()
    owner = (await room_with(store, "q", "owner"))["owner"]
    racer = await uid(store, "racer")
    assert await store.add_upload(UploadRecord("u1", owner, "image/png", 60, "a", 1), quota=100)
    assert not await store.add_upload(UploadRecord("u2", owner, "image/png", 60, "b", 2), quota=100)
    assert await store.add_upload(UploadRecord("u3", owner, "image/png", 40, "c", 3), quota=100)
    assert await store.upload_usage(owner) == 100 and await store.upload_usage(racer) == 0
    assert await store.attach_uploads(["u3"], owner, "q") == ["u3"]
    assert [u.id for u in await store.uploads_before(10, 10, unposted_only=True)] == ["u1"]  # u3 is posted
    assert not await store.delete_upload("u3", unposted_only=True)
    assert await store.delete_upload("u1", unposted_only=True) and await store.get_upload("u1") is None
    assert await store.delete_upload("u3") and await store.upload_usage(owner) == 0
    concurrent = [UploadRecord(f"c{i}", racer, "image/png", 30, "x", 5) for i in range(10)]
    stored = await asyncio.gather(*(store.add_upload(r, quota=100) for r in concurrent))
    assert sum(stored) == 3 and await store.upload_usage(racer) == 90


async def test_the_deployment_key_is_made_once_and_shared_by_every_node(make: MakeStore) -> None:
    a, b = await make(), await make()
    ka, kb = await asyncio.gather(a.deployment_key(), b.deployment_key())
    assert ka is not None and len(ka) == 32 and ka == kb == await b.deployment_key()


# --- identity: ids, tombstones, renames -------------------------------------------------------------------------


async def test_a_deleted_users_name_is_free_and_its_new_owner_inherits_nothing(make: MakeStore) -> None:
    store = await make()
    ids = await room_with(store, "board", "alice", "bob", private=True)
    alice, bob = ids["alice"], ids["bob"]
    dm, _ = await store.open_dm(f"dm:{min(alice, bob)}:{max(alice, bob)}", alice, bob)
    await store.add_token("bob-token", bob)
    await store.append([msg("board", bob, "b1", "hello @alice"), msg("board", alice, "a1", "hi @bob")])
    await store.append([change("board", bob, "x", "react", 2, "👍")])
    await store.set_read(bob, "board", 2)
    await store.add_upload(UploadRecord("bob-up", bob, "image/png", 10, "b.png", 1))
    assert await store.delete_user(bob) == ["bob-up"]
    assert await store.delete_user(bob) is None  # a tombstone is not deleted twice
    assert await store.get_user("bob") is None and await store.user_by_id(bob) is None
    assert await store.user_for_token("bob-token") is None and await store.password_hash(bob) is None
    assert await store.members("board") == [UserRef(alice, "alice")]
    assert await store.members(dm.name) == [UserRef(alice, "alice")]
    assert await store.user_info("bob") == [] and [u.name for u in await store.user_info()] == ["alice"]
    # What bob wrote still shows who wrote it: his id and his name.
    first, second = await store.history("board")
    assert (first.from_, first.uid) == ("bob", bob) and second.reactions == {"👍": ["bob"]}
    with pytest.raises(ChatError):
        await store.add_member("board", bob)  # a tombstone cannot be made a member again
    assert await store.user_names([bob]) == {bob: "bob"}
    for spelling in ("bob", "BOB"):
        new = await store.create_user(spelling, None)
        assert new.id not in (alice, bob)
        assert not await store.is_member("board", new.id)
        assert [r.name for r, _ in await store.list_rooms(new.id)] == []
        assert await store.read_positions(new.id) == [] and await store.mentions(new.id) == []
        assert await store.upload_usage(new.id) == 0 and await store.tokens(user=new.id) == []
        assert await store.search(new.id, ["hello"]) == []
        out = await store.append(
            [change("board", new.id, "e", "edit", 1, "mine now"), change("board", new.id, "d", "delete", 1)]
        )
        assert [o.error for o in out] == ["not_found", "not_found"]  # board is private: as if missing
        await store.delete_user(new.id)
    newest = await store.create_user("bob", None)
    await store.add_member("board", newest.id)
    out = await store.append([change("board", newest.id, "e", "edit", 1, "mine now")])
    assert out[0].error == "forbidden"  # a member now, still not the author of old bob's message
    assert (await store.history("board"))[0].body == "hello @alice"


async def test_a_renamed_user_keeps_everything_and_frames_show_the_new_name(make: MakeStore) -> None:
    store = await make()
    ids = await room_with(store, "board", "alice", "bob", private=True)
    alice, bob = ids["alice"], ids["bob"]
    await store.add_token("bob-token", bob)
    await store.append([msg("board", bob, "b1", "hello @alice"), msg("board", alice, "a1", "hi @bob")])
    await store.append([change("board", bob, "x", "react", 1, "🎉")])
    await store.set_read(bob, "board", 2)
    await store.add_upload(UploadRecord("bob-up", bob, "image/png", 10, "b.png", 1))
    with pytest.raises(ChatError) as taken:
        await store.rename_user(bob, "ALICE")
    assert taken.value.err.code == "conflict"
    with pytest.raises(ChatError):
        await store.rename_user(99_999, "nobody")
    assert await store.rename_user(bob, "robert") == "bob"
    assert await store.rename_user(bob, "Robert") == "robert"  # only the case: allowed
    assert await store.get_user("bob") is None
    robert = await store.get_user("robert")
    assert robert is not None and (robert.id, robert.name) == (bob, "Robert")
    assert await store.user_for_token("bob-token") == robert
    first, second = await store.history("board")
    assert (first.from_, first.uid, first.reactions) == ("Robert", bob, {"🎉": ["Robert"]})
    assert first.reaction_uids == {"🎉": [bob]}
    assert [type(e).__name__ for e in await store.stream("board", after=0)] == ["Message", "Message", "Reaction"]
    reaction = (await store.stream("board", after=2))[0]
    assert isinstance(reaction, Reaction) and (reaction.from_, reaction.users, reaction.uids) == (
        "Robert",
        ["Robert"],
        [bob],
    )
    assert [m.from_ for m in await store.mentions(alice)] == ["Robert"]
    assert [m.seq for m in await store.mentions(bob)] == [2]
    assert [p.seq for p in await store.read_positions(bob)] == [2]
    assert await store.upload_usage(bob) == 10
    assert await store.members("board") == [UserRef(bob, "Robert"), UserRef(alice, "alice")]
    assert [h.from_ for h in await store.search(alice, ["hello"])] == ["Robert"]
    out = await store.append([change("board", bob, "e", "edit", 1, "hello again"), msg("board", bob, "b2", "@alice")])
    assert [o.error for o in out] == ["", ""] and out[1].name == "Robert"
    assert isinstance(out[0].stored, Edited) and out[0].stored.from_ == "Robert"
    # The old name is free for someone else, who gets none of it.
    other = await store.create_user("bob", None)
    assert other.id != bob and not await store.is_member("board", other.id)


# --- room changes (chatd.store.room_events) ------------------------------------------------------------------------


def change(room: str, sender: int, cid: str, kind: str, target: int = 0, body: str = "") -> NewMessage:
    return NewMessage(room, sender, cid, body, kind=kind, target=target)


async def test_changes_take_the_rooms_next_seq_and_history_shows_the_current_state(make: MakeStore) -> None:
    store = await make()
    ids = await room_with(store, "r", "ann", "bob")
    ann, bob = ids["ann"], ids["bob"]
    await store.append([msg("r", ann, "m1", "helo"), msg("r", bob, "m2", "hi ann")])
    out = await store.append(
        [
            change("r", ann, "e1", "edit", 1, "hello"),
            change("r", bob, "x1", "react", 1, "👍"),
            change("r", ann, "x2", "react", 1, "👍"),
            change("r", ann, "x3", "unreact", 1, "👍"),
            change("r", ann, "t1", "topic", body="launch week"),
        ]
    )
    assert [(o.seq, o.error) for o in out] == [(3, ""), (4, ""), (5, ""), (6, ""), (7, "")]
    assert await store.last_seq("r") == 7
    first, second = await store.history("r")  # change events are not messages
    assert (first.body, first.edited, first.reactions) == ("hello", out[0].ts, {"👍": ["bob"]})
    assert second.body == "hi ann" and not second.edited
    kinds = [type(e).__name__ for e in await store.stream("r", after=0)]
    assert kinds == ["Message", "Message", "Edited", "Reaction", "Reaction", "Reaction", "TopicChanged"]
    fresh = out[2].stored
    assert isinstance(fresh, Reaction) and fresh.on
    assert (fresh.users, fresh.uids, fresh.from_, fresh.uid) == (["bob", "ann"], [bob, ann], "ann", ann)
    reaction = (await store.stream("r", after=4, limit=1))[0]
    assert isinstance(reaction, Reaction) and reaction.users == ["bob"]  # the state when read
    room = await store.get_room("r")
    assert room is not None and room.topic == "launch week"


async def test_reactions_keep_their_order_and_are_capped_per_message_and_per_user(make: MakeStore) -> None:
    store = await make()
    store.reaction_limits = (3, 2)
    ids = await room_with(store, "r", "ann", "bob", "cy")
    ann, bob, cy = ids["ann"], ids["bob"], ids["cy"]
    await store.append([msg("r", ann, "m1")])
    out = await store.append(
        [
            change("r", cy, "1", "react", 1, "a"),
            change("r", ann, "2", "react", 1, "b"),
            change("r", ann, "3", "react", 1, "a"),
            change("r", ann, "4", "react", 1, "c"),  # ann's third: over reactions_per_user
            change("r", bob, "5", "react", 1, "c"),  # the third emoji
            change("r", bob, "6", "react", 1, "d"),  # a fourth emoji: over reactions_per_message
            change("r", bob, "7", "react", 1, "a"),  # an emoji already there: fine
            change("r", ann, "8", "react", 1, "a"),  # again: changes nothing, refused by no cap
        ]
    )
    assert [o.error for o in out] == ["", "", "", "too_many_reactions", "", "too_many_reactions", "", ""]
    (m,) = await store.history("r")
    assert m.reactions == {"a": ["cy", "ann", "bob"], "b": ["ann"], "c": ["bob"]}
    assert m.reaction_uids == {"a": [cy, ann, bob], "b": [ann], "c": [bob]}
    await store.append([change("r", ann, "9", "unreact", 1, "b"), change("r", ann, "10", "react", 1, "c")])
    (m,) = await store.history("r")
    assert m.reactions == {"a": ["cy", "ann", "bob"], "c": ["bob", "ann"]}
    assert (await store.append([change("r", bob, "11", "react", 1, "e")]))[0].error == "too_many_reactions"
    assert (await store.append([change("r", ann, "9", "unreact", 1, "b")]))[0].duplicate  # a resend


async def test_a_delete_leaves_a_tombstone_and_no_body_anywhere_in_the_store(make: MakeStore) -> None:
    store = await make()
    ids = await room_with(store, "r", "ann", "bob")
    ann, bob = ids["ann"], ids["bob"]
    await store.append([msg("r", ann, "m1", "the secret is 42")])
    await store.append([change("r", ann, "e1", "edit", 1, "the secret is 43"), change("r", bob, "x", "react", 1, "😮")])
    out = await store.append([change("r", ann, "d1", "delete", 1)])
    assert (out[0].seq, out[0].error) == (4, "")
    (tomb,) = await store.history("r")
    assert tomb.deleted and tomb.body == "" and tomb.reactions == {} and not tomb.edited
    for entry in await store.stream("r", after=0):
        assert "secret" not in str(entry)  # neither the message nor its edit keeps the text
    # A deleted message takes no more changes; a repeat of the delete itself is an idempotent duplicate.
    again = await store.append([change("r", ann, "d1", "delete", 1), change("r", ann, "e2", "edit", 1, "x")])
    assert again[0].duplicate and again[0].seq == 4
    assert again[1].error == "gone"
    assert await store.last_seq("r") == 4


async def test_changes_are_refused_alone_when_not_allowed(make: MakeStore) -> None:
    store = await make()
    ids = await room_with(store, "r", "ann", "bob")
    ann, bob = ids["ann"], ids["bob"]
    root = (await store.create_user("root", None, admin=True)).id
    await store.add_member("r", root)
    eve = await uid(store, "eve")
    await store.append([msg("r", ann, "m1"), msg("r", ann, "m2")])
    out = await store.append(
        [
            change("r", bob, "1", "edit", 1, "mine now"),  # someone else's message
            change("r", bob, "2", "delete", 1),  # ditto, and bob is no admin
            change("r", eve, "3", "react", 1, "👍"),  # not a member
            change("r", ann, "4", "edit", 99, "x"),  # no such message
            change("r", ann, "5", "edit", 1, "fixed"),  # allowed, between refusals
            change("r", ann, "6", "react", 3, "👍"),  # seq 3 is the edit event, not a message
            change("r", root, "7", "delete", 2),  # an admin deletes anyone's
            NewMessage("r", ann, "8", "answer", reply_to=50),  # a reply to a seq that does not exist
            NewMessage("r", ann, "9", "answer", reply_to=1),
        ]
    )
    assert [o.error for o in out] == [
        "forbidden",
        "forbidden",
        "not_member",
        "not_found",
        "",
        "not_found",
        "",
        "not_found",
        "",
    ]
    assert [o.seq for o in out if not o.error] == [3, 4, 5]
    first, second, third = await store.history("r")
    assert first.body == "fixed" and second.deleted and third.reply_to == 1


async def test_a_reply_quotes_a_message_never_a_room_event(make: MakeStore) -> None:
    store = await make()
    ann = (await room_with(store, "r", "ann"))["ann"]
    out = await store.append(
        [
            msg("r", ann, "m1", "question"),
            change("r", ann, "t1", "topic", body="answers below"),  # seq 2: an event
            NewMessage("r", ann, "r1", "quoting the topic", reply_to=2),
            NewMessage("r", ann, "r2", "quoting a message of this batch", reply_to=1),
        ]
    )
    assert [(o.seq, o.error) for o in out] == [(1, ""), (2, ""), (0, "not_found"), (3, "")]
    out = await store.append([NewMessage("r", ann, "r3", "later, the same", reply_to=2)])
    assert out[0].error == "not_found"


async def test_a_change_to_a_message_sent_earlier_in_the_same_batch_sees_it(make: MakeStore) -> None:
    store = await make()
    ann = (await room_with(store, "r", "ann"))["ann"]
    out = await store.append(
        [msg("r", ann, "m1", "tpyo"), change("r", ann, "e1", "edit", 1, "typo"), msg("r", ann, "m2", "next")]
    )
    assert [(o.seq, o.error) for o in out] == [(1, ""), (2, ""), (3, "")]
    assert [m.body for m in await store.history("r")] == ["typo", "next"]
    dup = await store.append([change("r", ann, "e1", "edit", 1, "typo")])
    assert dup[0].duplicate and dup[0].stored is not None and dup[0].stored.seq == 2


async def test_read_positions_move_only_forward_and_count_what_others_wrote(make: MakeStore) -> None:
    store = await make()
    ids = await room_with(store, "r", "ann", "bob")
    ann, bob = ids["ann"], ids["bob"]
    await room_with(store, "s", "bob")
    await store.append([msg("r", bob, str(n)) for n in range(1, 6)] + [msg("r", ann, "own")])
    await store.append([change("r", bob, "d", "delete", 2), change("r", bob, "x", "react", 1, "👍")])
    # seqs: 1..5 bob, 6 ann, 7 delete of 2, 8 reaction on 1
    (pos,) = await store.read_positions(ann)  # ann is not in s
    assert (pos.room, pos.seq, pos.last_seq, pos.unread) == ("r", 0, 8, 4)  # 1, 3, 4, 5: not hers, not deleted
    assert await store.set_read(ann, "r", 3) == 3
    assert await store.set_read(ann, "r", 1) == 3  # a slower device cannot move it back
    assert (await store.read_positions(ann, "r"))[0].unread == 2
    assert await store.set_read(ann, "r", 999) == 8  # never past the room's end
    assert [(p.room, p.unread) for p in await store.read_positions(bob)] == [("r", 1), ("s", 0)]
    assert await store.set_read(ann, "nope", 1) == 0


async def test_a_message_naming_members_records_mentions_of_them_only(make: MakeStore) -> None:
    store = await make()
    ids = await room_with(store, "r", "ann", "Bob", "carol.x")
    ann, bob, carol = ids["ann"], ids["Bob"], ids["carol.x"]
    await uid(store, "eve")  # not a member: never mentioned, even when named
    out = await store.append(
        [
            msg("r", ann, "1", "@bob and @CAROL.X. and @eve and @ann, also mail ann@example.com"),
            msg("r", ann, "2", "no names here"),
        ]
    )
    assert sorted(out[0].mentions) == sorted([bob, carol]) and out[1].mentions == []
    # Several naming messages in one batch: each gets its own names, a name written twice counts once.
    both = await store.append([msg("r", bob, "4", "@ann look"), msg("r", ann, "5", "@bob ok @bob")])
    assert (both[0].mentions, both[1].mentions) == ([ann], [bob])
    again = await store.append([msg("r", ann, "1", "@bob")])
    assert again[0].duplicate and again[0].mentions == []  # a resend names nobody twice
    await store.append([msg("r", carol, "3", "thanks @Bob")])
    mentions = await store.mentions(bob)
    assert [m.seq for m in mentions] == [5, 4, 1] and {m.from_ for m in mentions} == {"ann", "carol.x"}
    await store.append([change("r", carol, "d", "delete", 5)])
    assert [m.seq for m in await store.mentions(bob)] == [4, 1]  # deleted messages are not listed
    await store.remove_member("r", bob)
    assert await store.mentions(bob) == []  # nor rooms they are no longer in


async def test_a_direct_room_is_opened_once_per_pair_and_reopening_brings_both_back(make: MakeStore) -> None:
    store = await make()
    ann, bob = await uid(store, "ann"), await uid(store, "bob")
    room, created = await store.open_dm("dm:1:2", ann, bob)
    assert created and room.dm and room.private and room.created_by == ann
    assert [m.id for m in await store.members("dm:1:2")] == [ann, bob]
    await store.remove_member("dm:1:2", bob)
    again, created = await store.open_dm("dm:1:2", bob, ann)
    assert not created and again.name == room.name
    assert [m.id for m in await store.members("dm:1:2")] == [ann, bob]
    await room_with(store, "dm:not-one", "ann", private=True)
    with pytest.raises(ChatError):
        await store.open_dm("dm:not-one", ann, bob)
    assert [(r.name, r.dm) for r, _ in await store.list_rooms(bob)] == [("dm:1:2", True)]


async def test_two_nodes_opening_the_same_direct_room_at_once_share_it(make: MakeStore) -> None:
    if make.kind == "sqlite":  # type: ignore[attr-defined]
        pytest.skip("several nodes need PostgreSQL")
    a, b = await make(), await make()
    ann, bob = await uid(a, "ann"), await uid(a, "bob")
    results = await asyncio.gather(*(s.open_dm("dm:1:2", ann, bob) for s in (a, b, a, b)))
    assert sorted(created for _, created in results) == [False, False, False, True]
    assert [m.id for m in await a.members("dm:1:2")] == [ann, bob]


async def test_search_ranks_matches_and_never_returns_deleted_or_unreadable_messages(make: MakeStore) -> None:
    store = await make()
    ids = await room_with(store, "pub", "ann", "bob")
    ann, bob = ids["ann"], ids["bob"]
    await room_with(store, "secret", "ann", private=True)
    eve = await uid(store, "eve")
    await store.append(
        [
            msg("pub", ann, "1", "we picked postgres for the launch"),
            msg("pub", bob, "2", "postgres postgres postgres: the launch decision, postgres again"),
            msg("pub", bob, "3", "lunch at noon"),
            msg("secret", ann, "4", "postgres password is hunter2"),
        ]
    )
    hits = await store.search(ann, ["postgres", "launch"])
    assert [(h.room, h.seq) for h in hits[:2]] == [("pub", 2), ("pub", 1)]  # more occurrences rank first
    assert {h.room for h in hits} == {"pub"}  # the secret room has no "launch"
    assert {(h.room, h.seq) for h in await store.search(ann, ["postgres"])} == {("pub", 1), ("pub", 2), ("secret", 1)}
    assert "\x02" in hits[0].snippet and (hits[0].from_, hits[0].uid) == ("bob", bob)
    assert {h.room for h in await store.search(eve, ["postgres"])} == {"pub"}  # not a member of secret
    assert [h.seq for h in await store.search(ann, ["lun"])] == [3]  # the last word matches as a prefix
    assert [h.seq for h in await store.search(ann, ["postgres"], room="pub", limit=1, offset=1)] in ([1], [2])
    await store.append([change("pub", bob, "e", "edit", 3, "dinner at eight")])
    assert await store.search(ann, ["lunch"]) == []  # an edit re-indexes
    assert [h.seq for h in await store.search(ann, ["dinner"])] == [3]
    await store.append([change("pub", bob, "d", "delete", 2)])
    assert [h.seq for h in await store.search(ann, ["decision"])] == []  # deleted: gone from the index
    await store.remove_member("secret", ann)
    assert {h.room for h in await store.search(ann, ["hunter2"])} == set()  # left the private room


async def test_a_search_that_runs_past_its_time_limit_is_stopped_with_search_timeout(make: MakeStore) -> None:
    """Issue 20, finding 1: ``search_limits`` bounds one search's time (SQLite interrupts it, PostgreSQL's
    statement_timeout cancels it), and the store answers the documented error instead of a fault."""
    store = await make()
    ann = (await room_with(store, "big", "ann"))["ann"]
    for start in range(0, 10_000, 2_000):
        await store.append([msg("big", ann, str(k), f"alpha beta {k}") for k in range(start, start + 2_000)])
    assert len(await store.search(ann, ["alpha"], offset=900)) == 20  # no limit: every message ranked
    bounds = store.search_limits
    store.search_limits = (0.001, bounds[1])
    with pytest.raises(ChatError) as stopped:
        await store.search(ann, ["alpha"], offset=900)
    assert stopped.value.err is Err.SEARCH_TIMEOUT
    store.search_limits = bounds
    assert len(await store.search(ann, ["beta"], offset=900)) == 20  # the connection it ran on still works


async def test_search_ranking_learns_nothing_from_rooms_the_caller_cannot_read(make: MakeStore) -> None:
    """Issue 20, finding 2: ranking with statistics of the whole index (SQLite's bm25: average length, how many
    rows hold a word) let private messages reorder public results. A row's rank depends on that row alone."""
    store = await make()
    ann = (await room_with(store, "pub", "ann"))["ann"]
    await room_with(store, "hidden", "ann", private=True)
    eve = await uid(store, "eve")
    await store.append(
        [msg("pub", ann, "1", "alpha"), msg("pub", ann, "2", "alpha alpha one two three four five six seven eight")]
    )
    before = [(h.room, h.seq) for h in await store.search(eve, ["alpha"])]
    assert sorted(before) == [("pub", 1), ("pub", 2)]
    filler = " ".join(f"word{i}" for i in range(200))
    await store.append([msg("hidden", ann, f"h{i}", f"alpha {filler}") for i in range(5)])
    assert [(h.room, h.seq) for h in await store.search(eve, ["alpha"])] == before
    assert await store.search(ann, []) == []


async def test_the_search_migration_indexes_history_stored_before_it(make: MakeStore, tmp_path: Path) -> None:
    store = await make()
    ann = (await room_with(store, "old", "ann"))["ann"]
    await store.append([msg("old", ann, "1", "the quarterly numbers"), msg("old", ann, "2", "gone soon")])
    await store.append([change("old", ann, "d", "delete", 2)])
    # Take the database back to before migration 009, as a store from an earlier release would be.
    if make.kind == "sqlite":  # type: ignore[attr-defined]
        await store.close()
        import sqlite3

        db = sqlite3.connect(tmp_path / "chatd.db")
        for trigger in ("messages_search_insert", "messages_search_update", "messages_search_delete"):
            db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        db.execute("DROP TABLE message_search")
        db.execute("DROP TABLE search_ids")
        db.execute("ALTER TABLE rooms DROP COLUMN search_seq")
        db.execute("DELETE FROM _migrations WHERE name IN ('009_search', '010_search_deferred')")
        db.commit()
        db.close()
        store = SQLiteStore(tmp_path / "chatd.db")
        await store.open()
    else:
        pool = store.pool  # type: ignore[attr-defined]
        await pool.execute("ALTER TABLE messages DROP COLUMN search")
        await pool.execute("DELETE FROM _migrations WHERE name = '009_search'")
        await store.close()
        await store.open()
    try:
        assert [h.seq for h in await store.search(ann, ["quarterly"])] == [1]
        assert await store.search(ann, ["soon"]) == []
    finally:
        if make.kind == "sqlite":  # type: ignore[attr-defined]
            await store.close()


async def test_a_one_use_claim_holds_on_every_node_until_it_expires(make: MakeStore) -> None:
    first = await make()
    other = await make() if make.kind == "postgres" else first  # type: ignore[attr-defined]
    assert await first.claim_once("ticket:abc", 0.5)
    assert not await other.claim_once("ticket:abc", 0.5)  # the same key, on another node
    assert not await first.claim_once("ticket:abc", 0.5)
    assert await other.claim_once("ticket:def", 0.5)  # another key is its own
    await asyncio.sleep(0.7)
    assert await other.claim_once("ticket:abc", 0.5)  # expired: it may be claimed again


async def test_a_sign_in_identity_is_its_user_whatever_the_names_and_on_every_node(make: MakeStore) -> None:
    """Single sign-on: (issuer, subject) finds the same id after renames; a first sign-in takes the first free
    name; a racing first sign-in on another node gets the same user; a deleted user is not brought back."""
    first = await make()
    other = await make() if make.kind == "postgres" else first  # type: ignore[attr-defined]
    iss = "https://id.example.com"
    assert await first.user_for_identity(iss, "s-1") is None
    await first.create_user("Alice", "hash")  # a password user holds the name, in another spelling
    ada = await first.create_identity_user(iss, "s-1", ["alice", "alice-2", "alice-3"])
    assert ada is not None and ada.name == "alice-2" and await first.password_hash(ada.id) is None
    again = await other.create_identity_user(iss, "s-1", ["zed"])  # the link exists: no new user
    assert again is not None and again.id == ada.id and await other.get_user("zed") is None
    assert await first.rename_user(ada.id, "ada") == "alice-2"
    found = await other.user_for_identity(iss, "s-1")
    assert found is not None and (found.id, found.name) == (ada.id, "ada")
    # The same subject at another issuer is someone else.
    assert await first.user_for_identity("https://other.example.com", "s-1") is None
    with pytest.raises(ChatError):
        await first.create_identity_user(iss, "s-2", ["ada", "ALICE"])  # every name taken
    assert await first.user_for_identity(iss, "s-2") is None  # and nothing half-made
    racers = await asyncio.gather(
        first.create_identity_user(iss, "s-3", ["bo", "bo-2"]), other.create_identity_user(iss, "s-3", ["bo", "bo-2"])
    )
    assert racers[0] is not None and racers[1] is not None and racers[0].id == racers[1].id
    assert await first.delete_user(ada.id) is not None
    assert await other.user_for_identity(iss, "s-1") is None
    assert await other.create_identity_user(iss, "s-1", ["ada"]) is None  # stays deleted; no new account


async def test_a_bot_tokens_scope_is_stored_with_it_and_a_bots_messages_say_bot(make: MakeStore) -> None:
    store = await make()
    ids = await room_with(store, "r", "ann")
    bot = await store.create_user("ci", None, bot=True)
    await store.add_member("r", bot.id)
    await store.add_token("scoped", bot.id, '{"rooms":["r"],"actions":["send"]}')
    await store.add_token("plain", ids["ann"])
    assert await store.token_scopes("scoped") == '{"rooms":["r"],"actions":["send"]}'
    assert await store.token_scopes("plain") is None and await store.token_scopes("none") is None
    assert [t.scopes for t in await store.tokens(user=bot.id)] == ['{"rooms":["r"],"actions":["send"]}']
    out = await store.append([msg("r", bot.id, "b1"), msg("r", ids["ann"], "a1"), msg("r", bot.id, "b1")])
    assert [o.bot for o in out] == [True, False, True]
    assert out[2].duplicate and isinstance(out[2].stored, Message) and out[2].stored.bot
    assert [(m.from_, m.bot) for m in await store.history("r")] == [("ci", True), ("ann", False)]
    assert [getattr(e, "bot", None) for e in await store.stream("r", after=0)] == [True, False]
    assert await store.members("r") == [UserRef(ids["ann"], "ann"), UserRef(bot.id, "ci", bot=True)]


async def test_a_hook_is_stored_found_by_id_and_goes_with_its_room_or_bot(make: MakeStore) -> None:
    store = await make()
    ids = await room_with(store, "r", "ann")
    await store.create_room("s", False, ids["ann"])
    bots = [await store.create_user(f"hook{i}", None, bot=True) for i in range(3)]
    hooks = [
        HookRecord("h0", "r", bots[0].id, "sha0", ids["ann"], 1),
        HookRecord("h1", "r", bots[1].id, "sha1", None, 2),
        HookRecord("h2", "s", bots[2].id, "sha2", ids["ann"], 3),
    ]
    for hook in hooks:
        await store.add_hook(hook)
    with pytest.raises(ChatError):
        await store.add_hook(HookRecord("hx", "nowhere", bots[0].id, "x", None, 4))
    assert await store.get_hook("h1") == HookRecord("h1", "r", bots[1].id, "sha1", None, 2, "hook1")
    assert [h.id for h in await store.hooks()] == ["h0", "h1", "h2"]
    assert [h.id for h in await store.hooks("r")] == ["h0", "h1"]
    # A message through a hook keeps the name it was posted under.
    await store.add_member("r", bots[0].id)
    await store.append([NewMessage("r", bots[0].id, "c1", "deploy ok", via="Jenkins")])
    assert [(m.from_, m.via, m.bot) for m in await store.history("r")] == [("hook0", "Jenkins", True)]
    assert await store.delete_hook("h0") and not await store.delete_hook("h0")
    assert await store.get_hook("h0") is None
    await store.delete_user(bots[1].id)
    assert await store.get_hook("h1") is None
    await store.delete_room("s")
    assert await store.hooks() == []


# --- accounts people manage themselves (issue 21) ------------------------------------------------------------


async def test_a_display_name_is_kept_by_id_and_found_by_a_prefix_of_it_or_of_the_name(make: MakeStore) -> None:
    store = await make()
    ann = await uid(store, "ann")
    await uid(store, "Annika")
    bob = await uid(store, "bob")
    await uid(store, "zed")
    assert await store.set_display_name(bob, "Ångström Bob")
    assert not await store.set_display_name(999_999, "nobody")
    assert (await store.user_by_id(bob)).display_name == "Ångström Bob"  # type: ignore[union-attr]
    assert (await store.get_user("BOB")).display_name == "Ångström Bob"  # type: ignore[union-attr]
    assert (await store.user_by_id(ann)).display_name == ""  # type: ignore[union-attr]

    names = lambda users: [u.name for u in users]  # noqa: E731
    assert names(await store.directory()) == ["ann", "Annika", "bob", "zed"]  # lowercased name order
    assert names(await store.directory("ANN")) == ["ann", "Annika"]  # a name prefix, ignoring case
    assert names(await store.directory("åNGS")) == ["bob"]  # a display-name prefix, ignoring case
    assert names(await store.directory("%")) == []  # no wildcards
    # pages: the last name of one page is where the next starts
    first = await store.directory(limit=2)
    assert names(first) == ["ann", "Annika"]
    assert names(await store.directory(after=first[-1].name, limit=2)) == ["bob", "zed"]
    assert await store.set_display_name(bob, "")
    assert names(await store.directory("å")) == []


async def test_the_directory_leaves_out_disabled_users_unless_asked_and_deleted_ones_always(make: MakeStore) -> None:
    store = await make()
    a, b, c = [await uid(store, n) for n in ("dira", "dirb", "dirc")]
    await store.set_user(b, disabled=True)
    await store.delete_user(c)
    assert [u.name for u in await store.directory("dir")] == ["dira"]
    assert [(u.name, u.disabled) for u in await store.directory("dir", disabled=True)] == [
        ("dira", False),
        ("dirb", True),
    ]
    assert [u.id for u in await store.users_by_ids([c, b, a, a])] == sorted([a, b])  # live users, by id


async def test_revoke_tokens_keeps_the_one_asked_and_says_which_it_revoked(make: MakeStore) -> None:
    store = await make()
    me, other = await uid(store, "tk1"), await uid(store, "tk2")
    for token, user in (("h1", me), ("h2", me), ("h3", me), ("o1", other)):
        await store.add_token(token, user)
    assert sorted(await store.revoke_tokens(me, keep="h2")) == ["h1", "h3"]
    assert await store.user_for_token("h2") is not None
    assert await store.user_for_token("h1") is None
    assert await store.user_for_token("o1") is not None
    assert await store.revoke_tokens(me) == ["h2"]
