"""The backup procedure in docs/backup.md, run as written against a live server: a server started on its
output has the messages and serves their attachments."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from harness import ROOT, ChatdProcess, Client

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20


def documented_script() -> str:
    text = (ROOT / "docs" / "backup.md").read_text()
    block = re.search(r"<!-- backup-script:start -->\n```sh\n(.*?)```\n<!-- backup-script:end -->", text, re.S)
    assert block, "docs/backup.md lost its backup script"
    return block.group(1)


async def test_the_documented_backup_keeps_messages_and_their_attachments(make_server, tmp_path: Path) -> None:
    if not (shutil.which("sqlite3") and shutil.which("rsync")):
        pytest.skip("the documented backup uses the sqlite3 and rsync commands")
    live: ChatdProcess = make_server({"uploads": {"dir": "uploads"}, "store": {"path": "chatd.db"}}, sub="live")
    live.start()
    up = httpx.post(f"{live.http}/api/uploads", params={"user": "keeper"}, content=PNG, timeout=10)
    assert up.status_code == 201, up.text
    uid = up.json()["id"]
    c = await Client.connect(live.ws, user="keeper")
    await c.join("kept")
    await c.send({"type": "send", "room": "kept", "body": "the picture", "client_id": "k1", "attachments": [uid]})
    await c.expect("ack", skip=("presence", "message", "room"))
    await c.close()

    # While the server keeps running, as the docs promise.
    r = subprocess.run(["sh", "-c", documented_script()], cwd=live.workdir, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    backup = live.workdir / r.stdout.strip().splitlines()[-1]
    assert not list(backup.rglob("*.part"))

    restored_dir = tmp_path / "restored"
    shutil.copytree(backup, restored_dir)
    restored: ChatdProcess = make_server({"uploads": {"dir": "uploads"}, "store": {"path": "chatd.db"}}, sub="rest")
    shutil.copytree(restored_dir, restored.workdir, dirs_exist_ok=True)
    restored.start()
    (m,) = restored.get("/api/rooms/kept/messages?user=keeper").json()["messages"]
    assert m["body"] == "the picture" and m["attachments"] == [uid]
    got = httpx.get(f"{restored.http}/api/uploads/{uid}", params={"user": "keeper"}, timeout=10)
    assert got.status_code == 200 and got.content == PNG
