"""Caches of authorization facts do not outlive their source, on any node (issue 18, item 4), and identity is an id
across nodes too: over Redis and over RabbitMQ (each test runs once per broker), with PostgreSQL.

Each event happens on node A while the user's sockets and cached answers are on node B: a user deleted, disabled or
renamed; a member removed; a room deleted or archived. Node B must close what must close, answer from the store
what it can no longer know, and show the new name.
"""

from __future__ import annotations

from typing import Any

import httpx

from chatd.deploy.local import NodeProcess
from clients import MakeCluster
from harness import NOISE, Client, run_cli

TOKENS = {"auth": {"mode": "token", "first_user_admin": True, "attempts_per_minute": 0, "registrations_per_hour": 0}}
QUIET = (*NOISE, "dm", "read", "joined", "message", "ack")


class User:
    """One registered user, calling a node of their choice."""

    def __init__(self, node: NodeProcess, name: str) -> None:
        r = httpx.post(f"{node.http}/api/auth/register", json={"username": name, "password": "long enough pw"})
        assert r.status_code == 201, r.text
        self.token = r.json()["token"]
        self.id = r.json()["user"]["id"]
        self.name = name

    def call(self, node: NodeProcess, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(
            method, node.http + path, headers={"Authorization": f"Bearer {self.token}"}, timeout=10, **kw
        )

    def ok(self, node: NodeProcess, method: str, path: str, **kw: Any) -> Any:
        r = self.call(node, method, path, **kw)
        assert r.status_code in (200, 201), r.text
        return r.json()

    def code(self, node: NodeProcess, method: str, path: str, **kw: Any) -> str:
        return self.call(node, method, path, **kw).json().get("code", "")

    async def socket(self, node: NodeProcess) -> Client:
        return await Client.connect(node.ws, token=self.token)


def cached(node: NodeProcess) -> float:
    """How many memberships ``node`` holds as known (the ``chatd_membership_cache`` gauge)."""
    for line in httpx.get(node.http + "/metrics", timeout=10).text.splitlines():
        if line.startswith("chatd_membership_cache "):
            return float(line.split()[1])
    raise AssertionError("no chatd_membership_cache gauge")


def cli(node: NodeProcess, *args: str) -> str:
    """``chatd ARGS`` against the deployment's store, telling the running nodes through ``node``."""
    r = run_cli(*args, "--config", str(node.config_path), "--server", node.http, env=node.env)
    assert r.returncode == 0, r.stderr
    assert "told the nodes" in r.stderr, r.stderr
    return r.stdout


async def joined(client: Client, room: str) -> None:
    await client.send({"type": "join", "room": room})
    await client.expect("joined", skip=(*NOISE, "dm", "read", "message"))


async def test_a_user_renamed_deleted_or_disabled_on_one_node_is_so_on_the_other(cluster: MakeCluster) -> None:
    c = cluster(2, settings=TOKENS)
    a, b = c.nodes
    root = User(a, "root")
    alice, bob, carl = User(a, "alice"), User(b, "bob"), User(b, "carl")
    alice.ok(a, "POST", "/api/rooms", json={"name": "board", "private": True})
    for guest in ("bob", "carl"):
        alice.ok(a, "POST", "/api/rooms/board/members", json={"user": guest})
    alice_ws = await alice.socket(a)
    await joined(alice_ws, "board")
    bob_ws, carl_ws = await bob.socket(b), await carl.socket(b)
    for user, ws in ((bob, bob_ws), (carl, carl_ws)):
        await joined(ws, "board")
        assert user.ok(b, "GET", "/api/rooms/board/messages")["messages"] == []  # node B now knows them as members

    # Renamed on A: bob's socket on B stays open and hears of it, so does alice's page on A, and what bob does on B
    # shows the new name on A.
    renamed = {"type": "user", "uid": bob.id, "name": "robert", "was": "bob"}
    assert root.ok(a, "PATCH", "/api/admin/users/bob", json={"name": "robert"}) == {
        "uid": bob.id,
        "name": "robert",
        "was": "bob",
    }
    assert await bob_ws.expect("user", skip=QUIET) == renamed
    assert await alice_ws.expect("user", skip=QUIET) == renamed
    await bob_ws.send({"type": "typing", "room": "board"})
    typing = await alice_ws.expect("typing", skip=("presence", "ping", "room", "dm", "read"))
    assert (typing["user"], typing["uid"]) == ("robert", bob.id)
    await bob_ws.send({"type": "send", "room": "board", "body": "new name, same me", "client_id": "n1"})
    said = await alice_ws.expect("message", skip=(*NOISE, "dm", "read", "typing"))
    assert (said["from"], said["uid"]) == ("robert", bob.id)
    present = alice.ok(a, "GET", "/api/rooms/board/presence")
    assert dict(zip(present["uids"], present["users"], strict=True))[bob.id] == "robert"

    # Deleted on A: bob's socket on B closes, B forgets what it knew of him, and a new bob on B is someone else.
    before = cached(b)
    deleted = root.ok(a, "DELETE", "/api/admin/users/robert")
    assert deleted["uid"] == bob.id
    assert (await bob_ws.closed())[0] == 4401
    assert cached(b) < before
    new_bob = User(b, "bob")
    assert new_bob.id != bob.id
    assert new_bob.code(b, "GET", "/api/rooms/board/messages") == "not_found"
    new_ws = await new_bob.socket(b)
    await new_ws.send({"type": "join", "room": "board"})
    assert (await new_ws.expect("error", skip=(*NOISE, "dm")))["code"] == "not_found"
    assert new_bob.ok(b, "POST", "/api/dms", json={"user": "alice"})["created"] is True
    await new_ws.close()

    # Disabled by the CLI through A: carl's socket on B closes and B forgets what it knew of him.
    before = cached(b)
    cli(a, "users", "disable", "carl")
    assert (await carl_ws.closed())[0] == 4401
    assert cached(b) < before
    assert carl.call(b, "GET", "/api/me").status_code == 401
    await alice_ws.close()


async def test_a_member_removed_a_room_deleted_or_archived_on_one_node_is_so_on_the_other(cluster: MakeCluster) -> None:
    c = cluster(2, settings=TOKENS)
    a, b = c.nodes
    root, alice, bob = User(a, "root"), User(a, "alice"), User(b, "bob")

    # Removed on A: bob's socket on B stops following the room, and B no longer answers from what it cached.
    alice.ok(a, "POST", "/api/rooms", json={"name": "r1", "private": True})
    alice.ok(a, "POST", "/api/rooms/r1/members", json={"user": "bob"})
    bob_ws = await bob.socket(b)
    await joined(bob_ws, "r1")
    assert bob.ok(b, "GET", "/api/rooms/r1/messages")["messages"] == []
    assert alice.ok(a, "DELETE", "/api/rooms/r1/members/bob")["removed"] is True
    left = await bob_ws.expect("left", skip=(*NOISE, "dm", "read"))
    assert left == {"type": "left", "room": "r1", "reason": "removed"}
    assert bob.code(b, "GET", "/api/rooms/r1/messages") == "not_found"

    # Deleted on A and made again by someone else: B does not let bob in on the old room's membership.
    alice.ok(a, "POST", "/api/rooms", json={"name": "r2", "private": True})
    alice.ok(a, "POST", "/api/rooms/r2/members", json={"user": "bob"})
    assert bob.ok(b, "GET", "/api/rooms/r2/messages")["messages"] == []
    root.ok(a, "DELETE", "/api/admin/rooms/r2")
    alice.ok(a, "POST", "/api/rooms", json={"name": "r2", "private": True})
    assert bob.code(b, "GET", "/api/rooms/r2/messages") == "not_found"
    assert bob.code(b, "POST", "/api/rooms/r2/messages", json={"body": "let me in"}) == "not_found"

    # Archived by the CLI through A: every node forgets the room's memberships, and the store refuses sends.
    alice.ok(a, "POST", "/api/rooms", json={"name": "pub"})
    await joined(bob_ws, "pub")
    before = cached(b)
    cli(a, "rooms", "archive", "pub")
    assert cached(b) < before
    await bob_ws.send({"type": "send", "room": "pub", "body": "anyone?", "client_id": "p1"})
    assert (await bob_ws.expect("error", skip=(*NOISE, "dm", "read")))["code"] == "archived"
    await bob_ws.close()


async def test_a_display_name_or_password_changed_on_one_node_reaches_the_sockets_on_the_other(
    cluster: MakeCluster,
) -> None:
    """Issue 21, item 3: what a person changes about their own account is a fact on every node at once."""
    c = cluster(2, settings=TOKENS)
    a, b = c.nodes
    dana, eli = User(a, "dana"), User(b, "eli")
    eli_ws = await eli.socket(b)
    assert dana.ok(a, "PATCH", "/api/me", json={"display_name": "Dana S."})["display_name"] == "Dana S."
    frame = await eli_ws.expect("user", skip=QUIET)
    assert frame == {"type": "user", "uid": dana.id, "name": "dana", "was": "dana", "display_name": "Dana S."}
    found = eli.ok(b, "GET", "/api/users", params={"q": "dana s"})["users"]
    assert [(u["uid"], u["display_name"]) for u in found] == [(dana.id, "Dana S.")]

    # dana's other session, on B, is signed out by a password change made on A; the one on A stays
    other = httpx.post(f"{b.http}/api/auth/login", json={"username": "dana", "password": "long enough pw"}).json()
    other_ws = await Client.connect(b.ws, token=other["token"])
    here_ws = await dana.socket(a)
    changed = dana.ok(
        a, "POST", "/api/me/password", json={"old_password": "long enough pw", "new_password": "n3w pw!!"}
    )
    assert changed["revoked"] == 1
    assert (await other_ws.closed())[0] == 4401
    assert dana.ok(b, "GET", "/api/me")["name"] == "dana"  # the asking token works on every node
    await here_ws.send({"type": "ping"})
    assert (await here_ws.expect("pong", skip=QUIET))["type"] == "pong"
    for ws in (eli_ws, here_ws):
        await ws.close()
