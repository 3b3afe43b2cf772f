# ruff: noqa: F811
"""The Store contract for outgoing webhooks (chatd/store/base.py), on SQLite and PostgreSQL: cursor from the room's
stream, leases that one holder at a time has, fenced writes, failures up to the bound, and removal with the room."""

from __future__ import annotations

import asyncio

import pytest

# ``make`` is the contract's store fixture, shared by importing it (pytest hands it over by argument name).
from test_store_contract import MakeStore, make, msg, room_with  # noqa: F401

from chatd.errors import ChatError, Err

LEASE = 60_000


async def test_a_webhook_starts_at_the_rooms_last_seq_and_is_listed_by_room(make: MakeStore) -> None:
    store = await make()
    ids = await room_with(store, "wh-a", "alice")
    await store.append([msg("wh-a", ids["alice"], "c1"), msg("wh-a", ids["alice"], "c2")])
    hook = await store.add_webhook("wh-a", "http://example.test/h", "s3cret", ["message", "edit"], ids["alice"])
    assert (hook.room, hook.url, hook.secret, hook.events, hook.cursor) == (
        "wh-a",
        "http://example.test/h",
        "s3cret",
        ["message", "edit"],
        2,
    )
    assert hook.created_by == ids["alice"] and not hook.failing and hook.epoch
    await room_with(store, "wh-b", "alice")
    other = await store.add_webhook("wh-b", "http://example.test/b", "x", ["message"], None)
    assert [w.id for w in await store.webhooks("wh-a")] == [hook.id]
    assert [w.id for w in await store.webhooks()] == [hook.id, other.id]
    assert await store.get_webhook(other.id) == other and other.created_by is None
    with pytest.raises(ChatError) as e:
        await store.add_webhook("nowhere", "http://example.test/", "x", ["message"], None)
    assert e.value.err == Err.NOT_FOUND


async def test_the_per_room_bound_refuses_one_more(make: MakeStore) -> None:
    store = await make()
    await room_with(store, "wh-max", "alice")
    await store.add_webhook("wh-max", "http://example.test/1", "x", ["message"], None, per_room_max=1)
    with pytest.raises(ChatError) as e:
        await store.add_webhook("wh-max", "http://example.test/2", "x", ["message"], None, per_room_max=1)
    assert e.value.err == Err.CONFLICT


async def test_only_a_webhook_with_new_entries_is_leased_and_by_one_holder(make: MakeStore) -> None:
    store = await make()
    ids = await room_with(store, "wh-l", "alice")
    hook = await store.add_webhook("wh-l", "http://example.test/", "x", ["message"], None)
    assert await store.lease_webhooks("n1", LEASE, 10) == []  # nothing new in the room yet
    await store.append([msg("wh-l", ids["alice"], "c1")])
    assert [w.id for w in await store.lease_webhooks("n1", LEASE, 10)] == [hook.id]
    assert await store.lease_webhooks("n2", LEASE, 10) == []  # n1 holds it
    assert await store.lease_webhooks("n1", LEASE, 10, busy=[hook.id]) == []
    # A holder that lost the lease changes nothing.
    assert not await store.webhook_delivered(hook.id, "n2", 1, 1, LEASE)
    assert await store.webhook_failed(hook.id, "n2", "boom", 0, 5) == 0
    assert await store.webhook_delivered(hook.id, "n1", 1, 1, LEASE)
    done = await store.get_webhook(hook.id)
    assert done is not None and (done.cursor, done.delivered, done.last_error) == (1, 1, "")
    # The cursor never moves back, and a caught-up webhook is not leased again.
    assert await store.webhook_delivered(hook.id, "n1", 0, 0, LEASE)
    assert (await store.get_webhook(hook.id)).cursor == 1  # type: ignore[union-attr]
    await store.release_webhook(hook.id, "n1")
    assert await store.lease_webhooks("n2", LEASE, 10) == []


async def test_an_expired_lease_goes_to_another_node(make: MakeStore) -> None:
    a = await make()
    b = await make() if make.kind == "postgres" else a  # type: ignore[attr-defined]
    ids = await room_with(a, "wh-e", "alice")
    hook = await a.add_webhook("wh-e", "http://example.test/", "x", ["message"], None)
    await a.append([msg("wh-e", ids["alice"], "c1")])
    assert [w.id for w in await a.lease_webhooks("n1", 50, 10)] == [hook.id]  # (held: the test above)
    await asyncio.sleep(0.2)
    assert [w.id for w in await b.lease_webhooks("n2", LEASE, 10)] == [hook.id]
    assert not await a.webhook_delivered(hook.id, "n1", 1, 1, LEASE)  # n1 stalled past its lease: fenced off


async def test_two_nodes_leasing_at_once_never_share_a_webhook(make: MakeStore) -> None:
    a = await make()
    b = await make() if make.kind == "postgres" else a  # type: ignore[attr-defined]
    ids = await room_with(a, "wh-r", "alice")
    hooks = [await a.add_webhook("wh-r", f"http://example.test/{i}", "x", ["message"], None) for i in range(6)]
    await a.append([msg("wh-r", ids["alice"], "c1")])
    got = await asyncio.gather(*(s.lease_webhooks(f"n{i}", LEASE, 6) for i, s in enumerate([a, b, a, b])))
    taken = [w.id for batch in got for w in batch]
    assert sorted(taken) == sorted(h.id for h in hooks)  # each leased, none twice


async def test_failures_back_off_and_stop_at_the_bound_until_enabled(make: MakeStore) -> None:
    store = await make()
    ids = await room_with(store, "wh-f", "alice")
    hook = await store.add_webhook("wh-f", "http://example.test/", "x", ["message"], None)
    await store.append([msg("wh-f", ids["alice"], "c1")])
    await store.lease_webhooks("n1", LEASE, 10)
    assert await store.webhook_failed(hook.id, "n1", "HTTP 500", 60_000, 2) == 1
    assert await store.lease_webhooks("n1", LEASE, 10) == []  # not before next_attempt
    failed = await store.get_webhook(hook.id)
    assert failed is not None and (failed.attempts, failed.last_error, failed.failing) == (1, "HTTP 500", False)
    assert failed.next_attempt >= failed.last_attempt + 60_000
    await store.enable_webhook(hook.id)  # also clears the wait
    await store.lease_webhooks("n1", LEASE, 10)
    assert await store.webhook_failed(hook.id, "n1", "timeout", 0, 1) == 1
    stopped = await store.get_webhook(hook.id)
    assert stopped is not None and stopped.failing
    assert await store.lease_webhooks("n1", LEASE, 10) == []
    assert await store.enable_webhook(hook.id)
    assert [w.id for w in await store.lease_webhooks("n1", LEASE, 10)] == [hook.id]
    assert not await store.enable_webhook(hook.id + 1000)


async def test_a_webhook_goes_with_its_room_and_can_be_deleted(make: MakeStore) -> None:
    store = await make()
    await room_with(store, "wh-d", "alice")
    await room_with(store, "wh-d2", "alice")
    gone = await store.add_webhook("wh-d", "http://example.test/", "x", ["message"], None)
    kept = await store.add_webhook("wh-d2", "http://example.test/", "x", ["message"], None)
    assert await store.delete_room("wh-d") is not None
    assert await store.get_webhook(gone.id) is None
    assert await store.delete_webhook(kept.id)
    assert not await store.delete_webhook(kept.id)
    assert await store.webhooks() == []
