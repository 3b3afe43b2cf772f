"""Also weak: tokens in URLs. Short-lived, single-use WebSocket tickets and signed, expiring attachment keys stand
in for the token where a header cannot go; tokens can expire (auth.token_ttl)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable

import httpx
import websockets
from security.conftest import bearer, hardened, new_user

from harness import ChatdProcess, Client

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def until(check: Callable[[], bool], timeout: float) -> None:
    """Wait for something the server does on its own clock (an expiry), asking again and again."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "it did not happen in time"
        time.sleep(0.05)


def ticket(server: ChatdProcess, token: str) -> dict:
    r = server.post("/api/auth/ticket", headers=bearer(token))
    assert r.status_code == 200, r.text
    return r.json()


async def closed_with(url: str) -> int | None:
    async with websockets.connect(url) as ws:
        try:
            await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed as e:
            return e.rcvd.code if e.rcvd else None
    return None


async def test_a_ticket_opens_one_session_and_only_once(make_server) -> None:
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token"}})).start()
    token = new_user(server, "ticketed")
    t = ticket(server, token)
    assert token not in t["ticket"] and t["ticket_expires_in"] == 30.0
    c = await Client.connect(f"{server.ws}?ticket={t['ticket']}")
    assert c.hello["user"] == "ticketed"
    await c.close()
    assert await closed_with(f"{server.ws}?ticket={t['ticket']}") == 4401  # spent
    forged = t["ticket"][:-2] + ("AA" if not t["ticket"].endswith("AA") else "BB")
    assert await closed_with(f"{server.ws}?ticket={forged}") == 4401
    # a media key is not a ticket
    assert await closed_with(f"{server.ws}?ticket={t['media_key']}") == 4401


async def test_tickets_expire_and_die_with_their_token(make_server) -> None:
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token", "ticket_ttl": 0.5}})).start()
    token = new_user(server, "shortlived")
    before = time.time()
    late = ticket(server, token)["ticket"]
    # The ticket carries auth.ticket_ttl as its expiry; that an expired one is refused is proven with a stepped
    # clock in tests/test_expiry.py, so this test waits for no real time to pass.
    payload = late.partition(".")[0]
    expires = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))[3]
    assert before + 0.5 <= expires <= time.time() + 0.5 + 0.01
    fresh = ticket(server, token)["ticket"]
    c = await Client.connect(f"{server.ws}?ticket={fresh}")
    # logging the token out closes the session its ticket opened, and its unused tickets are dead too
    unused = ticket(server, token)["ticket"]
    assert server.post("/api/auth/logout", headers=bearer(token)).json() == {"revoked": True}
    assert (await c.closed())[0] == 4401
    assert await closed_with(f"{server.ws}?ticket={unused}") == 4401


def test_a_media_key_reads_attachments_and_nothing_else(make_server) -> None:
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token", "media_ttl": 1.0}})).start()
    token = new_user(server, "viewer")
    upload_id = server.post("/api/uploads", content=PNG, headers=bearer(token)).json()["id"]
    key = ticket(server, token)["media_key"]
    r = server.get(f"/api/uploads/{upload_id}", params={"key": key})
    assert r.status_code == 200 and r.content == PNG
    assert server.get("/api/me", params={"key": key}).status_code == 401
    assert server.get("/api/me", headers=bearer(key)).status_code == 401
    assert httpx.delete(f"{server.http}/api/uploads/{upload_id}", params={"key": key}, timeout=10).status_code == 401
    until(lambda: server.get(f"/api/uploads/{upload_id}", params={"key": key}).status_code == 401, 10)  # expired


def test_tokens_expire_after_token_ttl(make_server) -> None:
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token", "token_ttl": 1.0}})).start()
    token = new_user(server, "ephemeral")
    assert server.get("/api/me", headers=bearer(token)).status_code == 200
    until(lambda: server.get("/api/me", headers=bearer(token)).status_code == 401, 10)


def test_the_shipped_nginx_configs_log_no_query_strings() -> None:
    """Query strings can hold a ticket, a media key or an old client's token: every access log format shipped in
    config/ leaves them out."""
    import re
    from pathlib import Path

    configs = sorted((Path(__file__).resolve().parents[2] / "config").glob("*.conf"))
    assert configs
    for path in configs:
        conf = path.read_text()
        formats = dict(re.findall(r"log_format\s+(\S+)\s+(.*?);", conf, re.S))
        used = re.findall(r"^\s*access_log\s+\S+\s+(\S+?);", conf, re.M)
        assert used and all(name in formats for name in used), path.name
        for name in used:
            assert not re.search(r"\$(request|request_uri|args|query_string|arg_\w+)\b", formats[name]), path.name
            assert "$uri" in formats[name], path.name


def test_nginx_accepts_the_sample_config_and_its_log_keeps_no_secret(make_server, tmp_path) -> None:
    """nginx in front of a real chatd, as in config/nginx-chatd.conf: a request with a secret in its query string
    leaves the path in the access log and not the secret."""
    import shutil
    import subprocess
    from pathlib import Path

    import pytest

    from harness import free_port

    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token"}})).start()
    port = free_port()
    site = (Path(__file__).resolve().parents[2] / "config" / "nginx-chatd.conf").read_text()
    site = site.replace("/var/log/nginx/chatd.access.log", str(tmp_path / "access.log"))
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};").replace("127.0.0.1:8000", f"127.0.0.1:{server.port}")
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\ndaemon off;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {tmp_path};\n  include {tmp_path}/site.conf;\n}}\n"
    )
    check = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], capture_output=True)
    assert check.returncode == 0, check.stderr.decode()
    proc = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/server", params={"ticket": "SECRET-TICKET"}, timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "nginx did not come up"
                time.sleep(0.1)
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
    log = (tmp_path / "access.log").read_text()
    assert "GET /api/server HTTP/1.1" in log and "SECRET-TICKET" not in log


async def test_a_ticket_from_one_node_opens_a_session_on_another(cluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Without auth.secret the nodes sign with the deployment's key from the store, so a page whose ticket request
    and WebSocket reach different nodes behind the proxy still connects (and its images still load)."""
    c = cluster(2, {"auth": {"mode": "token"}, "uploads": {"dir": str(tmp_path / "shared-uploads")}})
    n1, n2 = c.nodes
    token = httpx.post(f"{n1.http}/api/auth/register", json={"username": "roamer", "password": "correct horse"})
    token = token.json()["token"]
    upload_id = httpx.post(f"{n1.http}/api/uploads", content=PNG, headers=bearer(token)).json()["id"]
    t = httpx.post(f"{n1.http}/api/auth/ticket", headers=bearer(token)).json()
    client = await Client.connect(f"{n2.ws}?ticket={t['ticket']}")
    assert client.hello["user"] == "roamer"
    await client.close()
    r = httpx.get(f"{n2.http}/api/uploads/{upload_id}", params={"key": t["media_key"]}, timeout=10)
    assert r.status_code == 200
