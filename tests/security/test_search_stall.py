"""Round 2, finding 1: one user's searches cannot hold up anyone else's requests. Searches run on connections of
their own (token checks and history never queue behind them), and each is bounded: a rate per user, a shortest
prefix, a deepest page and a time limit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from security.conftest import bearer, hardened, new_user

from chatd.accounts.users import new_token, token_hash
from chatd.store.base import NewMessage
from chatd.store.sqlite import SQLiteStore
from harness import ChatdProcess

MESSAGES = 20_000
SEARCHERS = 12


async def seed(path: Path, users: int) -> list[str]:
    """A store whose every message matches "alpha" (so each search ranks all of them), and a token per user."""
    store = SQLiteStore(path)
    await store.open()
    try:
        tokens, ids = [], []
        for i in range(users):
            user = await store.create_user(f"st{i}", None)
            tokens.append(new_token())
            await store.add_token(token_hash(tokens[-1]), user.id)
            ids.append(user.id)
        await store.create_room("haystack", private=False, created_by=ids[0])
        for start in range(0, MESSAGES, 1_000):
            await store.append(
                [
                    NewMessage("haystack", ids[0], f"c{k}", f"alpha {k} beta gamma delta number {k % 97}")
                    for k in range(start, start + 1_000)
                ]
            )
    finally:
        await store.close()
    return tokens


@pytest.fixture(scope="module")
def stalled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ChatdProcess, list[str]]]:
    """A server over MESSAGES messages with one search connection, so searches queue behind each other."""
    work = Path(tmp_path_factory.mktemp("search-stall"))
    tokens = asyncio.run(seed(work / "chatd.db", SEARCHERS + 1))
    proc = ChatdProcess(work, hardened({"search": {"concurrency": 1, "timeout": 0, "rate": 0}})).start()
    # The first search brings the index up to date with the seeded messages.
    assert proc.get("/api/search", params={"q": "beta"}, headers=bearer(tokens[0])).status_code == 200
    yield proc, tokens
    proc.stop()


async def test_another_users_requests_answer_while_many_deep_searches_are_in_flight(
    stalled: tuple[ChatdProcess, list[str]],
) -> None:
    server, tokens = stalled
    me, searchers = tokens[0], tokens[1:]
    async with httpx.AsyncClient(base_url=server.http, timeout=120) as c:
        searches = [
            asyncio.create_task(c.get("/api/search", params={"q": "alpha", "offset": 900}, headers=bearer(t)))
            for t in searchers
        ]
        await asyncio.sleep(0.2)  # every search has reached the server; one runs, the others wait for it
        assert not all(s.done() for s in searches)
        me_answer = await c.get("/api/me", headers=bearer(me))
        history = await c.get("/api/rooms/haystack/messages", params={"limit": 100}, headers=bearer(me))
        # The token checks and the history read were answered while searches still waited for the search
        # connection: they did not queue behind them (with one reader for everything, they came after all of them).
        in_flight = sum(not s.done() for s in searches)
        answers = await asyncio.gather(*searches)
    assert me_answer.status_code == 200 and history.status_code == 200
    assert in_flight > 0, "every search had answered before /api/me did"
    assert [a.status_code for a in answers] == [200] * len(answers)
    assert all(len(a.json()["results"]) == 20 for a in answers)


def test_a_search_that_runs_past_the_time_limit_is_stopped_with_a_documented_error(tmp_path: Path) -> None:
    tokens = asyncio.run(seed(tmp_path / "chatd.db", 2))
    server = ChatdProcess(tmp_path, hardened({"search": {"timeout": 0.001}})).start()
    try:
        r = server.get("/api/search", params={"q": "alpha", "offset": 900}, headers=bearer(tokens[0]))
        assert (r.status_code, r.json()["code"]) == (422, "search_timeout"), r.text
        assert "search.timeout" in r.json()["message"]
        # The other user's requests are unaffected, and a cheap search still answers.
        assert server.get("/api/me", headers=bearer(tokens[1])).status_code == 200
        cheap = server.get("/api/search", params={"q": "nothing matches this"}, headers=bearer(tokens[1]))
        assert cheap.status_code == 200 and cheap.json()["results"] == []
    finally:
        server.stop()


def test_short_prefixes_deep_pages_and_too_many_searches_are_refused(hostile: ChatdProcess) -> None:
    token = new_user(hostile, "searcher")
    short = hostile.get("/api/search", params={"q": "hello a"}, headers=bearer(token))
    assert (short.status_code, short.json()["code"], short.json()["field"]) == (400, "invalid", "q"), short.text
    assert "search.prefix_min" in short.json()["message"]
    deep = hostile.get("/api/search", params={"q": "hello", "offset": 1001}, headers=bearer(token))
    assert (deep.status_code, deep.json()["code"], deep.json()["field"]) == (400, "invalid", "offset"), deep.text
    assert hostile.get("/api/search", params={"q": "hello", "offset": 1000}, headers=bearer(token)).status_code == 200
    # search.burst (10) searches at once, then the per-user rate: 429 with Retry-After.
    codes = [hostile.get("/api/search", params={"q": "hello"}, headers=bearer(token)) for _ in range(12)]
    refused = [r for r in codes if r.status_code == 429]
    assert refused and refused[0].json()["code"] == "rate_limited" and "Retry-After" in refused[0].headers
    assert "search.rate" in refused[0].json()["message"]
