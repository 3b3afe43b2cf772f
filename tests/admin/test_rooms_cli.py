"""``chatd rooms …`` through a real process against a running server: what each command changes is checked
through the server's WebSocket and REST answers."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import pytest

from harness import ChatdProcess, Client, register, run_cli


def cli(server: ChatdProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--config", str(server.config_path))


def ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture
def server(make_server: Callable[..., ChatdProcess]) -> ChatdProcess:
    """A token-mode server of this test's own."""
    return make_server({"auth": {"mode": "token"}}).start()


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def listed(server: ChatdProcess) -> dict[str, dict]:
    rows = ok(cli(server, "rooms", "list", "--json")).stdout.splitlines()
    return {r["name"]: r for r in map(json.loads, rows)}


async def archived(server: ChatdProcess, owner: str, room: str, first: str) -> tuple[str, Client]:
    """``owner``'s room with one message (seq 1), then archived: the owner's token and joined connection."""
    token = register(server, owner, f"{owner} password")
    ok(cli(server, "rooms", "create", room, "--owner", owner))
    c = await Client.connect(server.ws, token=token)
    await c.join(room)
    assert (await c.say(room, first, f"{room}-1"))["seq"] == 1
    ok(cli(server, "rooms", "archive", room))
    return token, c


async def test_an_archived_room_refuses_sends_with_archived_and_keeps_its_history(server: ChatdProcess) -> None:
    token, c = await archived(server, "owner", "minutes", "first")
    assert listed(server)["minutes"]["archived"] is True
    await c.send({"type": "send", "room": "minutes", "body": "late", "client_id": "m2"})
    error = await c.expect("error", skip=("presence", "ping", "typing", "message"))
    assert error["code"] == "archived" and error["ref"] == "m2"
    r = server.post("/api/rooms/minutes/messages", json={"body": "late", "client_id": "m3"}, headers=auth(token))
    assert r.status_code == 403 and r.json()["code"] == "archived"
    hist = server.get("/api/rooms/minutes/messages", headers=auth(token)).json()
    assert [m["body"] for m in hist["messages"]] == ["first"]
    ok(cli(server, "rooms", "unarchive", "minutes"))
    assert (await c.say("minutes", "again", "m4"))["seq"] == 2  # nothing refused took a seq
    await c.close()


async def test_an_archived_room_refuses_edits_reactions_topics_and_deletes_too(server: ChatdProcess) -> None:
    """docs/protocol.md says an archived room takes no change at all, not only no new message."""
    token, c = await archived(server, "scribe", "records", "minute one")
    changes = [
        {"type": "edit", "room": "records", "seq": 1, "body": "rewritten", "client_id": "e1"},
        {"type": "react", "room": "records", "seq": 1, "emoji": "👍", "client_id": "e2"},
        {"type": "topic", "room": "records", "topic": "new topic", "client_id": "e3"},
        {"type": "delete", "room": "records", "seq": 1, "client_id": "e4"},
    ]
    for change in changes:
        await c.send(change)
        error = await c.expect("error", skip=("presence", "ping", "typing", "message"))
        assert (error["code"], error["ref"]) == ("archived", change["client_id"])
    hist = server.get("/api/rooms/records/messages", headers=auth(token)).json()
    assert [(m["body"], m.get("reactions", {}), m.get("deleted", False)) for m in hist["messages"]] == [
        ("minute one", {}, False)
    ]
    await c.close()


async def test_an_admin_deletes_someone_elses_message_but_may_not_edit_it(server: ChatdProcess) -> None:
    writer = await Client.connect(server.ws, token=register(server, "writer", "writer password"))
    boss_token = register(server, "boss", "boss password")
    ok(cli(server, "users", "promote", "boss"))
    boss = await Client.connect(server.ws, token=boss_token)
    for c in (writer, boss):
        await c.join("town")
    await writer.say("town", "spam spam", "w1")
    await boss.send({"type": "edit", "room": "town", "seq": 1, "body": "moderated", "client_id": "b1"})
    assert (await boss.expect("error", skip=("presence", "message")))["code"] == "forbidden"
    await boss.send({"type": "delete", "room": "town", "seq": 1, "client_id": "b2"})
    assert (await boss.expect("ack", skip=("presence", "message", "delete")))["client_id"] == "b2"
    for c in (writer, boss):
        await c.close()


async def test_delete_needs_yes_then_removes_the_room_and_tells_its_followers(server: ChatdProcess) -> None:
    token = register(server, "dan", "dan password")
    ok(cli(server, "rooms", "create", "doomed", "--owner", "dan", "--private"))
    c = await Client.connect(server.ws, token=token)
    await c.join("doomed")
    await c.say("doomed", "bye", "d1")
    taken = cli(server, "rooms", "create", "dm:dan:eve", "--owner", "dan")  # those names belong to POST /api/dms
    assert taken.returncode != 0 and "direct messages" in taken.stderr
    refused = cli(server, "rooms", "delete", "doomed")
    assert refused.returncode != 0 and "--yes" in refused.stderr and "doomed" in listed(server)
    r = ok(cli(server, "rooms", "delete", "doomed", "--yes"))
    assert "deleted 'doomed' (last seq 1)" in r.stdout
    left = await c.expect("left", skip=("presence", "ping", "typing", "message", "ack"))
    assert left["room"] == "doomed"
    # The room list hears of it as when an admin deletes over REST: one path for both.
    gone = await c.expect("room", skip=("presence", "ping", "typing"))
    assert (gone["room"], gone["change"], gone["by"]) == ("doomed", "deleted", "an admin")
    assert "doomed" not in listed(server)
    assert server.get("/api/rooms/doomed", headers=auth(token)).status_code == 404
    await c.close()


def test_members_are_added_and_removed_by_name(server: ChatdProcess) -> None:
    for name in ("olga", "pim", "quin"):
        register(server, name, f"{name} password")
    ok(cli(server, "rooms", "create", "team", "--owner", "olga", "--private"))
    assert ok(cli(server, "rooms", "members", "team", "--add", "pim", "--add", "quin")).stdout.split() == [
        "olga",
        "pim",
        "quin",
    ]
    assert ok(cli(server, "rooms", "members", "team", "--remove", "pim")).stdout.split() == ["olga", "quin"]
    assert listed(server)["team"]["members"] == 2 and listed(server)["team"]["private"] is True
    missing = cli(server, "rooms", "members", "nope")
    assert missing.returncode != 0 and "no room 'nope'" in missing.stderr
    bad = cli(server, "rooms", "create", "bad name", "--owner", "olga")
    assert bad.returncode != 0 and "room names" in bad.stderr


@pytest.mark.parametrize("command", ["list", "create", "archive", "unarchive", "delete", "members", "new-epochs"])
def test_every_rooms_command_has_an_example(command: str) -> None:
    r = run_cli("rooms", command, "--help")
    assert r.returncode == 0 and "Example:" in r.stdout
