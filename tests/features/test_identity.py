"""A user is an immutable id, never a name (issue 18, item 2), through a real server on SQLite and on PostgreSQL.

- A deleted user's name is free, and whoever takes it (any spelling) is someone new who inherits nothing: no
  direct conversation, no private room, no message to edit or delete, no mention, read position or upload. What the
  deleted user wrote still shows their name and id.
- A renamed user keeps everything, because nothing was ever keyed by the name: direct conversations, rooms, read
  state, mentions, reactions, uploads, tokens, and their own messages to edit. Their open sockets stay open and
  every socket hears of the new name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from harness import NOISE, ChatdProcess, Client, register, run_cli

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
QUIET = (*NOISE, "dm", "read")  # frames these tests do not wait for


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, make_server: Callable[..., ChatdProcess]) -> Iterator[ChatdProcess]:
    """A token-mode server whose first registrant is admin, on each store in turn."""
    settings: dict[str, dict[str, Any]] = {"auth": {"mode": "token", "first_user_admin": True}}
    if request.param == "postgres":
        settings["store"] = {"backend": "postgres", "dsn": request.getfixturevalue("pg_dsn")}
    yield make_server(settings).start()


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


class Api:
    """REST calls as one user."""

    def __init__(self, server: ChatdProcess, token: str) -> None:
        self.server = server
        self.token = token

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, self.server.http + path, headers=auth(self.token), timeout=10, **kw)

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        r = self.call(method, path, **kw)
        assert r.status_code in (200, 201), r.text
        return r.json()

    def code(self, method: str, path: str, **kw: Any) -> str:
        return self.call(method, path, **kw).json().get("code", "")


async def setup_bob(server: ChatdProcess) -> dict[str, Any]:
    """alice and bob with a direct conversation, a private room, a public room, mentions, a reaction, a read position
    and an upload; returns what a later check needs."""
    root = Api(server, register(server, "root"))
    alice = Api(server, register(server, "alice"))
    bob = Api(server, register(server, "bob"))
    bob_id = bob.ok("GET", "/api/me")["id"]
    dm = bob.ok("POST", "/api/dms", json={"user": "alice"})
    bob.ok("POST", f"/api/rooms/{dm['room']}/messages", json={"body": "just between us"})
    alice.ok("POST", "/api/rooms", json={"name": "board", "private": True})
    alice.ok("POST", "/api/rooms/board/members", json={"user": "bob"})
    said = bob.ok("POST", "/api/rooms/board/messages", json={"body": "board secret, hi @alice"})
    alice.ok("POST", "/api/rooms/board/messages", json={"body": "@bob see the plan"})
    bob.ok("POST", f"/api/rooms/board/messages/{said['seq']}/reactions", json={"emoji": "👍"})
    bob.ok("POST", "/api/rooms/board/read", json={"seq": 2})
    up = httpx.post(
        server.http + "/api/uploads", params={"room": "board", "name": "p.png"}, content=PNG, headers=auth(bob.token)
    ).json()
    alice.ok("POST", "/api/rooms", json={"name": "lobby"})
    bob.ok("POST", "/api/rooms/lobby/members", json={"user": "bob"})
    public = bob.ok("POST", "/api/rooms/lobby/messages", json={"body": "public words from bob"})
    return {
        "root": root,
        "alice": alice,
        "bob": bob,
        "bob_id": bob_id,
        "dm": dm["room"],
        "said": said,
        "up": up,
        "public": public,
    }


async def test_a_new_account_with_a_deleted_users_name_inherits_nothing(server: ChatdProcess) -> None:
    s = await setup_bob(server)
    root, alice, bob, bob_id = s["root"], s["alice"], s["bob"], s["bob_id"]
    socket = await Client.connect(server.ws, token=bob.token)
    deleted = root.ok("DELETE", "/api/admin/users/bob")
    assert (deleted["uid"], deleted["deleted"]) == (bob_id, True)
    assert (await socket.closed())[0] == 4401
    assert bob.call("GET", "/api/me").status_code == 401
    for spelling in ("bob", "BOB"):
        new = Api(server, register(server, spelling))
        me = new.ok("GET", "/api/me")
        assert me["name"] == spelling and me["id"] != bob_id
        # No direct conversation to inherit: a new one, empty.
        dm = new.ok("POST", "/api/dms", json={"user": "alice"})
        assert dm["created"] is True and dm["room"] != s["dm"]
        assert new.ok("GET", f"/api/rooms/{dm['room']}/messages")["messages"] == []
        assert new.code("GET", f"/api/rooms/{s['dm']}/messages") == "not_found"
        # No private room: not listed, not readable, not searchable, not joinable.
        listed = {r["name"] for r in new.ok("GET", "/api/rooms")["rooms"] if r["member"]}
        assert listed == {dm["room"]}
        assert new.code("GET", "/api/rooms/board/messages") == "not_found"
        assert new.code("GET", "/api/search", params={"q": "secret", "room": "board"}) == "not_found"
        assert new.ok("GET", "/api/search", params={"q": "secret"})["results"] == []
        client = await Client.connect(server.ws, token=new.token)
        assert client.hello["uid"] == me["id"] and client.hello["user"] == spelling
        await client.send({"type": "join", "room": "board"})
        assert (await client.expect("error"))["code"] == "not_found"
        await client.close()
        # Not the author of old bob's messages: no edit, no delete, even as a member of the room.
        new.ok("POST", "/api/rooms/lobby/members", json={"user": spelling})
        seq = s["public"]["seq"]
        assert new.code("PATCH", f"/api/rooms/lobby/messages/{seq}", json={"body": "mine now"}) == "forbidden"
        assert new.code("DELETE", f"/api/rooms/lobby/messages/{seq}") == "forbidden"
        # A reaction of theirs is theirs, beside old bob's, not old bob's.
        new.ok("POST", f"/api/rooms/lobby/messages/{seq}/reactions", json={"emoji": "👍"})
        new.ok("POST", f"/api/rooms/lobby/messages/{seq}/reactions", json={"emoji": "👍", "remove": True})
        # Nothing personal of old bob's: mentions, read state, uploads.
        assert new.ok("GET", "/api/mentions")["mentions"] == []
        assert {r["room"] for r in new.ok("GET", "/api/read")["rooms"]} == {dm["room"], "lobby"}
        assert new.call("GET", f"/api/uploads/{s['up']['id']}").status_code == 404
        root.ok("DELETE", f"/api/admin/users/{spelling}")
    # What old bob wrote still shows who wrote it.
    board = alice.ok("GET", "/api/rooms/board/messages")["messages"]
    assert [(m["from"], m["uid"]) for m in board if m["seq"] == s["said"]["seq"]] == [("bob", bob_id)]
    assert board[0]["reactions"] == {"👍": ["bob"]} and board[0]["reaction_uids"] == {"👍": [bob_id]}
    assert [m["uid"] for m in alice.ok("GET", "/api/rooms/lobby/messages")["messages"]] == [bob_id]


async def test_a_renamed_user_keeps_everything_and_every_socket_hears_of_it(server: ChatdProcess) -> None:
    s = await setup_bob(server)
    root, alice, bob, bob_id = s["root"], s["alice"], s["bob"], s["bob_id"]
    bob_socket = await Client.connect(server.ws, token=bob.token)
    alice_socket = await Client.connect(server.ws, token=alice.token)
    await alice_socket.join("board")
    r = run_cli("users", "rename", "bob", "robert", "--config", str(server.config_path), "--server", server.http)
    assert r.returncode == 0, r.stderr
    assert "told the nodes" in r.stderr and f"user id {bob_id}" in r.stdout
    renamed = {"type": "user", "uid": bob_id, "name": "robert", "was": "bob"}
    assert await bob_socket.expect("user") == renamed  # the socket stays open, and hears of it
    assert await alice_socket.expect("user") == renamed
    # Same id, same token, same everything.
    me = bob.ok("GET", "/api/me")
    assert (me["id"], me["name"]) == (bob_id, "robert")
    dm = bob.ok("POST", "/api/dms", json={"user": "alice"})
    assert (dm["room"], dm["created"]) == (s["dm"], False)
    assert [m["from"] for m in bob.ok("GET", f"/api/rooms/{s['dm']}/messages")["messages"]] == ["robert"]
    alices = {r["name"]: r for r in alice.ok("GET", "/api/rooms")["rooms"]}
    assert (alices[s["dm"]]["with"], alices[s["dm"]]["with_uid"]) == ("robert", bob_id)
    board = bob.ok("GET", "/api/rooms/board/messages")["messages"]
    assert board[0]["from"] == "robert" and board[0]["reactions"] == {"👍": ["robert"]}
    assert [m["seq"] for m in bob.ok("GET", "/api/mentions")["mentions"]] == [2]
    assert [m["from"] for m in alice.ok("GET", "/api/mentions")["mentions"]] == ["robert"]
    assert [(p["room"], p["seq"]) for p in bob.ok("GET", "/api/read")["rooms"] if p["room"] == "board"] == [
        ("board", 2)
    ]
    assert bob.call("GET", f"/api/uploads/{s['up']['id']}").status_code == 200
    seq = s["said"]["seq"]
    bob.ok("PATCH", f"/api/rooms/board/messages/{seq}", json={"body": "edited after the rename"})
    edit = await alice_socket.expect("edit", skip=QUIET)
    assert (edit["from"], edit["uid"], edit["body"]) == ("robert", bob_id, "edited after the rename")
    # The session on the open socket speaks with the new name.
    await bob_socket.send({"type": "join", "room": "board"})
    await bob_socket.expect("joined", skip=QUIET)
    await bob_socket.send({"type": "send", "room": "board", "body": "still here", "client_id": "r1"})
    live = await alice_socket.expect("message", skip=QUIET)
    assert (live["from"], live["uid"]) == ("robert", bob_id)
    # A new bob is someone else.
    new = Api(server, register(server, "bob"))
    assert new.ok("GET", "/api/me")["id"] != bob_id
    assert new.code("GET", "/api/rooms/board/messages") == "not_found"
    assert new.ok("POST", "/api/dms", json={"user": "alice"})["created"] is True
    # The admin API renames too; a taken name and a bad name are refused.
    again = root.ok("PATCH", "/api/admin/users/robert", json={"name": "Rob"})
    assert again == {"uid": bob_id, "name": "Rob", "was": "robert"}
    assert (await bob_socket.expect("user", skip=(*QUIET, "message", "ack", "joined")))["name"] == "Rob"
    assert root.code("PATCH", "/api/admin/users/Rob", json={"name": "ALICE"}) == "conflict"
    assert root.code("PATCH", "/api/admin/users/Rob", json={"name": "no spaces"}) == "invalid"  # REST validation
    assert alice.code("PATCH", "/api/admin/users/Rob", json={"name": "mine"}) == "forbidden"
    assert root.code("PATCH", "/api/admin/users/nobody", json={"name": "x"}) == "not_found"
    taken = run_cli("users", "rename", "Rob", "alice", "--config", str(server.config_path))
    assert taken.returncode != 0 and "already exists" in taken.stderr
    for c in (bob_socket, alice_socket):
        await c.close()
