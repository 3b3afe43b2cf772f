"""The page survives network drops and server restarts: it reconnects, resumes with join + since, and shows every
message exactly once, in seq order. Its own unsent messages wait as pending and go out once, never twice."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from chatpage import ChatPage, eventually

from harness import ChatdProcess, Client, run_cli

pytestmark = pytest.mark.browser


def rest_send(server: ChatdProcess, room: str, user: str, body: str) -> dict[str, Any]:
    r = server.post(f"/api/rooms/{room}/messages?user={user}", json={"body": body})
    assert r.status_code == 201, r.text
    return r.json()


def stored_bodies(server: ChatdProcess, room: str, user: str) -> list[str]:
    r = server.get(f"/api/rooms/{room}/messages?user={user}&limit=500")
    return [m["body"] for m in r.json()["messages"]]


def test_offline_page_catches_up_on_missed_messages_exactly_once_in_order(
    server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    room = "offline-room"
    alice = people("alice").goto(server, room).sign_in()
    bob = people("bob").goto(server, room).sign_in()
    alice.wait_live(room)
    bob.wait_live(room)
    bob.send("before 1")
    rest_send(server, room, "bob", "before 2")
    alice.wait_bodies(["before 1", "before 2"])

    alice.context.set_offline(True)
    alice.page.wait_for_selector('body[data-conn="offline"]')
    assert alice.page.inner_text("#conn-status").startswith("Offline")

    # Alice writes while offline: it waits, visibly pending.
    alice.send("written offline")
    pending = alice.page.locator('#pending > li[data-state="queued"]')
    pending.wait_for()
    assert "Waiting for connection" in pending.inner_text()

    # Meanwhile the others talk: alice cannot see any of it.
    missed = []
    for i in range(1, 4):
        bob.send(f"missed {i} from bob")
        missed.append(f"missed {i} from bob")
        rest_send(server, room, "bob", f"missed {i} by rest")
        missed.append(f"missed {i} by rest")
    bob.wait_bodies(["before 1", "before 2", *missed])
    assert alice.bodies() == ["before 1", "before 2"]
    alice.screenshot("offline-alice.png")

    alice.context.set_offline(False)
    alice.wait_connected()
    everything = ["before 1", "before 2", *missed, "written offline"]
    alice.wait_bodies(everything)
    seqs = alice.seqs()
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert alice.page.locator("#pending > li").count() == 0
    assert alice.message("written offline").get_attribute("data-state") == "delivered"
    bob.wait_bodies(everything)
    assert stored_bodies(server, room, "bob") == everything  # stored once, too
    alice.screenshot("offline-alice-back.png")


def test_server_restart_resumes_without_loss_or_duplicates(
    make_server: Callable[..., ChatdProcess], people: Callable[..., ChatPage]
) -> None:
    server = make_server().start()
    room = "restart-room"
    alice = people("alice").goto(server, room).sign_in()
    bob = people("bob").goto(server, room).sign_in()
    alice.wait_live(room)
    bob.wait_live(room)
    alice.send("a1")
    bob.send("b1")
    alice.wait_bodies(["a1", "b1"])

    server.stop()  # drain: every socket is closed with 1001, and the pages start reconnecting
    alice.page.wait_for_selector('body[data-conn="waiting"], body[data-conn="connecting"]')
    alice.send("a2 while the server is down")
    alice.page.locator('#pending > li[data-state="queued"]').wait_for()

    server.start()  # same port, same database
    rest_send(server, room, "bob", "c1 right after the restart")
    alice.wait_connected()
    bob.wait_connected()
    bob.wait_live(room)
    bob.send("b2")
    expected = ["a1", "b1", "c1 right after the restart", "a2 while the server is down", "b2"]

    # The order of c1 / a2 / b2 is whatever the server stored; what matters is that both pages show exactly the
    # stored sequence.
    def all_stored() -> list[str] | None:
        bodies = stored_bodies(server, room, "bob")
        return bodies if len(bodies) == len(expected) else None

    stored = eventually(alice.page, all_stored, "all five messages to be stored")
    assert sorted(stored) == sorted(expected)
    alice.wait_bodies(stored)
    bob.wait_bodies(stored)
    assert alice.page.locator("#pending > li").count() == 0


class AckSwallower:
    """Stands between the page and the server (Playwright WebSocket routing) and, while ``swallow`` is on,
    drops the acks and message frames meant for ``user``'s own sends: as if the connection died right after
    the server stored the message but before the page heard back."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.swallow = False
        self.swallowed: list[dict[str, Any]] = []
        self.sends: list[dict[str, Any]] = []
        self.acks: list[dict[str, Any]] = []
        self.routes: list[tuple[Any, Any]] = []

    def __call__(self, route: Any) -> None:
        upstream = route.connect_to_server()
        self.routes.append((route, upstream))

        def to_server(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "send":
                self.sends.append(frame)
            upstream.send(message)

        def to_page(message: str | bytes) -> None:
            keep = []
            for line in str(message).split("\n"):
                frame = json.loads(line)
                if frame["type"] == "ack":
                    self.acks.append(frame)
                mine = frame["type"] == "ack" or (frame["type"] == "message" and frame["from"] == self.user)
                if self.swallow and mine:
                    self.swallowed.append(frame)
                else:
                    keep.append(line)
            if keep:
                route.send("\n".join(keep))

        route.on_message(to_server)
        upstream.on_message(to_page)

    def drop_connections(self) -> None:
        for route, upstream in self.routes:
            route.close(code=4000, reason="test drops the connection")
            upstream.close()
        self.routes.clear()


def test_pending_then_delivered_and_a_lost_ack_never_double_posts(
    server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    room = "ack-room"
    swallower = AckSwallower("alice")
    alice = people("alice", setup=lambda page: page.route_web_socket("**/ws?*", swallower))
    alice.goto(server, room).sign_in()
    alice.wait_live(room)

    alice.send("first")
    alice.wait_bodies(["first"])

    swallower.swallow = True
    alice.send("exactly once")
    pending = alice.page.locator('#pending > li[data-state="sent"]')
    pending.wait_for()  # on the wire, not yet acknowledged: shown as sending
    assert "Sending" in pending.inner_text()
    eventually(alice.page, lambda: len(swallower.swallowed) == 2, "the ack and the message frame")
    assert {f["type"] for f in swallower.swallowed} == {"ack", "message"}  # the server did store it
    assert alice.bodies() == ["first"]

    # The connection drops before the page heard back; it reconnects and resends with the same client_id.
    swallower.swallow = False
    swallower.drop_connections()
    alice.wait_bodies(["first", "exactly once"])
    assert alice.message("exactly once").get_attribute("data-state") == "delivered"
    assert alice.page.locator("#pending > li").count() == 0

    ids = [s["client_id"] for s in swallower.sends if s["body"] == "exactly once"]
    assert len(ids) == 2 and ids[0] == ids[1]  # sent twice, under one client_id
    # The replay after the reconnect may show the message before the resend's ack arrives: wait for that ack.
    eventually(
        alice.page,
        lambda: [a for a in swallower.acks if a["client_id"] == ids[0] and a.get("duplicate")],
        "the resend to be acknowledged as a duplicate",
    )
    assert stored_bodies(server, room, "alice") == ["first", "exactly once"]


def test_a_capped_replay_is_continued_until_the_page_is_live_again(
    make_server: Callable[..., ChatdProcess], people: Callable[..., ChatPage]
) -> None:
    server = make_server({"rooms": {"replay_max": 4}}).start()
    room = "capped-room"
    joined: list[dict[str, Any]] = []

    def watch(page: Any) -> None:
        def on_socket(ws: Any) -> None:
            ws.on(
                "framereceived",
                lambda payload: joined.extend(
                    f for f in map(json.loads, str(payload).split("\n")) if f["type"] == "joined"
                ),
            )

        page.on("websocket", on_socket)

    alice = people("alice", setup=watch).goto(server, room).sign_in()
    alice.wait_live(room)
    rest_send(server, room, "alice", "seen")
    alice.wait_bodies(["seen"])

    alice.context.set_offline(True)
    alice.page.wait_for_selector('body[data-conn="offline"]')
    missed = [f"missed {i:02d}" for i in range(1, 12)]  # nearly three replay caps' worth
    for body in missed:
        rest_send(server, room, "alice", body)
    alice.context.set_offline(False)
    alice.wait_bodies(["seen", *missed])
    assert [j.get("capped", False) for j in joined[1:]] == [True, True, False], json.dumps(joined)  # 4 + 4 + 3 replayed

    # Live again after the capped replays: a new message arrives without another reconnect.
    rest_send(server, room, "alice", "live after catching up")
    alice.wait_bodies(["seen", *missed, "live after catching up"])


def test_after_a_restore_the_page_drops_what_it_held_and_reloads_the_room(
    make_server: Callable[..., ChatdProcess], people: Callable[..., ChatPage], tmp_path: Any
) -> None:
    server = make_server().start()
    room = "restored-room"
    alice = people("alice").goto(server, room).sign_in()
    alice.wait_live(room)
    for body in ("kept 1", "kept 2", "kept 3"):
        rest_send(server, room, "alice", body)
    alice.wait_bodies(["kept 1", "kept 2", "kept 3"])
    backup = tmp_path / "at3.db"
    assert run_cli("backup", str(backup), "--config", str(server.config_path)).returncode == 0
    for body in ("lost 4", "lost 5"):  # seen by the page, not in the backup
        rest_send(server, room, "alice", body)
    alice.wait_bodies(["kept 1", "kept 2", "kept 3", "lost 4", "lost 5"])

    server.stop()
    restored = run_cli("restore", str(backup), "--config", str(server.config_path))
    assert restored.returncode == 0, restored.stderr
    server.start()  # same port; the page reconnects and resumes from seq 5 of the old epoch
    alice.wait_connected()
    alice.wait_live(room)
    # seq 4 and 5 of the restored room are new messages: the page must show them, and no longer show the lost ones.
    rest_send(server, room, "alice", "new 4")
    rest_send(server, room, "alice", "new 5")
    alice.wait_bodies(["kept 1", "kept 2", "kept 3", "new 4", "new 5"])
    assert alice.seqs() == [1, 2, 3, 4, 5]


def test_a_room_the_server_stopped_feeding_is_joined_again_and_keeps_receiving(
    make_server: Callable[..., ChatdProcess], people: Callable[..., ChatPage]
) -> None:
    server = make_server().start()
    room = "refed-room"
    alice = people("alice").goto(server, room).sign_in()
    alice.wait_live(room)
    rest_send(server, room, "alice", "before")
    alice.wait_bodies(["before"])
    # The room's epoch changes behind the node's back (a restore by hand); the next join there finds the node's
    # feed in the old epoch, resets it, and tells its followers with an error naming the room.
    assert run_cli("rooms", "new-epochs", "--config", str(server.config_path)).returncode == 0

    async def someone_joins() -> None:
        c = await Client.connect(server.ws, user="bob")
        await c.join(room)
        await c.close()

    # Playwright's own event loop runs in this thread: the WebSocket client gets a thread of its own.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, someone_joins()).result(30)
    rest_send(server, room, "alice", "after")
    alice.wait_bodies(["before", "after"])  # only if the page joined the room again
    rest_send(server, room, "alice", "live again")
    alice.wait_bodies(["before", "after", "live again"])
