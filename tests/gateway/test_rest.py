"""The REST API in token mode: accounts, rooms, members, history paging, sending, admin bots."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from harness import ChatdProcess, Client, register


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatdProcess]:
    """A chatd in token mode where the first registrant becomes admin (auth.first_user_admin)."""
    proc = ChatdProcess(tmp_path_factory.mktemp("chatd"), {"auth": {"mode": "token", "first_user_admin": True}})
    yield proc.start()
    proc.stop()


@pytest.fixture(scope="module")
def admin(token_server: ChatdProcess) -> str:
    """The first registered user, who is admin."""
    return register(token_server, "root_admin")


def test_first_user_is_admin_and_later_ones_are_not(token_server: ChatdProcess, admin: str) -> None:
    assert token_server.get("/api/me", headers=auth(admin)).json()["admin"] is True
    other = register(token_server, "plain_user")
    me = token_server.get("/api/me", headers=auth(other)).json()
    assert me["name"] == "plain_user" and me["admin"] is False


def test_register_refuses_taken_names_and_weak_input(token_server: ChatdProcess, admin: str) -> None:
    r = token_server.post("/api/auth/register", json={"username": "root_admin", "password": "whatever123"})
    assert r.status_code == 409 and r.json()["code"] == "conflict"
    r = token_server.post("/api/auth/register", json={"username": "shorty", "password": "123"})
    assert r.status_code == 400 and r.json()["code"] == "invalid"
    r = token_server.post("/api/auth/register", json={"username": "bad name!", "password": "long enough"})
    assert r.status_code == 400
    r = token_server.post("/api/auth/register", json={"username": "x"})
    assert r.status_code == 400 and r.json()["code"] == "invalid"


@pytest.mark.parametrize(
    ("path", "body", "field", "words"),
    [
        ("/api/auth/register", {"username": "shorty", "password": "123"}, "password", "at least 8 characters"),
        ("/api/auth/register", {"username": "bad name!", "password": "long enough"}, "username", "letters, digits"),
        ("/api/auth/register", {"username": "x"}, "password", "password is required"),
        ("/api/auth/register", {"username": 5, "password": "long enough"}, "username", "must be text"),
        ("/api/auth/register", {"username": "a" * 33, "password": "long enough"}, "username", "at most 32"),
        ("/api/auth/register", {"username": "ok", "password": "long enough", "x": 1}, "x", "not a field"),
        ("/api/rooms", {"name": "no spaces please"}, "name", "start with a letter or digit"),
        ("/api/rooms", {"name": "fine", "private": 0}, "private", "true or false"),
        ("/api/rooms/lobby/messages", {"body": "hi", "reply_to": 0}, "reply_to", "at least 1"),
    ],
)
def test_a_refused_body_is_answered_invalid_in_words_naming_the_field(
    token_server: ChatdProcess, admin: str, path: str, body: dict[str, object], field: str, words: str
) -> None:
    """Issue 21.1: no msgspec wording, no regex, and not the WebSocket word bad_frame."""
    r = token_server.post(path, json=body, headers=auth(admin))
    answer = r.json()
    assert r.status_code == 400 and answer["code"] == "invalid", r.text
    assert answer["field"] == field and field in answer["message"] and words in answer["message"], answer
    assert "Expected" not in answer["message"] and "regex" not in answer["message"] and "$." not in r.text


def test_a_refused_query_parameter_is_answered_invalid_naming_it(token_server: ChatdProcess, admin: str) -> None:
    token_server.post("/api/rooms", json={"name": "paged"}, headers=auth(admin))
    r = token_server.get("/api/rooms/paged/messages", params={"limit": "ten"}, headers=auth(admin))
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (400, "invalid", "limit"), r.text
    assert r.json()["message"] == "limit must be a whole number, not text"
    r = token_server.post("/api/rooms", content=b'{"name": "x"', headers=auth(admin))
    assert (r.status_code, r.json()["code"]) == (400, "invalid") and "not valid JSON" in r.json()["message"]


def test_login_issues_a_new_token_and_logout_revokes_it(token_server: ChatdProcess) -> None:
    register(token_server, "login_user", "s3cret-pass")
    bad = token_server.post("/api/auth/login", json={"username": "login_user", "password": "wrong-pass"})
    assert bad.status_code == 401 and bad.json()["code"] == "unauthorized"
    nobody = token_server.post("/api/auth/login", json={"username": "ghost", "password": "whatever1"})
    assert nobody.status_code == 401
    token = token_server.post("/api/auth/login", json={"username": "login_user", "password": "s3cret-pass"}).json()[
        "token"
    ]
    assert token_server.get("/api/me", headers=auth(token)).status_code == 200
    assert token_server.post("/api/auth/logout", headers=auth(token)).json() == {"revoked": True}
    assert token_server.get("/api/me", headers=auth(token)).status_code == 401


async def test_logout_closes_that_tokens_sockets(token_server: ChatdProcess) -> None:
    token = register(token_server, "logout_ws")
    other = token_server.post("/api/auth/login", json={"username": "logout_ws", "password": "correct horse"}).json()[
        "token"
    ]
    c1 = await Client.connect(token_server.ws, token=token)
    c2 = await Client.connect(token_server.ws, token=other)
    token_server.post("/api/auth/logout", headers=auth(token))
    code, _ = await c1.closed()
    assert code == 4401
    await c2.send({"type": "ping"})
    assert (await c2.expect("pong"))["type"] == "pong"  # the other token's session lives on
    await c2.close()


def test_tokens_are_stored_only_as_hashes_and_passwords_with_a_kdf(token_server: ChatdProcess) -> None:
    import sqlite3

    token = register(token_server, "hash_check", "hunter2-hunter2")
    db = sqlite3.connect(token_server.settings["store"]["path"])
    stored_tokens = [row[0] for row in db.execute("SELECT hash FROM tokens")]
    (pw,) = db.execute("SELECT password_hash FROM users WHERE name='hash_check'").fetchone()
    assert token not in stored_tokens and all(len(h) == 64 for h in stored_tokens)
    assert pw.startswith("scrypt$") and "hunter2" not in pw


def test_no_credentials_means_401_everywhere(token_server: ChatdProcess) -> None:
    for path in ("/api/me", "/api/rooms", "/api/rooms/x/messages"):
        r = token_server.get(path)
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    assert token_server.get("/api/me?user=someone").status_code == 401  # open-mode names mean nothing here
    assert token_server.get("/api/me", headers=auth("chatd_forged")).status_code == 401


def test_rooms_create_list_get(token_server: ChatdProcess, admin: str) -> None:
    r = token_server.post("/api/rooms", headers=auth(admin), json={"name": "general", "private": False})
    assert r.status_code == 201 and r.json()["member"] is True
    assert token_server.post("/api/rooms", headers=auth(admin), json={"name": "general"}).status_code == 409
    assert token_server.post("/api/rooms", headers=auth(admin), json={"name": "no spaces"}).status_code == 400
    names = [room["name"] for room in token_server.get("/api/rooms", headers=auth(admin)).json()["rooms"]]
    assert "general" in names
    room = token_server.get("/api/rooms/general", headers=auth(admin)).json()
    assert room["name"] == "general" and room["private"] is False and room["last_seq"] == 0
    assert token_server.get("/api/rooms/nope", headers=auth(admin)).status_code == 404


async def test_private_room_is_denied_over_rest_and_websocket_until_invited(token_server: ChatdProcess) -> None:
    owner = register(token_server, "vault_owner")
    outsider = register(token_server, "vault_outsider")
    token_server.post("/api/rooms", headers=auth(owner), json={"name": "vault", "private": True})
    token_server.post("/api/rooms/vault/messages", headers=auth(owner), json={"body": "the code is 1234"})
    listed = [r["name"] for r in token_server.get("/api/rooms", headers=auth(outsider)).json()["rooms"]]
    assert "vault" not in listed
    for path in (
        "/api/rooms/vault",
        "/api/rooms/vault/messages",
        "/api/rooms/vault/members",
        "/api/rooms/vault/presence",
    ):
        r = token_server.get(path, headers=auth(outsider))
        assert r.status_code == 404 and r.json()["code"] == "not_found", path  # as if there were no such room
        assert "1234" not in r.text
    r = token_server.post("/api/rooms/vault/messages", headers=auth(outsider), json={"body": "let me in"})
    assert r.status_code == 404
    r = token_server.post("/api/rooms/vault/members", headers=auth(outsider), json={"user": "vault_outsider"})
    assert r.status_code == 404
    ws = await Client.connect(token_server.ws, token=outsider)
    await ws.send({"type": "join", "room": "vault", "since": 0})
    assert (await ws.expect("error"))["code"] == "not_found"
    # invited, the same requests succeed
    r = token_server.post("/api/rooms/vault/members", headers=auth(owner), json={"user": "vault_outsider"})
    assert r.status_code == 201
    joined = await ws.join("vault", since=0)
    assert joined["replay"] == 1
    (old,) = await ws.messages(1)
    assert old["body"] == "the code is 1234"
    # removed again, live delivery to them stops and sending is refused
    r = httpx.delete(token_server.http + "/api/rooms/vault/members/vault_outsider", headers=auth(owner))
    assert r.json()["removed"] is True
    assert (await ws.expect("left"))["room"] == "vault"
    await ws.send({"type": "send", "room": "vault", "body": "still here?", "client_id": "c9"})
    assert (await ws.expect("error"))["code"] == "not_found"  # a private room's outsider, as for a missing room
    await ws.close()


def test_only_the_creator_or_admin_removes_other_members(token_server: ChatdProcess, admin: str) -> None:
    creator = register(token_server, "club_creator")
    member = register(token_server, "club_member")
    token_server.post("/api/rooms", headers=auth(creator), json={"name": "club"})
    token_server.post("/api/rooms/club/members", headers=auth(creator), json={"user": "club_member"})
    r = httpx.delete(token_server.http + "/api/rooms/club/members/club_creator", headers=auth(member))
    assert r.status_code == 403
    r = httpx.delete(token_server.http + "/api/rooms/club/members/club_member", headers=auth(member))
    assert r.json()["removed"] is True  # leaving yourself is always allowed
    members = token_server.get("/api/rooms/club/members", headers=auth(admin)).json()["members"]
    assert members == ["club_creator"]


def test_rest_send_is_acked_after_storage_and_idempotent(token_server: ChatdProcess, admin: str) -> None:
    token_server.post("/api/rooms", headers=auth(admin), json={"name": "rest-send"})
    r = token_server.post(
        "/api/rooms/rest-send/messages", headers=auth(admin), json={"body": "via rest", "client_id": "r-1"}
    )
    assert r.status_code == 201
    msg = r.json()
    assert msg["seq"] == 1 and msg["from"] == "root_admin" and msg["client_id"] == "r-1" and msg["ts"] > 0
    again = token_server.post(
        "/api/rooms/rest-send/messages", headers=auth(admin), json={"body": "via rest", "client_id": "r-1"}
    ).json()
    assert again["seq"] == 1 and again["duplicate"] is True
    history = token_server.get("/api/rooms/rest-send/messages", headers=auth(admin)).json()["messages"]
    assert len(history) == 1
    big = token_server.post("/api/rooms/rest-send/messages", headers=auth(admin), json={"body": "x" * 70_000})
    assert big.status_code == 413 and big.json()["code"] == "too_large"
    empty = token_server.post("/api/rooms/rest-send/messages", headers=auth(admin), json={"body": ""})
    assert empty.status_code == 400


def test_history_pages_by_seq_in_both_directions(token_server: ChatdProcess, admin: str) -> None:
    token_server.post("/api/rooms", headers=auth(admin), json={"name": "paged"})
    for i in range(1, 26):
        token_server.post("/api/rooms/paged/messages", headers=auth(admin), json={"body": f"m{i}"})

    def page(**params: int) -> dict:
        return token_server.get("/api/rooms/paged/messages", headers=auth(admin), params=params).json()

    latest = page(limit=10)
    assert [m["seq"] for m in latest["messages"]] == list(range(16, 26)) and latest["has_more"] is True
    older = page(before=16, limit=10)
    assert [m["seq"] for m in older["messages"]] == list(range(6, 16)) and older["has_more"] is True
    oldest = page(before=6, limit=10)
    assert [m["seq"] for m in oldest["messages"]] == list(range(1, 6)) and oldest["has_more"] is False
    forward = page(after=20, limit=3)
    assert [m["seq"] for m in forward["messages"]] == [21, 22, 23] and forward["has_more"] is True
    window = page(after=3, before=7)
    assert [m["seq"] for m in window["messages"]] == [4, 5, 6]
    assert page(after=25)["messages"] == []
    first = latest["messages"][0]
    assert set(first) == {"type", "room", "seq", "from", "body", "client_id", "ts", "uid"}
    assert token_server.get("/api/rooms/paged/messages", headers=auth(admin), params={"limit": 0}).status_code == 400


def test_admin_creates_bots_in_bulk_and_others_cannot(token_server: ChatdProcess, admin: str) -> None:
    r = token_server.post("/api/admin/bots", headers=auth(admin), json={"prefix": "bot", "count": 12})
    bots = r.json()["bots"]
    assert r.status_code == 201 and len(bots) == 12 and bots[0]["name"] == "bot01"
    me = token_server.get("/api/me", headers=auth(bots[3]["token"])).json()
    assert me == {
        "id": me["id"],
        "disabled": False,
        "name": "bot04",
        "admin": False,
        "bot": True,
        "created": token_server.get("/api/me", headers=auth(bots[3]["token"])).json()["created"],
        "display_name": "",
    }
    pleb = register(token_server, "not_admin")
    assert token_server.post("/api/admin/bots", headers=auth(pleb), json={"names": ["x1"]}).status_code == 403
    r = token_server.post("/api/admin/bots", headers=auth(admin), json={"names": ["not_admin"]})
    assert r.status_code == 409  # a human account cannot be turned into a bot


def test_openapi_schema_is_served(token_server: ChatdProcess) -> None:
    schema = token_server.get("/schema/openapi.json").json()
    assert "/api/rooms/{room}/messages" in schema["paths"]
    assert "/api/auth/register" in schema["paths"]


def test_ops_endpoints(token_server: ChatdProcess) -> None:
    assert token_server.get("/healthz").text == "ok"
    ready = token_server.get("/readyz").json()
    assert ready == {
        "ready": True,
        "store": True,
        "broker": True,
        "worker": True,
        "tasks": True,
        "accepting": True,
        "store_disk": True,
    }
    metrics = token_server.get("/metrics").text
    for name in (
        "chatd_connections",
        "chatd_messages_in_total",
        "chatd_ingest_queue_depth",
        "chatd_persist_batch_size_bucket",
        "chatd_persist_seconds_count",
        "chatd_messages_out_total",
        'chatd_task_crashes_total{task="chatd-worker"} 0.0',
    ):
        assert name in metrics
