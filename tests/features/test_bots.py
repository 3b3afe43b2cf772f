"""Bot accounts (issue 24.1): made by ``chatd bots``, no password sign-in, tokens scoped to rooms and actions on REST
and the WebSocket, and a send that goes the same way as anyone's (rate, membership, client_id idempotency)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest

from harness import NOISE, ChatdProcess, Client, clean_env, register, run_cli


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cli(server: ChatdProcess, *args: str) -> subprocess.CompletedProcess[str]:
    r = run_cli(*args, "--config", str(server.config_path))
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture
def server(make_server: Callable[..., ChatdProcess]) -> ChatdProcess:
    return make_server({"auth": {"mode": "token", "first_user_admin": True}}).start()


def room(server: ChatdProcess, token: str, name: str, private: bool = False) -> None:
    r = server.post("/api/rooms", json={"name": name, "private": private}, headers=auth(token))
    assert r.status_code == 201, r.text


def test_a_bot_made_by_the_cli_sends_in_its_scope_only_and_is_marked_a_bot(server: ChatdProcess) -> None:
    alice = register(server, "alice")
    room(server, alice, "ops")
    room(server, alice, "random")
    token = cli(server, "bots", "add", "deploy-bot", "--room", "ops", "--action", "send").stdout.strip()
    me = server.get("/api/me", headers=auth(token)).json()
    assert me["bot"] is True and me["name"] == "deploy-bot"
    sent = server.post("/api/rooms/ops/messages", json={"body": "deployed", "client_id": "d1"}, headers=auth(token))
    assert sent.status_code == 201 and sent.json()["bot"] is True, sent.text
    # Outside its scope: another room, another action, any other route.
    for method, path, body in [
        ("POST", "/api/rooms/random/messages", {"body": "x"}),
        ("GET", "/api/rooms/ops/messages", None),
        ("POST", "/api/rooms/ops/messages/1/reactions", {"emoji": "👍"}),
        ("POST", "/api/rooms", {"name": "botroom"}),
        ("GET", "/api/rooms", None),
        ("POST", "/api/dms", {"user": "alice"}),
        # Accounts people manage themselves are not a bot token's to use.
        ("GET", "/api/users", None),
        ("PATCH", "/api/me", {"display_name": "Deployer"}),
        ("POST", "/api/me/password", {"old_password": "x" * 8, "new_password": "y" * 8}),
    ]:
        r = httpx.request(method, server.http + path, json=body, headers=auth(token), timeout=10)
        assert (r.status_code, r.json()["code"]) == (403, "forbidden"), (path, r.text)
    # Everyone sees it as a bot's message.
    history = server.get("/api/rooms/ops/messages", headers=auth(alice)).json()["messages"]
    assert [(m["from"], m["body"], m.get("bot")) for m in history] == [("deploy-bot", "deployed", True)]
    members = server.get("/api/rooms/ops/members", headers=auth(alice)).json()
    assert dict(zip(members["members"], members["uids"], strict=True))["deploy-bot"] == members["bots"][0] == me["id"]
    # The user directory says which accounts are bots (users.bot), as the member list does.
    found = server.get("/api/users", params={"q": "deploy"}, headers=auth(alice)).json()["users"]
    assert [(u["uid"], u["name"], u["bot"]) for u in found] == [(me["id"], "deploy-bot", True)]
    assert [u["bot"] for u in server.get("/api/users", params={"q": "alice"}, headers=auth(alice)).json()["users"]] == [
        False
    ]
    listed = cli(server, "bots", "list").stdout
    assert "deploy-bot" in listed and "send @ ops" in listed


def test_a_bot_cannot_sign_in_with_a_password(server: ChatdProcess) -> None:
    cli(server, "bots", "add", "quiet-bot")
    r = server.post("/api/auth/login", json={"username": "quiet-bot", "password": "correct horse"})
    assert (r.status_code, r.json()["code"]) == (401, "unauthorized")
    r = subprocess.run(
        [sys.executable, "-m", "chatd", "users", "reset-password", "quiet-bot", "--password-stdin"]
        + ["--config", str(server.config_path)],
        input="correct horse\n",
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert r.returncode != 0 and "is a bot" in r.stderr, r.stderr


async def test_a_scoped_token_is_enforced_frame_by_frame_on_the_websocket(server: ChatdProcess) -> None:
    alice = register(server, "alice")
    room(server, alice, "ops")
    room(server, alice, "random")
    token = cli(server, "bots", "add", "watcher", "--room", "ops", "--action", "send", "--action", "read").stdout
    human = await Client.connect(server.ws, token=alice)
    bot = await Client.connect(server.ws, token=token.strip())
    try:
        await human.join("ops")
        await bot.join("ops")
        await bot.send({"type": "join", "room": "random"})
        refused = await bot.expect("error")
        assert (refused["code"], refused.get("room")) == ("forbidden", "random")
        ack = await bot.say("ops", "build green", "b1")
        assert ack["seq"] == 1
        seen = await human.expect("message")
        assert (seen["from"], seen["bot"], seen["body"]) == ("watcher", True, "build green")
        await bot.send({"type": "react", "room": "ops", "seq": 1, "emoji": "👍", "client_id": "r1"})
        assert (await bot.expect("error", skip=(*NOISE, "message")))["code"] == "forbidden"
        await bot.send({"type": "send", "room": "random", "body": "hi", "client_id": "b2"})
        assert (await bot.expect("error", skip=(*NOISE, "message")))["code"] == "forbidden"
    finally:
        await human.close()
        await bot.close()
    # A ticket (what the page and URL-bound clients use) carries its token's scope along.
    ticket = server.post("/api/auth/ticket", headers=auth(token.strip())).json()["ticket"]
    by_ticket = await Client.connect(f"{server.ws}?ticket={ticket}")
    try:
        await by_ticket.send({"type": "join", "room": "random"})
        assert (await by_ticket.expect("error"))["code"] == "forbidden"
    finally:
        await by_ticket.close()


def test_a_bots_send_takes_the_same_path_rate_membership_and_idempotency(
    make_server: Callable[..., ChatdProcess],
) -> None:
    server = make_server(
        {"auth": {"mode": "token", "first_user_admin": True}, "limits": {"send_rate": 0.01, "send_burst": 3}}
    ).start()
    alice = register(server, "alice")
    room(server, alice, "ops")
    room(server, alice, "secret", private=True)
    token = cli(server, "bots", "add", "any-bot", "--room", "ops").stdout.strip()
    wide = cli(server, "bots", "token", "any-bot", "--room", "*").stdout.strip()
    first = server.post("/api/rooms/ops/messages", json={"body": "one", "client_id": "k1"}, headers=auth(token))
    again = server.post("/api/rooms/ops/messages", json={"body": "one", "client_id": "k1"}, headers=auth(token))
    assert first.status_code == again.status_code == 201
    assert again.json()["duplicate"] is True and again.json()["seq"] == first.json()["seq"]
    # '*' is any room the bot is a member of, never one it is not.
    r = server.post("/api/rooms/secret/messages", json={"body": "in?"}, headers=auth(wide))
    assert (r.status_code, r.json()["code"]) == (404, "not_found"), r.text  # a private room's outsider: as if missing
    # The bot's send budget (limits.send_burst 3: every attempt above drew on it) is spent by now.
    r = server.post("/api/rooms/ops/messages", json={"body": "three"}, headers=auth(token))
    assert (r.status_code, r.json()["code"]) == (429, "rate_limited"), r.text


def test_admins_make_bots_and_scoped_tokens_over_rest(server: ChatdProcess) -> None:
    admin = register(server, "root")
    plain = register(server, "plain")
    room(server, admin, "ci")
    assert server.post("/api/admin/bots/new", json={"name": "rest-bot"}, headers=auth(plain)).status_code == 403
    made = server.post("/api/admin/bots/new", json={"name": "rest-bot"}, headers=auth(admin))
    assert made.status_code == 201 and made.json()["bot"] is True
    r = server.post("/api/admin/bots/rest-bot/tokens", json={"rooms": ["ci"], "actions": ["send"]}, headers=auth(admin))
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert server.post("/api/rooms/ci/messages", json={"body": "ok"}, headers=auth(token)).status_code == 201
    r = server.post("/api/admin/bots/root/tokens", json={"rooms": ["ci"]}, headers=auth(admin))
    assert (r.status_code, r.json()["code"]) == (409, "conflict")  # a person gets no scoped token
    r = server.post("/api/admin/bots/rest-bot/tokens", json={"rooms": ["ci"], "actions": ["fly"]}, headers=auth(admin))
    assert r.status_code == 400
    bots = server.get("/api/admin/bots", headers=auth(admin)).json()["bots"]
    assert [(b["name"], [t["scope"] for t in b["tokens"]]) for b in bots] == [
        ("rest-bot", [{"rooms": ["ci"], "actions": ["send"]}])
    ]
    # Removing the bot stops its tokens at once.
    cli(server, "bots", "remove", "rest-bot")
    assert server.get("/api/me", headers=auth(token)).status_code == 401
