"""Round 2, finding 8: a deleted message's attachment stops being served (404, as for an upload that never
existed) and stops counting against its uploader's quota, and its file leaves the disk, as docs/protocol.md says a
delete removes attachments. An upload another live message still shows stays."""

from __future__ import annotations

import time

import httpx
from security.conftest import bearer, hardened, new_user
from security.test_upload_abuse import files_of, upload

from harness import ChatdProcess


def send(server: ChatdProcess, token: str, room: str, attachments: list[str]) -> int:
    r = server.post(f"/api/rooms/{room}/messages", json={"body": "", "attachments": attachments}, headers=bearer(token))
    assert r.status_code == 201, r.text
    return int(r.json()["seq"])


def test_a_deleted_messages_attachment_is_gone_and_frees_the_quota(make_server) -> None:
    server: ChatdProcess = make_server(hardened({"uploads": {"quota_bytes": 1500}})).start()
    owner, reader = new_user(server, "att-owner"), new_user(server, "att-reader")
    assert server.post("/api/rooms", json={"name": "att-room"}, headers=bearer(owner)).status_code == 201
    assert server.post("/api/rooms/att-room/members", json={"user": "att-reader"}, headers=bearer(owner)).is_success
    picture, shared = (upload(server, owner, room="att-room").json()["id"] for _ in range(2))
    doomed = send(server, owner, "att-room", [picture, shared])
    send(server, owner, "att-room", [shared])  # the same upload shown by a second message
    assert server.get(f"/api/uploads/{picture}", headers=bearer(reader)).status_code == 200
    full = upload(server, owner)
    assert (full.status_code, full.json()["code"]) == (413, "quota_exceeded")

    gone = httpx.delete(f"{server.http}/api/rooms/att-room/messages/{doomed}", headers=bearer(owner), timeout=10)
    assert gone.status_code == 200, gone.text
    for token in (owner, reader):
        r = server.get(f"/api/uploads/{picture}", headers=bearer(token))
        assert r.status_code == 404 and r.json()["code"] == "not_found", r.status_code
    assert server.get(f"/api/uploads/{shared}", headers=bearer(reader)).status_code == 200  # still shown
    assert upload(server, owner).status_code == 201  # the deleted attachment no longer counts
    deadline = time.monotonic() + 10
    while any(p.name == picture for p in files_of(server)):
        assert time.monotonic() < deadline, "the deleted attachment's file stayed on disk"
        time.sleep(0.05)
