"""Credentials end on time: tokens under ``auth.token_ttl``, WebSocket tickets and media keys under their ttl.

In process, with an injected clock stepped past each expiry, so no test waits for real time to pass; the
end-to-end tests (tests/security/test_tickets.py, test_token_expiry.py) show the server wires the same rules up.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatd.accounts.users import Accounts, token_hash
from chatd.gateway.tickets import MEDIA, WS, Tickets
from chatd.store.sqlite import SQLiteStore

pytestmark = pytest.mark.fast  # in-process: ./scripts/test --fast runs it


class Clock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "chatd.db")
    await store.open()
    yield store
    await store.close()


async def test_a_token_is_refused_once_older_than_token_ttl(store: SQLiteStore) -> None:
    clock = Clock()
    accounts = Accounts(store, token_ttl=60.0, clock=clock)
    user = await store.create_user("mayfly", None)
    token = await accounts.issue(user.id)
    clock.now = time.time()  # the store stamps the token with the real clock
    assert (await accounts.authenticate(token)) is not None
    left = await accounts.expires_in(token_hash(token))
    assert left is not None and 59.0 < left <= 60.0
    clock.now += 59.0
    assert (await accounts.authenticate(token)) is not None  # not yet
    clock.now += 2.0
    assert await accounts.authenticate(token) is None
    left = await accounts.expires_in(token_hash(token))
    assert left is not None and left <= 0


async def test_without_token_ttl_a_token_never_expires(store: SQLiteStore) -> None:
    clock = Clock()
    accounts = Accounts(store, clock=clock)
    token = await accounts.issue((await store.create_user("forever", None)).id)
    clock.now += 10 * 365 * 86400
    assert (await accounts.authenticate(token)) is not None
    assert await accounts.expires_in(token_hash(token)) is None


async def test_a_ticket_opens_one_session_within_its_ttl_and_none_after(store: SQLiteStore) -> None:
    clock = Clock()
    tickets = Tickets("a secret", store, clock=clock)
    late = await tickets.issue(WS, 7, "hash", ttl=30.0)
    prompt = await tickets.issue(WS, 7, "hash", ttl=30.0)
    clock.now += 29.0
    claims = await tickets.check(WS, prompt)
    assert claims is not None and claims.uid == 7 and claims.token_hash == "hash"
    assert await tickets.check(WS, prompt) is None  # spent
    clock.now += 2.0
    assert await tickets.check(WS, late) is None  # expired, never used


async def test_a_media_key_reads_until_its_ttl_and_is_no_ticket(store: SQLiteStore) -> None:
    clock = Clock()
    tickets = Tickets("a secret", store, clock=clock)
    key = await tickets.issue(MEDIA, 7, "hash", ttl=300.0)
    assert await tickets.check(WS, key) is None  # a media key opens no WebSocket
    clock.now += 299.0
    assert await tickets.check(MEDIA, key) is not None
    assert await tickets.check(MEDIA, key) is not None  # not single-use: it reads every attachment on a page
    clock.now += 2.0
    assert await tickets.check(MEDIA, key) is None
