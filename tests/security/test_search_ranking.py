"""Round 2, finding 2: search ranking leaks nothing of private rooms. SQLite's bm25 weighed each match by the
average message length and word counts of the whole index, private rooms included, so a user's two public results
swapped order after someone wrote in a private room. Ranks now come from each message alone."""

from __future__ import annotations

import httpx
from security.conftest import bearer, new_user

from harness import ChatdProcess


def say(server: ChatdProcess, token: str, room: str, body: str) -> None:
    r = httpx.post(f"{server.http}/api/rooms/{room}/messages", json={"body": body}, headers=bearer(token), timeout=10)
    assert r.status_code == 201, r.text


def order(server: ChatdProcess, token: str) -> list[tuple[str, int]]:
    r = server.get("/api/search", params={"q": "zeppelin"}, headers=bearer(token))
    assert r.status_code == 200, r.text
    return [(h["room"], h["seq"]) for h in r.json()["results"]]


def test_private_messages_do_not_reorder_public_results(hostile: ChatdProcess) -> None:
    writer, insider, reader = new_user(hostile, "rank-w"), new_user(hostile, "rank-i"), new_user(hostile, "rank-r")
    assert hostile.post("/api/rooms", json={"name": "rank-pub"}, headers=bearer(writer)).status_code == 201
    say(hostile, writer, "rank-pub", "zeppelin")
    say(hostile, writer, "rank-pub", "zeppelin zeppelin one two three four five six seven eight")
    before = order(hostile, reader)
    assert sorted(before) == [("rank-pub", 1), ("rank-pub", 2)]
    assert hostile.post("/api/rooms", json={"name": "rank-hidden", "private": True}, headers=bearer(insider)).is_success
    filler = " ".join(f"word{i}" for i in range(200))
    for _ in range(5):
        say(hostile, insider, "rank-hidden", f"zeppelin {filler}")
    assert order(hostile, reader) == before
