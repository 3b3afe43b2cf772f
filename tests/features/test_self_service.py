"""Accounts people manage themselves (issue 21, item 3), through a real server on SQLite and on PostgreSQL: a
password change that needs the current password and signs out every other session, a display name every socket
hears of, and a user directory that pages, searches and shows nothing private."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from harness import NOISE, ChatdProcess, Client, register


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, make_server: Callable[..., ChatdProcess]) -> Iterator[ChatdProcess]:
    """A token-mode server whose first registrant is admin, on each store in turn."""
    settings: dict[str, dict[str, Any]] = {"auth": {"mode": "token", "first_user_admin": True}}
    if request.param == "postgres":
        settings["store"] = {"backend": "postgres", "dsn": request.getfixturevalue("pg_dsn")}
    yield make_server(settings).start()


class Api:
    """REST calls as one user."""

    def __init__(self, server: ChatdProcess, token: str) -> None:
        self.server = server
        self.token = token

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.token}"}
        return httpx.request(method, self.server.http + path, headers=headers, timeout=10, **kw)

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        r = self.call(method, path, **kw)
        assert r.status_code in (200, 201), r.text
        return r.json()

    def error(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        r = self.call(method, path, **kw)
        assert r.status_code >= 400, r.text
        return dict(r.json())


def login(server: ChatdProcess, name: str, password: str) -> httpx.Response:
    return server.post("/api/auth/login", json={"username": name, "password": password})


async def test_a_password_change_needs_the_current_one_and_signs_out_every_other_session(
    server: ChatdProcess,
) -> None:
    here = Api(server, register(server, "pwann", "first password"))
    other = login(server, "pwann", "first password").json()["token"]
    elsewhere = await Client.connect(server.ws, token=other)
    assert here.ok("GET", "/api/me")["name"] == "pwann"

    wrong = here.error("POST", "/api/me/password", json={"old_password": "not it", "new_password": "second password"})
    assert (wrong["code"], wrong.get("field")) == ("forbidden", "old_password")
    short = here.error("POST", "/api/me/password", json={"old_password": "first password", "new_password": "short"})
    assert (short["code"], short.get("field")) == ("invalid", "new_password")
    assert login(server, "pwann", "first password").status_code == 200  # nothing changed yet

    done = here.ok("POST", "/api/me/password", json={"old_password": "first password", "new_password": "second one!"})
    assert done["changed"] is True and done["revoked"] == 2  # the other sign-in, and the login just above
    # The session that asked stays signed in; every other token stops working and its socket closes.
    assert here.ok("GET", "/api/me")["name"] == "pwann"
    assert Api(server, other).call("GET", "/api/me").status_code == 401
    assert (await elsewhere.closed())[0] == 4401
    assert login(server, "pwann", "first password").status_code == 401
    assert login(server, "pwann", "second one!").status_code == 200


async def test_a_display_name_reaches_every_socket_and_refuses_control_and_direction_characters(
    server: ChatdProcess,
) -> None:
    ann = Api(server, register(server, "dnann"))
    bob = Api(server, register(server, "dnbob"))
    ann_id = ann.ok("GET", "/api/me")["id"]
    watcher = await Client.connect(server.ws, token=bob.token)
    me = ann.ok("PATCH", "/api/me", json={"display_name": "  Ann Lee  "})
    assert (me["id"], me["name"], me["display_name"]) == (ann_id, "dnann", "Ann Lee")
    frame = await watcher.expect("user", skip=NOISE)
    assert frame == {"type": "user", "uid": ann_id, "name": "dnann", "was": "dnann", "display_name": "Ann Lee"}
    assert ann.ok("GET", "/api/me")["display_name"] == "Ann Lee"

    for bad in ("Ann\u202eeL", "Ann\nLee", "Ann\x1b[31m", "x" * 65):
        refused = ann.error("PATCH", "/api/me", json={"display_name": bad})
        assert (refused["code"], refused.get("field")) == ("invalid", "display_name"), bad
    assert ann.ok("GET", "/api/me")["display_name"] == "Ann Lee"
    ann.ok("PATCH", "/api/me", json={"display_name": ""})
    assert (await watcher.expect("user", skip=NOISE))["display_name"] == ""
    await watcher.close()


async def test_the_directory_pages_and_searches_names_and_display_names_and_shows_nothing_private(
    server: ChatdProcess,
) -> None:
    root = Api(server, register(server, "root"))
    names = [f"dir{i:02d}" for i in range(7)]
    users = {name: Api(server, register(server, name)) for name in names}
    users["dir03"].ok("PATCH", "/api/me", json={"display_name": "Zoë Directory"})
    root.ok("POST", "/api/admin/bots", json={"names": ["dirbot"]})
    me = users["dir00"]

    seen, after = [], None
    while True:
        page = me.ok("GET", "/api/users", params={"q": "dir", "limit": 3, **({"after": after} if after else {})})
        assert len(page["users"]) <= 3
        seen += page["users"]
        after = page["next"]
        if after is None:
            break
    assert [u["name"] for u in seen] == [*names, "dirbot"]
    assert all(set(u) == {"uid", "name", "display_name", "bot"} for u in seen)  # no role, state, e-mail or token
    assert [u["name"] for u in seen if u["bot"]] == ["dirbot"]

    found = me.ok("GET", "/api/users", params={"q": "zO"})["users"]
    assert [(u["name"], u["display_name"]) for u in found] == [("dir03", "Zoë Directory")]
    assert me.ok("GET", "/api/users", params={"q": "DIR0"})["next"] is None

    # A disabled user is not listed; looking users up by id (for names seen in messages) still finds them.
    dir05 = users["dir05"].ok("GET", "/api/me")["id"]
    dir03 = users["dir03"].ok("GET", "/api/me")["id"]
    root.ok("PATCH", f"/api/admin/accounts/{dir05}", json={"disabled": True})
    assert "dir05" not in [u["name"] for u in me.ok("GET", "/api/users", params={"q": "dir"})["users"]]
    by_id = me.ok("GET", "/api/users", params={"ids": f"{dir03},{dir05},999999"})["users"]
    assert [(u["uid"], u["name"]) for u in by_id] == sorted([(dir03, "dir03"), (dir05, "dir05")])
    assert httpx.get(server.http + "/api/users").status_code == 401


async def test_the_admin_api_does_what_the_cli_does_by_user_id(server: ChatdProcess) -> None:
    root = Api(server, register(server, "root"))
    eve = Api(server, register(server, "adeve", "eve's password"))
    eve_id = eve.ok("GET", "/api/me")["id"]
    root_id = root.ok("GET", "/api/me")["id"]
    assert eve.error("GET", "/api/admin/accounts")["code"] == "forbidden"
    assert eve.error("PATCH", f"/api/admin/accounts/{root_id}", json={"disabled": True})["code"] == "forbidden"
    listed = root.ok("GET", "/api/admin/accounts", params={"q": "ade"})["users"]
    assert [(u["uid"], u["admin"], u["disabled"]) for u in listed] == [(eve_id, False, False)]

    socket = await Client.connect(server.ws, token=eve.token)
    off = root.ok("PATCH", f"/api/admin/accounts/{eve_id}", json={"disabled": True})
    assert off["disabled"] is True
    assert (await socket.closed())[0] == 4401
    assert login(server, "adeve", "eve's password").status_code == 401
    assert root.ok("PATCH", f"/api/admin/accounts/{eve_id}", json={"disabled": False, "admin": True})["admin"]
    assert eve.ok("GET", "/api/me")["admin"] is True  # her token works again, now as an admin
    assert root.error("PATCH", f"/api/admin/accounts/{root_id}", json={"admin": False})["code"] == "forbidden"
    assert root.error("PATCH", "/api/admin/accounts/999999", json={"admin": True})["code"] == "not_found"

    reset = root.ok("POST", f"/api/admin/accounts/{eve_id}/password", json={"password": "a new secret"})
    assert reset["revoked"] >= 1
    assert eve.call("GET", "/api/me").status_code == 401
    assert login(server, "adeve", "a new secret").status_code == 200

    made = root.ok("POST", "/api/admin/invites", json={"count": 2, "days": 1})
    assert len(made["codes"]) == 2 and all(c.startswith("inv_") for c in made["codes"])
    invites = root.ok("GET", "/api/admin/invites")["invites"]
    assert [(i["created_by"], i["used_by"]) for i in invites] == [("root", None), ("root", None)]
    assert all("hash" not in i for i in invites)

    root.ok("POST", "/api/rooms", json={"name": "old-project"})
    assert root.ok("PATCH", "/api/admin/rooms/old-project", json={"archived": True}) == {
        "room": "old-project",
        "archived": True,
    }
    rooms = {r["name"]: r for r in root.ok("GET", "/api/admin/rooms")["rooms"]}
    assert rooms["old-project"]["archived"] is True
    sent = root.error("POST", "/api/rooms/old-project/messages", json={"body": "hello?"})
    assert sent["code"] == "archived"
    root.ok("PATCH", "/api/admin/rooms/old-project", json={"archived": False})
    root.ok("POST", "/api/rooms/old-project/messages", json={"body": "back"})
    assert root.error("PATCH", "/api/admin/rooms/nope", json={"archived": True})["code"] == "not_found"
