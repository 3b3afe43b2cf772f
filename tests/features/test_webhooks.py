"""Outgoing webhooks against a real HTTP receiver started by the test (receiver.py): signed POSTs in seq order,
retries of a failing receiver, the bound and its visibility (REST, CLI, /metrics), a restart mid-retry, and two
nodes sharing PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from receiver import Received, Receiver

from chatd.features.outhooks.signing import SIGNATURE_HEADER, verify
from harness import ChatdProcess, register, run_cli

Make = Callable[..., ChatdProcess]

# Fast retries and polls for tests; 127.0.0.1 receivers need allow_private.
HOOKS = {"allow_private": True, "poll_interval": 0.1, "backoff_min": 0.1, "backoff_max": 0.4, "timeout": 2.0}


def settings(store: dict[str, dict[str, Any]] | None = None, **webhooks: Any) -> dict[str, dict[str, Any]]:
    return {"auth": {"mode": "token"}, "webhooks": {**HOOKS, **webhooks}, **(store or {})}


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> dict[str, dict[str, Any]]:
    """Each store in turn: the settings that select it."""
    if request.param == "sqlite":
        return {}
    return {"store": {"backend": "postgres", "dsn": request.getfixturevalue("pg_dsn")}}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def room_of(server: ChatdProcess, name: str, owner: str = "owner") -> str:
    """A token for ``owner``, who makes the room ``name``."""
    token = register(server, owner)
    r = server.post("/api/rooms", json={"name": name}, headers=auth(token))
    assert r.status_code == 201, r.text
    return token


def subscribe(server: ChatdProcess, token: str, room: str, url: str, events: list[str] | None = None) -> dict:
    r = server.post(f"/api/rooms/{room}/webhooks", json={"url": url, "events": events or []}, headers=auth(token))
    assert r.status_code == 201, r.text
    return r.json()


def say(server: ChatdProcess, token: str, room: str, body: str) -> int:
    r = server.post(f"/api/rooms/{room}/messages", json={"body": body}, headers=auth(token))
    assert r.status_code in (200, 201), r.text
    return r.json()["seq"]


def hooks(server: ChatdProcess, token: str, room: str) -> list[dict]:
    r = server.get(f"/api/rooms/{room}/webhooks", headers=auth(token))
    assert r.status_code == 200, r.text
    return r.json()["webhooks"]


def seqs(got: list[Received]) -> list[int]:
    return [r.id[1] for r in got]


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_every_kind_of_event_is_posted_in_seq_order_signed_with_room_and_seq_as_id(
    make_server: Make, store: dict
) -> None:
    server = make_server(settings(store)).start()
    token = room_of(server, "hooked")
    say(server, token, "hooked", "before the webhook")  # seq 1: not delivered, the webhook starts after it
    with Receiver() as everything, Receiver() as messages_only:
        made = subscribe(server, token, "hooked", everything.url)
        only = subscribe(server, token, "hooked", messages_only.url, ["message"])
        assert (
            made["secret"]
            and made["cursor"] == 1
            and made["events"] == ["message", "edit", "delete", "reaction", "topic"]
        )
        say(server, token, "hooked", "one")  # 2
        say(server, token, "hooked", "two")  # 3
        h = auth(token)
        assert httpx.patch(
            f"{server.http}/api/rooms/hooked/messages/2", json={"body": "one, edited"}, headers=h
        ).is_success  # 4
        r = server.post("/api/rooms/hooked/messages/3/reactions", json={"emoji": "👍"}, headers=h)  # 5
        assert r.status_code == 200, r.text
        assert httpx.delete(f"{server.http}/api/rooms/hooked/messages/3", headers=h).is_success  # 6
        got = everything.wait(5)
        assert seqs(got) == [2, 3, 4, 5, 6]
        assert [r.json["type"] for r in got] == ["message", "message", "edit", "reaction", "delete"]
        assert got[2].json["event"]["body"] == "one, edited" and got[2].json["event"]["target"] == 2
        assert got[3].json["event"]["emoji"] == "👍" and got[3].json["event"]["on"] is True
        for r in got:
            assert r.json["id"] == {"room": "hooked", "seq": r.json["event"]["seq"]} and r.json["hook"] == made["id"]
            assert r.headers["X-Chatd-Event"] == f"hooked/{r.id[1]}"
            assert verify(made["secret"], r.body, r.headers[SIGNATURE_HEADER], time.time())
            assert not verify(only["secret"], r.body, r.headers[SIGNATURE_HEADER], time.time())
            assert not verify(made["secret"], r.body + b" ", r.headers[SIGNATURE_HEADER], time.time())
        assert seqs(messages_only.wait(2)) == [2, 3]
        time.sleep(0.5)
        assert len(messages_only.requests) == 2  # edits, reactions and deletes were not for it
    eventually(lambda: {h["delivered"] for h in hooks(server, token, "hooked")} == {5, 2})
    listed = {h["id"]: h for h in hooks(server, token, "hooked")}
    assert listed[made["id"]]["delivered"] == 5 and listed[made["id"]]["state"] == "active"
    assert listed[only["id"]]["cursor"] == 6 and listed[only["id"]]["behind"] == 0
    assert "secret" not in listed[made["id"]]
    # A webhook is its room's creator's (or an admin's) to see and change.
    other = register(server, "someone")
    assert server.get("/api/rooms/hooked/webhooks", headers=auth(other)).status_code == 403
    r = server.post("/api/rooms/hooked/webhooks", json={"url": "http://127.0.0.1:9/"}, headers=auth(other))
    assert r.status_code == 403
    assert httpx.delete(f"{server.http}/api/rooms/hooked/webhooks/{made['id']}", headers=auth(token)).is_success
    assert [h["id"] for h in hooks(server, token, "hooked")] == [only["id"]]


def test_a_receiver_that_fails_then_recovers_gets_every_event_once_in_order(make_server: Make, store: dict) -> None:
    server = make_server(settings(store)).start()
    token = room_of(server, "flaky")
    with Receiver(fail_first=3) as receiver:
        subscribe(server, token, "flaky", receiver.url)
        for body in ("a", "b", "c"):
            say(server, token, "flaky", body)
        got = receiver.wait(3)
        assert seqs(got) == [1, 2, 3]
        assert [r.id[1] for r in receiver.requests] == [1, 1, 1, 1, 2, 3]  # the first retried until it went through
    # The store hears of the last POST just after the receiver answered it.
    eventually(lambda: hooks(server, token, "flaky")[0]["delivered"] == 3)
    m = server.metrics()
    assert m["chatd_webhook_failures_total"] == 3 and m["chatd_webhook_deliveries_total"] == 3
    [hook] = hooks(server, token, "flaky")
    assert (hook["state"], hook["attempts"], hook["delivered"], hook["last_error"]) == ("active", 0, 3, "")


def test_a_webhook_stops_at_the_bound_shows_it_everywhere_and_starts_again_when_enabled(
    make_server: Make, store: dict
) -> None:
    server = make_server(settings(store, max_attempts=3)).start()
    token = room_of(server, "down")
    cfg = ["--config", str(server.config_path)]
    with Receiver(failing=True) as receiver:
        made = subscribe(server, token, "down", receiver.url)
        say(server, token, "down", "anyone there?")
        eventually(lambda: hooks(server, token, "down")[0]["state"] == "failing")
        [hook] = hooks(server, token, "down")
        assert (hook["attempts"], hook["last_error"], hook["behind"]) == (3, "HTTP 500", 1)
        assert len(receiver.requests) == 3  # and no more: it stopped
        assert server.metrics()["chatd_webhooks_failing"] == 1
        listed = run_cli("webhooks", "list", *cfg)
        assert listed.returncode == 0, listed.stderr
        assert "failing" in listed.stdout and "HTTP 500" in listed.stdout and receiver.url in listed.stdout
        receiver.failing = False
        enabled = run_cli("webhooks", "enable", str(made["id"]), *cfg)
        assert enabled.returncode == 0, enabled.stderr
        assert seqs(receiver.wait(1)) == [1]
    eventually(lambda: hooks(server, token, "down")[0]["state"] == "active")
    removed = run_cli("webhooks", "remove", str(made["id"]), *cfg)
    assert removed.returncode == 0 and hooks(server, token, "down") == [], removed.stderr
    again = run_cli("webhooks", "remove", str(made["id"]), *cfg)
    assert again.returncode != 0 and "no webhook" in again.stderr


def test_a_restart_mid_retry_delivers_everything_after_it_in_order(make_server: Make, store: dict) -> None:
    server = make_server(settings(store, backoff_min=0.3, backoff_max=0.3)).start()
    token = room_of(server, "phoenix")
    with Receiver(failing=True) as receiver:
        subscribe(server, token, "phoenix", receiver.url)
        for body in ("one", "two", "three"):
            say(server, token, "phoenix", body)
        receiver.wait_requests(2)  # retrying the first
        server.kill()  # a crash: nothing saved on the way out
        receiver.failing = False
        server.start()
        got = receiver.wait(3)
        assert seqs(got) == [1, 2, 3]
        assert {r.id[1] for r in receiver.requests if r.status != 200} == {1}


@pytest.fixture
def two_nodes(make_server: Make, pg_dsn: str, redis_url: str, namespace: str) -> Callable[..., list[ChatdProcess]]:
    def make(**webhooks: Any) -> list[ChatdProcess]:
        shared = {
            **settings(**webhooks),
            "store": {"backend": "postgres", "dsn": pg_dsn},
            "broker": {"backend": "redis", "url": redis_url, "namespace": namespace},
        }
        return [make_server({**shared, "server": {"node_id": f"n{i}"}}).start() for i in (1, 2)]

    return make


def test_two_nodes_deliver_each_event_in_order_one_node_at_a_time(two_nodes: Callable[..., list[ChatdProcess]]) -> None:
    a, b = two_nodes()
    token = room_of(a, "shared")
    with Receiver(delay=0.02) as receiver:
        subscribe(b, token, "shared", receiver.url)
        for n in range(20):
            say(a if n % 2 else b, token, "shared", f"m{n}")
        receiver.wait(20)
        time.sleep(0.5)
        assert seqs(receiver.delivered()) == list(range(1, 21))  # each once, in order
    eventually(lambda: sum(node.metrics()["chatd_webhook_deliveries_total"] for node in (a, b)) == 20)


def test_when_the_delivering_node_dies_the_other_takes_over_in_order(
    two_nodes: Callable[..., list[ChatdProcess]],
) -> None:
    a, b = two_nodes(timeout=1.0, lease=2.0)
    token = room_of(a, "relay")
    with Receiver(delay=0.2) as receiver:
        subscribe(a, token, "relay", receiver.url)
        for n in range(10):
            say(a, token, "relay", f"m{n}")
        receiver.wait(2)
        holder = a if a.metrics()["chatd_webhooks_in_flight"] else b
        holder.kill()
        survivor = b if holder is a else a
        got = receiver.wait_distinct(10, timeout=30)
        ids = seqs(got)
        # At least once and in order: only the event in flight when the node died may come twice.
        assert sorted(set(ids)) == list(range(1, 11)) and ids == sorted(ids)
        assert len(ids) - len(set(ids)) <= 1
        assert survivor.metrics()["chatd_webhook_deliveries_total"] >= 1


def test_a_receiver_that_hangs_holds_up_neither_chat_nor_other_webhooks(make_server: Make) -> None:
    server = make_server(settings(timeout=30.0, lease=60.0)).start()
    token = room_of(server, "busy")
    with Receiver(delay=25.0) as stuck, Receiver() as fine:
        subscribe(server, token, "busy", stuck.url)
        subscribe(server, token, "busy", fine.url)
        sent = [say(server, token, "busy", f"m{n}") for n in range(10)]  # each answered once stored
        assert sent == list(range(1, 11))
        assert seqs(fine.wait(10)) == sent  # the other webhook of the same room is not held up
        assert len(stuck.requests) == 0  # still inside its first POST
        [slow] = [h for h in hooks(server, token, "busy") if h["url"] == stuck.url]
        assert slow["cursor"] == 0 and slow["behind"] == 10
        stuck.delay = 0.0
        server.stop()


def test_a_webhook_cannot_point_into_the_servers_own_network_unless_allowed(make_server: Make) -> None:
    server = make_server(settings(allow_private=False)).start()
    token = room_of(server, "inside")
    for url in ("http://127.0.0.1:9/", "http://localhost/x", "http://10.0.0.1/", "http://169.254.169.254/", "http://0"):
        r = server.post("/api/rooms/inside/webhooks", json={"url": url}, headers=auth(token))
        assert r.status_code == 403 and "not a public address" in r.json()["message"], (url, r.text)
    for url in ("ftp://example.com/", "http://user:pw@example.com/", "http://[::1]/", "http://a:99999/"):
        r = server.post("/api/rooms/inside/webhooks", json={"url": url}, headers=auth(token))
        assert r.status_code == 400 and r.json()["code"] == "invalid", (url, r.text)
    bad = {"url": "https://example.com/", "events": ["gossip"]}
    r = server.post("/api/rooms/inside/webhooks", json=bad, headers=auth(token))
    assert r.status_code == 400 and "gossip" in r.json()["message"]
