"""``DELETE /api/admin/rooms/{room}`` and ``/api/admin/users/{user}``: admins delete rooms and users for good, and
open sockets are told at once."""

from __future__ import annotations

from typing import Any

import httpx

from harness import ChatdProcess, Client

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
NOISE = ("presence", "ping", "typing")


def register(server: ChatdProcess, name: str) -> str:
    r = server.post("/api/auth/register", json={"username": name, "password": "long enough pw"})
    assert r.status_code == 201, r.text
    return r.json()["token"]


def call(server: ChatdProcess, method: str, path: str, token: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, server.http + path, headers={"Authorization": f"Bearer {token}"}, timeout=10, **kw)


async def test_an_admin_deletes_a_room_with_its_history_and_files_and_then_a_user(make_server) -> None:
    server: ChatdProcess = make_server({"auth": {"mode": "token", "first_user_admin": True}}).start()
    root = register(server, "root")
    member_token = register(server, "member")
    watcher = await Client.connect(server.ws, token=register(server, "watcher"))
    member = await Client.connect(server.ws, token=member_token)
    await member.join("trash")
    up = call(server, "POST", "/api/uploads?room=trash", member_token, content=PNG)
    assert up.status_code == 201, up.text
    upload_id = up.json()["id"]
    await member.send({"type": "send", "room": "trash", "body": "junk", "client_id": "j1", "attachments": [upload_id]})
    await member.expect("ack", skip=(*NOISE, "message", "room"))
    files = [p for p in (server.workdir / "uploads").rglob("*") if p.is_file()]
    assert len(files) == 1

    assert call(server, "DELETE", "/api/admin/rooms/trash", member_token).status_code == 403
    r = call(server, "DELETE", "/api/admin/rooms/trash", root)
    assert r.status_code == 200 and r.json() == {"room": "trash", "deleted": True, "members": 1, "uploads": 1}
    assert (await member.expect("left", skip=(*NOISE, "room", "message")))["reason"] == "removed"
    assert (await watcher.expect("room", skip=NOISE)) == {
        "type": "room",
        "room": "trash",
        "change": "created",
        "by": "member",
    }
    assert (await watcher.expect("room", skip=NOISE)) == {
        "type": "room",
        "room": "trash",
        "change": "deleted",
        "by": "root",
    }
    assert call(server, "GET", "/api/rooms/trash/messages", root).status_code == 404
    assert not [p for p in (server.workdir / "uploads").rglob("*") if p.is_file()]
    assert call(server, "DELETE", "/api/admin/rooms/trash", root).status_code == 404

    assert call(server, "DELETE", "/api/admin/users/root", root).status_code == 403  # not yourself
    r = call(server, "DELETE", "/api/admin/users/MEMBER", root)
    assert r.status_code == 200 and r.json()["user"] == "member"
    code, _ = await member.closed()
    assert code == 4401
    assert call(server, "GET", "/api/me", member_token).status_code == 401
    assert call(server, "DELETE", "/api/admin/users/member", root).status_code == 404
    await watcher.close()
