"""Large payloads: frames up to the limit pass, beyond it a clear error; pictures go through /api/uploads."""

from __future__ import annotations

import httpx
import pytest

from harness import ChatdProcess, Client

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200


@pytest.fixture(scope="module")
def up_server(tmp_path_factory: pytest.TempPathFactory):
    proc = ChatdProcess(tmp_path_factory.mktemp("up"), {"uploads": {"max_bytes": 2 * 1024 * 1024}}).start()
    yield proc
    proc.stop()


def upload(server: ChatdProcess, user: str, data: bytes, **params: str) -> httpx.Response:
    return httpx.post(
        server.http + "/api/uploads",
        params={"user": user, **params},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )


async def test_a_photo_is_uploaded_attached_and_served_only_to_room_members(up_server: ChatdProcess) -> None:
    photo = PNG + bytes(range(256)) * 4000  # about 1 MB: far over the frame limit, fine as an upload
    r = upload(up_server, "photo_owner", photo, name="beach.png")
    assert r.status_code == 201, r.text
    meta = r.json()
    assert meta["content_type"] == "image/png" and meta["size"] == len(photo) and meta["name"] == "beach.png"
    uid = meta["id"]
    # before it is posted anywhere, only its owner may fetch it
    assert httpx.get(up_server.http + f"/api/uploads/{uid}?user=someone_else").status_code == 404
    owner = await Client.connect(up_server.ws, user="photo_owner")
    await owner.join("photos")
    await owner.send({"type": "send", "room": "photos", "body": "look", "client_id": "p1", "attachments": [uid]})
    await owner.expect("ack", skip=("presence", "message", "room"))
    history = up_server.get("/api/rooms/photos/messages?user=photo_owner").json()["messages"]
    assert history[-1]["attachments"] == [uid]
    member = await Client.connect(up_server.ws, user="photo_member")
    await member.join("photos")
    got = httpx.get(up_server.http + f"/api/uploads/{uid}?user=photo_member")
    assert got.status_code == 200 and got.content == photo
    assert got.headers["content-type"].startswith("image/png")
    assert got.headers["x-content-type-options"] == "nosniff"
    up_server.post("/api/rooms?user=photo_outsider_owner", json={"name": "elsewhere"})
    assert httpx.get(up_server.http + f"/api/uploads/{uid}?user=photo_outsider_owner").status_code == 404
    await owner.close()
    await member.close()


def test_uploads_over_the_cap_are_refused_and_leave_nothing_behind(up_server: ChatdProcess) -> None:
    big = PNG + b"\x01" * (3 * 1024 * 1024)
    r = upload(up_server, "big_uploader", big)
    assert r.status_code == 413 and r.json()["code"] == "too_large"

    def chunks():  # no Content-Length: the cap must hold while streaming
        for _ in range(40):
            yield b"\x01" * 100_000

    r = httpx.post(up_server.http + "/api/uploads?user=big_uploader", content=chunks(), timeout=30)
    assert r.status_code == 413
    leftovers = [p for p in (up_server.workdir / "uploads").rglob("*") if p.is_file()]
    assert all(not p.name.endswith(".part") for p in leftovers)


def test_the_type_is_sniffed_not_trusted(up_server: ChatdProcess) -> None:
    exe = b"MZ\x90\x00" + b"\x00\xff" * 300
    r = httpx.post(up_server.http + "/api/uploads?user=sniffer", content=exe, headers={"Content-Type": "image/png"})
    assert r.status_code == 415 and r.json()["code"] == "unsupported_type"
    r = upload(up_server, "sniffer", "plain words, ünïcode too".encode())
    assert r.status_code == 201 and r.json()["content_type"] == "text/plain"


async def test_attachments_must_exist_and_belong_to_the_sender(up_server: ChatdProcess) -> None:
    theirs = upload(up_server, "att_alice", PNG).json()["id"]
    c = await Client.connect(up_server.ws, user="att_bob")
    await c.join("att-room")
    for ids in (["doesnotexist"], [theirs]):
        await c.send({"type": "send", "room": "att-room", "body": "x", "client_id": "a", "attachments": ids})
        err = await c.expect("error")
        assert err["code"] == "not_found" and err["ref"] == "a"
    await c.close()


def test_upload_into_a_room_needs_membership(up_server: ChatdProcess) -> None:
    up_server.post("/api/rooms?user=locked_owner", json={"name": "locked", "private": True})
    r = upload(up_server, "not_in_locked", PNG, room="locked")
    assert r.status_code == 404  # a private room's outsider is answered as for a missing room
    ok = upload(up_server, "locked_owner", PNG, room="locked")
    assert ok.status_code == 201 and ok.json()["room"] == "locked"
