"""Finding 4: one user cannot fill the disk: quota, rate, expiry of unposted uploads, delete, free-space watermark,
and readiness that knows the store's disk."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
from security.conftest import bearer, hardened, new_user

from harness import ChatdProcess, Client

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 592  # 600 bytes that sniff as a PNG


def upload(server: ChatdProcess, token: str, data: bytes = PNG, **params: str) -> httpx.Response:
    return server.post("/api/uploads", content=data, params=params, headers=bearer(token))


def files_of(server: ChatdProcess) -> list[Path]:
    root = Path(server.settings["uploads"]["dir"])
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_the_upload_quota_holds_and_deleting_frees_it(make_server) -> None:
    """quota_bytes set through the environment, as an operator would (CHATD_UPLOADS_QUOTA_BYTES)."""
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token"}}), env={"CHATD_UPLOADS_QUOTA_BYTES": "1500"})
    server.start()
    token = new_user(server, "filler")
    first = upload(server, token)
    assert first.status_code == 201 and upload(server, token).status_code == 201
    over = upload(server, token)
    assert over.status_code == 413 and over.json()["code"] == "quota_exceeded"
    assert len(files_of(server)) == 2  # nothing of the refused upload stayed on disk
    gone = httpx.delete(f"{server.http}/api/uploads/{first.json()['id']}", headers=bearer(token), timeout=10)
    assert gone.status_code == 200 and gone.json() == {"deleted": True}
    assert server.get(f"/api/uploads/{first.json()['id']}", headers=bearer(token)).status_code == 404
    assert upload(server, token).status_code == 201
    other = new_user(server, "other")  # the quota is per user
    assert upload(server, other).status_code == 201


async def test_concurrent_uploads_cannot_overshoot_the_quota_together(make_server) -> None:
    server: ChatdProcess = make_server(
        hardened({"auth": {"mode": "token"}, "uploads": {"quota_bytes": 3000, "burst": 100, "rate": 100.0}})
    ).start()
    token = new_user(server, "racer")
    async with httpx.AsyncClient(timeout=30) as http:
        results = await asyncio.gather(
            *(http.post(server.http + "/api/uploads", content=PNG, headers=bearer(token)) for _ in range(20))
        )
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == 5 and codes.count(413) == 15
    assert sum(p.stat().st_size for p in files_of(server)) <= 3000


def test_uploads_are_rate_limited_per_user(make_server) -> None:
    server: ChatdProcess = make_server(
        hardened({"auth": {"mode": "token"}, "uploads": {"rate": 0.01, "burst": 3}})
    ).start()
    token = new_user(server, "spammer")
    codes = [upload(server, token).status_code for _ in range(3)]
    r = upload(server, token)
    assert codes == [201, 201, 201] and r.status_code == 429 and r.json()["code"] == "rate_limited"
    assert int(r.headers["retry-after"]) >= 1


async def test_unposted_uploads_expire_and_posted_ones_stay(make_server) -> None:
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token"}, "uploads": {"unposted_ttl": 1.0}})).start()
    token = new_user(server, "forgetful")
    server.post("/api/rooms", json={"name": "keep"}, headers=bearer(token))
    orphan = upload(server, token).json()["id"]
    posted = upload(server, token).json()["id"]
    c = await Client.connect(server.ws, token=token)
    await c.join("keep")
    await c.send({"type": "send", "room": "keep", "body": "", "client_id": "p1", "attachments": [posted]})
    await c.expect("ack", skip=("presence", "message", "room"))
    await c.close()
    deadline = time.monotonic() + 30
    while server.get(f"/api/uploads/{orphan}", headers=bearer(token)).status_code != 404:
        assert time.monotonic() < deadline, "the unposted upload was never deleted"
        await asyncio.sleep(0.2)
    assert server.get(f"/api/uploads/{posted}", headers=bearer(token)).status_code == 200
    assert [p.name for p in files_of(server)] == [posted]


def test_only_the_owner_or_an_admin_deletes_an_upload(make_server) -> None:
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token", "first_user_admin": True}})).start()
    admin = new_user(server, "the_admin")
    owner, stranger = new_user(server, "owner"), new_user(server, "stranger")
    a, b = upload(server, owner).json()["id"], upload(server, owner).json()["id"]
    r = httpx.delete(f"{server.http}/api/uploads/{a}", headers=bearer(stranger), timeout=10)
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert httpx.delete(f"{server.http}/api/uploads/{b}", headers=bearer(admin), timeout=10).status_code == 200
    assert httpx.delete(f"{server.http}/api/uploads/{a}", headers=bearer(owner), timeout=10).status_code == 200
    assert httpx.delete(f"{server.http}/api/uploads/{a}", headers=bearer(owner), timeout=10).status_code == 404
    assert files_of(server) == []


def test_uploads_stop_at_the_free_space_watermark(make_server) -> None:
    """The watermark is set above the disk's real free space, so the server believes its disk is nearly full."""
    server: ChatdProcess = make_server(
        hardened({"auth": {"mode": "token"}, "uploads": {"min_free_bytes": 2**62}})
    ).start()
    token = new_user(server, "late_uploader")
    r = upload(server, token)
    assert r.status_code == 507 and r.json()["code"] == "insufficient_storage"
    assert files_of(server) == [] and "below uploads.min_free_bytes" in server.log()


async def test_below_the_stores_watermark_readyz_says_not_ready_and_sends_are_refused(make_server) -> None:
    """The old server kept saying ready, and sends hung on a full disk; now both tell the client at once."""
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token"}, "store": {"min_free_bytes": 2**62}}))
    server.start(path="/healthz")
    r = server.get("/readyz")
    assert r.status_code == 503 and r.json()["ready"] is False and r.json()["store_disk"] is False
    token = new_user(server, "writer")
    c = await Client.connect(server.ws, token=token)
    await c.join("full-disk")
    await c.send({"type": "send", "room": "full-disk", "body": "hello", "client_id": "fd-1"})
    err = await c.expect("error")
    assert err["code"] == "unavailable" and err["ref"] == "fd-1"
    await c.close()
    r = server.post("/api/rooms/full-disk/messages", json={"body": "hello"}, headers=bearer(token))
    assert r.status_code == 503 and r.json()["code"] == "unavailable"
    # A room change takes the same path into the node, and so the same check.
    r = httpx.put(server.http + "/api/rooms/full-disk/topic", json={"topic": "t"}, headers=bearer(token), timeout=10)
    assert r.status_code == 503 and r.json()["code"] == "unavailable"
    assert server.get("/api/rooms/full-disk/messages", headers=bearer(token)).json()["messages"] == []
    assert server.log().count("below store.min_free_bytes") == 1


def test_database_wal_and_uploads_are_private(make_server) -> None:
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token"}}))
    old = os.umask(0o022)  # the usual umask, which made them world-readable before
    try:
        server.start()
    finally:
        os.umask(old)
    token = new_user(server, "private_person")
    assert upload(server, token).status_code == 201
    db = Path(server.settings["store"]["path"])
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}.lock"), *files_of(server)):
        assert path.exists() and path.stat().st_mode & 0o077 == 0, f"{path} is {oct(path.stat().st_mode)}"
    for d in {p.parent for p in files_of(server)} | {Path(server.settings["uploads"]["dir"])}:
        assert d.stat().st_mode & 0o077 == 0, f"{d} is {oct(d.stat().st_mode)}"


def test_an_upload_whose_file_is_gone_is_not_found_not_a_crash(make_server) -> None:
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token"}})).start()
    token = new_user(server, "loser")
    upload_id = upload(server, token).json()["id"]
    for path in files_of(server):
        path.unlink()  # a sweep on another node, an operator, an uploads.dir not shared between nodes
    r = server.get(f"/api/uploads/{upload_id}", headers=bearer(token))
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert "has a record but no file" in server.log() and "Traceback" not in server.log()
