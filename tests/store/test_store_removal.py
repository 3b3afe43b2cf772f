"""Store.delete_room and Store.delete_user (what the admin API's deletions stand on), against SQLite and
PostgreSQL. The SQLite half is in the fast tier
(``make``'s SQLite parameter carries pytest.mark.fast)."""

from __future__ import annotations

import test_store_contract as contract
from test_store_contract import MakeStore, msg, room_with

from chatd.store.base import UploadRecord, UserRef

make = contract.make  # the fixture: a fresh SQLite or PostgreSQL store


async def test_deleting_a_room_takes_its_members_messages_and_uploads_and_nothing_else(make: MakeStore) -> None:
    store = await make()
    ids = await room_with(store, "doomed", "ann", "ben")
    ann, ben = ids["ann"], ids["ben"]
    await room_with(store, "kept", "ann")
    await store.append([msg("doomed", ann, "c1"), msg("kept", ann, "c1")])
    await store.append([msg("doomed", ann, "c2")])
    await store.add_upload(UploadRecord("up1", ann, "image/png", 10, "a.png", 1))
    assert await store.attach_uploads(["up1"], ann, "doomed") == ["up1"]
    assert await store.delete_room("doomed") == ["up1"]
    assert await store.get_room("doomed") is None and await store.members("doomed") == []
    assert await store.history("doomed") == [] and await store.get_upload("up1") is None
    assert [m.body for m in await store.history("kept")] == ["hi"]
    assert await store.members("kept") == [UserRef(ann, "ann")]
    assert await store.delete_room("doomed") is None
    # The name is free again, and a new room of that name starts from seq 1.
    await room_with(store, "doomed", "ben")
    (outcome,) = await store.append([msg("doomed", ben, "c1")])
    assert outcome.seq == 1


async def test_deleting_a_user_takes_their_tokens_memberships_and_uploads(make: MakeStore) -> None:
    store = await make()
    ids = await room_with(store, "hall", "ann", "bot1")
    bot = ids["bot1"]
    await store.add_token("t-bot", bot)
    await store.append([msg("hall", bot, "c1")])
    await store.add_upload(UploadRecord("up-bot", bot, "image/png", 10, "b.png", 1))
    assert await store.delete_user(bot) == ["up-bot"]
    assert await store.get_user("bot1") is None and await store.user_for_token("t-bot") is None
    assert await store.members("hall") == [UserRef(ids["ann"], "ann")] and await store.get_upload("up-bot") is None
    assert [(m.from_, m.uid) for m in await store.history("hall")] == [("bot1", bot)]  # what they said stays
    assert await store.delete_user(bot) is None
    assert (await store.create_user("bot1", None)).id != bot  # the name is free again, for someone new
